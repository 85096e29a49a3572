"""The ``statarb`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

import duckdb
import httpx

from .bars import check_timeframe, timeframe_ms
from .cli_history import add_parsers as add_history_parsers
from .cli_history import add_demo_parser, add_universe_options, check_range
from .cli_monitor import add_parser as add_monitor_parser
from .cli_study import add_parser as add_study_parser
from .errors import InvalidParameter, StatarbError
from .results import check_writable
from .rule import DEFAULT
from .funding import FundingRates, read_funding_files
from .monitor import is_loopback
from .ports import check_ports
from .session import Session
from .watchlist import read_watchlist
from .sources import BinanceConfig, Replay, Source, SyntheticPair, download
from .sources.options import API_KEY_ENV, API_KEY_HELP, QUOTES_HELP, RAW_QUOTES_HELP, live_source, replay_source
from .sources.history import DATA_URL
from .store import TickStore
from .ticks import normalize_symbol, now_ms

if TYPE_CHECKING:
    from .backtest import PairBars

log = logging.getLogger(__name__)


def _timeframe(text: str) -> str:
    """argparse type of every --timeframe: the one rule (bars.check_timeframe), refused up front."""
    try:
        return check_timeframe(text)
    except InvalidParameter as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _any_timeframe(text: str) -> str:
    """argparse type of a timeframe a store may hold: the pipeline's 1s/1m/5m or an interval
    Binance publishes klines for (3m, 15m, 1h ... 1d); anything else is refused up front."""
    from .sources.klines import INTERVAL_MS

    if text not in INTERVAL_MS:
        raise argparse.ArgumentTypeError(f"timeframe {text!r} is neither one the pipeline builds (1s, 1m, 5m) nor a "
                                         f"Binance kline interval ({', '.join(INTERVAL_MS)})")
    return text


def _day(text: str) -> dt.date:
    """argparse type of a UTC day, YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD (e.g. 2024-01-31)") from None


def _status_line(session: Session, timeframe: str) -> str:
    st = session.status()
    parts = [
        f"{st.ticks_per_s:8.0f} ticks/s",
        f"stored {st.rows_in_store:>10,}",
        f"dup {st.duplicates}",
        f"lost {st.overwritten}",
        f"late {st.late_ticks}",
    ]
    if session.quotes_received:
        parts.append(f"quotes {session.quotes_received:,}")
    for symbol in session.symbols:
        bars = session.bars(symbol, timeframe, last=1)
        if len(bars):
            b = bars.iloc[-1]
            state = "final" if b["final"] else "forming"
            parts.append(
                f"{symbol} {bars.index[-1]:%H:%M:%S} O {b.open:.2f} H {b.high:.2f} L {b.low:.2f} "
                f"C {b.close:.2f} V {b.volume:.3f} n {b.trades} ({state})"
            )
    return " | ".join(parts)


def _source(args: argparse.Namespace) -> Source:
    """The source the command line asks for (live resumes after the trades stored in --db)."""
    symbols = tuple(args.symbols.split(","))
    if args.source == "synthetic":
        return SyntheticPair(symbols=symbols, seed=args.seed)
    if args.source == "live":
        return live_source(symbols, args.ws_url, args.ws_path, args.rest_url, args.db, args.api_key,
                           args.quotes or args.raw_quotes)
    return replay_source(args.files, args.speed, args.skip_bad)


