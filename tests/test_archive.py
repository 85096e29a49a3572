"""The Parquet archive: what it holds equals the store, every reader reads it, no reader sees half a file."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from statarb_kit.archive import export_store, read_bars, read_closes, read_funding, write_bars
from statarb_kit.backtest import bars_from_store
from statarb_kit.funding import synthetic_funding
from statarb_kit.scan.data import closes_from_store
from statarb_kit.store import TickStore

from .fake_binance import make_klines
from .test_klines import M, MAINTENANCE, ms


def _store(path) -> TickStore:
    store = TickStore(path)
    late = ms("2026-01-10")  # listed late: the wide frame has NaN before it
    for k, (s, t0) in enumerate((("AAAUSDT", ms("2025-12-20")), ("BBBUSDT", ms("2025-12-20")), ("CCCUSDT", late))):
        bars = make_klines(s, M, t0, ms("2026-02-02"), seed=k, holes=[MAINTENANCE])
        store.insert_kline_bars("1m", s, bars, "kline_dump")
        store.insert_funding(synthetic_funding(s, ms("2025-12-20"), ms("2026-02-02"), seed=k))
    return store


def test_the_archive_equals_the_store_for_every_loader(tmp_path):
    store = _store(tmp_path / "s.duckdb")
    try:
        files = export_store(store, tmp_path / "arch")
    finally:
        store.close()
    assert files == 3 + 3 + 2 + 3  # a file per month of bars (CCCUSDT: listed in January), one of funding each
    months = sorted(p.parent.name for p in (tmp_path / "arch").glob("bars/timeframe=1m/symbol=AAAUSDT/*/*.parquet"))
    assert months == ["month=2025-12", "month=2026-01", "month=2026-02"]
    db, arch = tmp_path / "s.duckdb", tmp_path / "arch"
    # the scan's loader: the same wide frame, bounds included
    for bounds in ((None, None), ("2026-01-05", "2026-01-20 12:00")):
        pd.testing.assert_frame_equal(closes_from_store(arch, "1m", None, *bounds),
                                      closes_from_store(db, "1m", None, *bounds), check_freq=False)
    # the backtests' loader (sweep, portfolio): bars and funding
    a, b = bars_from_store(arch, "AAAUSDT,CCCUSDT"), bars_from_store(db, "AAAUSDT,CCCUSDT")
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.price_x, b.price_x)
    np.testing.assert_array_equal(a.price_y, b.price_y)
    np.testing.assert_array_equal(a.funding.x.rate, b.funding.x.rate)
    # any DuckDB reads it as one hive-partitioned table, partition keys from the paths
    with duckdb.connect() as con:
        counts = con.execute("SELECT symbol, count(*) FROM read_parquet(?, hive_partitioning = true) GROUP BY 1 "
                             "ORDER BY 1", [str(arch / "bars" / "*" / "*" / "*" / "*.parquet")]).fetchall()
    s = TickStore(db, read_only=True)
    try:
        want = s.con.execute("SELECT symbol, count(*) FROM bars_1m GROUP BY 1 ORDER BY 1").fetchall()
        assert read_funding(arch, "BBBUSDT").time.tolist() == s.funding("BBBUSDT").time.tolist()
        stored = s.bars("1m", "BBBUSDT")
    finally:
        s.close()
    assert counts == want
    got = read_bars(arch, "1m", "BBBUSDT")
    assert got["start"].tolist() == stored["start"].tolist() and set(got["origin"]) == {"kline_dump"}
    np.testing.assert_array_equal(got["vwap"].to_numpy(float), stored["vwap"].to_numpy(float))


def test_a_reader_never_sees_half_a_file(tmp_path):
    """A writer rewrites one month again and again (2 sizes alternating) while readers count its
    rows: every count is one of the two sizes, and no temporary file is left. (DuckDB's
    read_parquet reopens a file by name within a query: one that races a rewrite can fail and is
    run again; the README says so.)"""
    big = make_klines("AAAUSDT", M, ms("2026-01-01"), ms("2026-02-01"), seed=1).drop(columns=["close_time",
                                                                                            "taker_buy_quote_volume"])
    small = big.iloc[: 10_000]
    write_bars(tmp_path, "1m", "AAAUSDT", big)
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set():
            write_bars(tmp_path, "1m", "AAAUSDT", small if k % 2 else big)
            k += 1

    t = threading.Thread(target=writer)
    t.start()
    seen = []
    try:
        for _ in range(150):  # the kit's reader, and pyarrow's dataset over the whole tree as Dask reads it
            seen.append(len(read_closes(tmp_path, "1m", ["AAAUSDT"])))
            seen.append(ds.dataset(tmp_path / "bars", format="parquet", partitioning="hive").count_rows())
    finally:
        stop.set()
        t.join()
    assert set(seen) <= {len(big), len(small)} and len(set(seen)) == 2
    assert not list(tmp_path.rglob("*.tmp"))
