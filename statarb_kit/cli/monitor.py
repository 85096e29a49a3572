"""``statarb monitor``: the always-on monitor (see ``monitor.service``), logging to stderr."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys

from ..config import MonitorConfig, SessionConfig
from ..errors import InvalidParameter
from ..monitor import DEFAULT_PORT, is_loopback
from ..notify import ENV as NOTIFY_ENV
from ..notify import Notifier
from ..ports import check_ports
from ..session import Session
from ..sources import Source, SyntheticGroups, SyntheticPair
from ..sources.options import live_source, replay_source
from ..ticks import now_ms
from ..watchlist import parse_pairs, read_watchlist
from .options import add_live_options, add_rule_options, rule_from_args, timeframe_type

log = logging.getLogger(__name__)

#: Environment variable with the token viewers must present (instead of --token).
TOKEN_ENV = "STATARB_TOKEN"
#: Bars per symbol and timeframe the monitor holds in memory (2 h of 1s bars), as a watchlist page.
RETAIN_BARS = 7_200


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``monitor`` subcommand."""
    mo = sub.add_parser("monitor", help="run the always-on monitor: one ingestion, events, notifications, viewers",
                        description="One session on a source with a watchlist, its alert rule, its event log and one "
                        "notification per event, recorded into --db; dashboards attach with `statarb dashboard "
                        "--monitor HOST:PORT`, notebooks with Session.attach('HOST:PORT'); GET /health on --port. "
                        "SIGTERM stops it cleanly; started again on its file it continues where it stopped.")
    mo.add_argument("--db", default="statarb_monitor.duckdb", help="DuckDB file (default: %(default)s)")
    mo.add_argument("--source", choices=("synthetic", "live", "replay"), default="synthetic")
    mo.add_argument("--pairs", default="synthetic",
                    help="X/Y,A/B, or 'synthetic' (the pairs of the synthetic groups; the default)")
    mo.add_argument("--watchlist", default=None, metavar="FILE", help="pairs from a file (X/Y a line, or a scan's CSV)")
    mo.add_argument("--timeframe", default="1s", type=timeframe_type, help="bars the rule runs on (default: 1s)")
    add_rule_options(mo)
    mo.add_argument("--paper", action="store_true",
                    help="follow every pair's rule on paper (tables paper_books, paper_trades; /health shows them)")
    mo.add_argument("--groups", type=int, default=20, help="synthetic: groups of cointegrated symbols")
    mo.add_argument("--group-size", type=int, default=5, help="synthetic: symbols per group")
    mo.add_argument("--seed", type=int, default=7, help="synthetic: seed")
    mo.add_argument("--history-min", type=float, default=20.0, help="synthetic: minutes of history at first start")
    mo.add_argument("--files", nargs="*", help="replay: Binance trades dump files")
    mo.add_argument("--speed", type=float, default=None, help="replay: times real time")
    add_live_options(mo)
    mo.add_argument("--notify", action="append", metavar="URL",
                    help=f"send each event here (an apprise URL; repeat for more; or set {NOTIFY_ENV})")
    mo.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; another "
                    "needs a token)")
    mo.add_argument("--port", type=int, default=DEFAULT_PORT,
                    help="HTTP /health on PORT, updates on PORT+1, requests on PORT+2 (default: %(default)s)")
    mo.add_argument("--token", default=None, help=f"token viewers must give (or set {TOKEN_ENV}; generated and "
                    "printed when the address is not loopback and none is given)")
    mo.add_argument("--viewer-queue", type=int, default=1_000, help="updates queued per viewer before drops")
    mo.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run on)")
    mo.add_argument("--every", type=float, default=30.0, help="seconds between status log lines")
    mo.set_defaults(func=main, writes_store=True)


def _pairs(args: argparse.Namespace) -> tuple[list[tuple[str, str]], SyntheticGroups | None]:
    if args.watchlist:
        return read_watchlist(args.watchlist), None
    if args.pairs == "synthetic":
        if args.source != "synthetic":
            raise InvalidParameter("--pairs synthetic names generated symbols: give --pairs X/Y,... or --watchlist")
        groups = SyntheticGroups(n_groups=args.groups, group_size=args.group_size, seed=args.seed,
                                 start_ms=now_ms() - int(args.history_min * 60_000))
        return groups.pairs(), groups
    return parse_pairs(args.pairs), None