async def _record(args: argparse.Namespace) -> int:
    source = _source(args)
    session = Session(source=source, db=args.db, raw_quotes=args.raw_quotes).start()
    what = " (generated prices, not market data)" if source.status.name == "synthetic" else ""
    print(f"recording {', '.join(session.symbols)} from {source.status.name}{what} into {args.db} "
          f"(UTC times; Ctrl-C to stop)", flush=True)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)  # `kill` stops as cleanly as Ctrl-C
    deadline = None if args.duration is None else loop.time() + args.duration
    source_ended = False
    try:
        while (deadline is None or loop.time() < deadline) and not source_ended:
            source_ended = await session.wait_source(args.every)
            print(_status_line(session, args.timeframe), flush=True)
    except asyncio.CancelledError:  # Ctrl-C or SIGTERM cancel this task: stop cleanly below
        pass
    finally:
        await session.stop()
    st = session.status()
    failed = source_ended and st.errors > 0  # the source itself gave up (not stopped by the user)
    if st.last_error:
        print(f"statarb: {st.last_error}", file=sys.stderr, flush=True)
    fills = (f"; {st.reconnects} reconnect(s), {st.gaps_filled}/{st.gaps_found} gaps filled from REST"
             f"{st.averaged_note()}" if st.reconnects or st.gaps_found else "")
    quoted = (f"; {session.quotes_received:,} quotes in {session.quote_bars_stored:,} quote bars"
              + (f" (all {session.quotes_stored:,} stored)" if session.raw_quotes else "")
              if session.quotes_received else "")
    print(f"stopped: {st.ticks_stored:,} new ticks, {st.rows_in_store:,} in {args.db}{fills}{quoted}", flush=True)
    if source.status.ticks and not st.ticks_stored:
        print(f"statarb: the source produced {source.status.ticks:,} trades and none was new to {args.db} "
              f"({st.duplicates:,} already stored): nothing was recorded", file=sys.stderr, flush=True)
        return 2
    return 2 if failed else 0


async def _download(args: argparse.Namespace) -> int:
    if args.kind == "klines":
        from .cli_history import download_klines

        return await download_klines(args)
    if args.all or not args.symbols:
        raise InvalidParameter(f"--kind {args.kind}: name the symbols (--all is for klines)")
    start, end = args.start, args.end or args.start
    check_range(start, end)
    report = await download(args.symbols, start, end, args.dir, kind=args.kind, base_url=args.base_url,
                            market=args.market)
    for name in report.missing:
        print(f"not published: {name}", flush=True)
    files = sorted(report.downloaded + report.skipped)
    print(f"{len(report.downloaded)} downloaded, {len(report.skipped)} already present (checksums verified)",
          flush=True)
    if args.no_load or not files:
        return 0
    if args.kind == "fundingRate":
        return _store_funding(read_funding_files(files), args.db)
    if args.kind == "bookTicker":
        return _store_quotes(files, args.db, args.raw_quotes)
    async with Session(source=Replay(files, skip_bad=args.skip_bad), db=args.db) as session:
        await session.wait()
    st = session.status()
    print(f"loaded into {args.db}: {st.ticks_stored:,} new ticks, {st.duplicates:,} already stored", flush=True)
    if st.last_error:
        print(f"statarb: {st.last_error}", file=sys.stderr, flush=True)
        return 2
    return 0


def _store_quotes(files: list[Path], db: str, raw: bool = False) -> int:
    """bookTicker dumps into table ``quote_bars`` (each day barred on its own, on the default
    timeframes) and, with ``raw``, table ``quotes``; a day already stored is not stored twice."""
    from .bars import DEFAULT_TIMEFRAMES
    from .quotes import quote_bar_rows, quote_bars, quotes_frame, read_book_ticker_dump

    store = TickStore(db)
    added = skipped = bars = 0
    try:
        for path in files:
            q = read_book_ticker_dump(path)
            if not len(q):
                continue
            first = timeframe_ms(DEFAULT_TIMEFRAMES[0])
            if len(store.quote_bars(q.symbol, DEFAULT_TIMEFRAMES[0], int(q.time_ms[0]) // first * first,
                                    int(q.time_ms[-1]) + 1)):
                skipped += len(q)
                continue
            rows = pd.concat([quote_bar_rows(quote_bars(q, timeframe_ms(tf)), tf) for tf in DEFAULT_TIMEFRAMES],
                             ignore_index=True)
            store.insert_quote_bars(rows)
            if raw:
                store.insert_quotes(quotes_frame(q))
            added, bars = added + len(q), bars + len(rows)
    finally:
        store.close()
    print(f"loaded into {db}: {added:,} quotes as {bars:,} quote bars (table quote_bars"
          f"{'; every quote in table quotes' if raw else ''}), {skipped:,} already stored", flush=True)
    return 0


def _store_funding(rates: dict[str, FundingRates], db: str) -> int:
    store = TickStore(db)
    try:
        for symbol, r in rates.items():
            new = store.insert_funding(r)
            span = (f"{pd.Timestamp(r.time[0], unit='ms', tz='UTC'):%Y-%m-%d %H:%M} to "
                    f"{pd.Timestamp(r.time[-1], unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC" if len(r) else "none")
            print(f"{symbol}: {len(r)} settlements ({span}), {new} new in {db} table funding", flush=True)
    finally:
        store.close()
    return 0


