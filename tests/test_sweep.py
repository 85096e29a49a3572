"""Sweeps, data loading, results tables, the papermill notebook and `statarb sweep`: the same
numbers whatever runs the backtest."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statarb_kit import InvalidParameter, Session, SyntheticPair, TickStore
from statarb_kit.analytics import align_pair
from statarb_kit.backtest import BacktestParams, DataSpec, backtest_bars, bars_from_files, bars_from_store, expand_grid
from statarb_kit.backtest.engine import METRIC_NAMES, SignalIndex
from statarb_kit.backtest.frame import signal_frame
from statarb_kit.backtest.params import PARAM_NAMES
from statarb_kit.backtest.sweep import _chunks, best, heatmap, read_results, run_sweep, write_results
from statarb_kit.cli import main
from statarb_kit.widgets.backtest_view import heatmap_figure
from tests.test_replay import T0, trades_rows, write

ROOT = Path(__file__).resolve().parents[1]
SMALL = BacktestParams(z_window=20, corr_window=20, hedge_window=40, fee_bps=1.0)
GRID = {"z_entry": [1.0, 1.5, 2.0], "z_exit": [-0.5, 0.0], "hedge_mode": ["rolling", "walk_forward"],
        "z_stop": [None, 3.0]}


@pytest.fixture(scope="module")
def bars():
    return DataSpec(timeframe="1m", hours=4, seed=3).load()


def assert_rows_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), check_exact=True)


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_rows_equal_each_backtest_run_alone(bars, jobs):
    combos = expand_grid(GRID, SMALL)
    assert len(combos) == 24
    results = run_sweep(bars, combos, jobs=jobs, progress=False)
    assert list(results.columns) == [*PARAM_NAMES, *METRIC_NAMES, "deflated_sharpe", "pbo"]
    alone = pd.concat([backtest_bars(bars, p).row() for p in combos])
    assert_rows_equal(results[[*PARAM_NAMES, *METRIC_NAMES]], alone)
    assert results["trades"].sum() > 0 and results["funding_pnl"].notna().all()  # synthetic funding included
    assert results["deflated_sharpe"].between(0, 1).all() and results["pbo"].nunique() == 1


def test_combinations_whose_signals_coincide_share_work_and_still_equal_each_backtest_alone(bars):
    """Correlation floors that never bind give the same entry bars: one "next bar" array, one
    trade search; bookings are shared only between equal costs (fee_bps differs here)."""
    grid = {"z_entry": [1.5, 2.0], "corr_min": [-1.0, -0.99, 0.0], "fee_bps": [1.0, 3.0], "z_stop": [None, 3.0]}
    combos = expand_grid(grid, SMALL)
    frame = signal_frame(bars.close_time, bars.price_x, bars.price_y, combos[0])
    index = SignalIndex(frame)
    assert np.nanmin(frame.corr) > -0.99  # the two lowest floors never bind ...
    assert index.get("enter", 1.5, -1.0) is index.get("enter", 1.5, -0.99)  # ... so they share one array
    assert index.trades_key(combos[0]) == index.trades_key(combos[0].with_(corr_min=-0.99, fee_bps=3.0))
    results = run_sweep(bars, combos, jobs=1, progress=False)
    alone = pd.concat([backtest_bars(bars, p).row() for p in combos])
    assert_rows_equal(results[[*PARAM_NAMES, *METRIC_NAMES]], alone)
    by_fee = results.groupby("fee_bps")["costs"].sum()  # the same trades at 3 + 1 bps against 1 + 1 bps
    assert results["trades"].sum() > 0 and by_fee[3.0] == pytest.approx(2 * by_fee[1.0], rel=1e-12)


def test_chunks_share_frames_and_cover_every_combination_once():
    combos = expand_grid(GRID, SMALL)
    chunks = _chunks(combos, jobs=2)
    for chunk in chunks:
        assert len({p.frame_key() for _, p in chunk}) == 1
    assert sorted(i for chunk in chunks for i, _ in chunk) == list(range(len(combos)))


def test_best_and_heatmap(bars):
    results = run_sweep(bars, expand_grid(GRID, SMALL), jobs=1, progress=False)
    top = best(results, "total_return", n=5, min_trades=2)
    assert len(top) <= 5 and (top["trades"] >= 2).all()
    assert top["total_return"].is_monotonic_decreasing
    assert top["total_return"].iloc[0] == results.loc[results.trades >= 2, "total_return"].max()
    hm = heatmap(results, "z_entry", "z_exit", "total_return", min_trades=2)
    kept = results[results.trades >= 2]
    want = kept.groupby(["z_entry", "z_exit"])["total_return"].max().unstack().reindex(
        index=sorted(results.z_entry.unique()), columns=sorted(results.z_exit.unique()))
    pd.testing.assert_frame_equal(hm, want, check_names=False)
    assert np.nanmax(hm.to_numpy()) == top["total_return"].iloc[0]  # the best cell is the best row
    with pytest.raises(InvalidParameter, match="not a metric"):
        best(results, "alpha")
    with pytest.raises(InvalidParameter, match="not a backtest parameter"):
        heatmap(results, "z_entry", "sharpe")


def test_heatmap_figure_shows_the_table_values(bars):
    results = run_sweep(bars, expand_grid(GRID, SMALL), jobs=1, progress=False)
    table = heatmap(results, "z_entry", "z_exit", "total_return")
    fig = heatmap_figure(table, "total_return")
    grid = fig.marks[0]
    np.testing.assert_array_equal(grid.color, table.to_numpy())
    assert list(grid.row) == ["1", "1.5", "2"] and list(grid.column) == ["-0.5", "0"]
    assert [a.label for a in fig.axes] == ["z_exit", "z_entry"]


def test_results_tables_parquet_replaced_duckdb_appended(bars, tmp_path):
    results = run_sweep(bars, expand_grid({"z_entry": [1.0, 2.0]}, SMALL), jobs=1, progress=False)
    for name in ("r.parquet", "r.csv", "r.json"):
        write_results(results, tmp_path / name, bars)
        write_results(results, tmp_path / name, bars)
        back = read_results(tmp_path / name)
        assert len(back) == 2 and list(back["z_entry"]) == [1.0, 2.0]
        assert (back["x"] == "BTCUSDT").all() and (back["timeframe"] == "1m").all()
        np.testing.assert_allclose(back["total_return"], results["total_return"], rtol=1e-12)
    write_results(results, tmp_path / "r.duckdb", bars)
    write_results(results, tmp_path / "r.duckdb", bars)
    assert len(read_results(tmp_path / "r.duckdb")) == 4  # runs accumulate
    with pytest.raises(InvalidParameter, match="parquet"):
        write_results(results, tmp_path / "r.xlsx", bars)


def test_sweep_refuses_an_empty_grid_or_too_little_data(bars):
    with pytest.raises(InvalidParameter, match="no valid"):
        run_sweep(bars, [], progress=False)
    with pytest.raises(InvalidParameter, match="too few"):
        run_sweep(DataSpec(timeframe="5m", hours=0.15).load(), [SMALL], progress=False)


def record_synthetic(db, hours: float) -> None:
    async def go():
        src = SyntheticPair(realtime=False, start_ms=T0, max_ticks=int(hours * 3600 * 40), seed=11)
        async with Session(source=src, db=db) as s:
            await s.wait()

    import asyncio

    asyncio.run(go())


def test_bars_from_a_store_are_the_stored_bars_aligned(tmp_path):
    db = tmp_path / "rec.duckdb"
    record_synthetic(db, 0.5)
    got = bars_from_store(db, "btcusdt,ETHUSDT", "1s")
    store = TickStore(db, read_only=True)
    bx, by = store.bars("1s", "BTCUSDT"), store.bars("1s", "ETHUSDT")
    store.close()
    want = align_pair(bx.start.to_numpy(), bx.close.to_numpy(), by.start.to_numpy(), by.close.to_numpy(), 1000, 3)
    assert len(got) > 1500
    np.testing.assert_array_equal(got.time, want.time)
    np.testing.assert_array_equal(got.price_x, want.x)
    np.testing.assert_array_equal(got.close_time, want.time + 1000)
    half = pd.Timestamp(int(got.time[len(got) // 2]), unit="ms", tz="UTC")
    assert bars_from_store(db, "BTCUSDT,ETHUSDT", "1s", start=half).time[0] == got.time[len(got) // 2]
    with pytest.raises(InvalidParameter, match="no 1s bars of SOLUSDT"):
        bars_from_store(db, "BTCUSDT,SOLUSDT", "1s")
    with pytest.raises(InvalidParameter, match="does not exist"):
        bars_from_store(tmp_path / "nope.duckdb", "BTCUSDT,ETHUSDT")
    with pytest.raises(InvalidParameter, match="two different symbols"):
        bars_from_store(db, "BTCUSDT")


def test_bars_from_dump_files_go_through_the_pipeline(tmp_path):
    day = dt_name = "2023-11-14"
    fx = tmp_path / f"BTCUSDT-trades-{dt_name}.zip"
    fy = tmp_path / f"ETHUSDT-trades-{day}.csv"
    write(fx, trades_rows(4000, seed=1), zipped=True)
    y = trades_rows(4000, seed=2)
    y["price"] = np.round(y["price"] / 15, 2)
    write(fy, y)
    got = bars_from_files([fx, fy], "BTCUSDT,ETHUSDT", "1s")
    assert len(got) > 100 and got.origin == "2 replay file(s)"
    ticks = trades_rows(4000, seed=1)
    closes = ticks.groupby(ticks.time // 1000 * 1000)["price"].last()
    np.testing.assert_array_equal(got.price_x[: 50], closes.to_numpy()[: 50])
    mid = pd.Timestamp(int(got.time[60]), unit="ms", tz="UTC")
    bounded = DataSpec(symbols="BTCUSDT,ETHUSDT", timeframe="1s", files=(str(fx), str(fy)), start=mid).load()
    np.testing.assert_array_equal(bounded.time, got.time[60:])
    with pytest.raises(InvalidParameter, match="no file of"):
        bars_from_files([fx], "BTCUSDT,ETHUSDT", "1s")


def test_the_notebook_takes_every_data_and_rule_parameter():
    """A report renders the notebook with every DataSpec and BacktestParams field: each must be a
    parameter there and reach the rule (papermill would only warn about an unknown one)."""
    nb = json.loads((ROOT / "notebooks" / "backtest.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    cells = ["".join(c["source"]) for c in code]
    params = next("".join(c["source"]) for c in code if "parameters" in c["metadata"].get("tags", []))
    defined = set(re.findall(r"^(\w+) = ", params, flags=re.M))
    assert {*PARAM_NAMES, *DataSpec().as_dict(), "metrics_path"} <= defined
    assert all(re.search(rf"\b{name}={name}\b", "\n".join(cells)) for name in PARAM_NAMES)


def test_notebook_runs_under_papermill_and_matches_the_sweep(tmp_path):
    """papermill's command line with -p on a tiny synthetic dataset: the notebook's metrics row
    equals the sweep's row for the same combination."""
    metrics = tmp_path / "m.json"
    cmd = [sys.executable, "-m", "papermill", "notebooks/backtest.ipynb", str(tmp_path / "out.ipynb"),
           "-p", "hours", "3", "-p", "seed", "3", "-p", "z_entry", "1.5", "-p", "z_window", "20",
           "-p", "corr_window", "20", "-p", "hedge_window", "40", "-p", "hedge_mode", "rolling",
           "-p", "fee_bps", "1.0", "-p", "metrics_path", str(metrics), "--no-progress-bar"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    row = pd.DataFrame(json.loads(metrics.read_text()))
    p = BacktestParams(z_entry=1.5, z_exit=0.0, z_window=20, corr_window=20, hedge_window=40, fee_bps=1.0)
    want = run_sweep(DataSpec(timeframe="1m", hours=3, seed=3).load(), [p], jobs=1, progress=False)
    assert row.loc[0, "trades"] == want.loc[0, "trades"] > 0
    for name in METRIC_NAMES:
        got = row.loc[0, name]
        got = math.nan if got is None else got  # JSON writes NaN (a span too short to annualise) as null
        assert got == pytest.approx(want.loc[0, name], rel=1e-9, nan_ok=True), name
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)  # the figures


