"""Connection, the one-writer lock, schema versions and migrations: the part of a store every
repository shares."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from ..errors import CorruptFileError, InvalidParameter, StoreLockedError
from ..ticks import now_ms

log = logging.getLogger(__name__)

#: Files written before ``via`` existed said only ``backfilled`` (aggregate trades split evenly).
#: The layout this kit writes. 1: ticks flagged ``backfilled``; 2: ticks say ``via`` (how
#: obtained); 3: a ``schema_version`` table and table ``quotes``; 4: table ``quote_bars``. A file
#: is brought up to date when opened for writing; one of a newer layout is refused, never changed.
SCHEMA_VERSION = 4

_SCHEMA_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,      -- the layout, after this step
    at_ms BIGINT NOT NULL,         -- when the step ran, ms since epoch, UTC
    note VARCHAR NOT NULL
)"""

_MIGRATE_BACKFILLED = (  # each statement commits (DuckDB alters no column after an update in one
    # transaction); a step cut short is taken up again at the next open: it runs while ``backfilled`` exists
    "ALTER TABLE ticks ADD COLUMN IF NOT EXISTS via VARCHAR",
    "UPDATE ticks SET via = CASE WHEN backfilled THEN 'agg_split' ELSE 'stream' END WHERE via IS NULL",
    "ALTER TABLE ticks DROP COLUMN backfilled",
    "ALTER TABLE ticks ALTER COLUMN via SET NOT NULL",
)

_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<prog>.*?) \(PID (?P<pid>\d+)\)")


class StoreBase:
    """A DuckDB database (file path or ``":memory:"``): opened (refused with one line when
    corrupt, locked by a writer, or of a newer layout), its tables created from each
    repository's ``TABLES`` and brought up to date (``SCHEMA_VERSION``).

    Not thread-safe: a Session calls it from one worker thread at a time.
    """

    def __init__(self, path: str | Path = ":memory:", read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.con = self._connect()
        if not read_only:
            found = self._version()  # before this kit's tables: a new file is of no version yet
            if found > SCHEMA_VERSION:
                self.con.close()
                raise CorruptFileError(f"{self.path} was written by a newer statarb_kit (layout {found}; this kit "
                                       f"writes {SCHEMA_VERSION}): it was not changed. Upgrade the kit to open it.")
            for ddl in self.tables():
                self.con.execute(ddl)
            self._migrate(found)

    @classmethod
    def tables(cls) -> list[str]:
        """The DDL of every table the store's repositories declare (``TABLES``), in class order."""
        return [ddl for part in reversed(cls.__mro__) for ddl in vars(part).get("TABLES", ())]

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self.path != ":memory:":
            if self.read_only and not Path(self.path).is_file():
                raise InvalidParameter(f"{self.path} does not exist: give a DuckDB file that a recording "
                                       "or a download wrote")
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            return duckdb.connect(self.path, read_only=self.read_only)
        except duckdb.IOException as exc:
            if "not a valid DuckDB database" in str(exc):
                raise CorruptFileError(
                    f"{self.path} is not a DuckDB database (corrupt, or another kind of file); it was not "
                    "opened or changed. Give a file statarb_kit wrote, or a new file name to start one."
                ) from None
            m = _LOCK_RE.search(str(exc))
            if m is None and "lock" not in str(exc).lower():
                raise
            holder = f"{m['prog']} (PID {m['pid']})" if m else "another process"
            raise StoreLockedError(
                f"{self.path} is locked by {holder}, which has it open for writing. DuckDB lets one "
                f"process write a file and no other process read it meanwhile. Either stop that "
                f"session (afterwards any number of processes can open the file with "
                f"TickStore({self.path!r}, read_only=True)), or use another file or ':memory:' here."
            ) from None

    def _version(self) -> int:
        """The file's layout: its ``schema_version``, or read from its tables (0: a new file)."""
        if self.has_table("schema_version"):
            return int(self._scalar("SELECT coalesce(max(version), 0) FROM schema_version"))
        if not self.has_table("ticks"):
            return 0
        cols = {r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'ticks'").fetchall()}
        return 1 if "backfilled" in cols else 2

    @property
    def schema_version(self) -> int:
        """The layout of the file (``SCHEMA_VERSION`` once opened for writing)."""
        return self._version()

    def _migrate(self, found: int) -> None:
        """Bring a file of layout ``found`` up to date, each step recorded in ``schema_version``
        (nothing is lost: the old ``backfilled`` flag becomes ``via``; the tables of layout 3 are
        created empty). Each step can be run again: a step cut short is finished at the next open."""
        if found == SCHEMA_VERSION:
            return
        steps = []
        if found == 1:
            for sql in _MIGRATE_BACKFILLED:
                self.con.execute(sql)
            steps.append((2, "ticks.backfilled became ticks.via"))
        if found == 0:
            steps.append((SCHEMA_VERSION, "new file"))
        else:
            if found < 3:
                steps.append((3, "tables schema_version and quotes"))
            steps.append((4, "table quote_bars"))
        self.con.execute("BEGIN TRANSACTION")
        self.con.execute(_SCHEMA_DDL)
        for version, note in steps:
            self.con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [version, now_ms(), note])
        self.con.execute("COMMIT")
        if found:
            log.info("%s: layout %d brought up to %d (%s)", self.path, found, SCHEMA_VERSION,
                     "; ".join(note for _, note in steps))

    def has_table(self, name: str) -> bool:
        """Whether the file has table ``name``."""
        return bool(self._scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", name))

    def _scalar(self, sql: str, *args: object) -> object:
        """First value of a one-row query (fetches the whole result, as DuckDB 2 requires)."""
        return self.con.execute(sql, list(args)).fetchall()[0][0]

    @contextlib.contextmanager
    def _registered(self, name: str, frame: pa.Table) -> Iterator[None]:
        """Expose ``frame`` to SQL as view ``name`` for the duration of the block."""
        self.con.register(name, frame)
        try:
            yield
        finally:
            self.con.unregister(name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes in the block commit together or not at all (in-memory marks follow)."""
        saved = (dict(self._watermark), self.inserted, self.inserted_via.copy(), self.duplicates)
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            self._watermark, self.inserted, self.inserted_via, self.duplicates = saved
            raise
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()
