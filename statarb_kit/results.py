"""Result tables on disk: a DuckDB table runs are appended to, or a Parquet, CSV or JSON file."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from .errors import InvalidParameter

SUFFIXES = (".duckdb", ".db", ".parquet", ".pq", ".csv", ".json")


def check_writable(path: str | Path, option: str, suffixes: tuple[str, ...] | None = SUFFIXES) -> Path:
    """``path`` when a file (of one of ``suffixes``; None: any) can be written there: refused (one
    line naming ``option``) before any work when its folder is a file, cannot be written, or the
    suffix is wrong. Creates nothing."""
    path = Path(path).expanduser()
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise InvalidParameter(f"{option} {path}: give a {', '.join(suffixes)} file")
    if path.is_dir():
        raise InvalidParameter(f"{option} {path}: is a folder, not a file")
    folder = path.parent
    while not folder.exists():  # the nearest folder that exists decides: the rest is created when written
        folder = folder.parent
    if not folder.is_dir():
        raise InvalidParameter(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidParameter(f"{option} {path}: cannot write there (permission denied)")
    return path


def write_frame(frame: pd.DataFrame, path: str | Path, table: str) -> Path:
    """``.duckdb`` / ``.db``: rows appended to ``table`` (created on first use, and given the
    columns a newer frame brings), so runs accumulate;
    ``.parquet``, ``.csv``, ``.json`` (records): the file is replaced."""
    path = check_writable(path, "results")
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".json":
        frame.to_json(path, orient="records", date_format="iso", indent=1, double_precision=15)
    else:
        with duckdb.connect(str(path) if suffix in (".duckdb", ".db") else ":memory:") as con:
            con.register("results", frame)
            if suffix in (".parquet", ".pq"):
                con.execute(f"COPY results TO '{sql_path(path)}' (FORMAT parquet)")
            else:
                con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM results LIMIT 0")
                have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
                for name, kind, *_ in con.execute("DESCRIBE results").fetchall():
                    if name not in have:  # a newer release's column: older rows get NULL, none is lost
                        con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}')
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM results")
    return path


def sql_path(path: Path) -> str:
    """A path quoted for a SQL string literal."""
    return str(path).replace("'", "''")
