"""``statarb record``: a source into a DuckDB file, printing live bars and rates."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ..session import Session
from ..sources import Source, SyntheticPair
from ..sources.options import RAW_QUOTES_HELP, live_source, replay_source
from .options import add_live_options, timeframe_type


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``record`` subcommand."""
    rec = sub.add_parser("record", help="record a source into DuckDB, printing live bars and rates")
    rec.add_argument("--db", default="statarb.duckdb", help="DuckDB file (default: %(default)s)")
    rec.add_argument("--source", choices=("synthetic", "live", "replay"), default="synthetic",
                     help="synthetic pair (default), live Binance USD-M trades, or replay of dump files")
    rec.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated symbols (x,y for a pair)")
    rec.add_argument("--seed", type=int, default=7, help="synthetic source seed")
    rec.add_argument("--files", nargs="*", help="replay: Binance trades/aggTrades dump files (.zip or .csv); "
                     "bookTicker dumps add their quotes (table quote_bars)")
    rec.add_argument("--speed", type=float, default=None, help="replay: times real time (default: as fast as possible)")
    rec.add_argument("--skip-bad", action="store_true", help="replay: skip and count corrupt lines")
    add_live_options(rec)
    rec.add_argument("--raw-quotes", action="store_true", help=RAW_QUOTES_HELP)
    rec.add_argument("--timeframe", default="1s", type=timeframe_type, help="bars to print: 1s, 1m or 5m")
    rec.add_argument("--every", type=float, default=1.0, help="seconds between status lines")
    rec.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    rec.set_defaults(func=run, writes_store=True)


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


def run(args: argparse.Namespace) -> int:
    """Record until --duration, the source's end, Ctrl-C or SIGTERM (each stops cleanly)."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_record(args))
    return 0
