"""Quotes: table ``quote_bars`` (per timeframe, see ``statarb_kit.quotes``) and, for short
recordings, every quote in table ``quotes``."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ..quotes import QUOTE_BAR_COLUMNS

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


class QuoteRepository:
    """Quote bars and raw quotes of a store (a TickStore part)."""

    TABLES: tuple[str, ...] = (_QUOTES_DDL, _QUOTE_BARS_DDL)

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
