"""The history commands of ``statarb``: ``download --kind klines``, ``update`` and ``universe``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

from ..archive import export_store
from ..errors import InvalidParameter
from ..exchange.binance.history import DATA_URL
from ..exchange.binance.kline_history import REST_URL, UpdateReport, store_targets, update_klines
from ..exchange.binance.klines import MARKET_INTERVALS
from ..exchange.binance.symbols import EXCLUSIONS, LISTING_URL, fetch_universe, point_in_time
from ..results import check_writable
from ..store import TickStore


def _exclude(text: str) -> tuple[str, ...]:
    """argparse type of --exclude: comma-separated rules, or "none"."""
    if text == "none":
        return ()
    got = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = sorted(set(got) - set(EXCLUSIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown exclusion {', '.join(unknown)}: use {', '.join(EXCLUSIONS)} or none")
    return got


def add_universe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listing-url", default=LISTING_URL, help="the data site's S3 bucket listing (default: Binance's)")
    p.add_argument("--exclude", type=_exclude, default=tuple(EXCLUSIONS),
                   help=f"comma-separated: {', '.join(EXCLUSIONS)} (default: all three; 'none' keeps every symbol)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``update`` and ``universe`` subcommands."""
    up = sub.add_parser("update", help="bring a store's kline bars (and funding) up to now, incrementally",
                        description="For every symbol and timeframe the store holds klines of: the dump files of the "
                        "days since it was last updated, REST for the rest, funding of perpetuals along. A second run "
                        "fetches nothing new.")
    up.add_argument("db", help="DuckDB file a kline download or a recording wrote")
    up.add_argument("--interval", action="append", default=None, help="only this timeframe (repeatable)")
    up.add_argument("--market", choices=tuple(MARKET_INTERVALS), default="um", help="USD-M futures (default) or spot")
    up.add_argument("--dir", default=None, help="keep the dump files here (default: a temporary folder)")
    up.add_argument("--base-url", default=DATA_URL, help="public data site (default: Binance's)")
    up.add_argument("--rest-url", default=REST_URL, help="REST base URL (default: Binance's)")
    up.add_argument("--no-funding", action="store_true", help="klines only")
    up.add_argument("--archive", default=None, metavar="DIR",
                    help="also write the months updated as hive-partitioned Parquet under DIR")
    up.add_argument("--skip-bad", action="store_true", help="skip and count corrupt lines")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    up.set_defaults(func=lambda args: asyncio.run(update(args)))
    un = sub.add_parser("universe", help="every symbol Binance ever listed, with type, status, first and last day",
                        description="The data site's listing (it keeps delisted symbols) joined with exchangeInfo. "
                        "With --start/--end: the symbols that traded in that range, point in time.")
    un.add_argument("--market", choices=tuple(MARKET_INTERVALS), default="um", help="USD-M futures (default) or spot")
    un.add_argument("--interval", default=None,
                    help="kline files whose days give first and last (default: 1m); with --db the bars to read "
                         "(default: the store's timeframe, when it holds one)")
    un.add_argument("--start", default=None, type=dt.date.fromisoformat, help="first UTC day of the range")
    un.add_argument("--end", default=None, type=dt.date.fromisoformat, help="last UTC day (default: today)")
    un.add_argument("--rest-url", default=REST_URL, help="REST base URL (default: Binance's)")
    un.add_argument("--out", default=None, help="write the table: .csv or .parquet")
    un.add_argument("--db", default=None,
                    help="instead of the exchange (offline): the symbols of this store's --interval bars, each with "
                         "its last traded bar and the flat bars after it")
    un.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_universe_options(un)
    un.set_defaults(func=lambda args: asyncio.run(universe(args)))
    ar = sub.add_parser("archive", help="write a store's bars and funding as hive-partitioned Parquet",
                        description="ROOT/bars/timeframe=TF/symbol=S/month=YYYY-MM/part.parquet and "
                        "ROOT/funding/symbol=S/part.parquet, each written whole (temporary file, then rename), "
                        "readable by DuckDB, Dask and Spark without a lock; --db ROOT works in scan and backtests.")
    ar.add_argument("db", help="DuckDB file")
    ar.add_argument("root", help="archive folder")
    ar.set_defaults(func=lambda args: asyncio.run(archive(args)))


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """The ``demo-site`` subcommand."""
    de = sub.add_parser("demo-site", help="serve real klines in Binance's formats on 127.0.0.1: the real-data path "
                        "offline", description="Real 1h USD-M klines of 12 perpetuals, September to December 2022 "
                        "(a settled contract and a late listing among them), as Binance's data site, bucket listing "
                        "and REST serve them. Point universe, download and update at it; Ctrl-C stops it.")
    de.add_argument("--port", type=int, default=8899, help="port on 127.0.0.1 (default: %(default)s)")
    de.set_defaults(func=lambda args: asyncio.run(demo_site(args)))


