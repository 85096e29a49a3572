"""DuckDB persistence: ``ticks`` and ``bars_<tf>`` tables, one writer per database file.

Ticks are inserted in large batches from pandas frames (never row by row) and deduplicated on
(symbol, trade_id): an in-memory watermark (highest stored id per symbol) lets ordinary
in-order ticks skip any lookup; only rows at or below it (reconnect overlap, backfill, a file
replayed twice) are checked against the table, over a bounded id and time range. The ``ticks``
table has no primary-key index on purpose: such an index costs insert speed and grows in RAM
with the history.

Bars tables hold one row per (symbol, start), kept so by the writer rather than by an index
(upserts through a primary key cost ~3 ms a call here): newly final bars are appended,
corrected bars replace their row, and late partials for bars no longer in memory are merged
with the stored row by ``bars.merge_bars``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from .bars import BAR_DTYPE, BAR_FIELDS, TRADED_SQL, is_timeframe, merge_bars, timeframe_ms
from .errors import CorruptFileError, InvalidParameter, StoreLockedError
from .funding import SAME_SETTLEMENT_MS, FundingRates
from .quotes import QUOTE_BAR_COLUMNS
from .ticks import TICK_COLUMNS, VIA, TickBatch, now_ms

log = logging.getLogger(__name__)

#: Duplicates of an incoming row are looked for this far (ms) around the incoming times.
DEDUP_TS_SLACK_MS = 3_600_000

_TICKS_DDL = """
CREATE TABLE IF NOT EXISTS ticks (
    symbol VARCHAR NOT NULL,
    trade_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,            -- exchange trade time, ms since epoch, UTC
    price DOUBLE NOT NULL,
    qty DOUBLE NOT NULL,
    is_buyer_maker BOOLEAN NOT NULL,
    recv_ts BIGINT NOT NULL,       -- local receive time, ms UTC
    via VARCHAR NOT NULL           -- how the trade was obtained: one of ticks.VIA
)"""
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

_BARS_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    symbol VARCHAR NOT NULL,
    start BIGINT NOT NULL,         -- bar open time, ms since epoch, UTC
    open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE,
    volume DOUBLE, quote_volume DOUBLE, trades BIGINT, taker_buy_volume DOUBLE,
    first_trade_id BIGINT, last_trade_id BIGINT,
    vwap DOUBLE,
    origin VARCHAR DEFAULT 'recorded'  -- one of BAR_ORIGINS
)"""
#: Where a stored bar came from: built from recorded ticks, a kline dump file, or REST klines
#: (the last two have no trade ids).
BAR_ORIGINS = ("recorded", "kline_dump", "kline_rest")
#: Bars tables written before ``origin`` existed hold recorded bars only.
_ADD_ORIGIN = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS origin VARCHAR DEFAULT 'recorded'"

_BAR_COLS = ", ".join(["symbol", "start", *BAR_FIELDS[2:], "vwap"])
_KLINE_COLS = ("symbol", "start", "open", "high", "low", "close", "volume", "quote_volume", "trades",
               "taker_buy_volume", "vwap", "origin")

_COVERAGE_DDL = """
CREATE TABLE IF NOT EXISTS kline_coverage (
    symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, market VARCHAR NOT NULL,
    start_ms BIGINT NOT NULL,      -- Binance was asked for every bar opening in [start_ms, end_ms)
    end_ms BIGINT NOT NULL,        -- ms since epoch, UTC; a bar missing in between does not exist
    asked_at BIGINT NOT NULL
)"""

_ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    time_ms BIGINT NOT NULL,       -- open time of the bar that fired, ms since epoch, UTC
    pair VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, direction VARCHAR NOT NULL,
    z DOUBLE, corr DOUBLE, alpha DOUBLE, beta DOUBLE, price_x DOUBLE, price_y DOUBLE,
    rule VARCHAR
)"""

#: Alert events (a pair entering the condition) have the alerts' columns.
_EVENTS_DDL = _ALERTS_DDL.replace("alerts (", "alert_events (", 1)

#: A monitor's ledger: each pair's event state as of the newest row it evaluated (so a restart
#: neither repeats nor skips an event), and its notification outbox (an event queued for sending,
#: ``sent_ms`` NULL until an endpoint took it; ``failed`` after every retry).
_EVENT_STATES_DDL = """
CREATE TABLE IF NOT EXISTS event_states (
    pair VARCHAR NOT NULL, timeframe VARCHAR NOT NULL,
    evaluated_ms BIGINT NOT NULL,  -- bar time of the newest row whose event test is reflected here
    armed BOOLEAN NOT NULL,
    last_event_ms BIGINT,          -- bar time of the pair's last event (NULL: none)
    PRIMARY KEY (pair, timeframe)
)"""
_NOTIFICATIONS_DDL = _ALERTS_DDL.replace("alerts (", "notifications (", 1).replace(
    "rule VARCHAR", "rule VARCHAR, queued_ms BIGINT NOT NULL, sent_ms BIGINT, failed BOOLEAN DEFAULT false, "
    "PRIMARY KEY (pair, timeframe, time_ms)")

#: Paper trading (``statarb_kit.paper``): each book's rule and where it stands, and its trades
#: (closed ones, and the open one marked at the newest bar; times are fill bar close times).
_PAPER_BOOKS_DDL = """
CREATE TABLE IF NOT EXISTS paper_books (
    book VARCHAR PRIMARY KEY, pair VARCHAR NOT NULL, timeframe VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,         -- the Rule as JSON
    start_ms BIGINT NOT NULL,      -- first bar (open time) whose signal counts
    resume_ms BIGINT NOT NULL,     -- bar (open time) from which trades are found again
    after_stop BOOLEAN NOT NULL, closed INTEGER NOT NULL, paused VARCHAR NOT NULL,
    updated_ms BIGINT NOT NULL
)"""
_PAPER_TRADES_DDL = """
CREATE TABLE IF NOT EXISTS paper_trades (
    book VARCHAR NOT NULL, seq BIGINT NOT NULL, status VARCHAR NOT NULL, pair VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL, entry_ms BIGINT NOT NULL, exit_ms BIGINT NOT NULL, direction VARCHAR NOT NULL,
    entry_z DOUBLE, exit_z DOUBLE, reason VARCHAR NOT NULL, beta DOUBLE, units_x DOUBLE, units_y DOUBLE,
    entry_x DOUBLE, entry_y DOUBLE, exit_x DOUBLE, exit_y DOUBLE, hold_bars BIGINT, gross_pnl DOUBLE,
    fees DOUBLE, slippage DOUBLE, costs DOUBLE, funding DOUBLE, pnl DOUBLE,
    PRIMARY KEY (book, seq)
)"""

_FUNDING_DDL = """
CREATE TABLE IF NOT EXISTS funding (
    symbol VARCHAR NOT NULL,
    time_ms BIGINT NOT NULL,       -- settlement time, ms since epoch, UTC
    rate DOUBLE NOT NULL,          -- fraction per settlement; > 0: longs pay shorts
    origin VARCHAR NOT NULL        -- dump, rest, stream or synthetic
)"""

_QUOTES_DDL = """
CREATE TABLE IF NOT EXISTS quotes (
    symbol VARCHAR NOT NULL,
    time_ms BIGINT NOT NULL,       -- the @bookTicker frame's transaction time T, ms since epoch, UTC
    update_id BIGINT NOT NULL,     -- its order book update id u
    bid DOUBLE NOT NULL, bid_qty DOUBLE NOT NULL, ask DOUBLE NOT NULL, ask_qty DOUBLE NOT NULL
)"""

_QUOTE_BARS_DDL = """
CREATE TABLE IF NOT EXISTS quote_bars (
    symbol VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    start BIGINT NOT NULL,         -- bar open time, ms since epoch, UTC (see statarb_kit.quotes)
    bid DOUBLE NOT NULL,           -- the bid and ask in force at the bar's close
    ask DOUBLE NOT NULL,
    mean_spread DOUBLE NOT NULL,   -- time-weighted (ask - bid) / mid over the bar
    max_spread DOUBLE NOT NULL,    -- the largest (ask - bid) / mid in force during it
    updates BIGINT NOT NULL,       -- quotes that arrived in it
    PRIMARY KEY (symbol, timeframe, start)
)"""

_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<prog>.*?) \(PID (?P<pid>\d+)\)")


def _symbol_array(codes: np.ndarray, symbols: tuple[str, ...]) -> pa.Array:
    """Symbol names for integer codes, as a plain Arrow string column."""
    return pa.array(np.asarray(symbols, dtype=object)[codes], pa.string())


def bars_table(tf: str) -> str:
    """Table name for a timeframe: ``"1m"`` -> ``bars_1m``."""
    timeframe_ms(tf)  # InvalidParameter unless written as a timeframe
    return f"bars_{tf}"


class TickStore:
    """A DuckDB database (file path or ``":memory:"``) holding ticks and bars.

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
            self.con.execute(_TICKS_DDL)
            self.con.execute(_ALERTS_DDL)
            self.con.execute(_EVENTS_DDL)
            self.con.execute(_FUNDING_DDL)
            self.con.execute(_COVERAGE_DDL)
            self.con.execute(_EVENT_STATES_DDL)
            self.con.execute(_NOTIFICATIONS_DDL)
            self.con.execute(_PAPER_BOOKS_DDL)
            self.con.execute(_PAPER_TRADES_DDL)
            self.con.execute(_QUOTES_DDL)
            self.con.execute(_QUOTE_BARS_DDL)
            self._migrate(found)
        self._watermark = self._load_watermarks()
        self.inserted = 0  # rows stored by this object
        self.inserted_via = np.zeros(len(VIA), dtype=np.int64)  # of which, per ``via`` code
        self.duplicates = 0  # rows skipped because (symbol, trade_id) was already stored

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

    def _load_watermarks(self) -> dict[str, int]:
        if not self.has_table("ticks"):
            return {}
        rows = self.con.execute("SELECT symbol, max(trade_id) FROM ticks GROUP BY symbol").fetchall()
        return {sym: int(mx) for sym, mx in rows}

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

    def ensure_bars_tables(self, timeframes: tuple[str, ...]) -> None:
        for tf in timeframes:
            self.con.execute(_BARS_DDL.format(table=bars_table(tf)))
            self.con.execute(_ADD_ORIGIN.format(table=bars_table(tf)))

    def bar_symbols(self, tf: str) -> list[str]:
        """Symbols with ``tf`` bars, sorted (none when the file has no such table)."""
        table = bars_table(tf)
        if not self.has_table(table):
            return []
        return sorted(r[0] for r in self.con.execute(f"SELECT DISTINCT symbol FROM {table}").fetchall())

    def last_bar_starts(self, tf: str) -> dict[str, int]:
        """Per symbol, the open time (ms UTC) of its newest stored ``tf`` bar."""
        table = bars_table(tf)
        if not self.has_table(table):
            return {}
        return {sym: int(mx) for sym, mx in self.con.execute(f"SELECT symbol, max(start) FROM {table} GROUP BY symbol").fetchall()}

    def traded_spans(self, tf: str) -> pd.DataFrame:
        """Per symbol of the stored ``tf`` bars: ``first`` and ``last`` bar open times (ms UTC),
        ``last_traded`` (the newest bar in which something traded, ``bars.TRADED_SQL``; NULL when
        none did), ``bars`` and ``flat_tail`` (bars after the last traded one: a settled
        contract's klines going on without trades). InvalidParameter when the file has none."""
        table = bars_table(tf)
        if not self.has_table(table):
            raise InvalidParameter(f"{self.path} has no {tf} bars")
        return self.con.execute(f"""
            WITH s AS (SELECT symbol, min(start) AS first, max(start) AS last,
                              max(start) FILTER (WHERE {TRADED_SQL}) AS last_traded, count(*) AS bars
                       FROM {table} GROUP BY symbol)
            SELECT s.symbol, s.first, s.last, s.last_traded, s.bars,
                   count(t.start) FILTER (WHERE t.start > coalesce(s.last_traded, -1)) AS flat_tail
            FROM s JOIN {table} t USING (symbol)
            GROUP BY ALL ORDER BY s.symbol""").df()

    def closes(self, tf: str, symbols: list[str] | None = None, start_ms: int | None = None,
               end_ms: int | None = None) -> pd.DataFrame:
        """Rows (symbol, start, close) of the stored ``tf`` bars of ``symbols`` (None: all) in
        which something traded (``bars.TRADED_SQL``: a settled contract's flat klines are no price),
        with start_ms <= start < end_ms (None: unbounded); InvalidParameter when the file has none."""
        table = bars_table(tf)
        if not self.has_table(table):
            raise InvalidParameter(f"{self.path} has no {tf} bars")
        where, args = [TRADED_SQL], []
        if symbols:
            where.append(f"symbol IN ({', '.join('?' * len(symbols))})")
            args += list(symbols)
        for bound, op in ((start_ms, ">="), (end_ms, "<")):
            if bound is not None:
                where.append(f"start {op} ?")
                args.append(bound)
        return self.con.execute(f"SELECT symbol, start, close FROM {table} WHERE {' AND '.join(where)}", args).df()

    def bar_rows(self, tf: str, symbol: str, columns: list[str], since_ms: int = 0) -> pd.DataFrame:
        """One symbol's ``tf`` bars from ``since_ms`` on, as ``columns`` (an ``origin`` the table
        lacks, or a NULL one, reads as "recorded"), ordered by start."""
        table = bars_table(tf)
        has_origin = "origin" in {r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
        origin = "coalesce(origin, 'recorded') AS origin" if has_origin else "'recorded' AS origin"
        cols = ", ".join(origin if c == "origin" else c for c in columns)
        return self.con.execute(f"SELECT {cols} FROM {table} WHERE symbol = ? AND start >= ? ORDER BY start",
                                [symbol, since_ms]).df()

    def funding_symbols(self) -> list[str]:
        """Symbols with stored funding settlements, sorted."""
        if not self.has_table("funding"):
            return []
        return sorted(r[0] for r in self.con.execute("SELECT DISTINCT symbol FROM funding").fetchall())

    def bar_timeframes(self) -> list[str]:
        """Timeframes that have a bars table in this file, shortest first."""
        names = [r[0][5:] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'bars\\_%' ESCAPE '\\'").fetchall()]
        return sorted((n for n in names if is_timeframe(n)), key=timeframe_ms)

    def insert_kline_bars(self, tf: str, symbol: str, bars: pd.DataFrame, origin: str) -> int:
        """Store Binance klines of one symbol (``sources.klines.KLINE_BAR_COLUMNS``) where this
        file has no bar of that (symbol, start) yet: a recorded bar or one stored earlier stays.
        VWAP is quote volume / volume (NULL without volume); trade ids are NULL. Returns how many
        were new."""
        if origin not in BAR_ORIGINS[1:]:
            raise InvalidParameter(f"origin must be one of {BAR_ORIGINS[1:]}, got {origin!r}")
        if bars.empty:
            return 0
        table = bars_table(tf)
        self.ensure_bars_tables((tf,))
        with np.errstate(invalid="ignore", divide="ignore"):
            vwap = bars["quote_volume"].to_numpy() / bars["volume"].to_numpy()
        frame = pa.table({"symbol": pa.array([symbol] * len(bars), pa.string()),
                          **{c: bars[c].to_numpy() for c in _KLINE_COLS[1:10]},
                          "vwap": pa.array(vwap, mask=~(bars["volume"].to_numpy() > 0)),
                          "origin": pa.array([origin] * len(bars), pa.string())})
        cols = ", ".join(_KLINE_COLS)
        with self.transaction(), self._registered("incoming_klines", frame):
            before = int(self._scalar(f"SELECT count(*) FROM {table} WHERE symbol = ?", symbol))
            self.con.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM incoming_klines i WHERE NOT EXISTS "
                f"(SELECT 1 FROM {table} b WHERE b.symbol = ? AND b.start = i.start AND b.start BETWEEN ? AND ?)",
                [symbol, int(bars["start"].min()), int(bars["start"].max())])
            return int(self._scalar(f"SELECT count(*) FROM {table} WHERE symbol = ?", symbol)) - before

    def add_coverage(self, symbol: str, tf: str, market: str, start_ms: int, end_ms: int, asked_at: int) -> None:
        """Record that Binance was asked for every ``tf`` bar of ``symbol`` opening in [start_ms, end_ms)."""
        if end_ms > start_ms:
            self.con.execute("INSERT INTO kline_coverage VALUES (?, ?, ?, ?, ?, ?)",
                             [symbol, tf, market, int(start_ms), int(end_ms), int(asked_at)])

    def coverage(self) -> pd.DataFrame:
        """Per (symbol, timeframe, market): the first and last time Binance was asked about
        (start_ms, end_ms). Empty for a file no download or update wrote."""
        if not self.has_table("kline_coverage"):
            return pd.DataFrame(columns=["symbol", "timeframe", "market", "start_ms", "end_ms"])
        return self.con.execute("SELECT symbol, timeframe, market, min(start_ms) AS start_ms, max(end_ms) AS end_ms "
                                "FROM kline_coverage GROUP BY ALL ORDER BY ALL").df()

    def bar_gaps(self, tf: str, symbol: str | None = None) -> pd.DataFrame:
        """Stretches with no stored bar between a symbol's first and last stored ``tf`` bar:
        symbol, after (start of the bar before the gap), before (start of the bar after it), and
        missing (bars), ms UTC; sorted by symbol and time."""
        from .bars import timeframe_ms

        table, step = bars_table(tf), timeframe_ms(tf)
        if not self.has_table(table):
            return pd.DataFrame(columns=["symbol", "after", "before", "missing"])
        where, args = ("WHERE symbol = ?", [symbol]) if symbol else ("", [])
        return self.con.execute(
            f"SELECT symbol, prev AS after, start AS before, (start - prev) // {step} - 1 AS missing FROM "
            f"(SELECT symbol, start, lag(start) OVER (PARTITION BY symbol ORDER BY start) AS prev FROM {table} {where}) "
            f"WHERE start - prev > {step} ORDER BY symbol, after", args).df()

    def close(self) -> None:
        self.con.close()

    # ---- ticks -------------------------------------------------------------------------

    def insert_ticks(self, batch: TickBatch, symbols: tuple[str, ...]) -> TickBatch:
        """Store the rows of ``batch`` not stored yet; return exactly those rows.

        ``symbols`` names the batch's ``sym`` codes. Duplicates inside the batch and against
        the table are dropped (the first occurrence wins) and counted in ``duplicates``.
        """
        if self.read_only:
            raise InvalidParameter(f"{self.path} is open read-only: ticks cannot be written")
        if not len(batch):
            return batch
        key_order = np.lexsort((batch.trade_id, batch.sym))
        s, t = batch.sym[key_order], batch.trade_id[key_order]
        first = np.ones(len(s), dtype=bool)
        first[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
        keep = np.sort(key_order[first])  # unique rows, back in arrival order
        fresh = batch.take(keep) if len(keep) < len(batch) else batch
        fresh = self._drop_stored(fresh, symbols)
        if len(fresh):
            with self._registered("incoming_ticks", fresh.to_arrow(symbols)):
                self.con.execute("INSERT INTO ticks BY NAME SELECT * FROM incoming_ticks")
            for code in np.unique(fresh.sym):
                mx = int(fresh.trade_id[fresh.sym == code].max())
                name = symbols[code]
                self._watermark[name] = max(mx, self._watermark.get(name, mx))
        self.inserted += len(fresh)
        self.inserted_via += np.bincount(fresh.via, minlength=len(VIA))
        self.duplicates += len(batch) - len(fresh)
        return fresh

    def _drop_stored(self, batch: TickBatch, symbols: tuple[str, ...]) -> TickBatch:
        """Drop rows already in the table; only rows at or below the watermark are looked up."""
        marks = np.array([self._watermark.get(s, np.iinfo(np.int64).min) for s in symbols], dtype=np.int64)
        suspect = np.flatnonzero(batch.trade_id <= marks[batch.sym])
        if not len(suspect):
            return batch
        cand = batch.take(suspect)
        cand_frame = pa.table(
            {
                "i": np.arange(len(cand), dtype=np.int64),
                "symbol": _symbol_array(cand.sym, symbols),
                "trade_id": cand.trade_id,
            }
        )
        with self._registered("cand_frame", cand_frame):
            stored = self.con.execute(
                """SELECT c.i FROM cand_frame c SEMI JOIN (
                       SELECT symbol, trade_id FROM ticks
                       WHERE trade_id BETWEEN ? AND ? AND ts BETWEEN ? AND ?) t
                   ON c.symbol = t.symbol AND c.trade_id = t.trade_id""",
                [
                    int(cand.trade_id.min()),
                    int(cand.trade_id.max()),
                    int(cand.ts.min()) - DEDUP_TS_SLACK_MS,
                    int(cand.ts.max()) + DEDUP_TS_SLACK_MS,
                ],
            ).fetchnumpy()["i"]
        if not len(stored):
            return batch
        drop = np.zeros(len(batch), dtype=bool)
        drop[suspect[stored]] = True
        return batch.take(~drop)

    def prune(self, ticks_before_ms: int, bars_before_ms: dict[str, int]) -> int:
        """Delete ticks, alerts and events older than ``ticks_before_ms`` and, per timeframe, bars
        opened before ``bars_before_ms[tf]``; then checkpoint, which returns the space to DuckDB and
        compresses what is kept (an in-memory store otherwise grows with every tick). Returns ticks
        deleted. The watermarks stay, so a pruned trade arriving again is still a duplicate."""
        with self.transaction():
            deleted = int(self._scalar("DELETE FROM ticks WHERE ts < ?", ticks_before_ms))
            for table in ("alerts", "alert_events"):
                self.con.execute(f"DELETE FROM {table} WHERE time_ms < ?", [ticks_before_ms])
            for tf, before in bars_before_ms.items():
                if self.has_table(bars_table(tf)):
                    self.con.execute(f"DELETE FROM {bars_table(tf)} WHERE start < ?", [before])
        self.con.execute("CHECKPOINT")
        return deleted

    def last_trades(self) -> dict[str, tuple[int, int]]:
        """Per symbol, the (trade id, time ms) of the newest stored trade."""
        return {sym: (tid, ts) for sym, (tid, ts, _) in self.newest_trades().items()}

    def newest_trades(self) -> dict[str, tuple[int, int, float]]:
        """Per symbol, the (trade id, time ms, price) of the stored trade with the highest id."""
        if not self.has_table("ticks"):
            return {}
        rows = self.con.execute("SELECT symbol, max(trade_id), arg_max(ts, trade_id), arg_max(price, trade_id) "
                                "FROM ticks GROUP BY symbol").fetchall()
        return {sym: (int(tid), int(ts), float(px)) for sym, tid, ts, px in rows}

    def tick_count(self) -> int:
        if not self.has_table("ticks"):
            return 0
        return int(self._scalar("SELECT count(*) FROM ticks"))

    def last_ticks(self, symbol: str, n: int, code: int) -> TickBatch:
        """Newest ``n`` stored ticks of one symbol, oldest first, as a batch with symbol code ``code``."""
        if not self.has_table("ticks"):
            return TickBatch.empty()
        got = self.con.execute(
            "SELECT * FROM (SELECT * FROM ticks WHERE symbol = ? ORDER BY ts DESC, trade_id DESC LIMIT ?) "
            "ORDER BY ts, trade_id",
            [symbol, n],
        ).fetchnumpy()
        cols = {k: v for k, v in got.items() if k in TICK_COLUMNS and k != "via"}
        codes = pd.Categorical(got["via"], categories=VIA).codes
        if (codes < 0).any():
            raise InvalidParameter(f"{self.path}: ticks.via holds a value not in {VIA}")
        via = codes.astype(np.uint8)
        return TickBatch.from_columns(**cols, sym=np.full(len(via), code), via=via)

    # ---- bars --------------------------------------------------------------------------

    @staticmethod
    def _bars_frame(bars: np.ndarray, symbols: tuple[str, ...]) -> pa.Table:
        cols = {"symbol": _symbol_array(bars["sym"], symbols)}
        cols.update({name: np.ascontiguousarray(bars[name]) for name in BAR_FIELDS[1:]})
        with np.errstate(invalid="ignore", divide="ignore"):
            vwap = bars["quote_volume"] / bars["volume"]
        cols["vwap"] = pa.array(vwap, mask=~(bars["volume"] > 0))  # NULL for a zero-volume bar
        return pa.table(cols)

    def write_bars(
        self,
        tf: str,
        final: np.ndarray,
        corrected: np.ndarray,
        merge: np.ndarray,
        symbols: tuple[str, ...],
    ) -> None:
        """Store bars of one timeframe (BAR_DTYPE rows; the table must exist).

        ``final``: bars not stored yet, appended. ``corrected``: complete bars replacing their
        stored row (or filling a period that had none). ``merge``: partial bars to combine with
        the stored row of the same (symbol, start), if any.
        """
        table = bars_table(tf)
        if len(merge):
            stored = self._read_bar_rows(table, merge, symbols)
            if len(stored):
                key = {(int(r["sym"]), int(r["start"])): i for i, r in enumerate(stored)}
                hit = np.array([(int(r["sym"]), int(r["start"])) in key for r in merge], dtype=bool)
                at = np.array([key[(int(r["sym"]), int(r["start"]))] for r in merge[hit]], dtype=np.int64)
                merged = merge.copy()
                merged[hit] = merge_bars(stored[at], merge[hit])
                merge = merged
            corrected = np.concatenate((corrected, merge))
        if len(corrected):
            with self._registered("incoming", self._bars_frame(corrected, symbols)):
                self.con.execute(
                    f"DELETE FROM {table} WHERE start BETWEEN ? AND ? AND (symbol, start) IN "
                    "(SELECT symbol, start FROM incoming)",
                    [int(corrected["start"].min()), int(corrected["start"].max())],
                )
                self.con.execute(f"INSERT INTO {table} ({_BAR_COLS}) SELECT {_BAR_COLS} FROM incoming")
        if len(final):
            with self._registered("incoming", self._bars_frame(final, symbols)):
                self.con.execute(f"INSERT INTO {table} ({_BAR_COLS}) SELECT {_BAR_COLS} FROM incoming")

    def _read_bar_rows(self, table: str, keys: np.ndarray, symbols: tuple[str, ...]) -> np.ndarray:
        """Stored rows of ``table`` whose (symbol, start) matches a row of ``keys``."""
        wanted = pa.table({"symbol": _symbol_array(keys["sym"], symbols), "start": np.ascontiguousarray(keys["start"])})
        cols = ", ".join(f"b.{c}" for c in BAR_FIELDS[1:])
        with self._registered("wanted", wanted):
            got = self.con.execute(
                f"SELECT b.symbol, {cols} FROM {table} b SEMI JOIN wanted w "
                "ON b.symbol = w.symbol AND b.start = w.start WHERE b.start BETWEEN ? AND ?",
                [int(keys["start"].min()), int(keys["start"].max())],
            ).fetchnumpy()
        return self._bar_rows(got, np.array([symbols.index(s) for s in got["symbol"]], dtype=np.int64))

    @staticmethod
    def _bar_rows(got: dict[str, np.ndarray], sym: np.ndarray | int) -> np.ndarray:
        out = np.empty(len(got["start"]), dtype=BAR_DTYPE)
        out["sym"] = sym
        for name in BAR_FIELDS[1:]:
            out[name] = got[name]
        return out

    def insert_alerts(self, alerts: pd.DataFrame, table: str = "alerts") -> None:
        """Append alerts (columns as ``alerts.ALERT_COLUMNS``) to ``alerts`` or ``alert_events``."""
        if table not in ("alerts", "alert_events"):
            raise InvalidParameter(f"no alert table {table!r}")
        if len(alerts):
            with self._registered("incoming_alerts", pa.Table.from_pandas(alerts, preserve_index=False)):
                self.con.execute(f"INSERT INTO {table} SELECT * FROM incoming_alerts")

    # ---- a monitor's ledger ------------------------------------------------------------

    def save_event_states(self, states: pd.DataFrame) -> None:
        """Upsert rows (pair, timeframe, evaluated_ms, armed, last_event_ms: NULL as -1 or NaN)."""
        if len(states):
            frame = pa.Table.from_pandas(states[["pair", "timeframe", "evaluated_ms", "armed", "last_event_ms"]],
                                         preserve_index=False)
            with self._registered("incoming_states", frame):
                self.con.execute("INSERT OR REPLACE INTO event_states SELECT pair, timeframe, evaluated_ms, armed, "
                                 "CASE WHEN last_event_ms < 0 THEN NULL ELSE last_event_ms END FROM incoming_states")

    def event_states(self) -> pd.DataFrame:
        """Stored event states (last_event_ms -1 when the pair never had an event)."""
        return self.con.execute("SELECT pair, timeframe, evaluated_ms, armed, coalesce(last_event_ms, -1) AS "
                                "last_event_ms FROM event_states").df()

    def queue_notifications(self, events: pd.DataFrame, queued_ms: int) -> set[tuple[str, str, int]]:
        """Add events (ALERT_COLUMNS) to the outbox unless already there; returns the keys
        (pair, timeframe, time_ms) of those that were new."""
        if not len(events):
            return set()
        with self._registered("incoming_outbox", pa.Table.from_pandas(events, preserve_index=False)):
            new = self.con.execute("SELECT DISTINCT pair, timeframe, time_ms FROM incoming_outbox i WHERE NOT EXISTS "
                                   "(SELECT 1 FROM notifications n WHERE n.pair = i.pair AND n.timeframe = i.timeframe "
                                   "AND n.time_ms = i.time_ms)").fetchall()
            self.con.execute(f"INSERT OR IGNORE INTO notifications SELECT *, {int(queued_ms)}, NULL, false "
                             "FROM incoming_outbox")
        return {(p, tf, int(t)) for p, tf, t in new}

    def mark_notified(self, keys: pd.DataFrame, sent_ms: int) -> None:
        """Record the outcome of sends: rows (pair, timeframe, time_ms, ok)."""
        if len(keys):
            with self._registered("incoming_sent", pa.Table.from_pandas(keys, preserve_index=False)):
                self.con.execute(f"UPDATE notifications n SET sent_ms = CASE WHEN s.ok THEN {int(sent_ms)} END, "
                                 "failed = NOT s.ok FROM incoming_sent s WHERE n.pair = s.pair AND "
                                 "n.timeframe = s.timeframe AND n.time_ms = s.time_ms")

    def notifications(self, unsent_only: bool = False) -> pd.DataFrame:
        """The outbox, oldest first (``unsent_only``: neither sent nor failed: to send again)."""
        where = "WHERE sent_ms IS NULL AND NOT failed" if unsent_only else ""
        return self.con.execute(f"SELECT * FROM notifications {where} ORDER BY time_ms, pair").df()

    def event_keys(self, table: str = "alert_events") -> set[tuple[str, str, int]]:
        """(pair, timeframe, time_ms) of every stored event (``notifications``: of the outbox)."""
        if table not in ("alert_events", "notifications"):
            raise InvalidParameter(f"no event table {table!r}")
        return {(p, tf, int(t)) for p, tf, t in self.con.execute(
            f"SELECT pair, timeframe, time_ms FROM {table}").fetchall()}

    # ---- paper trading ------------------------------------------------------------------

    def save_paper(self, books: list[tuple], trades: pd.DataFrame, updated_ms: int) -> None:
        """Upsert paper books (book, pair, timeframe, rule, start_ms, resume_ms, after_stop,
        closed, paused) and their trades (``paper.TRADE_COLUMNS``): a book's open trade is
        replaced, closed ones are added (or replaced, when booked again after a restart)."""
        if books:
            frame = pd.DataFrame(books, columns=["book", "pair", "timeframe", "rule", "start_ms", "resume_ms",
                                                 "after_stop", "closed", "paused"]).assign(updated_ms=updated_ms)
            with self._registered("incoming_books", pa.Table.from_pandas(frame, preserve_index=False)):
                self.con.execute("INSERT OR REPLACE INTO paper_books SELECT * FROM incoming_books")
                self.con.execute("DELETE FROM paper_trades WHERE status = 'open' AND book IN "
                                 "(SELECT book FROM incoming_books)")
        if len(trades):
            with self._registered("incoming_paper", pa.Table.from_pandas(trades, preserve_index=False)):
                self.con.execute("INSERT OR REPLACE INTO paper_trades SELECT * FROM incoming_paper")

    def paper_book(self, book: str) -> dict | None:
        """A stored paper book's row (None: not stored)."""
        if not self.has_table("paper_books"):
            return None
        rows = self.con.execute("SELECT * FROM paper_books WHERE book = ?", [book]).df()
        return rows.iloc[0].to_dict() if len(rows) else None

    def paper_trades(self, book: str | None = None, status: str | None = None) -> pd.DataFrame:
        """Stored paper trades (of one book, of one status), by book and seq."""
        if not self.has_table("paper_trades"):
            return pd.DataFrame()
        where, args = ["1 = 1"], []
        for name, value in (("book", book), ("status", status)):
            if value is not None:
                where.append(f"{name} = ?")
                args.append(value)
        return self.con.execute(f"SELECT * FROM paper_trades WHERE {' AND '.join(where)} ORDER BY book, seq",
                                args).df()

    def insert_funding(self, rates: FundingRates) -> int:
        """Store settlements not stored yet: none of the symbol's within SAME_SETTLEMENT_MS (a REST
        row and a dump row of one settlement differ by a few ms); returns how many were new."""
        frame = pa.table({"symbol": [rates.symbol] * len(rates), "time_ms": rates.time, "rate": rates.rate,
                          "origin": [rates.origin] * len(rates)})
        with self.transaction(), self._registered("incoming_funding", frame):
            before = int(self._scalar("SELECT count(*) FROM funding"))
            self.con.execute("INSERT INTO funding SELECT i.* FROM incoming_funding i WHERE NOT EXISTS "
                             "(SELECT 1 FROM funding f WHERE f.symbol = i.symbol AND abs(f.time_ms - i.time_ms) < ?)",
                             [SAME_SETTLEMENT_MS])
            return int(self._scalar("SELECT count(*) FROM funding")) - before

    def funding(self, symbol: str) -> FundingRates:
        """A symbol's stored settlements (empty when none)."""
        if not self.has_table("funding"):
            return FundingRates(symbol, np.empty(0, dtype=np.int64), np.empty(0), "store")
        t, r = self.con.execute("SELECT time_ms, rate FROM funding WHERE symbol = ? ORDER BY time_ms",
                                [symbol]).fetchnumpy().values()
        return FundingRates(symbol, np.asarray(t, dtype=np.int64), np.asarray(r, dtype=np.float64), "store")

    def alerts(self, table: str = "alerts") -> pd.DataFrame:
        """All stored alerts (or ``alert_events``), oldest first."""
        if table not in ("alerts", "alert_events"):
            raise InvalidParameter(f"no alert table {table!r}")
        if not self.has_table(table):
            return pd.DataFrame()
        return self.con.execute(f"SELECT * FROM {table} ORDER BY time_ms, pair").df()

    def insert_quotes(self, quotes: pd.DataFrame) -> None:
        """Append quotes (columns ``quotes.QUOTE_COLUMNS``) to table ``quotes``."""
        if len(quotes):
            with self._registered("incoming_quotes", pa.Table.from_pandas(quotes, preserve_index=False)):
                self.con.execute("INSERT INTO quotes SELECT * FROM incoming_quotes")

    def quotes(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
        """One symbol's stored quotes from ``start_ms`` (inclusive) to ``end_ms`` (exclusive), in
        time then update-id order (rows as ``quotes.QUOTE_COLUMNS``)."""
        if not self.has_table("quotes"):
            return pd.DataFrame(columns=["symbol", "time_ms", "update_id", "bid", "bid_qty", "ask", "ask_qty"])
        return self.con.execute(
            "SELECT * FROM quotes WHERE symbol = ? AND time_ms >= ? AND time_ms < ? ORDER BY time_ms, update_id",
            [symbol, -(2**62) if start_ms is None else int(start_ms), 2**62 if end_ms is None else int(end_ms)]).df()

    def insert_quote_bars(self, rows: pd.DataFrame) -> None:
        """Store quote bars (columns ``quotes.QUOTE_BAR_COLUMNS``); a bar stored before (one a
        stop stored open) is replaced."""
        if len(rows):
            with self._registered("incoming_quote_bars", pa.Table.from_pandas(rows, preserve_index=False)):
                self.con.execute("INSERT OR REPLACE INTO quote_bars SELECT * FROM incoming_quote_bars")

    def quote_bars(self, symbol: str, timeframe: str, start_ms: int | None = None,
                   end_ms: int | None = None) -> pd.DataFrame:
        """One symbol's stored quote bars of ``timeframe`` starting from ``start_ms`` (inclusive)
        to ``end_ms`` (exclusive), in time order (``quotes.QUOTE_BAR_COLUMNS``)."""
        if not self.has_table("quote_bars"):
            return pd.DataFrame(columns=list(QUOTE_BAR_COLUMNS))
        return self.con.execute(
            "SELECT * FROM quote_bars WHERE symbol = ? AND timeframe = ? AND start >= ? AND start < ? ORDER BY start",
            [symbol, timeframe, -(2**62) if start_ms is None else int(start_ms),
             2**62 if end_ms is None else int(end_ms)]).df()

    def alerts_after(self, table: str, after: tuple[int, str, str] | None, limit: int) -> pd.DataFrame:
        """The next ``limit`` stored alerts (or ``alert_events``) in (time_ms, pair, timeframe)
        order after the key ``after`` (None: from the first): a page of the history."""
        if table not in ("alerts", "alert_events"):
            raise InvalidParameter(f"no alert table {table!r}")
        t, pair, tf = after if after is not None else (-(2**62), "", "")
        return self.con.execute(
            f"SELECT * FROM {table} WHERE time_ms > ? OR (time_ms = ? AND (pair > ? OR (pair = ? AND timeframe > ?))) "
            "ORDER BY time_ms, pair, timeframe LIMIT ?", [t, t, pair, pair, tf, int(limit)]).df()

    def load_bars(self, tf: str, symbol: str, sym_code: int, last: int) -> np.ndarray:
        """Newest ``last`` stored bars of one symbol as BAR_DTYPE rows (code ``sym_code``)."""
        table = bars_table(tf)
        if not self.has_table(table):
            return np.empty(0, dtype=BAR_DTYPE)
        cols = ", ".join(BAR_FIELDS[1:])
        got = self.con.execute(
            f"SELECT * FROM (SELECT {cols} FROM {table} WHERE symbol = ? ORDER BY start DESC LIMIT ?) "
            "ORDER BY start",
            [symbol, last],
        ).fetchnumpy()
        return self._bar_rows(got, sym_code)

    def bars(self, tf: str, symbol: str | None = None) -> pd.DataFrame:
        """All stored bars of a timeframe (optionally one symbol), sorted by symbol and start."""
        table = bars_table(tf)
        if not self.has_table(table):
            return pd.DataFrame(columns=["symbol", *BAR_FIELDS[1:], "vwap"])
        where, args = ("WHERE symbol = ?", [symbol]) if symbol else ("", [])
        return self.con.execute(f"SELECT * FROM {table} {where} ORDER BY symbol, start", args).df()
