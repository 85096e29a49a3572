"""On-demand tests of mean reversion: ADF on a spread, Engle-Granger on a pair, half-life.

These call statsmodels (adfuller, coint) and are meant to run on demand, not per bar; statsmodels
is imported on the first call (it takes about half a second), not with the package.

Which critical values apply: when the hedge ratio was *estimated* on the same data, the
residual spread looks more stationary than it is, and the plain ADF (Dickey-Fuller)
critical values are too lenient; the Engle-Granger test uses MacKinnon's critical values for
residuals of an estimated cointegrating regression, which are more negative. Plain ADF
applies only to a spread whose hedge ratio was fixed in advance (e.g. fitted on earlier data).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidParameter
from .hedge import ols_hedge


@functools.cache
def _stattools() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """statsmodels' (adfuller, coint); adfuller asked for tuples (statsmodels >= 0.15 warns
    unless told which return type is wanted; older versions lack the flag)."""
    from statsmodels.tsa.stattools import adfuller, coint

    if "result_object" in inspect.signature(adfuller).parameters:
        adfuller = functools.partial(adfuller, result_object=False)
    return adfuller, coint

#: Fewest observations for ADF / Engle-Granger / half-life results.
MIN_OBS_ADF = 20
MIN_OBS_HALF_LIFE = 10


@dataclass(frozen=True)
class ADFResult:
    """Augmented Dickey-Fuller test (constant, no trend). H0: a unit root (no mean reversion)."""

    stat: float
    pvalue: float
    lags: int
    n: int
    critical: dict[str, float]
    ok: bool = True
    note: str = ""

    def verdict(self, level: float = 0.05) -> str:
        return _verdict(self, level, "stationary", "{}: the spread mean-reverts", "{}: no evidence of mean reversion")


@dataclass(frozen=True)
class EngleGrangerResult:
    """Engle-Granger two-step cointegration test of x on y. H0: no cointegration.

    ``critical`` are MacKinnon's values for an estimated cointegrating vector (these apply);
    ``adf_critical`` are the plain ADF values shown for comparison (they do not apply here).
    """

    stat: float
    pvalue: float
    lags: int
    n: int
    alpha: float
    beta: float
    critical: dict[str, float]
    adf_critical: dict[str, float]
    ok: bool = True
    note: str = ""

    def verdict(self, level: float = 0.05) -> str:
        return _verdict(self, level, "cointegrated", "{} (Engle-Granger)", "{} (Engle-Granger)")


@dataclass(frozen=True)
class HalfLife:
    """Mean-reversion half-life (in bars) from the AR(1) fit s_t = c + phi * s_{t-1} + e.

    ``bars`` is inf when phi >= 1 (no mean reversion) and NaN when phi <= 0 (the spread
    flips sign every bar: an AR(1) half-life is not defined) or data is insufficient.
    """

    bars: float
    phi: float
    n: int
    ok: bool = True
    note: str = ""


def _verdict(result: ADFResult | EngleGrangerResult, level: float, what: str, yes: str, no: str) -> str:
    """Plain words for a test at ``level``: '<what> at 5% (p = ...)' or 'not <what> ...'."""
    if not result.ok:
        return result.note
    head = f"at {level:.0%} (p = {result.pvalue:.3g})"
    return yes.format(f"{what} {head}") if result.pvalue < level else no.format(f"not {what} {head}")


def _clean(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[~np.isnan(a)]


def _crit(values: dict | np.ndarray) -> dict[str, float]:
    if isinstance(values, dict):
        return {k: float(v) for k, v in values.items()}
    return {"1%": float(values[0]), "5%": float(values[1]), "10%": float(values[2])}


def _check_lags(lags: int | None) -> None:
    if lags is not None and (not isinstance(lags, int) or lags < 0):
        raise InvalidParameter(f"lags must be None (chosen by AIC) or an integer >= 0, got {lags!r}")


def adf(spread: np.ndarray, lags: int | None = None) -> ADFResult:
    """ADF on a spread (NaNs dropped). ``lags`` None: chosen by AIC up to Schwert's maximum;
    an integer: exactly that many lagged differences."""
    _check_lags(lags)
    s = _clean(spread)
    n = len(s)
    nan = math.nan
    if n < MIN_OBS_ADF:
        return ADFResult(nan, nan, 0, n, {}, ok=False, note=f"insufficient data: {n} of {MIN_OBS_ADF} points")
    if np.ptp(s) == 0:
        return ADFResult(nan, nan, 0, n, {}, ok=False, note="the spread is constant: nothing to test")
    adfuller, _ = _stattools()
    if lags is None:
        stat, p, used, nobs, crit, _ = adfuller(s, regression="c", autolag="AIC")
    else:
        stat, p, used, nobs, crit = adfuller(s, maxlag=lags, regression="c", autolag=None)
    return ADFResult(float(stat), float(p), int(used), int(nobs), _crit(crit))


def engle_granger(x: np.ndarray, y: np.ndarray, lags: int | None = None) -> EngleGrangerResult:
    """Engle-Granger test of x on y with a constant (statsmodels ``coint``). NaN pairs dropped."""
    _check_lags(lags)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    fit = ols_hedge(x, y)
    nan = math.nan
    if n < MIN_OBS_ADF or not fit.ok:
        note = f"insufficient data: {n} of {MIN_OBS_ADF} points" if n < MIN_OBS_ADF else fit.note
        return EngleGrangerResult(nan, nan, 0, n, nan, nan, {}, {}, ok=False, note=note)
    autolag = "aic" if lags is None else None
    adfuller, coint = _stattools()
    stat, p, crit = coint(x, y, trend="c", maxlag=lags, autolag=autolag)
    resid = x - (fit.alpha + fit.beta * y)
    res = adfuller(resid, maxlag=lags, regression="n", autolag="AIC" if lags is None else None)
    plain = adfuller(resid, maxlag=lags, regression="c", autolag="AIC" if lags is None else None)
    return EngleGrangerResult(
        stat=float(stat), pvalue=float(p), lags=int(res[2]), n=int(res[3]), alpha=fit.alpha, beta=fit.beta,
        critical=_crit(crit), adf_critical=_crit(plain[4]),
    )


def half_life(spread: np.ndarray) -> HalfLife:
    """Half-life of mean reversion in bars from an OLS AR(1) fit of the spread (NaNs dropped)."""
    s = _clean(spread)
    n = len(s)
    if n < MIN_OBS_HALF_LIFE:
        return HalfLife(math.nan, math.nan, n, ok=False, note=f"insufficient data: {n} of {MIN_OBS_HALF_LIFE} points")
    if np.ptp(s) == 0:
        return HalfLife(math.nan, math.nan, n, ok=False, note="the spread is constant: no half-life")
    fit = ols_hedge(s[1:], s[:-1])
    if not fit.ok:
        return HalfLife(math.nan, math.nan, n, ok=False, note=f"the spread is constant to rounding: {fit.note}")
    phi = fit.beta
    if phi >= 1:
        return HalfLife(math.inf, phi, n, note=f"no mean reversion (AR(1) coefficient {phi:.4f} >= 1)")
    if phi <= 0:
        return HalfLife(math.nan, phi, n, ok=False, note=f"AR(1) coefficient {phi:.4f} <= 0: half-life undefined")
    return HalfLife(-math.log(2) / math.log(phi), phi, n)


def ar1_rows(spreads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AR(1) coefficient with a constant (``half_life``'s fit of s_t on s_{t-1}) of each row of a
    2-d array of spreads, steps touching a NaN left out; and the steps each row used."""
    s = np.asarray(spreads, dtype=np.float64)
    s0, s1 = s[:, :-1], s[:, 1:]
    ok = ~(np.isnan(s0) | np.isnan(s1))
    steps = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d0 = np.where(ok, s0 - (np.where(ok, s0, 0).sum(axis=1) / steps)[:, None], 0)
        d1 = np.where(ok, s1 - (np.where(ok, s1, 0).sum(axis=1) / steps)[:, None], 0)
        return (d0 * d1).sum(axis=1) / (d0 * d0).sum(axis=1), steps


def half_life_rows(spreads: np.ndarray) -> np.ndarray:
    """``half_life`` of each row of a 2-d array of spreads, at array speed (``ar1_rows``): NaN
    where a row has fewer than MIN_OBS_HALF_LIFE points in consecutive steps."""
    phi, steps = ar1_rows(spreads)
    hl = half_life_of(phi)
    hl[steps < MIN_OBS_HALF_LIFE - 1] = np.nan
    return hl


def half_life_of(phi: np.ndarray) -> np.ndarray:
    """Half-lives in bars of AR(1) coefficients, element-wise, with ``half_life``'s rules: inf for
    phi >= 1 (no mean reversion), NaN for phi <= 0 or NaN."""
    phi = np.asarray(phi, dtype=np.float64)
    reverting = (phi > 0) & (phi < 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reverting, -math.log(2) / np.log(np.where(reverting, phi, 0.5)),
                        np.where(phi >= 1, np.inf, np.nan))
