"""Fixed-capacity numpy ring of ticks between the sources and the store writer.

Memory is allocated once (about 50 bytes a row); appends and drains never allocate storage.
When a producer outruns the writer, the oldest undrained rows are overwritten and counted
in ``overwritten``: loss is always visible, never silent.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidParameter
from .ticks import TICK_COLUMNS, Tick, TickBatch


class TickRing:
    """Ring buffer of ticks with append / extend / drain and loss counters.

    Counters (all monotone): ``appended`` rows written in, ``drained`` rows handed out,
    ``overwritten`` undrained rows lost to wrap-around. ``len(ring)`` is the undrained count.
    ``tail(n)`` reads the newest rows whether drained or not (a history window).
    """

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise InvalidParameter(f"ring capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        self._cols = {k: np.empty(capacity, dtype=d) for k, d in TICK_COLUMNS.items()}
        self._head = 0  # next write position
        self._pending = 0  # undrained rows, ending just before _head
        self._filled = 0  # rows ever written, capped at capacity (valid for tail())
        self.appended = 0
        self.drained = 0
        self.overwritten = 0

    def __len__(self) -> int:
        return self._pending

    @property
    def free(self) -> int:
        """Rows that can be appended before undrained rows are overwritten."""
        return self.capacity - self._pending

    def _advance(self, n: int) -> None:
        self._head = (self._head + n) % self.capacity
        self.appended += n
        self._filled = min(self.capacity, self._filled + n)
        lost = max(0, self._pending + n - self.capacity)
        self.overwritten += lost
        self._pending = min(self.capacity, self._pending + n)

    def append(self, tick: Tick) -> None:
        """Append one tick in O(1)."""
        h = self._head
        for name, value in zip(TICK_COLUMNS, tick):
            self._cols[name][h] = value
        self._advance(1)

    def extend(self, batch: TickBatch) -> None:
        """Append a batch in O(len(batch)); a batch larger than the ring keeps its newest rows."""
        n = len(batch)
        if n == 0:
            return
        skip = max(0, n - self.capacity)
        m = n - skip
        h = self._head
        first = min(m, self.capacity - h)
        for name in TICK_COLUMNS:
            src = getattr(batch, name)[skip:]
            dst = self._cols[name]
            dst[h : h + first] = src[:first]
            dst[: m - first] = src[first:]
        # Rows of this batch that never made it into the ring are lost like overwritten ones.
        self.overwritten += skip
        self.appended += skip
        self._advance(m)

    def _read(self, start: int, n: int) -> TickBatch:
        end = start + n
        if end <= self.capacity:
            return TickBatch(**{k: self._cols[k][start:end].copy() for k in TICK_COLUMNS})
        wrap = end - self.capacity
        return TickBatch(
            **{k: np.concatenate((self._cols[k][start:], self._cols[k][:wrap])) for k in TICK_COLUMNS}
        )

    def drain(self, max_rows: int | None = None) -> TickBatch:
        """Remove and return up to ``max_rows`` of the oldest undrained rows (all by default)."""
        n = self._pending if max_rows is None else min(max_rows, self._pending)
        start = (self._head - self._pending) % self.capacity
        out = self._read(start, n)
        self._pending -= n
        self.drained += n
        return out

    def tail(self, n: int) -> TickBatch:
        """The newest ``min(n, rows held)`` rows, oldest first, without draining them."""
        n = max(0, min(n, self._filled))
        return self._read((self._head - n) % self.capacity, n)

    def mark_drained(self) -> None:
        """Treat every held row as consumed (for rings used only as a history window)."""
        self.drained += self._pending
        self._pending = 0
