"""Engle-Granger and ADF tests of many series at once, equal to statsmodels' ``coint`` / ``adfuller``.

statsmodels' ``coint(x, y, trend="c", autolag="aic")`` regresses x on [y, 1] (OLS), then runs
``adfuller(resid, regression="n", autolag="aic")``: for each lag order L = 0..maxlag it regresses
d_t = e_{t+1} - e_t on [e_t, d_{t-1}, ..., d_{t-L}] over the common sample t = maxlag..n-2, picks the
order of least AIC, reruns that order on its own longer sample t = L..n-2 and reports the t-ratio
of the coefficient on e_t. ``adfuller(..., regression="c")`` adds a constant first.

Done here for many series without a regression per series and lag:
- every regression needs only sums of products: sum d_{t-i} d_{t-j}, sum e_t d_{t-j}, sum e_t^2 (and
  sums of d and e with a constant) over a contiguous sample; each is a full-length sum of one
  lag's products minus a few terms at the head and the tail (``Sums``). For pair residuals
  e = x - alpha - beta y the full-length sums come from per-symbol cross-products (one BLAS
  matrix product per lag for all pairs: ``pair_sums``); for explicit series, from dot products.
- one Cholesky factor of the largest lag order's (scaled) Gram matrix holds every smaller order
  (the leading block of a Cholesky factor factors the leading block), so the residual sum of
  squares of every order, hence every AIC, comes from one triangular solve;
- the chosen order's own sample differs from the search sample only by a few head rows, added
  to the Gram matrix as outer products.
Tests check statistic (relative difference <= 1e-8), lag and p-value against statsmodels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: statsmodels' collinearity guard in ``coint``: R² at or above this gives a statistic of -inf.
SQRTEPS = math.sqrt(np.finfo(np.float64).eps)


def default_maxlag(n: int, regression: str = "n") -> int:
    """adfuller's default maximum lag for a series of ``n`` points (Schwert's rule, capped)."""
    ntrend = 0 if regression == "n" else len(regression)
    return min(n // 2 - ntrend - 1, int(math.ceil(12.0 * (n / 100.0) ** 0.25)))


@dataclass
class Sums:
    """Per series (first axis), what an ADF regression on series e (differences d) needs.

    ``fd[:, k]`` = sum_{u=0}^{n-2-k} d_u d_{u+k}; ``fl[:, j]`` = sum_{u=0}^{n-2-j} e_{u+j} d_u;
    ``fll`` = sum_{t=0}^{n-2} e_t^2; ``sd`` = sum of all d, ``se`` = sum_{t=0}^{n-2} e_t;
    ``head_e`` / ``head_d``: e_0.., d_0.. (2p + 2 values); ``tail_d``: the last 2p + 2 values of d.
    """

    n: int
    fd: np.ndarray
    fl: np.ndarray
    fll: np.ndarray
    sd: np.ndarray
    se: np.ndarray
    head_e: np.ndarray
    head_d: np.ndarray
    tail_d: np.ndarray


def series_sums(e: np.ndarray, p: int) -> Sums:
    """Sums of explicit series ``e`` (one per row, no NaN), for ADF regressions up to lag ``p``."""
    e = np.atleast_2d(np.asarray(e, dtype=np.float64))
    n = e.shape[1]
    d = np.diff(e, axis=1)
    fd = np.stack([np.einsum("ij,ij->i", d[:, : n - 1 - k], d[:, k:]) for k in range(p + 1)], axis=1)
    fl = np.stack([np.einsum("ij,ij->i", e[:, j : n - 1], d[:, : n - 1 - j]) for j in range(p + 1)], axis=1)
    h = 2 * p + 2
    return Sums(n, fd, fl, np.einsum("ij,ij->i", e[:, : n - 1], e[:, : n - 1]), d.sum(axis=1), e[:, : n - 1].sum(axis=1),
                e[:, :h].copy(), d[:, :h].copy(), d[:, -h:].copy())


def _gram(s: Sums, p: int, t0: int, const: bool) -> np.ndarray:
    """Gram matrix over the sample t = t0..n-2 (t0 >= p) of [1?, e_t, d_{t-1}, ..., d_{t-p}, d_t]
    per series: full-length sums less their head and tail terms."""
    m = s.n - 1 - t0
    P = len(s.fd)
    lags = [*range(1, p + 1), 0]  # the d columns: lags 1..p, then the target (lag 0)
    off = 2 if const else 1
    k = off + len(lags)
    g = np.empty((P, k, k))
    hd, he, td = s.head_d, s.head_e, s.tail_d
    for a, i in enumerate(lags):
        for b, j in enumerate(lags):
            if b < a:
                continue
            mx, lag = max(i, j), abs(i - j)
            head = t0 - mx  # u < head are outside the sample
            tail = mx - lag  # the last `tail` terms of u = 0..n-2-lag are outside
            v = s.fd[:, lag] - np.einsum("ij,ij->i", hd[:, :head], hd[:, lag : lag + head])
            if tail:
                v = v - np.einsum("ij,ij->i", td[:, -tail - lag : td.shape[1] - lag], td[:, -tail:]) if lag \
                    else v - np.einsum("ij,ij->i", td[:, -tail:], td[:, -tail:])
            g[:, off + a, off + b] = g[:, off + b, off + a] = v
        head = t0 - i  # sum_t e_t d_{t-i}: u = t - i from t0 - i
        v = s.fl[:, i] - np.einsum("ij,ij->i", he[:, i : i + head], hd[:, :head])
        g[:, off - 1, off + a] = g[:, off + a, off - 1] = v
    g[:, off - 1, off - 1] = s.fll - np.einsum("ij,ij->i", he[:, :t0], he[:, :t0])
    if const:
        g[:, 0, 0] = m
        g[:, 0, 1] = g[:, 1, 0] = s.se - he[:, :t0].sum(axis=1)
        for a, i in enumerate(lags):  # sum_t d_{t-i} over t = t0..n-2
            v = s.sd - hd[:, : t0 - i].sum(axis=1) - (td[:, td.shape[1] - i :].sum(axis=1) if i else 0.0)
            g[:, 0, 2 + a] = g[:, 2 + a, 0] = v
    return g


def _head_rows(s: Sums, p: int, const: bool) -> np.ndarray:
    """Design rows t = 0..p-1 ([1?, e_t, d_{t-1..t-p}, d_t]; lags before the start are 0)."""
    P = len(s.fd)
    off = 2 if const else 1
    z = np.zeros((P, p, off + p + 1))
    if const:
        z[:, :, 0] = 1.0
    z[:, :, off - 1] = s.head_e[:, :p]
    for t in range(p):
        for j in range(1, t + 1):
            z[:, t, off + j - 1] = s.head_d[:, t - j]
        z[:, t, off + p] = s.head_d[:, t]
    return z


@dataclass(frozen=True, eq=False)
class ADFBatch:
    """Per series: t-ratio of the level coefficient, lags chosen, observations of the final
    regression, and its coefficient on the level (phi - 1)."""

    stat: np.ndarray
    lags: np.ndarray
    nobs: np.ndarray
    gamma: np.ndarray


def adf_batch(s: Sums, maxlag: int, const: bool = False) -> ADFBatch:
    """ADF regressions with AIC lag choice over 0..maxlag, as statsmodels' ``adfuller(x, maxlag,
    regression="c" if const else "n", autolag="aic")`` on each series of ``s``."""
    p = maxlag
    off = 2 if const else 1
    k = off + p  # regressors of the largest order
    g = _gram(s, p, p, const)
    nobs = s.n - 1 - p
    r, gy, yy = g[:, :k, :k], g[:, :k, k], g[:, k, k]
    scale = np.sqrt(np.diagonal(r, axis1=1, axis2=2))
    scale = np.where(scale > 0, scale, 1.0)
    rs = r / scale[:, :, None] / scale[:, None, :]
    chol = np.linalg.cholesky(rs)
    w = np.linalg.solve(chol, (gy / scale)[:, :, None])[:, :, 0]
    ssr = yy[:, None] - np.cumsum(w * w, axis=1)[:, off - 1 :]  # orders L = 0..p
    with np.errstate(divide="ignore", invalid="ignore"):
        aic = nobs * np.log(ssr / nobs) + 2.0 * (off + np.arange(p + 1))
    best = np.argmin(np.where(np.isfinite(aic), aic, np.inf), axis=1)
    # the chosen order on its own sample t = L..n-2: the search sample plus head rows t = L..p-1
    z = _head_rows(s, p, const)
    keep = np.arange(p)[None, :] >= best[:, None]
    z = z * keep[:, :, None]
    gf = g + np.einsum("pti,ptj->pij", z, z)
    nf = s.n - 1 - best
    r, gy, yy = gf[:, :k, :k], gf[:, :k, k], gf[:, k, k]
    scale = np.sqrt(np.diagonal(r, axis1=1, axis2=2))
    scale = np.where(scale > 0, scale, 1.0)
    used = np.arange(k)[None, :] < (off + best)[:, None]  # regressors of the chosen order
    rs = r / scale[:, :, None] / scale[:, None, :]
    rs = np.where(used[:, :, None] & used[:, None, :], rs, np.eye(k))  # unused columns: identity
    chol = np.linalg.cholesky(rs)
    inv = np.linalg.inv(chol)
    w = np.einsum("pij,pj->pi", inv, np.where(used, gy / scale, 0.0))
    v = inv[:, :, off - 1] * used  # row of L^-1 for the level coefficient, leading block only
    coef = np.einsum("pi,pi->p", v, w)  # scaled coefficient on e_t
    q = np.einsum("pi,pi->p", v, v)
    ssr = yy - np.einsum("pi,pi->p", w * used, w)
    s2 = ssr / (nf - (off + best))
    stat = coef / np.sqrt(s2 * q)
    return ADFBatch(stat, best, nf, coef / scale[:, off - 1])


@dataclass(frozen=True, eq=False)
class Panel:
    """Per-symbol cross-products from which every pair's regressions follow (built once,
    shared by all blocks of pairs: what a Dask client scatters).

    ``c``: levels less their means (n x N); ``cd[k]`` = D[:n-1-k]' D[k:] and ``cl[j]`` =
    C[j:n-1]' D[:n-1-j] (N x N each, D the differences), ``cc`` = C' C, ``cc2`` = C[:n-1]' C[:n-1].
    """

    n: int
    p: int
    mean: np.ndarray
    c: np.ndarray
    d: np.ndarray
    cd: np.ndarray
    cl: np.ndarray
    cc: np.ndarray
    cc2: np.ndarray

    @classmethod
    def of(cls, levels: np.ndarray, maxlag: int | None = None) -> Panel:
        """``levels`` (n x N, no NaN: e.g. log closes) of N symbols on common times."""
        x = np.asarray(levels, dtype=np.float64)
        n = x.shape[0]
        p = default_maxlag(n, "n") if maxlag is None else maxlag
        mean = x.mean(axis=0)
        c = x - mean
        d = np.diff(x, axis=0)
        cd = np.stack([d[: n - 1 - k].T @ d[k:] for k in range(p + 1)])
        cl = np.stack([c[j : n - 1].T @ d[: n - 1 - j] for j in range(p + 1)])
        cc = c.T @ c
        cc2 = cc - np.outer(c[-1], c[-1])
        return cls(n, p, mean, c, d, cd, cl, cc, cc2)


@dataclass(frozen=True, eq=False)
class CointBatch:
    """Engle-Granger of x on y (with a constant) for pairs given by column indices: the OLS hedge
    (alpha, beta, R²), the ADF of its residual, and the residual's AR(1) coefficient ``phi``."""

    alpha: np.ndarray
    beta: np.ndarray
    r2: np.ndarray
    resid_ssr: np.ndarray
    adf: ADFBatch
    phi: np.ndarray


