import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from statarb_kit import InvalidParameter, StoreLockedError, TickBatch, TickStore
from tests.conftest import make_ticks

SYMS = ("AAAUSDT", "BBBUSDT")


def stored_keys(store: TickStore) -> list[tuple[str, int]]:
    return [tuple(r) for r in store.con.execute("SELECT symbol, trade_id FROM ticks ORDER BY 1, 2").fetchall()]


def test_insert_returns_rows_and_names_symbols():
    store = TickStore()
    batch = TickBatch.concat([make_ticks(5, sym=0), make_ticks(3, sym=1, first_id=100)])
    fresh = store.insert_ticks(batch, SYMS)
    assert len(fresh) == 8
    df = store.con.execute("SELECT * FROM ticks ORDER BY symbol, trade_id").df()
    assert df["symbol"].tolist() == ["AAAUSDT"] * 5 + ["BBBUSDT"] * 3
    np.testing.assert_array_equal(df["price"].to_numpy()[:5], batch.price[:5])
    assert df["ts"].dtype == np.int64


def test_writing_the_same_ticks_twice_stores_them_once():
    store = TickStore()
    batch = make_ticks(1000)
    assert len(store.insert_ticks(batch, SYMS)) == 1000
    assert len(store.insert_ticks(batch, SYMS)) == 0
    assert store.tick_count() == 1000 and store.duplicates == 1000


def test_overlap_and_in_batch_duplicates_and_gap_fill():
    store = TickStore()
    store.insert_ticks(make_ticks(100, first_id=1), SYMS)  # ids 1..100
    store.insert_ticks(make_ticks(50, first_id=151, t0=1_700_000_001_500), SYMS)  # 151..200: a gap
    overlap = make_ticks(80, first_id=91, t0=1_700_000_000_900)  # 91..170: 10 old, 50 new, 20 old
    doubled = TickBatch.concat([overlap, overlap.take(np.arange(0, 80, 3))])
    fresh = store.insert_ticks(doubled, SYMS)
    assert sorted(fresh.trade_id.tolist()) == list(range(101, 151))
    assert [k[1] for k in stored_keys(store)] == list(range(1, 201))


def test_same_trade_id_on_another_symbol_is_not_a_duplicate():
    store = TickStore()
    store.insert_ticks(make_ticks(10, sym=0), SYMS)
    assert len(store.insert_ticks(make_ticks(10, sym=1), SYMS)) == 10


def test_restart_on_the_same_file_keeps_rows_and_stays_idempotent(db_path):
    store = TickStore(db_path)
    store.insert_ticks(make_ticks(500), SYMS)
    store.close()
    again = TickStore(db_path)  # a new kernel: watermarks come back from the file
    assert again.tick_count() == 500
    assert len(again.insert_ticks(make_ticks(700), SYMS)) == 200
    assert [k[1] for k in stored_keys(again)] == list(range(1, 701))
    again.close()


def test_read_only_store_refuses_writes(db_path):
    TickStore(db_path).close()
    ro = TickStore(db_path, read_only=True)
    with pytest.raises(InvalidParameter, match="read-only"):
        ro.insert_ticks(make_ticks(1), SYMS)
    ro.close()


def test_second_process_gets_a_clear_lock_error(db_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from statarb_kit import TickStore
            s = TickStore({str(db_path)!r})
            print("ready", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError) as err:
            TickStore(db_path)
        msg = str(err.value)
        assert f"PID {holder.pid}" in msg and "read_only=True" in msg and "another file" in msg
        with pytest.raises(StoreLockedError):
            TickStore(db_path, read_only=True)
    finally:
        holder.communicate("\n", timeout=30)
    TickStore(db_path, read_only=True).close()  # free again once the writer is gone


def test_batches_are_inserted_as_frames_not_rows(monkeypatch):
    store = TickStore()
    calls = []
    real = store.con

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *a):
            calls.append(sql)
            return real.execute(sql, *a)

        def executemany(self, *a):  # pragma: no cover - must never be used
            raise AssertionError("row-by-row insert")

    store.con = Spy()
    store.insert_ticks(make_ticks(10_000), SYMS)
    assert sum("INSERT INTO ticks" in c for c in calls) == 1


def _layout_file(path, layout: int = 2):
    """A kept store of an older layout (tests/data/store_layout<N>) rebuilt as a DuckDB file at ``path``."""
    import duckdb
    from pathlib import Path

    folder = Path(__file__).parent / "data" / f"store_layout{layout}"
    con = duckdb.connect(str(path))
    con.execute((folder / "schema.sql").read_text())
    con.execute((folder / "load.sql").read_text().replace("{DIR}", str(folder)))
    con.close()


