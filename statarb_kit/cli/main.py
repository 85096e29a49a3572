"""The ``statarb`` command line: one parser, each command's options and its function declared in
its own module (``set_defaults(func=...)``); failures become one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb
import httpx

from ..errors import StatarbError
from . import download, history, monitor, record, scan, serve, study, sweep

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
    if not getattr(args, "writes_store", False) or not db or db == ":memory:":
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


def parser() -> argparse.ArgumentParser:
    """The ``statarb`` parser: each command's options from its module."""
    top = argparse.ArgumentParser(prog="statarb", description="The statarb_kit command line: record, download, "
                                  "scan, study, sweep, monitor and serve pages.")
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = top.add_subparsers(dest="command", required=True)
    record.add_parser(sub)
    download.add_parsers(sub)
    history.add_parsers(sub)
    history.add_demo_parser(sub)
    serve.add_parsers(sub)
    monitor.add_parser(sub)
    sweep.add_parser(sub)
    scan.add_parser(sub)
    study.add_parser(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a refusal or failure is one line on stderr and exit code 2 (1: the
    network, 130: interrupted); a store the failed command created and left empty is removed."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    fresh = _new_store(args)
    try:
        rc = args.func(args)
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
