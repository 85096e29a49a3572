"""Alignment of two symbols' bars on common bar times."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameter
from .signals import FLAG_FILLED_X, FLAG_FILLED_Y


@dataclass(frozen=True, eq=False)
class AlignedPair:
    """Bar times (ms UTC) where both prices are known, the two prices, and per-row fill flags.

    ``filled_x`` / ``filled_y``: rows whose price was carried forward; ``dropped``: bar times
    of either symbol left out because the other's last price was older than ``max_stale`` bars
    (or did not exist yet).
    """

    time: np.ndarray
    x: np.ndarray
    y: np.ndarray
    flags: np.ndarray
    filled_x: int
    filled_y: int
    dropped: int

    def __len__(self) -> int:
        return len(self.time)


def align_pair(
    time_x: np.ndarray, close_x: np.ndarray, time_y: np.ndarray, close_y: np.ndarray, tf_ms: int, max_stale: int
) -> AlignedPair:
    """Align two bar series (sorted, unique times in ms) on the union of their bar times.

    A symbol without a bar at a time takes its last close if that bar is at most ``max_stale``
    bars old (a symbol that has not traded for longer is not a price); otherwise the row is
    dropped. ``max_stale`` 0 keeps only times where both traded.
    """
    if tf_ms <= 0 or max_stale < 0:
        raise InvalidParameter("need tf_ms > 0 and max_stale >= 0")
    tx, ty = np.asarray(time_x, dtype=np.int64), np.asarray(time_y, dtype=np.int64)
    t = np.union1d(tx, ty)

    def carry(ts: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = np.searchsorted(ts, t, side="right") - 1
        has = i >= 0
        age = np.where(has, (t - ts[np.maximum(i, 0)]) // tf_ms, np.iinfo(np.int64).max)
        price = np.asarray(close, dtype=np.float64)[np.maximum(i, 0)] if len(ts) else np.full(len(t), np.nan)
        return price, has & (age <= max_stale), has & (age > 0)

    px, okx, fx = carry(tx, close_x)
    py, oky, fy = carry(ty, close_y)
    keep = okx & oky
    flags = (np.where(fx, FLAG_FILLED_X, 0) | np.where(fy, FLAG_FILLED_Y, 0))[keep]
    return AlignedPair(
        time=t[keep], x=px[keep], y=py[keep], flags=flags,
        filled_x=int((fx & keep).sum()), filled_y=int((fy & keep).sum()), dropped=int((~keep).sum()),
    )
