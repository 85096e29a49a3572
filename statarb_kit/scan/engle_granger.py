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
  matrix product per lag and stretch of rows for all pairs: ``pair_moments``); for explicit
  series, from dot products.
- pairs tested on their own spans of rows (symbols listed and delisted at different times): every
  full-length sum of a pair is a difference of two running sums taken where its span starts and
  ends, less a few terms past its end (``pair_moments``), so staggered spans need no pair loop;
- one Cholesky factor of the largest lag order's (scaled) Gram matrix holds every smaller order
  (the leading block of a Cholesky factor factors the leading block), so the residual sum of
  squares of every order, hence every AIC, comes from one triangular solve;
- the chosen order's own sample differs from the search sample only by a few head rows, added
  to the Gram matrix as outer products.
Tests check statistic (relative difference <= 1e-8), lag and p-value against statsmodels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

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
    nobs = (np.zeros(len(s.fd)) + (s.n - 1 - p))[:, None]  # n: one length, or one per series
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
    nf = s.n - 1 - best  # (s.n per series, or one for all)
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

#: Leg combinations of a pair's cross-products, in order: (x, x), (x, y), (y, x), (y, y).
_COMBOS = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclass(frozen=True, eq=False)
class PairMoments:
    """What Engle-Granger needs of a block of pairs, each over its own span of rows (legs x, y;
    combos ``_COMBOS``; c = level less its mean over the pair's span, d its differences):

    ``n`` rows and ``p`` maximum lag per pair; ``mean`` (m, 2) levels' means; ``cc`` / ``cc2``
    (m, 4): sum of c_u c_v over the span / without its last row; ``cd`` (m, P+1, 4):
    sum_{t<n-1-k} d_u[t] d_v[t+k]; ``cl`` (m, P+1, 4): sum_{t<n-1-j} c_u[t+j] d_v[t];
    ``head_c``, ``head_d`` (m, 2P+2, 2): c and d from the span's start; ``tail_d`` (m, 2P+2, 2):
    the last 2P+2 differences; ``last_c`` (m, 2): c of the last row. A unit of Dask work.
    """

    n: np.ndarray
    p: np.ndarray
    mean: np.ndarray
    cc: np.ndarray
    cc2: np.ndarray
    cd: np.ndarray
    cl: np.ndarray
    head_c: np.ndarray
    head_d: np.ndarray
    tail_d: np.ndarray
    last_c: np.ndarray

    def __len__(self) -> int:
        return len(self.n)

    def take(self, idx: np.ndarray | slice) -> PairMoments:
        """The pairs ``idx`` (a slice or index array)."""
        return PairMoments(*(getattr(self, f.name)[idx] for f in fields(self)))

    def swapped(self) -> PairMoments:
        """The same pairs with x and y exchanged (y on x)."""
        combos = [3, 2, 1, 0]
        return PairMoments(self.n, self.p, self.mean[:, ::-1], self.cc[:, combos], self.cc2[:, combos],
                           self.cd[:, :, combos], self.cl[:, :, combos], self.head_c[:, :, ::-1],
                           self.head_d[:, :, ::-1], self.tail_d[:, :, ::-1], self.last_c[:, ::-1])


