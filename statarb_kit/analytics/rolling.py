"""O(n) rolling-window moments over float arrays (no pandas).

Every function returns an array as long as its input whose element ``i`` describes the window
``a[i-w+1 : i+1]`` (ending at and including ``i``); it is NaN until the window is full and
wherever the window holds a NaN. Window sums come from cumulative sums taken block by block
(``BLOCK`` windows at a time), each block's data centred on the first value it reads: this
keeps them within ~1e-12 relative of a direct two-pass computation however long the series,
and makes element ``i`` depend on ``a[:i+1]`` only, bit for bit (no look-ahead, even in
rounding). A window whose values are all equal reports variance exactly 0, at any level
(``constant_windows``: an exact test, not a tolerance that fails near zero).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameter

#: Windows per block of cumulative sums (bounds how far rounding error can accumulate).
BLOCK = 2048


def check_window(w: int, name: str = "window") -> int:
    if not isinstance(w, (int, np.integer)) or isinstance(w, bool) or w < 2:
        raise InvalidParameter(f"{name} must be an integer >= 2 bars, got {w!r}")
    return int(w)


def _centred_sums(x: np.ndarray, y: np.ndarray | None, w: int) -> dict[str, np.ndarray]:
    """Window sums of d, d² (and of e, e², d·e for ``y``) where d, e are the data less a
    per-block anchor (the block's first valid value), and 0 at NaN rows; ``ax`` / ``ay`` hold
    each window's anchor. NaN before the first full window."""
    n = len(x)
    ok = ~np.isnan(x) if y is None else ~(np.isnan(x) | np.isnan(y))
    keys = ("sx", "sxx", "ax") if y is None else ("sx", "sxx", "ax", "sy", "syy", "sxy", "ay")
    out = {k: np.full(n, np.nan) for k in keys}
    for start in range(w - 1, n, BLOCK):
        end = min(n, start + BLOCK)
        lo = start - w + 1
        valid = ok[lo:end]
        first = int(np.argmax(valid)) if valid.any() else 0
        anchor_x = x[lo + first] if valid.any() else 0.0
        dx = np.where(valid, x[lo:end] - anchor_x, 0.0)
        cols = {"sx": dx, "sxx": dx * dx}
        out["ax"][start:end] = anchor_x
        if y is not None:
            anchor_y = y[lo + first] if valid.any() else 0.0
            dy = np.where(valid, y[lo:end] - anchor_y, 0.0)
            cols.update(sy=dy, syy=dy * dy, sxy=dx * dy)
            out["ay"][start:end] = anchor_y
        for k, v in cols.items():
            c = np.concatenate(([0.0], np.cumsum(v)))
            out[k][start:end] = c[w:] - c[:-w]
    return out


def _nan_windows(*arrays: np.ndarray, w: int) -> np.ndarray:
    """True where the window ending at ``i`` is not full or holds a NaN in any array."""
    bad = np.zeros(len(arrays[0]))
    for a in arrays:
        bad += np.isnan(a)
    c = np.concatenate(([0.0], np.cumsum(bad)))
    out = np.ones(len(bad), dtype=bool)
    if len(bad) >= w:
        out[w - 1 :] = (c[w:] - c[:-w]) > 0
    return out


def constant_windows(a: np.ndarray, w: int) -> np.ndarray:
    """True where the window of ``w`` values ending at ``i`` holds one repeated value, judged
    exactly (no value differs from its neighbour), whatever the level: a window of zeros is as
    constant as one of 1e6. False before the first full window; a NaN never equals anything."""
    a = np.asarray(a, dtype=np.float64)
    out = np.zeros(len(a), dtype=bool)
    if len(a) >= w:
        changes = np.concatenate(([0], np.cumsum(a[1:] != a[:-1])))  # changes up to each position
        out[w - 1 :] = changes[w - 1 :] == changes[: len(a) - w + 1]
    return out


def rolling_mean_var(a: np.ndarray, w: int, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and variance (``ddof`` 1: sample variance) of windows of ``w``."""
    w = check_window(w)
    a = np.asarray(a, dtype=np.float64)
    bad = _nan_windows(a, w=w)
    m = _centred_sums(a, None, w)
    mean = m["sx"] / w
    var = np.maximum(m["sxx"] - m["sx"] * mean, 0.0) / (w - ddof)
    mean += m["ax"]
    var[constant_windows(a, w)] = 0.0  # rounding must not make a constant window vary
    mean[bad], var[bad] = np.nan, np.nan
    return mean, var


def rolling_cov(x: np.ndarray, y: np.ndarray, w: int, ddof: int = 1) -> dict[str, np.ndarray]:
    """Rolling means, variances and covariance of two aligned arrays: keys mx, my, vx, vy, cxy."""
    w = check_window(w)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    bad = _nan_windows(x, y, w=w)
    m = _centred_sums(x, y, w)
    k = w - ddof
    out = {
        "mx": m["sx"] / w + m["ax"],
        "my": m["sy"] / w + m["ay"],
        "vx": np.maximum(m["sxx"] - m["sx"] * m["sx"] / w, 0.0) / k,
        "vy": np.maximum(m["syy"] - m["sy"] * m["sy"] / w, 0.0) / k,
        "cxy": (m["sxy"] - m["sx"] * m["sy"] / w) / k,
    }
    out["vx"][constant_windows(x, w)] = 0.0
    out["vy"][constant_windows(y, w)] = 0.0
    for v in out.values():
        v[bad] = np.nan
    return out