def test_statarb_sweep_command(tmp_path, capsys):
    out = tmp_path / "res.duckdb"
    code = main(["sweep", "-q", "--hours", "3", "--seed", "3", "--grid", "z_entry=1:2:0.5", "--grid",
                 "z_exit=0,1.2", "--set", "z_window=20", "--set", "hedge_window=40", "--set", "corr_window=20",
                 "--out", str(out), "--jobs", "1", "--report", "1", "--report-dir", str(tmp_path / "rep")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "5 combinations (1 invalid left out)" in text  # of 6: z_exit 1.2 >= z_entry 1.0
    assert "best" in text and "sharpe (max over the other parameters, of rows with >= " in text
    results = read_results(out)
    assert len(results) == 5 and (results["z_window"] == 20).all()
    reports = sorted((tmp_path / "rep").glob("*.json"))
    assert len(reports) == 1
    row = json.loads(reports[0].read_text())[0]
    match = results[(results.z_entry == row["z_entry"]) & (results.z_exit == row["z_exit"])]
    assert row["sharpe"] == pytest.approx(match["sharpe"].iloc[0], rel=1e-9)
    for argv, message in ((["--grid", "bogus=1"], "unknown backtest parameter 'bogus'"),
                          (["--grid", "z_entry=abc"], "z_entry must be a number, got 'abc'"),
                          (["--set", "z_entry=1,2"], "one value"),
                          (["--heatmap", "z_entry,sharpe"], "two parameters ROW,COL"),
                          (["--metric", "beta"], "not a metric"),
                          (["--db", str(tmp_path / "none.duckdb")], "does not exist")):
        assert main(["sweep", "-q", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_statarb_sweep_prints_luck_and_funding_and_runs_a_walk_forward(tmp_path, capsys):
    out = tmp_path / "res.duckdb"
    grid = ["--grid", "z_entry=1,1.5,2", "--set", "z_window=20", "--set", "hedge_window=40", "--set", "corr_window=20"]
    assert main(["sweep", "-q", "--hours", "6", "--seed", "3", *grid, "--out", str(out), "--jobs", "1"]) == 0
    text = capsys.readouterr().out
    assert "funding: synthetic rates of both legs" in text and "deflated_sharpe" in text and "funding_pnl" in text
    assert re.search(r"luck: 3 combinations tried; .* SR0.* PBO \d\.\d\d \(CSCV, 12,870 splits of 16 blocks\)", text)
    results = read_results(out)
    assert {"funding_pnl", "deflated_sharpe", "pbo", "fees", "slippage"} <= set(results.columns)
    assert main(["sweep", "-q", "--hours", "6", "--seed", "3", *grid, "--no-funding", "--out", str(out)]) == 0
    assert "funding: NOT included" in capsys.readouterr().out
    assert read_results(out)["funding_pnl"].isna().sum() == 3  # appended: the first run's rows kept their figures
    assert main(["sweep", "-q", "--hours", "6", "--seed", "3", *grid, "--walk-forward", "2h:1h", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "walk-forward: 4 windows of 120 bars in sample, 60 out" in text and "out of sample" in text
    import duckdb
    with duckdb.connect(str(out), read_only=True) as con:
        wf = con.execute("SELECT fold, is_sharpe, oos_sharpe, oos_funding_pnl FROM walk_forward_results").df()
    assert list(wf["fold"]) == [0, 1, 2, 3]
    assert main(["sweep", "-q", *grid, "--walk-forward", "2x:1h"]) == 2
    assert "IN:OUT as durations" in capsys.readouterr().err


def test_result_tables_take_the_columns_a_newer_release_adds(tmp_path):
    from statarb_kit.results import write_frame

    path = tmp_path / "r.duckdb"
    write_frame(pd.DataFrame({"a": [1.0]}), path, "t")
    write_frame(pd.DataFrame({"a": [2.0], "b": ["new"]}), path, "t")
    import duckdb
    with duckdb.connect(str(path), read_only=True) as con:
        got = con.execute("SELECT a, b FROM t ORDER BY a").fetchall()
    assert got == [(1.0, None), (2.0, "new")]