async def _funding(args: argparse.Namespace) -> int:
    from .backtest.data import utc_ms
    from .sources.binance_rest import fetch_funding

    start = utc_ms(args.start)
    end = utc_ms(args.end) if args.end else now_ms()
    rates = await fetch_funding([normalize_symbol(s) for s in args.symbols], start, end, args.rest_url)
    return _store_funding(rates, args.db)


DEFAULT_GRID = ("z_entry=1.5,2,2.5,3", "z_window=30,60,120")


def _sweep_grid(args: argparse.Namespace) -> tuple[dict[str, list], list]:
    """The grid of ``--grid`` specs over the ``--set`` values, and its valid combinations."""
    from .backtest import BacktestParams, expand_grid, parse_grid_spec

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
    from .backtest import DataSpec
    from .backtest.engine import METRIC_NAMES
    from .backtest.params import PARAM_NAMES
    from .backtest.reports import render_report
    from .backtest.engine import YEAR_S
    from .backtest.sweep import best, heatmap, run_sweep, write_results

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
    from .scan.data import dask_client

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
    from .backtest.sweep import WALK_FORWARD_TABLE, write_results
    from .backtest.walk_forward import walk_forward_optimise

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


def _scan(args: argparse.Namespace) -> int:
    from .scan import scan_pairs, synthetic_universe
    from .research.measured import best_method, lift_note, read_study
    from .research.methods import MethodParams, method_names
    from .research.study import select
    from .scan.data import closes_from_files, closes_from_klines, closes_from_store, dask_client, write_scan

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
        from .research.calibration import placebo, with_calibrated

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


#: Pages ``statarb serve`` knows by name (notebooks shipped with the package).
PAGES = ("dashboard", "scan", "backtest", "sweep", "portfolio")


def _check_db(db: str) -> str:
    """``db`` resolved against the caller's directory (the server runs the notebook elsewhere);
    an existing file must open (not corrupt, not locked by a writer), before any server starts."""
    if db == ":memory:":
        return db
    path = Path(db).expanduser().resolve()
    if path.exists():
        TickStore(path, read_only=True).close()
    else:
        check_writable(path, "--db", None)  # the page would create it: its folder must take a file
    return str(path)


def _dashboard(args: argparse.Namespace) -> int:
    from .app import AppSettings

    env = dict(os.environ)
    for name in ("source", "symbols", "timeframe", "db", "watchlist", "ws_url", "ws_path", "rest_url"):
        value = getattr(args, name)
        if value is not None:
            env[f"STATARB_{name.upper()}"] = value
    if args.db:
        env["STATARB_DB"] = _check_db(args.db)
    if args.watchlist:
        read_watchlist(args.watchlist)  # a missing or malformed file: one line here, not in the browser
        env["STATARB_WATCHLIST"] = str(Path(args.watchlist).resolve())  # the server runs elsewhere
    if args.monitor:
        from .monitor.remote import parse_address

        parse_address(args.monitor)
        if args.notify or args.db or args.source or args.watchlist:
            raise InvalidParameter("--monitor: the monitor ingests, records and notifies; --source, --db, --watchlist "
                                   "and --notify belong to `statarb monitor`")
        env["STATARB_MONITOR"] = args.monitor
        if args.monitor_token:
            env["STATARB_MONITOR_TOKEN"] = args.monitor_token
    if args.api_key:
        env[API_KEY_ENV] = args.api_key
    if args.notify:
        env["STATARB_NOTIFY"] = " ".join(args.notify)
    if env.get("STATARB_NOTIFY"):
        from .notify import Notifier

        Notifier(env["STATARB_NOTIFY"])  # refuse bad URLs here, before the server starts
        env.setdefault("STATARB_LINK_BASE", f"http://{args.ip}:{args.port}/")
    AppSettings.parse("", env)  # report bad options here, before the server starts
    return _exec_server("dashboard", args, env)


def _serve(args: argparse.Namespace) -> int:
    return _exec_server(args.page, args, dict(os.environ))


