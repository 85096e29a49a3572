"""Funding payments of a pair trade, per settlement, as array arithmetic.

Rule (the engine and the per-bar loop both follow it): a settlement at time T of a leg is paid
on a trade held over T, i.e. entry fill time < T <= exit fill time. The leg's notional is its
units times its close at the last bar closing at or before T; the leg receives
-units x close x rate (a long, units > 0, pays when rate > 0). The payment is booked on the first
bar closing at or after T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..funding import PairFunding


@dataclass(frozen=True, eq=False)
class FundingIndex:
    """The settlements of both legs inside a frame's span (bar close times ``time``): per
    settlement the bar it is booked on, its leg (0: x, 1: y), that leg's close at the time and
    the rate. Built once per frame; shared by every combination of a sweep."""

    bar: np.ndarray
    leg: np.ndarray
    price: np.ndarray
    rate: np.ndarray

    @classmethod
    def build(cls, time: np.ndarray, price_x: np.ndarray, price_y: np.ndarray, funding: PairFunding) -> FundingIndex:
        """Settlements with time[0] < T <= time[-1] (none can fall in a held position otherwise);
        raises InvalidParameter when either leg's data leaves a gap over the frame's span."""
        time = np.asarray(time, dtype=np.int64)
        if len(time) < 2:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty.astype(np.int8), np.empty(0), np.empty(0))
        funding.check_covers(int(time[0]), int(time[-1]))
        parts = []
        for leg, (rates, price) in enumerate(((funding.x, price_x), (funding.y, price_y))):
            keep = (rates.time > time[0]) & (rates.time <= time[-1])
            t = rates.time[keep]
            bar = np.searchsorted(time, t, side="left")
            at = np.searchsorted(time, t, side="right") - 1
            parts.append((bar, np.full(len(t), leg), np.asarray(price)[at], rates.rate[keep]))
        bar, leg, price, rate = (np.concatenate(c) for c in zip(*parts))
        order = np.argsort(bar, kind="stable")
        return cls(bar[order], leg[order].astype(np.int8), price[order], rate[order])


def trade_funding(fi: FundingIndex, entry_fill: np.ndarray, exit_fill: np.ndarray, units_x: np.ndarray,
                  units_y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(trade, bar, amount) of each settlement paid: the trade it falls in (trades ascending and
    not overlapping), the bar it is booked on and what the position receives (negative: pays)."""
    m = np.searchsorted(entry_fill, fi.bar, side="left") - 1  # the last trade entered before the bar
    held = m >= 0
    held[held] = fi.bar[held] <= exit_fill[m[held]]
    m, bar, leg = m[held], fi.bar[held], fi.leg[held]
    units = np.where(leg == 0, units_x[m], units_y[m])
    return m, bar, -units * fi.price[held] * fi.rate[held]
