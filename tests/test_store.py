import subprocess
import sys
import textwrap

import numpy as np
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