def _exec_server(page: str, args: argparse.Namespace, env: dict[str, str]) -> int:
    """Become the page's Voila server (statarb_kit.server): same PID, so SIGTERM from systemd,
    Docker or a CI runner, and Ctrl-C, reach the server, which stops its kernels on either (a
    child process would be orphaned instead)."""
    from .resources import notebook_path

    if args.cull_after <= 0:
        raise InvalidParameter(f"--cull-after must be > 0 seconds, got {args.cull_after:g}")
    notebook = notebook_path(f"{page}.ipynb") if page in PAGES else Path(page).resolve()
    if not notebook.is_file():
        raise InvalidParameter(f"no such notebook: {page} (serve one of {', '.join(PAGES)}, or a .ipynb file)")
    check_ports(args.ip, [args.port])
    cmd = [sys.executable, "-m", "statarb_kit.server", str(notebook), "--no-browser", f"--port={args.port}",
           "--Voila.port_retries=0", f"--Voila.ip={args.ip}", "--show_tracebacks=True",
           f"--cull-after={args.cull_after:g}"]
    query = ""
    token = args.token or os.environ.get("STATARB_TOKEN")
    if token or not is_loopback(args.ip):  # anyone who can reach the address would get a kernel: ask for a token
        token = token or secrets.token_urlsafe(24)
        env = {**env, "JUPYTER_TOKEN": token}  # Jupyter's variable: the token stays off the command line
        cmd.append("--Voila.auto_token=True")
        query = f"?token={token}"
    print(f"statarb {'dashboard' if page == 'dashboard' else f'serve {page}'}: open http://{args.ip}:{args.port}/{query} "
          f"in a browser (Ctrl-C to stop; a closed page's kernel ends within {args.cull_after:g} s)", flush=True)
    os.execve(sys.executable, cmd, env)