def pair_moments(levels: np.ndarray, xi: np.ndarray, yi: np.ndarray, start: np.ndarray, end: np.ndarray,
                 maxlag: int | None = None, chunk: int = 4_096) -> PairMoments:
    """Moments of the pairs (xi[k], yi[k]) of ``levels`` (n x N, NaN where a symbol has no close),
    each over its rows ``start[k]:end[k]``, where both legs must have a close on every row.
    ``maxlag``: every pair's maximum lag (None: statsmodels' default for the pair's own length).

    Running sums of the cross-products over the rows, taken at each pair's start and end (one
    matrix product per lag and stretch between consecutive starts and ends): each full-length
    sum of a pair is their difference, less the terms that reach past its end."""
    x = np.asarray(levels, dtype=np.float64)
    n_rows, n_sym = x.shape
    xi, yi = np.asarray(xi, dtype=np.intp), np.asarray(yi, dtype=np.intp)
    start, end = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    n = end - start
    if len(n) and n.min() < 4:
        raise ValueError("every pair needs at least 4 rows")
    p = (np.array([default_maxlag(int(k), "n") for k in n], dtype=np.int64) if maxlag is None
         else np.full(len(n), maxlag, dtype=np.int64))
    big = int(p.max()) if len(p) else 0
    f = big + 1  # rows of zeros before row 0 (and after the last): windows never leave the arrays
    valid = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        shift = np.nan_to_num(np.nanmean(np.where(valid, x, np.nan), axis=0)) if n_rows else np.zeros(n_sym)
    xs = np.zeros((n_rows + 2 * f, n_sym))
    xs[f : f + n_rows] = np.where(valid, x - shift, 0.0)
    ds = np.zeros_like(xs)
    ds[f : f + n_rows - 1] = np.where(valid[1:] & valid[:-1], xs[f + 1 : f + n_rows] - xs[f : f + n_rows - 1], 0.0)
    del valid
    m = len(n)
    cd, cl = np.zeros((m, big + 1, 4)), np.zeros((m, big + 1, 4))
    sxx, sx, sd = np.zeros((m, 4)), np.zeros((m, 2)), np.zeros((m, 2))
    legs = np.stack([xi, yi], axis=1)
    run_cd, run_cl = np.zeros((big + 1, n_sym, n_sym)), np.zeros((big + 1, n_sym, n_sym))
    run_xx, run_x, run_d = np.zeros((n_sym, n_sym)), np.zeros(n_sym), np.zeros(n_sym)

    def at(mat: np.ndarray, sel: np.ndarray) -> np.ndarray:  # (..., N, N) -> (pairs, ..., 4)
        return np.stack([np.moveaxis(mat[..., legs[sel, a], legs[sel, b]], -1, 0) for a, b in _COMBOS], axis=-1)

    pos = 0
    for t in np.unique(np.concatenate([start, end - 1, end])):
        if t > pos:
            lo, hi = f + pos, f + int(t)
            dseg = ds[lo:hi]
            for k in range(big + 1):
                run_cd[k] += dseg.T @ ds[lo + k : hi + k]
                run_cl[k] += xs[lo + k : hi + k].T @ dseg
            run_xx += xs[lo:hi].T @ xs[lo:hi]
            run_x += xs[lo:hi].sum(axis=0)
            run_d += dseg.sum(axis=0)
            pos = int(t)
        for sel, sign, levels_too, diffs in ((start == t, -1.0, True, True), (end - 1 == t, 1.0, False, True),
                                             (end == t, 1.0, True, False)):
            sel = np.flatnonzero(sel)
            if not len(sel):
                continue
            if diffs:
                cd[sel] += sign * at(run_cd, sel)
                cl[sel] += sign * at(run_cl, sel)
                sd[sel] += sign * run_d[legs[sel]]
            if levels_too:
                sxx[sel] += sign * at(run_xx, sel)
                sx[sel] += sign * run_x[legs[sel]]
    del run_cd, run_cl
    h = 2 * big + 2
    mean = sx / n[:, None]
    cc = sxx - n[:, None] * np.stack([mean[:, a] * mean[:, b] for a, b in _COMBOS], axis=1)
    head_c, head_d, tail_d, last_c = (np.zeros((m, h, 2)), np.zeros((m, h, 2)), np.zeros((m, h, 2)),
                                      np.zeros((m, 2)))
    for lo in range(0, m, chunk):  # the terms past each end, and the windows, a chunk of pairs at a time
        sl = slice(lo, min(m, lo + chunk))
        lg, s0, e1 = legs[sl], start[sl], end[sl] - 1
        around = f + e1[:, None] + np.arange(-big, big)[None, :]  # rows e-1-P .. e-2+P
        wd = ds[around[:, :, None], lg[:, None, :]]  # (pairs, 2P, 2)
        wx = xs[around[:, :, None], lg[:, None, :]]
        for k in range(1, big + 1):
            for c, (a, b) in enumerate(_COMBOS):
                cd[sl, k, c] -= np.einsum("ij,ij->i", wd[:, big - k : big, a], wd[:, big : big + k, b])
                cl[sl, k, c] -= np.einsum("ij,ij->i", wx[:, big : big + k, a], wd[:, big - k : big, b])
        # cl centred: less mean_u * sum of d_v over t < n-1-j
        d_left = sd[sl][:, None, :] - np.concatenate([np.zeros((len(lg), 1, 2)),
                                                      np.cumsum(wd[:, big - 1 :: -1, :], axis=1)[:, : big, :]], axis=1)
        for c, (a, b) in enumerate(_COMBOS):
            cl[sl, :, c] -= mean[sl, a][:, None] * d_left[:, :, b]
        rows = f + s0[:, None] + np.arange(h)[None, :]
        head_c[sl] = xs[rows[:, :, None], lg[:, None, :]] - mean[sl][:, None, :]
        head_d[sl] = ds[rows[:, :, None], lg[:, None, :]]
        tail = f + e1[:, None] - h + np.arange(h)[None, :]
        tail_d[sl] = ds[tail[:, :, None], lg[:, None, :]]
        last_c[sl] = xs[f + e1[:, None], lg] - mean[sl]
    cc2 = cc - np.stack([last_c[:, a] * last_c[:, b] for a, b in _COMBOS], axis=1)
    return PairMoments(n, p, mean + shift[legs], cc, cc2, cd, cl, head_c, head_d, tail_d, last_c)


