"""Bid-ask spreads estimated from bars, where no quote was recorded.

Both estimators read a bar's high, low and close (any bar length; the papers use days) and give
the spread as a fraction of the price (0.001 = 10 bps, the full spread: a round trip's crossing
cost). Each two-bar term uses bars t-1 and t, so an estimate at bar t reads bars <= t only.

- **Corwin & Schultz (2012)**, "A Simple Way to Estimate Bid-Ask Spreads from Daily High and
  Low Prices" (J. Finance 67(2)): a high-low range over two bars holds twice the variance of one
  bar but one spread. Per two bars: beta = ln(H_{t-1}/L_{t-1})^2 + ln(H_t/L_t)^2, gamma =
  ln(max(H)/min(L))^2 over both, alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) -
  sqrt(gamma / (3 - 2 sqrt 2)), S = 2 (e^alpha - 1) / (1 + e^alpha). Bar t's high and low are
  first shifted by a gap from bar t-1's close (the paper's overnight adjustment: by the amount
  the bar's low is above, or its high below, the previous close). Negative two-bar estimates are
  set to 0, then averaged over the window (the paper's monthly estimate).
- **Abdi & Ranaldo (2017)**, "A Simple Estimation of Bid-Ask Spreads from Daily Close, High, and
  Low Prices" (Rev. Financ. Stud. 30(12)): with c_t = ln C_t and the mid-range eta_t = (ln H_t +
  ln L_t) / 2, S^2 = 4 E[(c_{t-1} - eta_{t-1}) (c_{t-1} - eta_t)]; the window's estimate is
  sqrt(max(mean, 0)) (the paper's monthly estimator).

A bar without trades (``traded`` False: a settled contract's flat tail, H = L = C) is no price:
a term that touches one is left out. Estimates need ``min_terms`` terms in the window (else NaN).
Both are biased upwards when the bars' volatility dwarfs the spread (short bars of liquid
symbols): compare them with a recorded quote where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InvalidParameter

#: The estimators by name.
ESTIMATORS = ("abdi_ranaldo", "corwin_schultz")
_K = 3.0 - 2.0 * np.sqrt(2.0)


def _checked(high: np.ndarray, low: np.ndarray, close: np.ndarray, traded: np.ndarray | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    h, lo, c = (np.asarray(a, dtype=np.float64) for a in (high, low, close))
    if not (len(h) == len(lo) == len(c)):
        raise InvalidParameter("high, low and close must have the same length")
    ok = np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & (lo > 0) & (h >= lo)
    if traded is not None:
        ok &= np.asarray(traded, dtype=bool)
    return h, lo, c, ok


def corwin_schultz_terms(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                         traded: np.ndarray | None = None) -> np.ndarray:
    """Two-bar spread estimates S_t of bars (t-1, t), at index t (NaN at 0 and where either bar
    is not a traded price); negative ones are kept (the window's mean sets them to 0)."""
    h, lo, c, ok = _checked(high, low, close, traded)
    out = np.full(len(h), np.nan)
    if len(h) < 2:
        return out
    prev_c = c[:-1]
    h1, l1 = h[1:].copy(), lo[1:].copy()
    up = l1 > prev_c  # the bar opened above the last close: shift it down by the gap
    h1[up], l1[up] = h1[up] - (l1[up] - prev_c[up]), prev_c[up]
    down = h1 < prev_c  # ... below it: shift it up
    l1[down], h1[down] = l1[down] + (prev_c[down] - h1[down]), prev_c[down]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.log(h[:-1] / lo[:-1]) ** 2 + np.log(h1 / l1) ** 2
        gamma = np.log(np.maximum(h[:-1], h1) / np.minimum(lo[:-1], l1)) ** 2
        alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _K - np.sqrt(gamma / _K)
        s = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    out[1:] = np.where(ok[:-1] & ok[1:], s, np.nan)
    return out


def abdi_ranaldo_terms(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                       traded: np.ndarray | None = None) -> np.ndarray:
    """Two-bar terms 4 (c_{t-1} - eta_{t-1}) (c_{t-1} - eta_t) at index t (squared spreads, may
    be negative; NaN at 0 and where either bar is not a traded price)."""
    h, lo, c, ok = _checked(high, low, close, traded)
    out = np.full(len(h), np.nan)
    if len(h) < 2:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = (np.log(h) + np.log(lo)) / 2.0
        lc = np.log(c)
        term = 4.0 * (lc[:-1] - eta[:-1]) * (lc[:-1] - eta[1:])
    out[1:] = np.where(ok[:-1] & ok[1:], term, np.nan)
    return out


def rolling_spread(high: np.ndarray, low: np.ndarray, close: np.ndarray, method: str = "abdi_ranaldo",
                   window: int = 720, min_terms: int | None = None, traded: np.ndarray | None = None) -> np.ndarray:
    """The spread estimate at each bar (fraction of the price) over the two-bar terms of the
    last ``window`` bars (through bar t: no look-ahead); NaN until ``min_terms`` (default
    window // 2) terms exist."""
    if method not in ESTIMATORS:
        raise InvalidParameter(f"unknown spread estimator {method!r}: {', '.join(ESTIMATORS)}")
    if not isinstance(window, int) or window < 2:
        raise InvalidParameter(f"window must be an integer >= 2 bars, got {window!r}")
    need = window // 2 if min_terms is None else int(min_terms)
    if method == "corwin_schultz":
        terms = np.maximum(corwin_schultz_terms(high, low, close, traded), 0.0)  # NaN stays NaN
    else:
        terms = abdi_ranaldo_terms(high, low, close, traded)
    mean = pd.Series(terms).rolling(window, min_periods=max(need, 1)).mean().to_numpy()
    return np.sqrt(np.maximum(mean, 0.0)) if method == "abdi_ranaldo" else mean


@dataclass(frozen=True)
class SpreadSummary:
    """One symbol's estimated spread over a span: each estimator's figure (fraction of price) and
    the two-bar terms it used."""

    symbol: str
    abdi_ranaldo: float
    corwin_schultz: float
    terms: int

    def bps(self) -> dict[str, float]:
        return {"abdi_ranaldo_bps": self.abdi_ranaldo * 1e4, "corwin_schultz_bps": self.corwin_schultz * 1e4}


def spread_summary(symbol: str, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                   traded: np.ndarray | None = None) -> SpreadSummary:
    """Both estimators over every bar given (one window)."""
    n = len(np.asarray(close))
    ar = rolling_spread(high, low, close, "abdi_ranaldo", max(n, 2), 1, traded)
    cs = rolling_spread(high, low, close, "corwin_schultz", max(n, 2), 1, traded)
    terms = int(np.isfinite(abdi_ranaldo_terms(high, low, close, traded)).sum())
    return SpreadSummary(symbol, float(ar[-1]) if n else np.nan, float(cs[-1]) if n else np.nan, terms)