def _server_options(parser: argparse.ArgumentParser) -> None:
    from .server import CULL_AFTER_S

    parser.add_argument("--port", type=int, default=8866, help="port (default: %(default)s)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--token", default=None,
                        help="token a browser must give when --ip is not loopback (or set STATARB_TOKEN; "
                             "generated and printed when none is given)")
    parser.add_argument("--cull-after", type=float, default=CULL_AFTER_S, metavar="S",
                        help="end a page's kernel when no browser has been connected to it for S seconds "
                             "(default: %(default)g; a closed tab ends its kernel at once)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="statarb", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record a source into DuckDB, printing live bars and rates")
    rec.add_argument("--db", default="statarb.duckdb", help="DuckDB file (default: %(default)s)")
    rec.add_argument("--source", choices=("synthetic", "live", "replay"), default="synthetic",
                     help="synthetic pair (default), live Binance USD-M trades, or replay of dump files")
    rec.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated symbols (x,y for a pair)")
    rec.add_argument("--seed", type=int, default=7, help="synthetic source seed")
    rec.add_argument("--files", nargs="*", help="replay: Binance trades/aggTrades dump files (.zip or .csv); "
                     "bookTicker dumps add their quotes (table quotes)")
    rec.add_argument("--speed", type=float, default=None, help="replay: times real time (default: as fast as possible)")
    rec.add_argument("--skip-bad", action="store_true", help="replay: skip and count corrupt lines")
    rec.add_argument("--ws-url", default=BinanceConfig.ws_url, help="live: WebSocket base URL")
    rec.add_argument("--ws-path", default=None,
                     help="live: stream path to try first (default: by tier, @trade on /public/stream; "
                          "/market/stream, /public/ws, the legacy /stream); a silent one falls back to the other tier")
    rec.add_argument("--rest-url", default=BinanceConfig.rest_url, help="live: REST base URL")
    rec.add_argument("--api-key", default=None, help=API_KEY_HELP)
    rec.add_argument("--quotes", action="store_true", help=QUOTES_HELP)
    rec.add_argument("--raw-quotes", action="store_true", help=RAW_QUOTES_HELP)
    rec.add_argument("--timeframe", default="1s", type=_timeframe, help="bars to print: 1s, 1m or 5m")
    rec.add_argument("--every", type=float, default=1.0, help="seconds between status lines")
    rec.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    dl = sub.add_parser("download", help="download Binance USD-M history dumps, verify them and load them")
    dl.add_argument("symbols", nargs="*", help="symbols, e.g. BTCUSDT ETHUSDT")
    dl.add_argument("--all", action="store_true",
                    help="klines: every symbol that traded in the range, delisted ones included (point in time)")
    dl.add_argument("--start", required=True, type=_day, help="first day, YYYY-MM-DD (UTC)")
    dl.add_argument("--end", default=None, type=_day,
                    help="last day, YYYY-MM-DD (default: the start day; klines: up to now)")
    dl.add_argument("--kind", choices=("trades", "aggTrades", "bookTicker", "fundingRate", "klines"), default="trades",
                    help="dump kind (bookTicker: USD-M best bid and ask to 2024-03-31, stored as quote bars; "
                         "fundingRate: the monthly funding dumps, stored in table funding; klines: bars "
                         "of --interval, REST for what the dumps do not have yet, funding along)")
    dl.add_argument("--interval", default="1m", help="klines: 1m (default), 3m, 5m, 15m, 30m, 1h ... 1d")
    dl.add_argument("--rest-url", default="https://fapi.binance.com", help="klines: REST base URL")
    dl.add_argument("--market", choices=("um", "spot"), default="um", help="USD-M futures (default) or spot")
    dl.add_argument("--dir", default="data", help="where the files go (default: %(default)s)")
    dl.add_argument("--db", default="statarb.duckdb", help="DuckDB file to load them into")
    dl.add_argument("--raw-quotes", action="store_true",
                    help="bookTicker: store every quote too (table quotes), for fills --latency-ms after the close")
    dl.add_argument("--base-url", default=DATA_URL, help="public data site (default: Binance's)")
    dl.add_argument("--no-load", action="store_true", help="download only")
    dl.add_argument("--skip-bad", action="store_true", help="skip and count corrupt lines when loading")
    dl.add_argument("--archive", default=None, metavar="DIR",
                    help="klines: also write them as hive-partitioned Parquet under DIR")
    add_universe_options(dl)
    add_history_parsers(sub)
    add_demo_parser(sub)
    fu = sub.add_parser("funding", help="fetch USD-M funding rates from Binance's REST API into a DuckDB file")
    fu.add_argument("symbols", nargs="+", help="symbols, e.g. BTCUSDT ETHUSDT")
    fu.add_argument("--start", required=True, help="first UTC time, e.g. 2026-01-01")
    fu.add_argument("--end", default=None, help="last UTC time (default: now)")
    fu.add_argument("--db", default="statarb.duckdb", help="DuckDB file (table funding)")
    fu.add_argument("--rest-url", default=BinanceConfig.rest_url, help="REST base URL (default: Binance's)")
    dash = sub.add_parser("dashboard", help="serve the live dashboard with Voila")
    dash.add_argument("--source", default=None, help="synthetic (default) or live (Binance USD-M)")
    dash.add_argument("--symbols", default=None, help="comma-separated pair x,y (default: BTCUSDT,ETHUSDT)")
    dash.add_argument("--timeframe", default=None, type=_timeframe, help="1s, 1m or 5m (default: 1s)")
    dash.add_argument("--db", default=None, help="DuckDB file (default: in memory, one per browser tab)")
    dash.add_argument("--ws-url", default=None, help="live: Binance WebSocket base URL")
    dash.add_argument("--ws-path", default=None, help="live: stream path to try first (default: /public/stream)")
    dash.add_argument("--rest-url", default=None, help="live: Binance REST base URL")
    dash.add_argument("--api-key", default=None, help=API_KEY_HELP + " (handed to the server's environment, "
                      "never to a page's URL)")
    dash.add_argument("--watchlist", default=None, metavar="FILE",
                      help="serve a watchlist of the pairs in FILE (X/Y a line, or a scan's CSV with x,y) instead "
                           "of one pair; a URL can also name pairs: ?pairs=X/Y,A/B or ?pairs=synthetic")
    dash.add_argument("--notify", action="append", metavar="URL",
                      help="send alert events here (an apprise URL: slack://..., tgram://..., mailto://..., "
                           "json://host/path...; repeat for more; or set STATARB_NOTIFY)")
    dash.add_argument("--monitor", default=None, metavar="HOST:PORT",
                      help="attach the pages to a running `statarb monitor` instead of ingesting in each page")
    dash.add_argument("--monitor-token", default=None,
                      help="the monitor's token (or set STATARB_MONITOR_TOKEN), for a monitor on another address")
    _server_options(dash)
    add_monitor_parser(sub, _timeframe)
    srv = sub.add_parser("serve", help="serve a notebook page (scan, backtest, sweep, portfolio) with Voila")
    srv.add_argument("page", help=f"one of {', '.join(PAGES)}, or a .ipynb file")
    _server_options(srv)
    sw = sub.add_parser("sweep", help="backtest a grid of alert-rule parameters on a pair, in parallel",
                        description="Backtest every combination of a parameter grid on one pair. Data: --db "
                        "(recorded bars), else --files (Binance dumps), else the synthetic pair.")
    sw.add_argument("--grid", action="append", metavar="NAME=VALUES",
                    help="parameter values: name=a,b,c or name=start:stop:step (stop included); repeat per "
                         f"parameter (default: {' '.join(DEFAULT_GRID)})")
    sw.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a fixed parameter for every combination, e.g. fee_bps=4")
    sw.add_argument("--pair", default="BTCUSDT,ETHUSDT", help="x,y (default: %(default)s)")
    sw.add_argument("--timeframe", default="1m", type=_timeframe, help="bars: 1s, 1m or 5m (default: %(default)s)")
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
    sc.add_argument("--timeframe", default="1m", type=_any_timeframe,
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
    add_study_parser(sub, _any_timeframe)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    fresh = _new_store(args)
    try:
        rc = _run(args)
    except (StatarbError, duckdb.Error) as exc:  # duckdb: e.g. an --out file that is not a DuckDB database
        print(f"statarb: {exc}", file=sys.stderr)
        rc = 2
    except httpx.HTTPError as exc:  # no network, a mirror down: one line, not a traceback
        print(f"statarb: {args.command}: {network_line(exc)}", file=sys.stderr)
        rc = 1
    except KeyboardInterrupt:
        print(f"statarb: {args.command} interrupted; {KEPT}", file=sys.stderr)
        rc = 130
    if rc and fresh is not None:
        drop_if_empty(fresh)
    return rc


#: What an interrupted or failed history command leaves.
KEPT = "what it stored stays stored (each file and bar is written whole); the same command again resumes"


def network_line(exc: httpx.HTTPError) -> str:
    """One line for a failed request: where, what, what was kept, what to do."""
    try:
        where = str(exc.request.url.copy_with(query=None))
    except RuntimeError:  # an error raised without its request
        where = "the server"
    what = (f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError)
            else f"{type(exc).__name__}: {exc or 'no answer'}")
    return (f"could not reach {where} ({what}); {KEPT}. Check the network, or point --rest-url, --listing-url and "
            "--base-url at a mirror")


