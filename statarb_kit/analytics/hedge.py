"""Hedge ratios of x on y: x = alpha + beta * y + e.

- ``ols_hedge``: one OLS fit with alpha, beta, R², n and standard errors (as statsmodels OLS).
- ``rolling_ols``: the fit over each window of ``w`` bars ending at a bar (as RollingOLS).
- ``hedge_path``: the (alpha, beta) *used at* each bar for a hedge mode, built only from data
  before that bar: rolling uses the window ending at t-1, fixed uses a fit on the first ``w``
  bars (applied from bar w on), kalman uses the filter's prior for t. No look-ahead.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameter
from .rolling import check_window, rolling_cov

HEDGE_MODES: tuple[str, ...] = ("rolling", "fixed", "kalman")

#: Fewest observations for an OLS fit with a standard error (n - 2 degrees of freedom).
MIN_OBS_OLS = 3
#: Relative size of rounding noise: deviations of y below this times |y| carry no slope.
_NOISE = 64 * np.finfo(np.float64).eps


@dataclass(frozen=True)
class HedgeFit:
    """OLS of x on y. ``ok`` False (and NaN numbers) when there is too little data or y is
    constant; ``note`` then says why."""

    alpha: float
    beta: float
    r2: float
    n: int
    se_beta: float
    se_alpha: float
    resid_std: float
    log_prices: bool = False
    ok: bool = True
    note: str = ""

    @classmethod
    def insufficient(cls, n: int, note: str, log_prices: bool = False) -> HedgeFit:
        nan = math.nan
        return cls(nan, nan, nan, n, nan, nan, nan, log_prices, ok=False, note=note)

    def summary(self) -> str:
        if not self.ok:
            return f"hedge ratio: {self.note}"
        kind = "log prices" if self.log_prices else "prices"
        return (
            f"x = {self.alpha:.6g} + {self.beta:.6g} * y on {kind}  (se beta {self.se_beta:.3g}, "
            f"R² {self.r2:.4f}, n {self.n})"
        )

    def _repr_html_(self) -> str:
        return f"<p><b>Hedge fit</b> (OLS): {html.escape(self.summary())}</p>"


def ols_hedge(x: np.ndarray, y: np.ndarray, log_prices: bool = False) -> HedgeFit:
    """OLS of x on y with an intercept. NaN pairs are dropped. Needs >= 3 points and a y that
    varies by more than rounding (a constant y, at any level, has no hedge ratio: ``ok`` False).

    With ``log_prices`` both series are logged first (prices must be positive).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise InvalidParameter(f"x and y must have the same length, got {x.shape} and {y.shape}")
    if log_prices:
        if (x <= 0).any() or (y <= 0).any():
            raise InvalidParameter("log prices need positive prices")
        x, y = np.log(x), np.log(y)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    if n < MIN_OBS_OLS:
        return HedgeFit.insufficient(n, f"insufficient data: {n} of {MIN_OBS_OLS} points", log_prices)
    if np.ptp(y) == 0:  # exact: the mean of identical floats need not equal them
        return HedgeFit.insufficient(n, "y is constant: no hedge ratio", log_prices)
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    syy = float(dy @ dy)
    if syy <= n * (_NOISE * float(np.abs(y).max())) ** 2:  # varies only at the last bits
        return HedgeFit.insufficient(n, "y is constant to rounding: no hedge ratio", log_prices)
    beta = float(dx @ dy) / syy
    alpha = mx - beta * my
    resid = dx - beta * dy
    ssr = float(resid @ resid)
    sst = float(dx @ dx)
    s2 = ssr / (n - 2) if n > 2 else math.nan
    return HedgeFit(
        alpha=float(alpha),
        beta=beta,
        r2=1.0 - ssr / sst if sst > 0 else math.nan,
        n=n,
        se_beta=math.sqrt(s2 / syy),
        se_alpha=math.sqrt(s2 * (1.0 / n + my * my / syy)),
        resid_std=math.sqrt(s2),
        log_prices=log_prices,
    )


