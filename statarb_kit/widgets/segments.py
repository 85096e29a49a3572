"""A bqplot line drawn as frozen segments plus a live tail, on a fixed set of marks.

bqplot sends a mark's whole x/y arrays whenever they change, so one growing line would send
its whole history on every refresh. Here only the live tail (at most ``segment`` points)
changes per refresh; a full tail is frozen into a slot mark (sent once) and a new tail starts.
When the points drawn exceed ``max_points`` or the slots run out, the oldest half of the
history is thinned into one slot keeping each bucket's minimum and maximum (so spikes survive).
"""

from __future__ import annotations

import bqplot as bq
import numpy as np


def thin(x: np.ndarray, y: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~``target`` points: per bucket, the points of its minimum and maximum y, in order."""
    n = len(x)
    if n <= target:
        return x, y
    buckets = max(1, target // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep: list[int] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        if np.isnan(seg).all():
            keep.append(lo)
            continue
        a, b = lo + int(np.nanargmin(seg)), lo + int(np.nanargmax(seg))
        keep.extend(sorted({a, b}))
    idx = np.array(keep, dtype=np.int64)
    return x[idx], y[idx]


class SegmentedLine:
    """One series on given scales, drawn by a fixed set of bqplot marks (``marks``, never
    replaced: the figure's mark list never changes, so the browser never creates or drops mark
    views while a page stays open for days). One mark is the live tail; the others are slots
    holding frozen segments, each sent once. When every slot is taken, the oldest half of the
    slots is thinned into one of them and the rest are emptied for reuse."""

    def __init__(self, scales: dict, colors: list[str], segment: int = 400, max_points: int = 4_000,
                 **mark_kw: object) -> None:
        if segment < 2 or max_points < 8:
            raise ValueError("need segment >= 2 and max_points >= 8")
        self.scales, self.colors, self.mark_kw = scales, colors, mark_kw
        self.segment, self.max_points = min(segment, max_points // 4), max_points  # at least 4 slots
        empty_x, empty_y = np.empty(0, dtype="datetime64[ms]"), np.empty(0)
        self._slots = [bq.Lines(x=empty_x, y=empty_y, scales=scales, colors=colors, **mark_kw)
                       for _ in range(max_points // self.segment)]
        self._used: list[int] = []  # slots holding a segment, oldest first
        self._slot_n = [0] * len(self._slots)
        self.live = bq.Lines(x=empty_x, y=empty_y, scales=scales, colors=colors, **mark_kw)
        self.marks: list[bq.Lines] = [*self._slots, self.live]
        self._live_x, self._live_y = empty_x, empty_y

    @staticmethod
    def _drawable(y: np.ndarray) -> bool:
        """bqplot draws an all-NaN line as an invalid path: send such data as empty instead."""
        return bool(np.isfinite(y).any())

    def _show(self, mark: bq.Lines, x: np.ndarray, y: np.ndarray) -> None:
        if not self._drawable(y):
            x, y = x[:0], y[:0]
        if len(x) or len(mark.x):
            with mark.hold_sync():
                mark.x, mark.y = x, y

    @property
    def has_data(self) -> bool:
        return any(len(m.y) for m in self.marks)

    @property
    def points(self) -> int:
        return sum(self._slot_n) + len(self._live_x)

    def _freeze(self, x: np.ndarray, y: np.ndarray) -> None:
        """Put a segment (newer than every held one) into a free slot, thinning when none is."""
        if len(self._used) == len(self._slots):
            self._thin_oldest()
        slot = next(i for i in range(len(self._slots)) if i not in self._used)
        self._used.append(slot)
        self._slot_n[slot] = len(x)
        self._show(self._slots[slot], x, y)

    def _thin_oldest(self) -> None:
        half = self._used[: max(2, len(self._used) // 2)]
        x = np.concatenate([self._slots[i].x for i in half])
        y = np.concatenate([self._slots[i].y for i in half])
        x, y = thin(x, y, self.max_points // 4)
        for i in half[1:]:
            self._show(self._slots[i], x[:0], y[:0])
            self._slot_n[i] = 0
        self._show(self._slots[half[0]], x, y)
        self._slot_n[half[0]] = len(x)
        self._used = [half[0], *self._used[len(half):]]

    def reset(self, x: np.ndarray, y: np.ndarray) -> None:
        """Redraw from full arrays (thinned to ``max_points``)."""
        x, y = thin(x, y, self.max_points)
        for i in self._used:
            self._show(self._slots[i], x[:0], y[:0])
            self._slot_n[i] = 0
        self._used = []
        head = max(0, len(x) - self.segment)
        if head:
            self._freeze(x[: head + 1], y[: head + 1])
        self._set_live(x[head:], y[head:])

    def extend(self, x: np.ndarray, y: np.ndarray) -> None:
        """Append points (later than every point held)."""
        if not len(x):
            return
        lx, ly = np.concatenate((self._live_x, x)), np.concatenate((self._live_y, y))
        while len(lx) > self.segment:
            cut = self.segment
            self._freeze(lx[:cut], ly[:cut])  # sent once, never changed until thinned
            lx, ly = lx[cut - 1 :], ly[cut - 1 :]  # overlap one point: the line stays connected
        self._set_live(lx, ly)
        while self.points > self.max_points:
            self._thin_oldest()

    def _set_live(self, x: np.ndarray, y: np.ndarray) -> None:
        self._live_x, self._live_y = x, y
        self._show(self.live, x, y)

    def close(self) -> None:
        for m in self.marks:
            m.close()
