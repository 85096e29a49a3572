"""Parameter sweeps: every combination of a grid backtested on one pair, over the cores.

Combinations that share a signal frame (same hedge mode and windows) are evaluated together on
one frame and one SignalIndex; groups are cut into chunks so every core has work (each chunk
carries the bars: 2 MB for a day of 1s bars, small next to its work). Results: one row per combination, the
parameters then the metrics, in grid order.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import multiprocessing
import os
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import InvalidParameter
from ..results import sql_path, write_frame
from .data import PairBars, bars_frame
from .engine import METRIC_NAMES, Metrics, SignalIndex, block_of_bars, evaluate_blocks, result_rows
from .funding import FundingIndex
from .overfitting import BlockSums, overfitting
from .params import PARAM_NAMES, BacktestParams

log = logging.getLogger(__name__)

RESULTS_TABLE = "backtest_results"
WALK_FORWARD_TABLE = "walk_forward_results"
#: combinations x bars from which a sweep uses worker processes by default: about 3 s of work in
#: one process. Below it, starting workers (~0.5 s) costs more than it saves; the work is memory-
#: bound, and on the 2-vCPU machines here two processes run it no faster than one (see benchmarks/).
PARALLEL_MIN_WORK = 500_000_000


def _evaluate_chunk(combos: list[tuple[int, BacktestParams]], bars: PairBars, bar_s: float,
                    blocks: int) -> list[tuple[int, Metrics, np.ndarray]]:
    """Metrics and block sums (see overfitting.BlockSums) of combinations that share one signal
    frame, with their positions in the grid."""
    frame = bars_frame(bars, combos[0][1])
    index = SignalIndex(frame)
    funding = FundingIndex.build(frame.time, frame.price_x, frame.price_y, bars.funding) if bars.funding else None
    block, _ = block_of_bars(frame.time, bar_s, blocks)
    memo: dict = {}  # combinations of the chunk with the same trades share their booking
    return [(i, *evaluate_blocks(frame, p, bar_s, index, funding, block, blocks, memo)) for i, p in combos]


def _chunks(combos: list[BacktestParams], jobs: int) -> list[list[tuple[int, BacktestParams]]]:
    """Grid positions grouped by frame, each group cut so there are about 4 chunks per job."""
    groups: dict[tuple, list[tuple[int, BacktestParams]]] = defaultdict(list)
    for i, p in enumerate(combos):
        groups[p.frame_key()].append((i, p))
    size = max(1, -(-len(combos) // (4 * jobs)))
    return [g[lo : lo + size] for g in groups.values() for lo in range(0, len(g), size)]


def run_sweep(bars: PairBars, combos: list[BacktestParams], jobs: int | None = None,
              progress: bool = True, client: object | None = None, blocks: int = 16) -> pd.DataFrame:
    """Backtest each of ``combos`` on ``bars``: one row per combination (parameters, then
    metrics, then ``deflated_sharpe`` and the sweep's ``pbo``, see backtest.overfitting; CSCV on
    ``blocks`` spans of equal time; ``results.attrs["overfitting"]`` has the details), in the
    order given. ``jobs``: worker processes (1 runs here; default: one per core
    when combinations x bars >= PARALLEL_MIN_WORK, else 1); ``client``: a ``distributed.Client``
    whose workers take the chunks instead (the bars scattered once).
    Results equal ``backtest(...)`` of each combination run alone."""
    if not combos:
        raise InvalidParameter("the grid has no valid combination")
    if len(bars) < 3:
        raise InvalidParameter(f"{len(bars)} aligned bars: too few to backtest")
    if blocks < 2 or blocks % 2 or blocks > 20:
        raise InvalidParameter(f"blocks must be even, from 2 to 20 (CSCV splits), got {blocks}")
    if client is not None:
        jobs = len(client.scheduler_info()["workers"]) or 1
    elif jobs is None:
        jobs = (os.cpu_count() or 1) if len(combos) * len(bars) >= PARALLEL_MIN_WORK else 1
    jobs = max(1, min(jobs, len(combos)))
    bar_s = bars.bar_s
    chunks = _chunks(combos, jobs)
    log.info("sweep: %d combinations over %d bars in %d chunks, %d process(es)", len(combos), len(bars),
             len(chunks), jobs)
    metrics: list[Metrics | None] = [None] * len(combos)
    sums = np.zeros((4, len(combos), blocks))
    bar = tqdm(total=len(combos), desc="sweep", unit="combo", disable=not progress)
    try:
        if client is not None:
            from distributed import as_completed

            shared = client.scatter(bars, broadcast=True)
            futures = [client.submit(_evaluate_chunk, c, shared, bar_s, blocks, pure=False) for c in chunks]
            try:
                for done in as_completed(futures):
                    rows = done.result()
                    for i, m, b in rows:
                        metrics[i], sums[:, i] = m, b
                    bar.update(len(rows))
            finally:
                client.cancel(futures)
        elif jobs == 1:
            for chunk in chunks:
                for i, m, b in _evaluate_chunk(chunk, bars, bar_s, blocks):
                    metrics[i], sums[:, i] = m, b
                bar.update(len(chunk))
        else:
            ctx = multiprocessing.get_context("spawn")  # never fork a kernel with live threads
            pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx)
            try:
                futures = [pool.submit(_evaluate_chunk, c, bars, bar_s, blocks) for c in chunks]
                for done in concurrent.futures.as_completed(futures):
                    rows = done.result()
                    for i, m, b in rows:
                        metrics[i], sums[:, i] = m, b
                    bar.update(len(rows))
            finally:  # on an error or Ctrl-C, drop the chunks not started instead of running them all
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    results = result_rows(combos, metrics)  # type: ignore[arg-type]
    fit = overfitting(BlockSums(tuple(sums), block_of_bars(bars.close_time, bar_s, blocks)[1]))
    results["deflated_sharpe"] = fit.deflated
    results["pbo"] = fit.pbo
    results.attrs["overfitting"] = fit
    return results


def best(results: pd.DataFrame, metric: str = "sharpe", n: int = 10, min_trades: int = 1) -> pd.DataFrame:
    """The ``n`` combinations with the highest ``metric`` among those with >= ``min_trades``
    trades (NaN metrics last)."""
    _check_metric(results, metric)
    ok = results[results["trades"] >= min_trades]
    return ok.sort_values(metric, ascending=False, na_position="last").head(n)


def heatmap(results: pd.DataFrame, row: str, col: str, metric: str = "sharpe", agg: str = "max",
            min_trades: int = 1) -> pd.DataFrame:
    """``metric`` over two parameters (rows x columns), aggregated (max, mean, median...) over
    the grid's other parameters, of the combinations with >= ``min_trades`` trades (``best``'s
    rule: the best cell is the best row); a cell none of whose combinations qualifies is NaN."""
    _check_metric(results, metric)
    for name in (row, col):
        if name not in PARAM_NAMES:
            raise InvalidParameter(f"{name!r} is not a backtest parameter; known: {', '.join(PARAM_NAMES)}")
    kept = results[metric].where(results["trades"] >= min_trades)
    table = results.assign(**{metric: kept}).pivot_table(index=row, columns=col, values=metric, aggfunc=agg,
                                                          dropna=False)
    return table.reindex(index=sorted(results[row].dropna().unique()), columns=sorted(results[col].dropna().unique()))


def _check_metric(results: pd.DataFrame, metric: str) -> None:
    if metric not in METRIC_NAMES or metric not in results:
        raise InvalidParameter(f"{metric!r} is not a metric; known: {', '.join(METRIC_NAMES)}")


def write_results(results: pd.DataFrame, path: str | Path, bars: PairBars, table: str = RESULTS_TABLE) -> Path:
    """Write ``results`` with the run's UTC time, pair, timeframe and data origin. ``.duckdb`` /
    ``.db``: rows are appended to table ``backtest_results`` (created on first use), so runs
    accumulate; ``.parquet``, ``.csv``, ``.json`` (records): the file is replaced."""
    out = results.copy()
    out.insert(0, "run_at", pd.Timestamp(dt.datetime.now(dt.UTC)))
    for i, (name, value) in enumerate((("x", bars.symbols[0]), ("y", bars.symbols[1]),
                                       ("timeframe", bars.timeframe), ("data", bars.origin)), start=1):
        out.insert(i, name, value)
    return write_frame(out, path, table)


def read_results(path: str | Path) -> pd.DataFrame:
    """Results written by ``write_results`` (every run, for a DuckDB file)."""
    path = Path(path)
    if not path.exists():
        raise InvalidParameter(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".json":
        return pd.read_json(path, orient="records")
    with duckdb.connect(str(path), read_only=True) if suffix in (".duckdb", ".db") else duckdb.connect() as con:
        source = RESULTS_TABLE if suffix in (".duckdb", ".db") else f"read_parquet('{sql_path(path)}')"
        return con.execute(f"SELECT * FROM {source}").df()