@dataclass(frozen=True, eq=False)
class CointBatch:
    """Engle-Granger of x on y (with a constant) for a block of pairs: the OLS hedge (alpha,
    beta, R²), the ADF of its residual (NaN where its regression is singular: ``singular``),
    the residual's AR(1) coefficient ``phi`` and the correlation of the legs' differences."""

    alpha: np.ndarray
    beta: np.ndarray
    r2: np.ndarray
    resid_ssr: np.ndarray
    adf: ADFBatch
    phi: np.ndarray
    corr: np.ndarray
    singular: np.ndarray


def adf_or_nan(s: Sums, p: int, const: bool = False) -> tuple[ADFBatch, np.ndarray]:
    """adf_batch; a series whose regression is singular (a constant spread, exact twins) gets NaN
    (and True in the mask) instead of failing the whole batch."""
    try:
        return adf_batch(s, p, const), np.zeros(len(s.fd), dtype=bool)
    except np.linalg.LinAlgError:
        pass
    parts, bad = [], np.zeros(len(s.fd), dtype=bool)
    for i in range(len(s.fd)):
        one = Sums(*(v[i : i + 1] if isinstance(v, np.ndarray) and v.ndim else v for v in
                     (getattr(s, f.name) for f in fields(s))))
        try:
            parts.append(adf_batch(one, p, const))
        except np.linalg.LinAlgError:
            bad[i] = True
            parts.append(ADFBatch(np.array([np.nan]), np.array([0]), np.array([0]), np.array([np.nan])))
    return ADFBatch(*(np.concatenate([getattr(a, f.name) for a in parts]) for f in fields(ADFBatch))), bad


def coint_moments(mo: PairMoments) -> CointBatch:
    """Engle-Granger of x on y for each pair of ``mo``, as ``statsmodels.tsa.stattools.coint(x, y,
    trend="c", autolag="aic", maxlag=p)`` on the pair's own rows. A pair whose R² reaches
    statsmodels' collinearity guard gets a statistic of -inf (lags 0), as statsmodels does."""
    n = mo.n
    sxx, sxy, syy = mo.cc[:, 0], mo.cc[:, 1], mo.cc[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        b = sxy / syy
    alpha = mo.mean[:, 0] - b * mo.mean[:, 1]
    ssr = np.maximum(sxx - b * sxy, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - ssr / sxx

    def combine(a: np.ndarray) -> np.ndarray:  # sum of (u_x - b u_y)(v_x - b v_y) from the four combos
        bb = b.reshape((-1,) + (1,) * (a.ndim - 2))
        return a[..., 0] - bb * (a[..., 1] + a[..., 2]) + bb * bb * a[..., 3]

    def leg(a: np.ndarray) -> np.ndarray:  # x - b y of a (pairs, rows, 2) window
        return a[:, :, 0] - b[:, None] * a[:, :, 1]

    fd, fl, fll = combine(mo.cd), combine(mo.cl), combine(mo.cc2)
    e_head, d_head, d_tail = leg(mo.head_c), leg(mo.head_d), leg(mo.tail_d)
    e_last = mo.last_c[:, 0] - b * mo.last_c[:, 1]
    sd = (mo.last_c[:, 0] - mo.head_c[:, 0, 0]) - b * (mo.last_c[:, 1] - mo.head_c[:, 0, 1])
    collinear = r2 >= 1 - 100 * SQRTEPS
    stat, lags, nobs, gamma = (np.full(len(n), -np.inf), np.zeros(len(n), dtype=np.int64), n - 1,
                               np.full(len(n), np.nan))
    singular = np.zeros(len(n), dtype=bool)
    for p in np.unique(mo.p[~collinear]):
        idx = np.flatnonzero((mo.p == p) & ~collinear)
        h = 2 * int(p) + 2
        s = Sums(n[idx], fd[idx, : p + 1], fl[idx, : p + 1], fll[idx], sd[idx], -e_last[idx], e_head[idx, :h],
                 d_head[idx, :h], d_tail[idx, d_tail.shape[1] - h :])
        adf, bad = adf_or_nan(s, int(p))
        stat[idx], lags[idx], nobs[idx], gamma[idx], singular[idx] = adf.stat, adf.lags, adf.nobs, adf.gamma, bad
    # AR(1) of the residual with a constant (as analytics.half_life)
    m = n - 1
    s01 = fll + fl[:, 0]  # sum e_t e_{t+1} = sum e_t^2 + sum e_t d_t over t <= n-2
    mean0, mean1 = -e_last / m, -e_head[:, 0] / m  # the residuals sum to 0 over all n
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = (s01 - m * mean0 * mean1) / (fll - m * mean0 * mean0)
        dx, dy = mo.last_c[:, 0] - mo.head_c[:, 0, 0], mo.last_c[:, 1] - mo.head_c[:, 0, 1]  # sums of differences
        cov = mo.cd[:, 0, 1] - dx * dy / m
        corr = cov / np.sqrt((mo.cd[:, 0, 0] - dx * dx / m) * (mo.cd[:, 0, 3] - dy * dy / m))
    return CointBatch(alpha, b, r2, ssr, ADFBatch(stat, lags, nobs, gamma), phi, corr, singular)
