"""``statarb dashboard`` and ``statarb serve``: the pages, each served by Voila."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from ..errors import InvalidParameter
from ..monitor import is_loopback
from ..ports import check_ports
from ..results import check_writable
from ..sources.options import API_KEY_ENV
from ..store import TickStore
from ..watchlist import read_watchlist
from .options import add_live_options, timeframe_type

#: Pages ``statarb serve`` knows by name (notebooks shipped with the package).
PAGES = ("dashboard", "scan", "backtest", "sweep", "portfolio")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``dashboard`` and ``serve`` subcommands."""
    dash = sub.add_parser("dashboard", help="serve the live dashboard with Voila")
    dash.add_argument("--source", default=None, help="synthetic (default) or live (Binance USD-M)")
    dash.add_argument("--symbols", default=None, help="comma-separated pair x,y (default: BTCUSDT,ETHUSDT)")
    dash.add_argument("--timeframe", default=None, type=timeframe_type, help="1s, 1m or 5m (default: 1s)")
    dash.add_argument("--db", default=None, help="DuckDB file (default: in memory, one per browser tab)")
    add_live_options(dash, passthrough=True, quotes=False)
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
    server_options(dash)
    srv = sub.add_parser("serve", help="serve a notebook page (scan, backtest, sweep, portfolio) with Voila")
    srv.add_argument("page", help=f"one of {', '.join(PAGES)}, or a .ipynb file")
    server_options(srv)
    dash.set_defaults(func=_dashboard)
    srv.set_defaults(func=_serve)


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
    from ..app import AppSettings

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
        from ..monitor.remote import parse_address

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
        from ..notify import Notifier

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
    from ..resources import notebook_path

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


def server_options(parser: argparse.ArgumentParser) -> None:
    from ..server import CULL_AFTER_S

    parser.add_argument("--port", type=int, default=8866, help="port (default: %(default)s)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--token", default=None,
                        help="token a browser must give when --ip is not loopback (or set STATARB_TOKEN; "
                             "generated and printed when none is given)")
    parser.add_argument("--cull-after", type=float, default=CULL_AFTER_S, metavar="S",
                        help="end a page's kernel when no browser has been connected to it for S seconds "
                             "(default: %(default)g; a closed tab ends its kernel at once)")