def coint_batch(panel: Panel, xi: np.ndarray, yi: np.ndarray) -> CointBatch:
    """Engle-Granger statistics of symbols ``xi`` on ``yi`` (arrays of column indices), as
    ``statsmodels.tsa.stattools.coint(x, y, trend="c", autolag="aic", maxlag=panel.p)``. A pair
    whose R² reaches statsmodels' collinearity guard gets a statistic of -inf (lags 0)."""
    xi, yi = np.asarray(xi), np.asarray(yi)
    n, p = panel.n, panel.p
    sxx, syy, sxy = panel.cc[xi, xi], panel.cc[yi, yi], panel.cc[xi, yi]
    b = sxy / syy
    alpha = panel.mean[xi] - b * panel.mean[yi]
    ssr = np.maximum(sxx - b * sxy, 0.0)
    r2 = 1.0 - ssr / sxx
    b1, b2 = b[:, None], (b * b)[:, None]

    def combine(m: np.ndarray) -> np.ndarray:  # sum over a product of (u_x - b u_y)(v_x - b v_y)
        return m[:, xi, xi].T - b1 * (m[:, xi, yi].T + m[:, yi, xi].T) + b2 * m[:, yi, yi].T

    h = 2 * p + 2
    c, d = panel.c, panel.d
    e_head = c[:h, xi].T - b1 * c[:h, yi].T
    e_last = c[n - 1, xi] - b * c[n - 1, yi]
    sums = Sums(n, combine(panel.cd), combine(panel.cl),
                panel.cc2[xi, xi] - 2 * b * panel.cc2[xi, yi] + b * b * panel.cc2[yi, yi],
                (c[n - 1, xi] - c[0, xi]) - b * (c[n - 1, yi] - c[0, yi]), -e_last,
                e_head, d[:h, xi].T - b1 * d[:h, yi].T, d[-h:, xi].T - b1 * d[-h:, yi].T)
    adf = adf_batch(sums, p, const=False)
    collinear = r2 >= 1 - 100 * SQRTEPS
    if collinear.any():
        adf = ADFBatch(np.where(collinear, -np.inf, adf.stat), np.where(collinear, 0, adf.lags), adf.nobs, adf.gamma)
    # AR(1) of the residual with a constant (as analytics.half_life): s1 = e_1.., s0 = e_0..e_{n-2}
    m = n - 1
    s01 = sums.fll + sums.fl[:, 0]  # sum e_t e_{t+1} = sum e_t^2 + sum e_t d_t over t <= n-2
    mean0, mean1 = -e_last / m, -e_head[:, 0] / m  # the residuals sum to 0 over all n
    phi = (s01 - m * mean0 * mean1) / (sums.fll - m * mean0 * mean0)
    return CointBatch(alpha, b, r2, ssr, adf, phi)
