"""The analytics of one new bar from the tails of the earlier ones: what a live view computes per
bar, in O(window), equal to the full ``pair_frame`` row (tested bar for bar in every hedge mode).

No look-ahead: the row at bar t uses bars <= t only (its hedge ratio bars < t), as ``pair_frame``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .hedge import KalmanState, ols_hedge
from .signals import REL_STD_FLOOR, PairParams, log_returns, pair_flags, rolling_corr, rolling_zscore


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
    tail = np.append(np.asarray(spreads[-p.z_window :], dtype=np.float64), spread)
    z = float(rolling_zscore(tail, p.z_window, p.z_include_current, REL_STD_FLOOR * abs(x_t))[-1])
    w = p.corr_window
    if p.corr_of == "returns":
        corr = float(rolling_corr(log_returns(xs[-w - 1 :]), log_returns(ys[-w - 1 :]), w)[-1])
    else:
        corr = float(rolling_corr(xs[-w:], ys[-w:], w)[-1])
    flags = int(pair_flags(np.array([index]), p, np.array([a]), np.array([z]), np.array([corr]),
                           np.array([filled]))[0])
    return PairRow(float(a), float(b), float(spread), z, corr, flags)
