"""``statarb sweep``: a parameter grid backtested on one pair (and walk-forward optimisation)."""

from __future__ import annotations

import argparse
import math
import time
from typing import TYPE_CHECKING

import pandas as pd

from ..bars import timeframe_ms
from ..errors import InvalidParameter
from ..results import check_writable
from .options import timeframe_type

if TYPE_CHECKING:
    from ..backtest import PairBars


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``sweep`` subcommand."""
    sw = sub.add_parser("sweep", help="backtest a grid of alert-rule parameters on a pair, in parallel",
                        description="Backtest every combination of a parameter grid on one pair. Data: --db "
                        "(recorded bars), else --files (Binance dumps), else the synthetic pair.")
    sw.add_argument("--grid", action="append", metavar="NAME=VALUES",
                    help="parameter values: name=a,b,c or name=start:stop:step (stop included); repeat per "
                         f"parameter (default: {' '.join(DEFAULT_GRID)})")
    sw.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a fixed parameter for every combination, e.g. fee_bps=4")
    sw.add_argument("--pair", default="BTCUSDT,ETHUSDT", help="x,y (default: %(default)s)")
    sw.add_argument("--timeframe", default="1m", type=timeframe_type, help="bars: 1s, 1m or 5m (default: %(default)s)")
    sw.add_argument("--db", default=None, help="DuckDB file with recorded bars (opened read-only)")
    sw.add_argument("--files", nargs="*", help="Binance trades/aggTrades dump files instead of --db")
    sw.add_argument("--start", default=None, help="first UTC time to use, e.g. 2026-01-01")
    sw.add_argument("--end", default=None, help="UTC time to stop before")
    sw.add_argument("--hours", type=float, default=24.0, help="synthetic: hours of data (default: %(default)s)")
    sw.add_argument("--seed", type=int, default=7, help="synthetic: seed (default: %(default)s)")
    sw.add_argument("--funding-files", nargs="*", help="Binance funding dumps of both legs (default: the store's "
                    "funding table; synthetic data has its own rates)")
    sw.add_argument("--no-funding", action="store_true", help="leave funding out (the results say so)")
    sw.add_argument("--walk-forward", default=None, metavar="IN:OUT",
                    help="walk-forward optimisation: choose on IN, trade the next OUT (durations 3d:1d or bars 720:240)")
    sw.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core for big sweeps, else 1)")
    sw.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://HOST:8786) to run on")
    sw.add_argument("--workers", type=int, default=None, help="a local Dask cluster of N worker processes")
    sw.add_argument("--out", default=None, help="results table: .duckdb (appended), .parquet, .csv or .json")
    sw.add_argument("--metric", default="sharpe", help="metric to rank by (default: %(default)s)")
    sw.add_argument("--top", type=int, default=10, help="best combinations to print (default: %(default)s)")
    sw.add_argument("--min-trades", type=int, default=1, help="rank only combinations with this many trades")
    sw.add_argument("--heatmap", default=None, metavar="ROW,COL",
                    help="two parameters for the heatmap (default: the first two varied)")
    sw.add_argument("--report", type=int, default=0, metavar="N",
                    help="render the backtest notebook (papermill) for the N best combinations")
    sw.add_argument("--report-dir", default="reports", help="where reports go (default: %(default)s)")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)


DEFAULT_GRID = ("z_entry=1.5,2,2.5,3", "z_window=30,60,120")


def _sweep_grid(args: argparse.Namespace) -> tuple[dict[str, list], list]:
    """The grid of ``--grid`` specs over the ``--set`` values, and its valid combinations."""
    from ..backtest import BacktestParams, expand_grid, parse_grid_spec

    fixed = {}
    for spec in args.set:
        name, values = parse_grid_spec(spec)
        if len(values) != 1:
            raise InvalidParameter(f"--set {spec}: one value (use --grid for several)")
        fixed[name] = values[0]
    grid = dict(parse_grid_spec(spec) for spec in args.grid or DEFAULT_GRID)
    combos = expand_grid(grid, BacktestParams(**fixed))
    size = math.prod(len(v) for v in grid.values())
    if not combos:
        raise InvalidParameter(f"none of the {size} combinations of the grid is valid (e.g. z_exit < z_entry)")
    print(f"grid: {'; '.join(args.grid or DEFAULT_GRID)}{'' if args.grid else ' (default)'}: {len(combos)} "
          f"combinations{f' ({size - len(combos)} invalid left out)' if size > len(combos) else ''}", flush=True)
    return grid, combos


def _sweep(args: argparse.Namespace) -> int:
    from ..backtest import DataSpec
    from ..backtest.engine import METRIC_NAMES, YEAR_S
    from ..backtest.params import PARAM_NAMES
    from ..backtest.reports import render_report
    from ..backtest.sweep import best, heatmap, run_sweep, write_results

    if args.out:
        check_writable(args.out, "--out")  # before the sweep runs, not after
    data = DataSpec(symbols=args.pair, timeframe=args.timeframe, db=args.db,
                    files=tuple(args.files) if args.files else None, hours=args.hours, seed=args.seed,
                    start=args.start, end=args.end, funding=not args.no_funding,
                    funding_files=tuple(args.funding_files) if args.funding_files else None)
    if args.metric not in METRIC_NAMES:
        raise InvalidParameter(f"--metric {args.metric!r} is not a metric; known: {', '.join(METRIC_NAMES)}")
    shape = args.heatmap.split(",") if args.heatmap else []
    if args.heatmap and (len(shape) != 2 or not set(shape) <= set(PARAM_NAMES)):
        raise InvalidParameter(f"--heatmap {args.heatmap!r}: two parameters ROW,COL of {', '.join(PARAM_NAMES)}")
    grid, combos = _sweep_grid(args)
    bars = data.load()
    print(f"data: {bars.origin}, {len(bars):,} aligned {bars.timeframe} bars of {'/'.join(bars.symbols)}", flush=True)
    print(f"funding: {bars.funding.x.origin} rates of both legs, charged at each settlement a position is held over"
          if bars.funding else "funding: NOT included (no funding data; results show it as NaN)", flush=True)
    if args.walk_forward:
        return _walk_forward(args, bars, grid, combos)
    started = time.perf_counter()
    from ..scan.data import dask_client

    with dask_client(args.scheduler, args.workers) as client:
        results = run_sweep(bars, combos, jobs=args.jobs, progress=not args.quiet, client=client)
    print(f"swept {len(combos)} combinations in {time.perf_counter() - started:.2f} s", flush=True)
    if args.out:
        print(f"results: {write_results(results, args.out, bars)}", flush=True)
    varied = [name for name, values in grid.items() if len(values) > 1]
    top = best(results, args.metric, args.top, args.min_trades)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        if top.empty:
            print(f"\nno combination has {args.min_trades} trade(s) or more on {len(bars):,} bars (the first signal "
                  f"waits for the hedge, z and correlation windows): use more data or shorter windows")
        else:
            shown = [*varied, "trades", "total_return", "sharpe", "deflated_sharpe", "max_drawdown", "costs",
                     "funding_pnl"]
            print(f"\nbest {len(top)} by {args.metric} (>= {args.min_trades} trades):\n{top[shown].to_string()}")
        fit = results.attrs["overfitting"]
        yearly = math.sqrt(YEAR_S / bars.bar_s)
        print(f"\nluck: {fit.trials} combinations tried; with no skill the best Sharpe would be about "
              f"{fit.sr0 * yearly:.2f} a year (SR0); the best row's deflated Sharpe ratio is "
              f"{top['deflated_sharpe'].iloc[0] if len(top) else math.nan:.3f} (the probability its true Sharpe "
              f"beats SR0); PBO {fit.pbo:.2f} (CSCV, {fit.splits:,} splits of {fit.blocks} blocks)")
        if len(shape or varied) >= 2:
            row, col = (shape or varied)[:2]
            print(f"\n{args.metric} (max over the other parameters, of rows with >= {args.min_trades} trades):\n"
                  f"{heatmap(results, row, col, args.metric, min_trades=args.min_trades)}")
    for k, (i, _) in enumerate(top.head(args.report).iterrows(), start=1):
        report, _ = render_report(data, combos[i], args.report_dir, f"report-{k:02d}-combo-{i}")
        print(f"report {k}: {report}", flush=True)
    return 0


def _walk_forward(args: argparse.Namespace, bars: PairBars, grid: dict[str, list], combos: list) -> int:
    from ..backtest.sweep import WALK_FORWARD_TABLE, write_results
    from ..backtest.walk_forward import walk_forward_optimise

    step = timeframe_ms(bars.timeframe)
    try:
        is_n, oos_n = (int(pd.Timedelta(v) / pd.Timedelta(milliseconds=step)) if not v.isdigit() else int(v)
                       for v in args.walk_forward.split(":"))
    except ValueError:
        raise InvalidParameter(f"--walk-forward {args.walk_forward!r}: IN:OUT as durations (3d:1d, 12h:4h) "
                               "or bar counts (720:240)") from None
    started = time.perf_counter()
    wf = walk_forward_optimise(bars, combos, is_n, oos_n, args.metric, args.min_trades)
    print(f"walk-forward: {len(wf.windows)} windows of {is_n:,} bars in sample, {oos_n:,} out; {len(combos)} "
          f"combinations per window by {args.metric}, in {time.perf_counter() - started:.2f} s", flush=True)
    varied = [name for name, values in grid.items() if len(values) > 1]
    w = wf.windows
    cols = [c for c in ["fold", "oos_start", *varied, "is_sharpe", "oos_sharpe", "oos_total_return",
                        "oos_funding_pnl", "oos_trades"] if c in w]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(f"\n{w[cols].to_string(index=False)}\n\nin sample (chosen, mean over windows) vs out of sample "
              f"(stitched):\n{wf.summary().to_string()}")
    if args.out:
        print(f"results: {write_results(w, args.out, bars, WALK_FORWARD_TABLE)} (table {WALK_FORWARD_TABLE})", flush=True)
    return 0


