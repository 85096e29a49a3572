"""Tables ``bars_<tf>``: one row per (symbol, start), kept so by the writer rather than by an
index (upserts through a primary key cost ~3 ms a call here): newly final bars are appended,
corrected bars replace their row, and late partials for bars no longer in memory are merged
with the stored row by ``bars.merge_bars``; the reads research and views make of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..bars import BAR_DTYPE, BAR_FIELDS, TRADED_SQL, is_timeframe, merge_bars, timeframe_ms
from ..errors import InvalidParameter

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

def bars_table(tf: str) -> str:
    """Table name for a timeframe: ``"1m"`` -> ``bars_1m``."""
    timeframe_ms(tf)  # InvalidParameter unless written as a timeframe
    return f"bars_{tf}"


def symbol_array(codes: np.ndarray, symbols: tuple[str, ...]) -> pa.Array:
    """Symbol names for integer codes, as a plain Arrow string column."""
    return pa.array(np.asarray(symbols, dtype=object)[codes], pa.string())


class BarRepository:
    """The bars of a store (a TickStore part)."""

    TABLES: tuple[str, ...] = ()

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

    def bar_timeframes(self) -> list[str]:
        """Timeframes that have a bars table in this file, shortest first."""
        names = [r[0][5:] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'bars\\_%' ESCAPE '\\'").fetchall()]
        return sorted((n for n in names if is_timeframe(n)), key=timeframe_ms)

    def bar_gaps(self, tf: str, symbol: str | None = None) -> pd.DataFrame:
        """Stretches with no stored bar between a symbol's first and last stored ``tf`` bar:
        symbol, after (start of the bar before the gap), before (start of the bar after it), and
        missing (bars), ms UTC; sorted by symbol and time."""
        table, step = bars_table(tf), timeframe_ms(tf)
        if not self.has_table(table):
            return pd.DataFrame(columns=["symbol", "after", "before", "missing"])
        where, args = ("WHERE symbol = ?", [symbol]) if symbol else ("", [])
        return self.con.execute(
            f"SELECT symbol, prev AS after, start AS before, (start - prev) // {step} - 1 AS missing FROM "
            f"(SELECT symbol, start, lag(start) OVER (PARTITION BY symbol ORDER BY start) AS prev FROM {table} {where}) "
            f"WHERE start - prev > {step} ORDER BY symbol, after", args).df()

    @staticmethod
    def _bars_frame(bars: np.ndarray, symbols: tuple[str, ...]) -> pa.Table:
        cols = {"symbol": symbol_array(bars["sym"], symbols)}
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
        wanted = pa.table({"symbol": symbol_array(keys["sym"], symbols), "start": np.ascontiguousarray(keys["start"])})
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
