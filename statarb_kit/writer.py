"""The session's writer: ticks from the ring into the store and the bar builder, one transaction
per cycle; bars the clock finalizes; the pruning of an in-memory store; the exit flush.

Every method but ``prune_due`` runs on the store thread (the session's one-worker executor, or
the interpreter's exit); ``lock`` guards the builder and the tick history, which the loop thread
reads (``Session.final_bars``, ``ticks``, ``bars``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .bars import BarBuilder, BarChanges
from .buffer import TickRing
from .store import TickStore
from .ticks import TickBatch


class Writer:
    """Writes into ``store`` (set by ``open``) and ``builder``; keeps each symbol's newest ticks in
    ``history``. ``retention_ms``: how much data time an in-memory store keeps (None: all)."""

    def __init__(self, builder: BarBuilder, history: list[TickRing], symbols: tuple[str, ...],
                 retention_ms: int | None) -> None:
        self.builder, self.history, self.symbols = builder, history, symbols
        self.retention_ms = retention_ms
        self.lock = threading.Lock()
        self.store: TickStore | None = None
        self.newest_ms = 0  # newest stored tick's time
        self.pruned_at_ms = 0  # data time of the last prune
        self.ticks_pruned = 0

    def open(self, store: TickStore) -> None:
        """Take ``store`` and seed the bars and tick history from it: the database is the truth."""
        self.store = store
        self._load_bars()
        for code, symbol in enumerate(self.symbols):
            recent = store.last_ticks(symbol, self.history[code].capacity, code)
            if len(recent):
                self.history[code].extend(recent)
                self.history[code].mark_drained()

    def _load_bars(self) -> None:
        for code, symbol in enumerate(self.symbols):
            for tf in self.builder.timeframes:
                series = self.builder.series[tf][code]
                series.load(self.store.load_bars(tf, symbol, code, series.retain))

    def cycle(self, batch: TickBatch) -> dict[str, BarChanges]:
        """Insert new ticks and their bar changes in one transaction; the bar changes. On an
        error nothing is committed and memory is reloaded from the store."""
        try:
            with self.store.transaction():
                fresh = self.store.insert_ticks(batch, self.symbols)
                with self.lock:
                    changes = self.builder.update(fresh)
                self._write_bars(changes)
        except Exception:
            with self.lock:
                self._load_bars()  # the transaction rolled back: memory follows the database
            raise
        if len(fresh):
            self.newest_ms = max(self.newest_ms, int(fresh.ts.max()))
        with self.lock:
            for code, hist in enumerate(self.history):
                rows = fresh.take(fresh.sym == code)
                if len(rows):
                    hist.extend(rows)
                    hist.mark_drained()
        return changes

    def close_due(self, clock_ms: int) -> dict[str, BarChanges]:
        """Finalize and store bars whose end plus grace the clock has passed."""
        with self.lock:
            changes = self.builder.close_due(clock_ms)
        self._commit_bars(changes)
        return changes

    def commit_forming(self) -> None:
        """Store the forming bars as final (a stop)."""
        self._commit_bars({tf: BarChanges(final=[rows]) for tf, rows in self.builder.forming().items()})

    def prune_due(self) -> bool:
        """A prune every sixth of the retention (data time), once the data is older than it."""
        r = self.retention_ms
        return r is not None and self.newest_ms - r > self.pruned_at_ms + r // 6

    def prune(self) -> int:
        """Drop the ticks older than the retention and, per timeframe, the bars older than every
        bar the live views hold; returns the ticks dropped."""
        newest = self.newest_ms
        with self.lock:
            bars = {tf: min(int(s.bars["start"][0]) if len(s.bars) else newest for s in series)
                    for tf, series in self.builder.series.items()}
        deleted = self.store.prune(newest - self.retention_ms, bars)
        self.pruned_at_ms = newest - self.retention_ms
        self.ticks_pruned += deleted
        return deleted

    def flush_at_exit(self, drain: Callable[[], TickBatch | None]) -> None:
        """Write every batch ``drain`` still gives (None: empty), then the forming bars."""
        while (batch := drain()) is not None:
            self.cycle(batch)
        self.commit_forming()

    def _commit_bars(self, changes: dict[str, BarChanges]) -> None:
        if any(changes.values()):
            with self.store.transaction():
                self._write_bars(changes)

    def _write_bars(self, changes: dict[str, BarChanges]) -> None:
        for tf, change in changes.items():
            if change:
                self.store.write_bars(tf, *change.arrays(), self.symbols)