def _new_store(args: argparse.Namespace) -> Path | None:
    """The --db file a writing command is about to create (None: it exists, is in memory, or the
    command does not write one)."""
    db = getattr(args, "db", None)
    if args.command not in ("download", "record", "funding", "monitor") or not db or db == ":memory:":
        return None
    path = Path(db).expanduser()
    return None if path.exists() else path


def drop_if_empty(path: Path) -> None:
    """Remove a store a failed command created when it holds no row (no empty file left behind)."""
    if not path.is_file():
        return
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
            rows = sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
    except duckdb.Error:
        return
    if rows == 0:
        for p in (path, path.with_name(path.name + ".wal")):
            p.unlink(missing_ok=True)


def _run(args: argparse.Namespace) -> int:
    """Dispatch the parsed command."""
    if args.command == "dashboard":
        return _dashboard(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "download":
        return asyncio.run(_download(args))
    if args.command == "funding":
        return asyncio.run(_funding(args))
    if args.command in ("update", "universe", "archive", "demo-site"):
        from . import cli_history

        return asyncio.run(getattr(cli_history, args.command.replace("-", "_"))(args))
    if args.command == "monitor":
        from . import cli_monitor

        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(cli_monitor.run(args))
        return 0
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "scan":
        return _scan(args)
    if args.command == "study":
        from . import cli_study

        return cli_study.run(args)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_record(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
