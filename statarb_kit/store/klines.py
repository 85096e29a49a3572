"""Klines' provenance and funding: ``kline_coverage`` (which spans of which symbol were asked
for, so an update fetches only what is new) and ``funding`` (settlements)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import InvalidParameter
from ..funding import SAME_SETTLEMENT_MS, FundingRates
from .bar_tables import BAR_ORIGINS, bars_table

_KLINE_COLS = ("symbol", "start", "open", "high", "low", "close", "volume", "quote_volume", "trades",
               "taker_buy_volume", "vwap", "origin")

_COVERAGE_DDL = """
CREATE TABLE IF NOT EXISTS kline_coverage (
    symbol VARCHAR NOT NULL, timeframe VARCHAR NOT NULL, market VARCHAR NOT NULL,
    start_ms BIGINT NOT NULL,      -- Binance was asked for every bar opening in [start_ms, end_ms)
    end_ms BIGINT NOT NULL,        -- ms since epoch, UTC; a bar missing in between does not exist
    asked_at BIGINT NOT NULL
)"""

_FUNDING_DDL = """
CREATE TABLE IF NOT EXISTS funding (
    symbol VARCHAR NOT NULL,
    time_ms BIGINT NOT NULL,       -- settlement time, ms since epoch, UTC
    rate DOUBLE NOT NULL,          -- fraction per settlement; > 0: longs pay shorts
    origin VARCHAR NOT NULL        -- dump, rest, stream or synthetic
)"""


class KlineRepository:
    """Kline bars written with their coverage, and funding rates (a TickStore part)."""

    TABLES: tuple[str, ...] = (_COVERAGE_DDL, _FUNDING_DDL)

    def insert_kline_bars(self, tf: str, symbol: str, bars: pd.DataFrame, origin: str) -> int:
        """Store Binance klines of one symbol (``exchange.binance.klines.KLINE_BAR_COLUMNS``) where this
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

    def funding_symbols(self) -> list[str]:
        """Symbols with stored funding settlements, sorted."""
        if not self.has_table("funding"):
            return []
        return sorted(r[0] for r in self.con.execute("SELECT DISTINCT symbol FROM funding").fetchall())

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