def test_a_file_of_the_last_layout_opens_and_is_brought_up_to_date_with_nothing_lost(tmp_path):
    """A store as the kit wrote it before schema versions: opened for writing it gains
    ``schema_version`` (3 and 4, each recorded with its note), ``quotes`` and ``quote_bars``; its
    ticks and bars are the same rows; read-only it is read as it is; opened again nothing more
    changes."""
    from statarb_kit.store import SCHEMA_VERSION

    path = tmp_path / "old.duckdb"
    _layout_file(path)
    before = TickStore(path, read_only=True)
    assert before.schema_version == 2 and not before.has_table("quotes")
    ticks, bars = before.tick_count(), before.bars("1s")
    before.close()
    assert ticks == 800 and len(bars) == 41
    store = TickStore(path)
    assert store.schema_version == SCHEMA_VERSION == 4 and store.has_table("quotes") and store.has_table("quote_bars")
    assert store.con.execute("SELECT version, note FROM schema_version").fetchall() == [
        (3, "tables schema_version and quotes"), (4, "table quote_bars")]
    assert store.tick_count() == ticks
    pd.testing.assert_frame_equal(store.bars("1s"), bars)
    store.close()
    again = TickStore(path)
    assert again.con.execute("SELECT count(*) FROM schema_version").fetchall() == [(2,)]
    again.close()


def test_a_file_of_layout_3_gains_quote_bars_and_keeps_its_quotes(tmp_path):
    """A store with raw quotes (layout 3) opens with today's kit: one step recorded, the quotes,
    ticks and bars the same rows, and a backtest of it still fills at the touch of its quotes."""
    from statarb_kit.backtest.data import bars_from_store

    path = tmp_path / "l3.duckdb"
    _layout_file(path, 3)
    before = TickStore(path, read_only=True)
    assert before.schema_version == 3 and not before.has_table("quote_bars")
    quotes, ticks, bars = before.quotes("BTCUSDT"), before.tick_count(), before.bars("1s")
    before.close()
    assert len(quotes) == 288 and ticks == 600  # a quote after each of its trades
    store = TickStore(path)
    assert store.schema_version == 4
    assert store.con.execute("SELECT version, note FROM schema_version ORDER BY version").fetchall()[1:] == [
        (4, "table quote_bars")]
    pd.testing.assert_frame_equal(store.quotes("BTCUSDT"), quotes)
    pd.testing.assert_frame_equal(store.bars("1s"), bars)
    assert store.tick_count() == ticks and not len(store.quote_bars("BTCUSDT", "1s"))
    store.close()
    assert bars_from_store(path, ("BTCUSDT", "ETHUSDT"), "1s").quotes is not None


def test_a_file_of_a_newer_layout_is_refused_and_left_unchanged(tmp_path):
    import duckdb

    from statarb_kit.errors import CorruptFileError

    path = tmp_path / "new.duckdb"
    TickStore(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (9, 0, 'from the future')")
    con.close()
    size = path.stat().st_size
    with pytest.raises(CorruptFileError, match="written by a newer statarb_kit \\(layout 9; this kit writes 4\\)"):
        TickStore(path)
    assert path.stat().st_size == size
    assert TickStore(path, read_only=True).tick_count() == 0  # still readable as it is


def test_a_file_of_the_first_layout_goes_through_both_steps(tmp_path):
    """Layout 1 flagged REST fills ``backfilled``: the flag becomes ``via`` (agg_split / stream),
    then layouts 3 and 4; each step is recorded."""
    import duckdb

    path = tmp_path / "first.duckdb"
    _layout_file(path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE ticks SET via = 'agg_split' WHERE trade_id % 7 = 0")
    con.execute("ALTER TABLE ticks ADD COLUMN backfilled BOOLEAN")
    con.execute("UPDATE ticks SET backfilled = via = 'agg_split'")
    con.execute("ALTER TABLE ticks DROP COLUMN via")
    flagged = con.execute("SELECT count(*) FROM ticks WHERE backfilled").fetchall()[0][0]
    con.close()
    store = TickStore(path)
    assert store.con.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [(2,), (3,), (4,)]
    via = dict(store.con.execute("SELECT via, count(*) FROM ticks GROUP BY via").fetchall())
    store.close()
    assert flagged > 50 and via == {"agg_split": flagged, "stream": 800 - flagged}  # layout 1 knew only the two
