"""DuckDB persistence: one store file, one writer, its tables in repositories by concern.

``TickStore`` is the store a Session, the research readers and the monitor open: ``base`` (the
connection, the lock, schema versions and migrations) with one repository per concern, each
declaring the tables it creates: ``ticks``, ``bar_tables`` (bars per timeframe), ``klines``
(coverage and funding), ``alerts`` (alerts and events), ``ledger`` (the monitor's event states
and outbox), ``paper`` (paper books and trades) and ``quotes`` (quote bars and raw quotes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ticks import VIA
from .alerts import AlertRepository
from .bar_tables import BAR_ORIGINS, BarRepository, bars_table
from .base import SCHEMA_VERSION, StoreBase
from .klines import KlineRepository
from .ledger import LedgerRepository
from .paper import PaperRepository
from .quotes import QuoteRepository
from .ticks import DEDUP_TS_SLACK_MS, TickRepository


class TickStore(TickRepository, BarRepository, KlineRepository, AlertRepository, LedgerRepository, PaperRepository,
                QuoteRepository, StoreBase):
    """A DuckDB database (file path or ``":memory:"``) holding ticks, bars and every table of the
    kit (see the package doc). ``inserted`` / ``inserted_via`` / ``duplicates``: ticks stored by
    this object (per ``ticks.VIA`` code) and skipped as already stored.

    Not thread-safe: a Session calls it from one worker thread at a time.
    """

    def __init__(self, path: str | Path = ":memory:", read_only: bool = False) -> None:
        super().__init__(path, read_only)
        self._watermark = self._load_watermarks()
        self.inserted = 0  # rows stored by this object
        self.inserted_via = np.zeros(len(VIA), dtype=np.int64)  # of which, per ``via`` code
        self.duplicates = 0  # rows skipped because (symbol, trade_id) was already stored


__all__ = ["BAR_ORIGINS", "DEDUP_TS_SLACK_MS", "SCHEMA_VERSION", "TickStore", "bars_table"]
