"""``statarb scan``: cointegrated pairs in a universe of symbols."""

from __future__ import annotations

import argparse

import pandas as pd

from ..bars import check_timeframe, timeframe_ms
from ..errors import InvalidParameter
from ..results import check_writable
from ..rule import DEFAULT
from .options import any_timeframe_type


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``scan`` subcommand."""
    sc = sub.add_parser("scan", help="find cointegrated pairs in a universe of symbols",
                        description="Engle-Granger on every pair of symbols, Benjamini-Hochberg q-values, out-of-sample "
                        "validation. Data: --db (recorded or downloaded bars), else --files (Binance dumps), else a "
                        "synthetic universe with planted pairs.")
    sc.add_argument("--db", default=None,
                    help="DuckDB file with bars (opened read-only), or an archive folder (statarb archive)")
    sc.add_argument("--files", nargs="*", help="Binance trades/aggTrades dump files instead of --db")
    sc.add_argument("--klines", default=None, metavar="FILE",
                    help="a klines file instead of --db (.parquet or .csv, long format: symbol, open_time in ms UTC, "
                         "open, high, low, close, volume[, trades]); bars without trades are no price")
    sc.add_argument("--symbols", default=None, help="comma-separated symbols to scan")
    sc.add_argument("--all", action="store_true", help="--db: every symbol in the file")
    sc.add_argument("--timeframe", default="1m", type=any_timeframe_type,
                    help="bars: 1s, 1m or 5m; with --db any stored kline interval, e.g. 1h (default: %(default)s)")
    sc.add_argument("--start", default=None, help="first UTC time to use, e.g. 2026-01-01")
    sc.add_argument("--end", default=None, help="UTC time to stop before")
    sc.add_argument("--log-prices", action=argparse.BooleanOptionalAction, default=DEFAULT.log_prices,
                    help="scan log prices (usual across very different price levels; default: the rule's, "
                         "%(default)s)")
    sc.add_argument("--universe", type=int, default=100, help="synthetic: symbols (default: %(default)s)")
    sc.add_argument("--bars", type=int, default=5_000, help="synthetic: bars (default: %(default)s)")
    sc.add_argument("--seed", type=int, default=7, help="synthetic: seed (default: %(default)s)")
    sc.add_argument("--q", type=float, default=0.05, help="false discovery rate level (default: %(default)s)")
    sc.add_argument("--validation", type=float, default=0.3,
                    help="fraction of the time span, at the end, kept to validate (default: %(default)s)")
    sc.add_argument("--split", default=None, metavar="TIME",
                    help="UTC date or time where validation starts, the same for every pair (instead of --validation)")
    sc.add_argument("--min-obs", type=int, default=500, help="closes a symbol needs in the formation period")
    sc.add_argument("--calibrate", type=int, default=0, metavar="K",
                    help="measure the test's real size on this data with placebo pairs (each symbol's last part of "
                         "the formation against the others' bars 1..K parts earlier) and show calibrated p and q")
    sc.add_argument("--method", default=None,
                    help="also select with this study method on the formation and validate it (engle_granger, "
                         "distance, correlation, stability, johansen, pca; default: the best lift of --study, else "
                         "engle_granger: the scan alone)")
    sc.add_argument("--study", default=None, metavar="FILE",
                    help="a study of this data (statarb study --json FILE): show the scan's measured lift beside "
                         "its q-values")
    sc.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://HOST:8786) to run on")
    sc.add_argument("--workers", type=int, default=None, help="a local Dask cluster of N worker processes")
    sc.add_argument("--out", default=None, help="results: .duckdb (appended to scan_results), .parquet or .csv")
    sc.add_argument("--top", type=int, default=20, help="selected pairs to print (default: %(default)s)")
    sc.add_argument("--skip-bad", action="store_true", help="--files: skip and count corrupt lines")
    sc.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sc.set_defaults(func=_scan)


def _scan(args: argparse.Namespace) -> int:
    from ..research.measured import best_method, lift_note, read_study
    from ..research.methods import MethodParams, method_names
    from ..research.study import select
    from ..scan import scan_pairs, synthetic_universe
    from ..scan.data import closes_from_files, closes_from_klines, closes_from_store, dask_client, write_scan

    measured = read_study(args.study) if args.study else None  # a bad file is refused before the scan
    if args.out:
        check_writable(args.out, "--out")
    method = args.method or (measured and best_method(measured)) or "engle_granger"
    if method_names([method]) != (method,):
        raise InvalidParameter(f"--method {method}: name one method")
    symbols = args.symbols.split(",") if args.symbols else None
    if args.db:
        if not (symbols or args.all):
            raise InvalidParameter("--db: name the symbols (--symbols A,B,C) or scan --all of them")
        closes = closes_from_store(args.db, args.timeframe, None if args.all else symbols, args.start, args.end)
        origin = f"store {args.db}"
    elif args.klines:
        closes = closes_from_klines(args.klines, symbols, args.start, args.end)
        origin = f"klines file {args.klines} (bars without trades left out)"
    elif args.files:
        closes = closes_from_files(args.files, check_timeframe(args.timeframe), args.skip_bad)
        closes = closes[symbols] if symbols else closes
        origin = f"{len(args.files)} dump file(s)"
    else:
        universe = synthetic_universe(n_symbols=args.universe, n_bars=args.bars, seed=args.seed,
                                      bar=f"{timeframe_ms(args.timeframe) // 1000}s")
        closes = universe.closes
        origin = (f"synthetic universe seed {args.seed} (generated prices, not market data; "
                  f"{len(universe.truth())} cointegrated pairs planted)")
    bar = args.timeframe if not args.klines else f"{pd.Series(closes.index).diff().min().total_seconds() / 60:g}-minute"
    print(f"data: {origin}, {closes.shape[1]} symbols x {len(closes):,} {bar} bars "
          f"({closes.index[0]:%Y-%m-%d %H:%M} to {closes.index[-1]:%Y-%m-%d %H:%M} UTC)", flush=True)
    with dask_client(args.scheduler, args.workers) as client:
        if client is not None:
            print(f"dask: {client.scheduler_info()['address']}, {len(client.scheduler_info()['workers'])} workers",
                  flush=True)
        results = scan_pairs(closes, client=client, progress=not args.quiet, q_level=args.q, validation=args.validation,
                             min_obs=args.min_obs, split=args.split, log_prices=args.log_prices)
    if args.calibrate:
        from ..research.calibration import placebo, with_calibrated

        formation = closes[closes.index < pd.Timestamp(results.attrs["split"])]
        window = len(formation) // (args.calibrate + 1)
        null = placebo(formation, window, tuple(range(1, args.calibrate + 1)), args.log_prices, args.min_obs)
        results = with_calibrated(results, null)
        print(f"placebo pairs: {len(null.pvalues):,} (each symbol's last {window:,} formation bars against the "
              f"others' bars {', '.join(str(k) for k in null.shifts)} window(s) earlier): the test's real size at "
              f"p < 0.05 is {null.size():.1%} (MacKinnon: 5%), at p < 0.01 {null.size(0.01):.1%}; selected with "
              f"calibrated q <= {args.q:g}: {int((results['q_calibrated'] <= args.q).sum())}", flush=True)
    print(lift_note(measured, method), flush=True)
    a = results.attrs
    for symbol, why in a["left_out"].items():
        print(f"left out {symbol}: {why}", flush=True)
    raw = int((results["pvalue"] < 0.05).sum())
    chosen = results[results["selected"]]
    print(f"{a['pairs_tested']:,} pairs of {len(a['symbols'])} symbols tested in {a['seconds']:.1f} s; "
          f"{len(chosen)} selected at q <= {args.q:g} (Benjamini-Hochberg), {int(chosen['survives'].sum())} of them "
          f"survive validation from {a['split']} UTC; raw p < 0.05 would select {raw:,}", flush=True)
    if len(chosen):
        shown = ["x", "y", "beta", "eg_stat", "q_value", *(["q_calibrated"] if args.calibrate else []),
                 "half_life_bars", "corr", "crossings", "val_adf_pvalue", "survives"]
        with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
            print(chosen[shown].head(args.top).to_string(index=False), flush=True)
    if method != "engle_granger":  # the method the study measured best, on the same split
        split = pd.Timestamp(a["split"])
        picked = select(closes[closes.index < split], closes[closes.index >= split], method,
                        MethodParams(top=args.top, q_level=args.q, min_obs=args.min_obs))
        print(f"{method}: {len(picked)} selected on the formation (log prices where 'log'; lower score is better), "
              f"{int((picked['holds'] == True).sum())} hold on the validation bars (ADF p < 0.05 of the "  # noqa: E712
              f"formation spread)", flush=True)
        if len(picked):
            with pd.option_context("display.width", 200, "display.max_colwidth", 80, "display.float_format",
                                   "{:.4g}".format):
                print(picked.to_string(index=False), flush=True)
    if args.out:
        path, run_id = write_scan(results, args.out, origin, args.timeframe)
        print(f"results: {path} (run {run_id})", flush=True)
    return 0


