"""Table ``ticks``: trades inserted in large batches and deduplicated on (symbol, trade_id).

An in-memory watermark (highest stored id per symbol) lets ordinary in-order ticks skip any
lookup; only rows at or below it (reconnect overlap, backfill, a file replayed twice) are
checked against the table, over a bounded id and time range. The table has no primary-key
index on purpose: such an index costs insert speed and grows in RAM with the history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import InvalidParameter
from ..ticks import TICK_COLUMNS, VIA, TickBatch
from .bar_tables import bars_table, symbol_array

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


class TickRepository:
    """The ticks of a store (a TickStore part)."""

    TABLES: tuple[str, ...] = (_TICKS_DDL,)

    def _load_watermarks(self) -> dict[str, int]:
        if not self.has_table("ticks"):
            return {}
        rows = self.con.execute("SELECT symbol, max(trade_id) FROM ticks GROUP BY symbol").fetchall()
        return {sym: int(mx) for sym, mx in rows}

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
                "symbol": symbol_array(cand.sym, symbols),
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