async def demo_site(args: argparse.Namespace) -> int:
    """Serve the demo until Ctrl-C or SIGTERM, printing the commands that use it."""
    import signal

    from ..demo import DemoSite
    from ..ports import check_ports

    check_ports("127.0.0.1", [args.port])
    site = DemoSite(args.port)
    await site.start()
    u, db = site.url, "demo.duckdb"
    print(f"statarb demo-site: real 1h klines of {len(site.symbols)} USD-M perpetuals (2022-09-01 to 2022-12-31) at "
          f"{u} (Ctrl-C to stop). In another terminal:\n"
          f"  statarb universe --listing-url {u}/ --rest-url {u} --interval 1h --start 2022-09-01 --end 2022-12-31\n"
          f"  statarb download --kind klines --interval 1h --all --start 2022-09-01 --end 2022-12-31 --db {db} "
          f"--listing-url {u}/ --rest-url {u} --base-url {u}\n"
          f"  statarb update {db} --base-url {u} --rest-url {u}\n"
          f"  statarb universe --db {db}\n"
          f"  statarb scan --db {db} --all --timeframe 1h --log-prices --split 2022-11-15 --min-obs 500\n"
          f"  statarb study --db {db} --formation 30d --trading 15d --min-obs 300", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await site.stop()
    return 0


async def resolve_symbols(args: argparse.Namespace, start: dt.date, end: dt.date) -> list[str]:
    """The symbols of ``args`` or, with ``--all``, every symbol that traded in ``start``..``end``
    (point in time), the exclusions printed."""
    if not args.all:
        if not args.symbols:
            raise InvalidParameter("name the symbols, or download --all that traded in the range")
        return args.symbols
    u = await fetch_universe(args.market, getattr(args, "interval", "1m"), args.listing_url, args.rest_url,
                             progress=False)
    kept, out = point_in_time(u, start, end, args.exclude)
    _print_exclusions(out)
    print(f"--all: {len(kept)} symbols traded between {start} and {end}", flush=True)
    return kept


def _print_exclusions(out: pd.DataFrame) -> None:
    for why, group in out.groupby("why"):
        names = group["symbol"].tolist()
        print(f"excluded, {why}: {len(names)} ({', '.join(names[:8])}{' ...' if len(names) > 8 else ''})", flush=True)


async def download_klines(args: argparse.Namespace) -> int:
    """``statarb download --kind klines``: files of the range into --dir, bars into --db."""
    start = args.start
    end = args.end or dt.datetime.now(dt.UTC).date()
    check_range(start, end)
    symbols = await resolve_symbols(args, start, end)
    store = TickStore(args.db)
    try:
        targets = store_targets(store, args.market, [args.interval], symbols, start, end)
        report = await update_klines(store, targets, dest=args.dir, market=args.market, base_url=args.base_url,
                                     rest_url=args.rest_url, skip_bad=args.skip_bad, progress=True)
        _to_archive(store, report, args.archive)
    finally:
        store.close()
    return print_report(report, args.db)


async def update(args: argparse.Namespace) -> int:
    if not Path(args.db).is_file():  # an update brings a store up to date: it never starts an empty one
        raise InvalidParameter(f"{args.db}: no such store (statarb download --kind klines ... --db {args.db} "
                               "starts one)")
    store = TickStore(args.db)
    try:
        targets = store_targets(store, args.market, args.interval)
        report = await update_klines(store, targets, dest=args.dir, market=args.market, base_url=args.base_url,
                                     rest_url=args.rest_url, funding=not args.no_funding, skip_bad=args.skip_bad,
                                     progress=not args.quiet)
        _to_archive(store, report, args.archive)
    finally:
        store.close()
    return print_report(report, args.db)


def _to_archive(store: TickStore, report: UpdateReport, root: str | None) -> None:
    """Rewrite the archive months an update touched (each symbol from the first month it asked)."""
    if not root:
        return
    files = 0
    for r in report.rows:
        if r.dump_bars or r.rest_bars:
            files += export_store(store, root, [r.timeframe], [r.symbol], since_ms=r.asked[0])
    print(f"archive {root}: {files} file(s) written", flush=True)


async def archive(args: argparse.Namespace) -> int:
    if not Path(args.db).is_file():
        raise InvalidParameter(f"{args.db}: no such store")
    store = TickStore(args.db, read_only=True)
    try:
        if not any(store.bar_symbols(tf) for tf in store.bar_timeframes()) and not store.funding_symbols():
            raise InvalidParameter(f"{args.db} holds no bars and no funding: nothing to archive (download or record "
                                   "into it first)")
        files = export_store(store, args.root)
    finally:
        store.close()
    print(f"archive {args.root}: {files} file(s) written from {args.db}", flush=True)
    return 0


def print_report(report: UpdateReport, db: str) -> int:
    """One line per symbol and timeframe, the funding, the bad files (stderr); 2 if any file was bad."""
    for r in report.rows:
        span = f"{pd.Timestamp(r.asked[0], unit='ms', tz='UTC'):%Y-%m-%d %H:%M}" \
               f" to {pd.Timestamp(r.asked[1], unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC"
        gaps = f"{r.gaps} gap(s), {r.missing_bars:,} bars Binance does not have" if r.gaps else "no gaps"
        if (end := r.missing_at_end()) > 0:  # "no gaps" alone said nothing of months without a bar
            newest = ("no bar stored" if r.last_bar is None else
                      f"the newest bar opens {pd.Timestamp(r.last_bar, unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC")
            gaps += (f"; {newest}: {end:,} bars to the end of the range Binance did not give (delisted, halted "
                     "or not published yet)")
        print(f"{r.symbol} {r.timeframe} {span}: {r.files} file(s) downloaded, {r.files_present} already here, "
              f"{r.rest_calls} REST call(s); {r.dump_bars:,} new bars from dumps, {r.rest_bars:,} from REST; {gaps}"
              f"{'; ' + r.note if r.note else ''}", flush=True)
    for symbol, n in report.funding.items():
        print(f"{symbol}: {n} new funding settlements", flush=True)
    for symbol, note in report.funding_notes.items():
        print(f"{symbol}: {note}", flush=True)
    print(f"{db}: {report.fetched} file(s) and REST call(s) fetched"
          f"{' (already up to date)' if report.fetched == 0 else ''}", flush=True)
    for c in report.corrupt:
        print(f"statarb: bad file, not stored (the next update tries it again): {c}", file=sys.stderr, flush=True)
    return 2 if report.corrupt else 0


def check_range(start: dt.date | None, end: dt.date | None) -> None:
    """Refuse an --end before --start (nothing would be fetched, and "up to date" would be a lie)."""
    if start is not None and end is not None and end < start:
        raise InvalidParameter(f"--end {end} is before --start {start}")


def store_universe(db: str, tf: str | None) -> tuple[pd.DataFrame, str]:
    """The symbols of a store's ``tf`` bars (None: its one timeframe) with their first, last and
    last traded bar (UTC) and the flat tail after it (``TickStore.traded_spans``); and ``tf``."""
    path = Path(db)
    if not path.is_file():
        raise InvalidParameter(f"--db {db}: no such file")
    store = TickStore(path, read_only=True)
    try:
        held = store.bar_timeframes()
        if tf is None and len(held) == 1:
            tf = held[0]
        if tf not in held:
            raise InvalidParameter(f"--db {db} has {'no ' + tf if tf else 'no one timeframe of'} bars (it has: "
                                   f"{', '.join(held) or 'none'}); choose with --interval")
        spans = store.traded_spans(tf)
    finally:
        store.close()
    for c in ("first", "last", "last_traded"):
        spans[c] = pd.to_datetime(spans[c], unit="ms", utc=True)
    return spans, tf


async def universe(args: argparse.Namespace) -> int:
    check_range(args.start, args.end)
    if args.out:
        check_writable(args.out, "--out", (".csv", ".parquet"))
    if args.db:  # what the store holds, offline: where each symbol's trading ended
        u, tf = store_universe(args.db, args.interval)
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            shown = u.assign(**{c: u[c].dt.strftime("%Y-%m-%d %H:%M") for c in ("first", "last", "last_traded")})
            print(shown.to_string(index=False), flush=True)
        ended = u[u["flat_tail"] > 0]
        print(f"{len(u)} symbols in {args.db} ({tf} bars); {len(ended)} end at their last traded bar before their "
              f"last stored bar (a settled or halted contract's klines without trades: no price for any statistic)"
              + ("" if ended.empty else ": " + ", ".join(f"{r.symbol} {r.last_traded:%Y-%m-%d %H:%M}"
                                                        for r in ended.itertuples())), flush=True)
    else:
        u = await fetch_universe(args.market, args.interval or "1m", args.listing_url, args.rest_url,
                                 progress=not args.quiet)
        if args.start:
            end = args.end or dt.datetime.now(dt.UTC).date()
            kept, out = point_in_time(u, args.start, end, args.exclude)
            _print_exclusions(out)
            u = u[u["symbol"].isin(kept)]
            print(f"{len(u)} symbols traded between {args.start} and {end} (point in time: delisted ones included, "
                  "later listings not)", flush=True)
        with pd.option_context("display.width", 200, "display.max_rows", 40):
            shown = u.assign(**{c: u[c].dt.strftime("%Y-%m-%d") for c in ("onboard", "delivery", "first", "last")})
            print(shown.drop(columns=["on_exchange_info"]).to_string(index=False), flush=True)
        counts = u["status"].value_counts().to_dict()
        print(f"{len(u)} symbols: " + ", ".join(f"{n} {s}" for s, n in counts.items()), flush=True)
    if args.out:
        if args.out.endswith(".parquet"):
            u.to_parquet(args.out, index=False)
        else:
            u.to_csv(args.out, index=False)
        print(f"wrote {args.out}", flush=True)
    return 0
