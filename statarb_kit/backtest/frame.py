"""The signal frame a backtest trades: hedge ratio, z-score and correlation at each bar.

Everything at bar t uses bars <= t only (the hedge ratio bars < t), as in the live analytics,
which it reuses for the rolling, fixed and Kalman modes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..analytics.hedge import ols_hedge
from ..analytics.signals import REL_STD_FLOOR, log_returns, pair_frame, rolling_corr, rolling_zscore
from ..errors import InvalidParameter
from ..quotes import QuoteBars
from .costs import LegSpreads, touch_spreads
from .params import BacktestParams


@dataclass(frozen=True, eq=False)
class SignalFrame:
    """One row per aligned bar: time (ms UTC), prices, the hedge (alpha, beta) used at the bar,
    z-score and correlation (NaN where not yet defined); ``spreads``: each leg's half spread per
    bar that fills cross (``backtest.costs``; None: the flat model)."""

    time: np.ndarray
    price_x: np.ndarray
    price_y: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    z: np.ndarray
    corr: np.ndarray
    spreads: LegSpreads | None = None

    @property
    def cost_model(self) -> str:
        """The name of the cost model fills pay under: "flat", "touch" or an estimator's."""
        return "flat" if self.spreads is None else self.spreads.model

    def __len__(self) -> int:
        return len(self.time)


def signal_frame(time: np.ndarray, price_x: np.ndarray, price_y: np.ndarray, p: BacktestParams) -> SignalFrame:
    """The frame of an aligned pair (times ascending, prices > 0) under ``p``'s frame fields."""
    t = np.asarray(time, dtype=np.int64)
    px = np.asarray(price_x, dtype=np.float64)
    py = np.asarray(price_y, dtype=np.float64)
    if not (len(t) == len(px) == len(py)):
        raise InvalidParameter("time, price_x and price_y must have the same length")
    if len(t) and (not np.all(np.isfinite(px)) or not np.all(np.isfinite(py)) or px.min() <= 0 or py.min() <= 0):
        raise InvalidParameter("prices must be finite and > 0")
    if p.hedge_mode != "walk_forward":
        f = pair_frame(t, px, py, p.pair_params())
        return SignalFrame(t, px, py, f.alpha, f.beta, f.z, f.corr)
    alpha, beta, z = walk_forward(px, py, p)
    corr = rolling_corr(log_returns(px), log_returns(py), p.corr_window)
    return SignalFrame(t, px, py, alpha, beta, z, corr)


def at_the_touch(f: SignalFrame, quotes: tuple[QuoteBars, QuoteBars]) -> SignalFrame:
    """``f`` filled at the touch (``backtest.costs``): each leg's price at a bar is the mid of the
    quote in force at its close (``f.time``: bar close times) and fills cross half the quoted
    spread; the signals (z, hedge, correlation) stay those of ``f``. A bar without a quote keeps
    its trade price and pays no spread (``LegSpreads.unquoted`` counts such bars)."""
    spreads, mid = touch_spreads(list(quotes), f.time)
    px = np.where(np.isfinite(mid[:, 0]), mid[:, 0], f.price_x)
    py = np.where(np.isfinite(mid[:, 1]), mid[:, 1], f.price_y)
    return replace(f, price_x=px, price_y=py, spreads=spreads)


def walk_forward(px: np.ndarray, py: np.ndarray, p: BacktestParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, beta, z) of walk-forward blocks: bars [s, s + block) use the OLS fit of bars
    [s - hedge_window, s); their z compares each spread, under that fit, with the previous
    ``z_window`` spreads under the same fit. NaN before the first block."""
    x, y = (np.log(px), np.log(py)) if p.log_prices else (px, py)
    n, f, block = len(x), p.hedge_window, p.block
    alpha, beta, z = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    floor = REL_STD_FLOOR * np.abs(x)  # per bar: a whole-series level would look ahead
    for start in range(f, n, block):
        end = min(start + block, n)
        fit = ols_hedge(x[start - f : start], y[start - f : start])
        if not fit.ok:
            continue
        lo = max(0, start - p.z_window)
        spread = x[lo:end] - (fit.alpha + fit.beta * y[lo:end])
        z[start:end] = rolling_zscore(spread, p.z_window, False, floor[lo:end])[start - lo :]
        alpha[start:end], beta[start:end] = fit.alpha, fit.beta
    return alpha, beta, z
