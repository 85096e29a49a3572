"""The analytics of one new bar from the tails of the earlier ones: what a live view computes per
bar, in O(window), equal to the full ``pair_frame`` row (tested bar for bar in every hedge mode).

No look-ahead: the row at bar t uses bars <= t only (its hedge ratio bars < t), as ``pair_frame``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .hedge import KalmanState, ols_hedge
from .signals import REL_STD_FLOOR, PairParams, pair_flags


@dataclass(frozen=True)
class PairRow:
    """One row of the pair frame (flags include the fill bits given)."""

    alpha: float
    beta: float
    spread: float
    z: float
    corr: float
    flags: int


def next_row(price_x: np.ndarray, price_y: np.ndarray, spreads: np.ndarray, index: int, filled: int,
             params: PairParams, fixed: tuple[float, float] | None = None,
             kalman: KalmanState | None = None) -> PairRow:
    """The row of the newest bar. ``price_x`` / ``price_y``: at least the last ``params.history``
    closes, the newest last; ``spreads``: the spreads of the ``z_window`` rows before it;
    ``index``: the row's position in the series (warm-up flags); ``filled``: its fill bits.
    Hedge: rolling fits the previous ``hedge_window`` rows; fixed uses ``fixed`` (alpha, beta);
    kalman steps ``kalman`` (mutated: the state moves on by this bar)."""
    p = params
    h = p.history
    xs, ys = np.asarray(price_x[-h:], dtype=np.float64), np.asarray(price_y[-h:], dtype=np.float64)
    lx, ly = (np.log(xs), np.log(ys)) if p.log_prices else (xs, ys)
    x_t, y_t = float(lx[-1]), float(ly[-1])
    if p.hedge_mode == "rolling":
        fit = ols_hedge(lx[-p.hedge_window - 1 : -1], ly[-p.hedge_window - 1 : -1])
        a, b = fit.alpha, fit.beta
    elif p.hedge_mode == "fixed":
        a, b = fixed if fixed else (math.nan, math.nan)
    else:
        a, b = kalman.step(x_t, y_t) if kalman is not None else (math.nan, math.nan)
    spread = x_t - (a + b * y_t)
    prev = np.asarray(spreads[-p.z_window :], dtype=np.float64)
    window = np.append(prev[1:], spread) if p.z_include_current else prev
    z = _z_of(spread, window, p.z_window, REL_STD_FLOOR * abs(x_t))
    w = p.corr_window
    if p.corr_of == "returns":
        corr = _corr_of(np.diff(np.log(xs[-w - 1 :])), np.diff(np.log(ys[-w - 1 :])), w)
    else:
        corr = _corr_of(xs[-w:], ys[-w:], w)
    flags = int(pair_flags(np.array([index]), p, np.array([a]), np.array([z]), np.array([corr]),
                           np.array([filled]))[0])
    return PairRow(float(a), float(b), float(spread), z, corr, flags)


def _z_of(value: float, window: np.ndarray, w: int, floor: float) -> float:
    """(value - mean) / std (ddof 1) of one window, with ``rolling_zscore``'s rules: NaN when the
    window is short, holds a NaN, is constant (exactly), or its std is <= ``floor``."""
    if len(window) < w or math.isnan(value) or np.isnan(window).any() or np.ptp(window) == 0:
        return math.nan
    mean = window.mean()
    std = math.sqrt(float(((window - mean) ** 2).sum()) / (w - 1))
    return (value - mean) / std if std > floor else math.nan


def _corr_of(a: np.ndarray, b: np.ndarray, w: int) -> float:
    """Pearson correlation of one window, with ``rolling_corr``'s rules (NaN when short, with a
    NaN inside, or either side exactly constant)."""
    if len(a) < w or len(b) < w or np.isnan(a).any() or np.isnan(b).any() or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    return float(np.clip((da @ db) / math.sqrt(float(da @ da) * float(db @ db)), -1.0, 1.0))
