"""``statarb download`` and ``statarb funding``: Binance's history dumps and funding rates into a store."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import pandas as pd

from ..bars import timeframe_ms
from ..errors import InvalidParameter
from ..exchange.binance.endpoints import REST_URL
from ..exchange.binance.funding_files import read_funding_files
from ..exchange.binance.history import DATA_URL, download
from ..funding import FundingRates
from ..session import Session
from ..sources import Replay
from ..store import TickStore
from ..ticks import normalize_symbol, now_ms
from .history import add_universe_options, check_range
from .options import day_type


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``download`` and ``funding`` subcommands."""
    dl = sub.add_parser("download", help="download Binance USD-M history dumps, verify them and load them")
    dl.add_argument("symbols", nargs="*", help="symbols, e.g. BTCUSDT ETHUSDT")
    dl.add_argument("--all", action="store_true",
                    help="klines: every symbol that traded in the range, delisted ones included (point in time)")
    dl.add_argument("--start", required=True, type=day_type, help="first day, YYYY-MM-DD (UTC)")
    dl.add_argument("--end", default=None, type=day_type,
                    help="last day, YYYY-MM-DD (default: the start day; klines: up to now)")
    dl.add_argument("--kind", choices=("trades", "aggTrades", "bookTicker", "fundingRate", "klines"), default="trades",
                    help="dump kind (bookTicker: USD-M best bid and ask to 2024-03-31, stored as quote bars; "
                         "fundingRate: the monthly funding dumps, stored in table funding; klines: bars "
                         "of --interval, REST for what the dumps do not have yet, funding along)")
    dl.add_argument("--interval", default="1m", help="klines: 1m (default), 3m, 5m, 15m, 30m, 1h ... 1d")
    dl.add_argument("--rest-url", default=REST_URL, help="klines: REST base URL")
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
    fu = sub.add_parser("funding", help="fetch USD-M funding rates from Binance's REST API into a DuckDB file")
    fu.add_argument("symbols", nargs="+", help="symbols, e.g. BTCUSDT ETHUSDT")
    fu.add_argument("--start", required=True, help="first UTC time, e.g. 2026-01-01")
    fu.add_argument("--end", default=None, help="last UTC time (default: now)")
    fu.add_argument("--db", default="statarb.duckdb", help="DuckDB file (table funding)")
    fu.add_argument("--rest-url", default=REST_URL, help="REST base URL (default: Binance's)")
    dl.set_defaults(func=lambda args: asyncio.run(_download(args)), writes_store=True)
    fu.set_defaults(func=lambda args: asyncio.run(_funding(args)), writes_store=True)


async def _download(args: argparse.Namespace) -> int:
    if args.kind == "klines":
        from .history import download_klines

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
    from ..bars import DEFAULT_TIMEFRAMES
    from ..quotes import quote_bar_frame, quote_bars, quotes_frame, read_book_ticker_dump

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
            rows = quote_bar_frame([(tf, quote_bars(q, timeframe_ms(tf))) for tf in DEFAULT_TIMEFRAMES])
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
    from ..backtest.data import utc_ms
    from ..exchange.binance.rest import fetch_funding

    start = utc_ms(args.start)
    end = utc_ms(args.end) if args.end else now_ms()
    rates = await fetch_funding([normalize_symbol(s) for s in args.symbols], start, end, args.rest_url)
    return _store_funding(rates, args.db)


