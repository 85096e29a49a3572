"""PCA residuals and s-scores (Avellaneda & Lee 2010, "Statistical arbitrage in the US equities
market", Quantitative Finance 10(7)), on the bars of one estimation window.

- Returns R (log returns of the symbols that trade on every bar of the window, carried at most
  ``max_stale`` bars) are standardised; the eigenvectors v_j of their correlation matrix, largest
  first, give eigenportfolios with weights Q_j = v_j / sigma (sigma: each symbol's return
  standard deviation, ddof 1) and returns F_j = R Q_j. The number of eigenportfolios is the
  fewest that explain ``variance`` of the total (the paper's variable-factor rule: 55%).
- Each symbol's returns are regressed on F (with a constant): R_i = b0 + sum_j beta_ij F_j + e_i.
  The residual's cumulative sum is, on log prices, the spread ``sum_k w_ik log P_k`` with
  ``w_i = e_i - sum_j beta_ij Q_j`` (the drift b0 left out, as in the paper's plain s-score), so
  each residual is a basket whose legs are the universe.
- An AR(1) fit X_{t+1} = a + b X_t + z of that spread over the window gives the OU parameters:
  mean-reversion time tau = -1 / ln b bars, m = a / (1 - b), sigma_eq = sqrt(var z / (1 - b^2))
  (var with ddof 0); the **s-score** is (X_t - m) / sigma_eq. Defined only where 0 < b < 1.
- Trading (the paper's thresholds): open long the residual below -1.25, short above 1.25, close
  a long above -0.5 and a short below 0.75. The paper keeps only residuals that revert in under
  half the window (kappa > 252/30 with 60 days); so does ``residuals`` (``max_reversion``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: The paper's share of variance the eigenportfolios explain, and its s-score thresholds.
VARIANCE = 0.55
S_ENTRY, S_EXIT_LONG, S_EXIT_SHORT = 1.25, 0.5, 0.75


@dataclass(frozen=True)
class Residuals:
    """Per symbol (rows, in the order given): the residual basket's ``weights`` on log prices of
    every symbol (symbols x symbols), the OU fit of its spread over the window (``b``, mean
    reversion time ``tau`` in bars, NaN where 0 < b < 1 fails), the s-score at the window's last
    bar; ``factors``: eigenportfolios used; ``explained``: the variance share they explain."""

    weights: np.ndarray
    b: np.ndarray
    tau: np.ndarray
    s_score: np.ndarray
    factors: int
    explained: float


def residuals(logs: np.ndarray, variance: float = VARIANCE) -> Residuals:
    """The residuals of an estimation window: ``logs`` (bars x symbols) of log prices, finite,
    at least three bars and two symbols."""
    r = np.diff(logs, axis=0)
    sd = r.std(axis=0, ddof=1)
    corr = np.corrcoef(r, rowvar=False)
    vals, vecs = np.linalg.eigh(corr)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    share = np.cumsum(vals) / vals.sum()
    m = int(np.searchsorted(share, variance) + 1)
    q = vecs[:, :m] / sd[:, None]  # symbols x factors: eigenportfolio weights
    f = r @ q
    design = np.column_stack([np.ones(len(f)), f])
    beta = np.linalg.lstsq(design, r, rcond=None)[0][1:]  # factors x symbols
    weights = np.eye(logs.shape[1]) - beta.T @ q.T
    spreads = logs @ weights.T  # bars x symbols
    b, a, var = _ar1(spreads[:-1], spreads[1:], axis=0)
    ok = (b > 0) & (b < 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(ok, -1.0 / np.log(np.where(ok, b, 0.5)), np.nan)
        m_eq = a / (1.0 - b)
        sigma = np.sqrt(var / (1.0 - b * b))
        s = np.where(ok, (spreads[-1] - m_eq) / sigma, np.nan)
    return Residuals(weights, np.where(ok, b, np.nan), tau, s, m, float(share[m - 1]))


def _ar1(prev: np.ndarray, cur: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OLS of ``cur`` on ``prev`` with a constant along ``axis``: slope, intercept, residual
    variance (ddof 0)."""
    mp, mc = prev.mean(axis=axis, keepdims=True), cur.mean(axis=axis, keepdims=True)
    dp, dc = prev - mp, cur - mc
    vp = (dp * dp).mean(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = (dp * dc).mean(axis=axis) / vp
        a = np.squeeze(mc, axis) - b * np.squeeze(mp, axis)
        var = (dc * dc).mean(axis=axis) - b * b * vp
    return b, a, np.maximum(var, 0.0)


def rolling_s_score(spread: np.ndarray, window: int) -> np.ndarray:
    """The s-score of ``spread`` at each bar from the OU fit of the ``window`` values ending at
    that bar (its own value included: known at its close); NaN before the window is full, where
    it holds a NaN, and where 0 < b < 1 fails."""
    x = np.asarray(spread, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if window < 3 or len(x) < window:
        return out
    w = sliding_window_view(x, window)  # rows: windows ending at bars window-1 ..
    b, a, var = _ar1(w[:, :-1], w[:, 1:], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (w[:, -1] - a / (1.0 - b)) / np.sqrt(var / (1.0 - b * b))
    out[window - 1:] = np.where((b > 0) & (b < 1), s, np.nan)
    return out
