"""The ``statarb`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from .errors import StatarbError
from .session import Session
from .sources import SyntheticPair

log = logging.getLogger(__name__)


def _status_line(session: Session, timeframe: str) -> str:
    st = session.status()
    parts = [
        f"{st.ticks_per_s:8.0f} ticks/s",
        f"stored {st.rows_in_store:>10,}",
        f"dup {st.duplicates}",
        f"lost {st.overwritten}",
        f"late {st.late_ticks}",
    ]
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


async def _record(args: argparse.Namespace) -> None:
    source = SyntheticPair(symbols=tuple(args.symbols.split(",")), seed=args.seed)
    session = Session(source=source, db=args.db).start()
    print(f"recording {', '.join(session.symbols)} from {source.status.name} into {args.db} "
          f"(UTC times; Ctrl-C to stop)", flush=True)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)  # `kill` stops as cleanly as Ctrl-C
    deadline = None if args.duration is None else loop.time() + args.duration
    try:
        while deadline is None or loop.time() < deadline:
            await asyncio.sleep(args.every)
            print(_status_line(session, args.timeframe), flush=True)
    except asyncio.CancelledError:  # Ctrl-C or SIGTERM cancel this task: stop cleanly below
        pass
    finally:
        await session.stop()
    print(f"stopped: {session.status().rows_in_store:,} ticks in {args.db}", flush=True)


def _dashboard(args: argparse.Namespace) -> int:
    from .app import AppSettings, notebook_path

    env = dict(os.environ)
    for name in ("source", "symbols", "timeframe", "db"):
        value = getattr(args, name)
        if value is not None:
            env[f"STATARB_{name.upper()}"] = value
    AppSettings.parse("", env)  # report bad options here, before the server starts
    cmd = [sys.executable, "-m", "voila", str(notebook_path()), "--no-browser", f"--port={args.port}",
           f"--Voila.ip={args.ip}", "--show_tracebacks=True"]
    print(f"statarb dashboard: open http://{args.ip}:{args.port}/ in a browser (Ctrl-C to stop)", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="statarb", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record a source into DuckDB, printing live bars and rates")
    rec.add_argument("--db", default="statarb.duckdb", help="DuckDB file (default: %(default)s)")
    rec.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated pair (x,y)")
    rec.add_argument("--seed", type=int, default=7, help="synthetic source seed")
    rec.add_argument("--timeframe", default="1s", help="bars to print: 1s, 1m or 5m")
    rec.add_argument("--every", type=float, default=1.0, help="seconds between status lines")
    rec.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    dash = sub.add_parser("dashboard", help="serve the live dashboard with Voila")
    dash.add_argument("--source", default=None, help="data source (default: synthetic)")
    dash.add_argument("--symbols", default=None, help="comma-separated pair x,y (default: BTCUSDT,ETHUSDT)")
    dash.add_argument("--timeframe", default=None, help="1s, 1m or 5m (default: 1s)")
    dash.add_argument("--db", default=None, help="DuckDB file (default: in memory, one per browser tab)")
    dash.add_argument("--port", type=int, default=8866, help="port (default: %(default)s)")
    dash.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "dashboard":
            return _dashboard(args)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_record(args))
    except StatarbError as exc:
        print(f"statarb: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
