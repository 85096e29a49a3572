"""A bqplot line drawn as frozen segments plus a live tail.

bqplot sends a mark's whole x/y arrays whenever they change, so one growing line would send
its whole history on every refresh. Here only the live tail (at most ``segment`` points)
changes per refresh; a full tail is frozen into its own mark (sent once) and a new tail starts.
When the points drawn exceed ``max_points``, the oldest half of the history is thinned into
one segment keeping each bucket's minimum and maximum (so spikes survive).
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
    """One series on given scales. ``marks`` lists its bqplot marks, oldest first; the owner
    re-reads it when ``extend`` or ``reset`` returns True (the list of marks changed)."""

    def __init__(self, scales: dict, colors: list[str], segment: int = 400, max_points: int = 4_000,
                 **mark_kw: object) -> None:
        self.scales, self.colors, self.mark_kw = scales, colors, mark_kw
        self.segment, self.max_points = segment, max_points
        self._frozen: list[bq.Lines] = []
        self._frozen_n: list[int] = []
        self.live = self._mark(np.empty(0, dtype="datetime64[ms]"), np.empty(0))
        self._live_x = np.empty(0, dtype="datetime64[ms]")
        self._live_y = np.empty(0)

    def _mark(self, x: np.ndarray, y: np.ndarray) -> bq.Lines:
        return bq.Lines(x=x, y=y, scales=self.scales, colors=self.colors, **self.mark_kw) if self._drawable(y) \
            else bq.Lines(x=x[:0], y=y[:0], scales=self.scales, colors=self.colors, **self.mark_kw)

    @staticmethod
    def _drawable(y: np.ndarray) -> bool:
        """bqplot draws an all-NaN line as an invalid path: send such data as empty instead."""
        return bool(np.isfinite(y).any())

    @property
    def has_data(self) -> bool:
        return any(len(m.y) for m in self.marks)

    @property
    def marks(self) -> list[bq.Lines]:
        return [*self._frozen, self.live]

    @property
    def points(self) -> int:
        return sum(self._frozen_n) + len(self._live_x)

    def reset(self, x: np.ndarray, y: np.ndarray) -> bool:
        """Redraw from full arrays (thinned to ``max_points``)."""
        x, y = thin(x, y, self.max_points)
        head = max(0, len(x) - self.segment)
        self._frozen = [self._mark(x[: head + 1], y[: head + 1])] if head else []
        self._frozen_n = [head + 1] if head else []
        self._set_live(x[head:], y[head:])
        return True

    def extend(self, x: np.ndarray, y: np.ndarray) -> bool:
        """Append points; returns True when the list of marks changed."""
        if not len(x):
            return False
        lx, ly = np.concatenate((self._live_x, x)), np.concatenate((self._live_y, y))
        changed = False
        while len(lx) > self.segment:
            cut = self.segment
            self._frozen.append(self._mark(lx[:cut], ly[:cut]))  # sent once, never changed again
            self._frozen_n.append(cut)
            lx, ly = lx[cut - 1 :], ly[cut - 1 :]  # overlap one point: the line stays connected
            changed = True
        self._set_live(lx, ly)
        if self.points > self.max_points:
            self._thin_oldest()
            changed = True
        return changed

    def _set_live(self, x: np.ndarray, y: np.ndarray) -> None:
        self._live_x, self._live_y = x, y
        if not self._drawable(y):
            x, y = x[:0], y[:0]
        if len(x) or len(self.live.x):
            with self.live.hold_sync():
                self.live.x, self.live.y = x, y

    def _thin_oldest(self) -> None:
        half = max(1, len(self._frozen) // 2)
        old = self._frozen[:half]
        x = np.concatenate([m.x for m in old])
        y = np.concatenate([m.y for m in old])
        x, y = thin(x, y, self.max_points // 4)
        for m in old:
            m.close()
        self._frozen = [self._mark(x, y), *self._frozen[half:]]
        self._frozen_n = [len(x), *self._frozen_n[half:]]

    def close(self) -> None:
        for m in self.marks:
            m.close()
