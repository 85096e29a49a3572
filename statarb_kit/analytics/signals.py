"""Spread, rolling z-score and rolling correlation of an aligned pair, and the whole pair frame.

All outputs at bar t use only bars <= t (the hedge ratio only bars < t). Windows are in bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ..errors import InvalidParameter
from .hedge import HEDGE_MODES, KalmanParams, KalmanState, hedge_path
from .rolling import check_window, rolling_cov, rolling_mean_var

#: Bit flags of the pair frame's ``flags`` column.
FLAG_FILLED_X = 1  # price_x carried forward from an earlier bar (x did not trade in this bar)
FLAG_FILLED_Y = 2
FLAG_WARMUP_HEDGE = 4  # no hedge ratio yet: fewer bars than the hedge window
FLAG_WARMUP_Z = 8  # z window not full of spreads yet
FLAG_WARMUP_CORR = 16  # correlation window not full yet
FLAG_DEGENERATE = 32  # z or corr undefined although the window is full (zero variance)

#: A spread std below this fraction of the price level of x counts as zero (a perfect fit
#: leaves rounding noise, not a signal).
REL_STD_FLOOR = 1e-10


@dataclass(frozen=True)
class PairParams:
    """Parameters of the pair analytics. Windows in bars.

    ``z_include_current``: whether bar t belongs to its own z window (default False: z at t
    compares the spread at t with the previous ``z_window`` spreads). ``corr_of``: "returns"
    (log returns, the default) or "levels" (price levels: spurious for trending series, offered
    only for comparison). ``max_stale``: bars a price may be carried forward when its symbol
    did not trade; older, the row is dropped. ``price``: "last" (each bar's last trade) or "mid"
    (the quote mid in force at each bar's close: no bid-ask bounce; a live view needs its
    session's quotes, and a bar without a quote counts as one without a trade).
    """

    hedge_mode: Literal["rolling", "fixed", "kalman"] = "rolling"
    hedge_window: int = 120
    z_window: int = 60
    corr_window: int = 60
    z_include_current: bool = False
    corr_of: Literal["returns", "levels"] = "returns"
    log_prices: bool = False
    max_stale: int = 3
    kalman: KalmanParams = field(default_factory=KalmanParams)
    price: Literal["last", "mid"] = "last"

    def __post_init__(self) -> None:
        check_window(self.hedge_window, "hedge_window")
        check_window(self.z_window, "z_window")
        check_window(self.corr_window, "corr_window")
        if self.hedge_mode not in HEDGE_MODES:
            raise InvalidParameter(f"hedge_mode must be one of {HEDGE_MODES}, got {self.hedge_mode!r}")
        if self.corr_of not in ("returns", "levels"):
            raise InvalidParameter(f"corr_of must be 'returns' or 'levels', got {self.corr_of!r}")
        if not isinstance(self.max_stale, int) or self.max_stale < 0:
            raise InvalidParameter(f"max_stale must be an integer >= 0, got {self.max_stale!r}")
        if self.price not in ("last", "mid"):
            raise InvalidParameter(f"price must be 'last' or 'mid', got {self.price!r}")

    def with_(self, **changes: object) -> PairParams:
        """A copy with some parameters changed (validated)."""
        return replace(self, **changes)

    @property
    def warmup(self) -> int:
        """Rows before the first z-score: the row index of the first z (see ``rows_for_z``)."""
        return self.hedge_window + self.z_window - (1 if self.z_include_current else 0)

    @property
    def rows_for_spread(self) -> int:
        """Rows needed for the first spread (its hedge ratio uses the ``hedge_window`` rows before)."""
        return self.hedge_window + 1

    @property
    def rows_for_z(self) -> int:
        """Rows needed for the first z-score (181 for hedge 120 / z 60, bar t outside its window)."""
        return self.warmup + 1

    @property
    def rows_for_corr(self) -> int:
        """Rows needed for the first correlation (returns need one row more than their window)."""
        return self.corr_window + (1 if self.corr_of == "returns" else 0)

    @property
    def history(self) -> int:
        """Bars of history an incremental update of one new bar needs (rolling mode)."""
        return max(self.hedge_window + self.z_window + 1, self.corr_window + 1)


def rolling_zscore(spread: np.ndarray, w: int, include_current: bool = False,
                   min_std: float | np.ndarray = 0.0) -> np.ndarray:
    """(s_t - mean) / std (ddof 1) over a window of ``w`` spreads: t-w..t-1 by default, or
    t-w+1..t with ``include_current``. NaN until the window is full, where it holds a NaN,
    and where std <= ``min_std`` (a number, or one per bar; 0 by default: only an exactly
    constant window)."""
    w = check_window(w, "z window")
    s = np.asarray(spread, dtype=np.float64)
    mean, var = rolling_mean_var(s, w)
    if not include_current:
        mean = np.concatenate(([np.nan], mean[:-1]))
        var = np.concatenate(([np.nan], var[:-1]))
    std = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > min_std, (s - mean) / std, np.nan)


def log_returns(p: np.ndarray) -> np.ndarray:
    """log(p_t / p_{t-1}); NaN at the first bar."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(len(p), np.nan)
    out[1:] = np.diff(np.log(p))
    return out


def rolling_corr(a: np.ndarray, b: np.ndarray, w: int) -> np.ndarray:
    """Pearson correlation over windows of ``w`` ending at each bar; NaN where not full,
    where a NaN is inside, or where either side is constant."""
    m = rolling_cov(a, b, check_window(w, "correlation window"))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where((m["vx"] > 0) & (m["vy"] > 0), m["cxy"] / np.sqrt(m["vx"] * m["vy"]), np.nan)
    return np.clip(c, -1.0, 1.0)


@dataclass(frozen=True, eq=False)
class PairFrame:
    """Columns of the pair analytics, one row per aligned bar. ``time`` in ms UTC."""

    time: np.ndarray
    price_x: np.ndarray
    price_y: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    spread: np.ndarray
    z: np.ndarray
    corr: np.ndarray
    flags: np.ndarray
    kalman_state: KalmanState | None = None

    COLUMNS = ("price_x", "price_y", "alpha", "beta", "spread", "z", "corr", "flags")

    def __len__(self) -> int:
        return len(self.time)


def pair_frame(
    time: np.ndarray,
    price_x: np.ndarray,
    price_y: np.ndarray,
    params: PairParams,
    filled: np.ndarray | None = None,
) -> PairFrame:
    """The analytics of an aligned pair (see ``align.align_pair``): hedge ratio used at each bar,
    spread = x - (alpha + beta * y), z-score, correlation and flags. ``filled`` carries the
    alignment's FLAG_FILLED_X / FLAG_FILLED_Y bits. On log prices (``params.log_prices``) the
    spread is in log units."""
    px = np.asarray(price_x, dtype=np.float64)
    py = np.asarray(price_y, dtype=np.float64)
    x, y = (np.log(px), np.log(py)) if params.log_prices else (px, py)
    alpha, beta, kstate = hedge_path(x, y, params.hedge_mode, params.hedge_window, params.kalman)
    spread = x - (alpha + beta * y)
    z = rolling_zscore(spread, params.z_window, params.z_include_current, REL_STD_FLOOR * np.abs(x))
    if params.corr_of == "returns":
        corr = rolling_corr(log_returns(px), log_returns(py), params.corr_window)
    else:
        corr = rolling_corr(px, py, params.corr_window)
    flags = pair_flags(np.arange(len(px)), params, alpha, z, corr, filled)
    return PairFrame(np.asarray(time, dtype=np.int64), px, py, alpha, beta, spread, z, corr, flags, kstate)


def pair_flags(
    idx: np.ndarray, params: PairParams, alpha: np.ndarray, z: np.ndarray, corr: np.ndarray,
    filled: np.ndarray | None = None,
) -> np.ndarray:
    """Flags of rows at positions ``idx`` (0 = the first row of the series) with these values."""
    idx = np.asarray(idx)
    flags = np.zeros(len(idx), dtype=np.int64) if filled is None else np.asarray(filled, dtype=np.int64).copy()
    hedge_start = params.hedge_window
    flags[idx < hedge_start] |= FLAG_WARMUP_HEDGE
    z_start = hedge_start + params.z_window - (1 if params.z_include_current else 0)
    flags[idx < z_start] |= FLAG_WARMUP_Z
    corr_start = params.corr_window + (1 if params.corr_of == "returns" else 0) - 1
    flags[idx < corr_start] |= FLAG_WARMUP_CORR
    degenerate = ((idx >= z_start) & np.isnan(z)) | ((idx >= corr_start) & np.isnan(corr))
    flags[degenerate & ~np.isnan(alpha)] |= FLAG_DEGENERATE
    return flags