def rolling_ols(x: np.ndarray, y: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of the OLS fit over each window of ``w`` bars ending at (and including)
    each bar. NaN until the window is full, where it holds a NaN, or where y is constant."""
    w = check_window(w, "hedge window")
    m = rolling_cov(x, y, w, ddof=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(m["vy"] > 0, m["cxy"] / m["vy"], np.nan)
    return m["mx"] - beta * m["my"], beta


@dataclass(frozen=True)
class KalmanParams:
    """Random-walk state (alpha, beta) with variances ``q_alpha``, ``q_beta`` per bar and
    observation variance ``r``. None: set from the first ``w`` bars (OLS residual variance
    for r; q_beta = (1e-3 beta)², q_alpha = 1e-3 r), which are also the filter's warm-up."""

    q_alpha: float | None = None
    q_beta: float | None = None
    r: float | None = None

    def resolved(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        fit = ols_hedge(x, y)
        r = self.r if self.r is not None else (fit.resid_std**2 if fit.ok else 1.0)
        beta = fit.beta if fit.ok else 1.0
        q_beta = self.q_beta if self.q_beta is not None else (1e-3 * beta) ** 2
        q_alpha = self.q_alpha if self.q_alpha is not None else 1e-3 * r
        if min(q_alpha, q_beta) < 0 or r <= 0:
            raise InvalidParameter("Kalman variances must be >= 0 (and r > 0)")
        return q_alpha, q_beta, max(r, 1e-300)


@dataclass
class KalmanState:
    """Filter state after the last observation: mean (alpha, beta) and 2x2 covariance."""

    a: float
    b: float
    p00: float
    p01: float
    p11: float
    q_alpha: float
    q_beta: float
    r: float

    @classmethod
    def start(cls, q_alpha: float, q_beta: float, r: float, x0: float, y0: float) -> KalmanState:
        """A vague prior at zero, wide relative to the price scale of the first bar."""
        scale_b = (abs(x0) / max(abs(y0), 1e-300)) ** 2
        return cls(0.0, 0.0, 100.0 * x0 * x0, 0.0, 100.0 * scale_b, q_alpha, q_beta, r)

    def step(self, x: float, y: float) -> tuple[float, float]:
        """Observe (x, y); return the prior (alpha, beta) that was used for this bar."""
        a, b = self.a, self.b
        p00, p01, p11 = self.p00 + self.q_alpha, self.p01, self.p11 + self.q_beta
        e = x - (a + b * y)
        h0, h1 = p00 + p01 * y, p01 + p11 * y  # P H'
        s = h0 + h1 * y + self.r
        k0, k1 = h0 / s, h1 / s
        self.a, self.b = a + k0 * e, b + k1 * e
        self.p00, self.p01, self.p11 = p00 - k0 * h0, p01 - k0 * h1, p11 - k1 * h1
        return a, b


def hedge_path(
    x: np.ndarray, y: np.ndarray, mode: str, w: int, kalman: KalmanParams | None = None
) -> tuple[np.ndarray, np.ndarray, KalmanState | None]:
    """(alpha, beta) used at each bar for ``mode`` (see module doc); NaN during the first ``w``
    bars in every mode. Also returns the Kalman state after the last bar (None otherwise)."""
    w = check_window(w, "hedge window")
    n = len(x)
    alpha = np.full(n, np.nan)
    beta = np.full(n, np.nan)
    if mode == "rolling":
        a, b = rolling_ols(x, y, w)
        alpha[1:], beta[1:] = a[:-1], b[:-1]
        return alpha, beta, None
    if mode == "fixed":
        if n > w:
            fit = ols_hedge(x[:w], y[:w])
            alpha[w:], beta[w:] = fit.alpha, fit.beta
        return alpha, beta, None
    if mode == "kalman":
        if n < w:
            return alpha, beta, None
        state = KalmanState.start(*(kalman or KalmanParams()).resolved(x[:w], y[:w]), float(x[0]), float(y[0]))
        xs, ys = x.tolist(), y.tolist()
        out_a, out_b = [math.nan] * n, [math.nan] * n
        for i in range(n):
            out_a[i], out_b[i] = state.step(xs[i], ys[i])
        alpha[w:], beta[w:] = np.array(out_a[w:]), np.array(out_b[w:])
        return alpha, beta, state
    raise InvalidParameter(f"hedge mode {mode!r} is not one of {HEDGE_MODES}")