def _source(args: argparse.Namespace, pairs: list[tuple[str, str]], groups: SyntheticGroups | None) -> Source:
    symbols = tuple(dict.fromkeys(s for p in pairs for s in p))
    if args.source == "synthetic":
        if groups is not None:
            return groups
        if len(symbols) != 2:
            raise InvalidParameter("a synthetic monitor watches one pair (--pairs X/Y) or --pairs synthetic")
        return SyntheticPair(symbols=symbols, seed=args.seed, start_ms=now_ms() - int(args.history_min * 60_000))
    if args.source == "live":
        return live_source(symbols, args.ws_url, args.ws_path, args.rest_url, args.db, args.api_key, args.quotes)
    return replay_source(args.files, args.speed)


def _token(args: argparse.Namespace) -> str | None:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(args.host):
        token = secrets.token_urlsafe(24)
        print(f"statarb monitor: viewers need this token (pass it as --monitor-token, or {TOKEN_ENV}): {token}",
              file=sys.stderr, flush=True)
    return token


async def run(args: argparse.Namespace) -> int:
    """Run the monitor until SIGTERM, Ctrl-C, --duration or the end of a finite source."""
    from ..monitor.service import Monitor

    logging.getLogger("statarb_kit").setLevel(logging.INFO)
    rule = rule_from_args(args)
    if rule.price == "mid" and not (args.source == "live" and args.quotes):
        raise InvalidParameter("--price mid needs the quotes: --source live --quotes (the views price at the quote "
                               "mid at each close)")
    check_ports(args.host, [args.port, args.port + 1, args.port + 2])  # before a tick is recorded
    pairs, groups = _pairs(args)
    token = _token(args)
    urls = args.notify or os.environ.get(NOTIFY_ENV, "").replace(",", " ").split()
    notifier = Notifier(urls) if urls else None
    config = MonitorConfig(host=args.host, port=args.port, token=token, viewer_queue=args.viewer_queue)
    session = Session(source=_source(args, pairs, groups), db=args.db,
                      config=SessionConfig(retain_bars=RETAIN_BARS, retain_ticks=2_000))
    monitor = Monitor(session, pairs, args.timeframe, rule, notifier=notifier, config=config)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main_task.cancel)
    await monitor.start()
    if args.paper:  # every pair's rule on paper, in the file (continued after a restart)
        await monitor.watchlist.trade_on_paper()
    print(f"statarb monitor: {len(pairs)} pairs on {args.timeframe} bars into {args.db}; viewers: statarb dashboard "
          f"--monitor {args.host}:{args.port}; health: http://{args.host}:{args.port}/health", file=sys.stderr,
          flush=True)
    deadline = None if args.duration is None else loop.time() + args.duration
    try:
        while deadline is None or loop.time() < deadline:
            wait = args.every if deadline is None else min(args.every, max(0.0, deadline - loop.time()))
            if await session.wait_source(wait):
                break
            h = monitor.health()
            log.info("monitor: %s %s, %.0f ticks/s, bars lag %s s, %d events, %d notified, %d viewers",
                     h["source"], h["source_state"], h["ticks_per_s"],
                     "-" if h["bars_lag_s"] is None else f"{h['bars_lag_s']:.1f}", h["events"], h["notified"],
                     h["viewers"])
    except asyncio.CancelledError:  # SIGTERM or Ctrl-C: stop cleanly below
        pass
    finally:
        await monitor.stop()
    st = session.status()
    print(f"statarb monitor stopped: {st.ticks_stored:,} new ticks, {st.events} events "
          f"({monitor.recovered_events} found after a restart), {st.rows_in_store:,} ticks in {args.db}",
          file=sys.stderr, flush=True)
    return 0


def main(args: argparse.Namespace) -> int:
    """Run the monitor (``run``) to its end; Ctrl-C stops it cleanly."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 0
