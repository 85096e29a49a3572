"""The Engle-Granger test's real size on the user's own data, and p-values calibrated to it.

MacKinnon's p-values assume Gaussian, homoskedastic innovations; crypto returns have heavy tails
and clustered volatility, so "p < 0.05" may be met far more often than 5% of the time by pairs
that are not related. Placebo pairs measure it: one leg's formation window paired with another
symbol's bars from ``shift`` whole formation windows earlier (the same symbols, the same market,
no possible relation); their Engle-Granger p-values are the null distribution on this data. The
**size** is the share of placebo p below a level (5% if MacKinnon's p is right); a pair's
**calibrated p** is (1 + placebo p <= its p) / (1 + placebo pairs), and BH q-values follow from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InvalidParameter
from ..scan import bh_qvalues, scan_pairs

#: Tag of a shifted copy's column (never a Binance symbol: symbols are letters and digits).
_SHIFTED = "~"


@dataclass(frozen=True)
class Placebo:
    """Placebo Engle-Granger p-values (``pvalues``, one per placebo pair tested) and the windows
    they came from; ``size(level)`` is the share below ``level``."""

    pvalues: np.ndarray
    shifts: tuple[int, ...]

    def size(self, level: float = 0.05) -> float:
        return float(np.mean(self.pvalues < level)) if len(self.pvalues) else float("nan")

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        """Calibrated p-values of ``p`` (NaN stays NaN)."""
        null = np.sort(self.pvalues)
        p = np.asarray(p, dtype=float)
        out = (1.0 + np.searchsorted(null, p, side="right")) / (1.0 + len(null))
        return np.where(np.isnan(p), np.nan, out)


def placebo(closes: pd.DataFrame, window: int, shifts: tuple[int, ...] = (1, 2, 3), log_prices: bool = True,
            min_obs: int = 500) -> Placebo:
    """Placebo p-values from the last ``window`` rows of ``closes`` (the formation): every symbol's
    bars there against every other symbol's bars ``shift`` x ``window`` rows earlier, for each
    shift that fits (rows are matched by position)."""
    n = len(closes)
    fits = tuple(k for k in shifts if n >= (k + 1) * window)
    if window < min_obs or not fits:
        raise InvalidParameter(f"placebo pairs need {window} formation rows (>= min_obs={min_obs}) and at least one "
                               f"earlier window of them: {n} rows hold {n // max(window, 1)} windows")
    now = closes.iloc[n - window:]
    pvals = []
    for k in fits:
        before = closes.iloc[n - (k + 1) * window: n - k * window]
        before = before.set_axis(now.index).add_suffix(_SHIFTED)
        panel = pd.concat([now, before], axis=1)
        panel = panel.loc[:, panel.notna().sum() >= min_obs]
        if panel.shape[1] < 2:
            continue
        r = scan_pairs(panel, validation=0.0, log_prices=log_prices, min_obs=min_obs)
        cross = r["x"].str.endswith(_SHIFTED) != r["y"].str.endswith(_SHIFTED)
        same = r["x"].str.rstrip(_SHIFTED) == r["y"].str.rstrip(_SHIFTED)  # a symbol against its own past
        pvals.append(r.loc[cross & ~same, "pvalue"].dropna().to_numpy())
    return Placebo(np.concatenate(pvals) if pvals else np.empty(0), fits)


def with_calibrated(scan: pd.DataFrame, null: Placebo) -> pd.DataFrame:
    """A scan's results with ``p_calibrated`` and ``q_calibrated`` (BH over the pairs tested)
    beside MacKinnon's ``pvalue`` and ``q_value``; ``attrs["placebo_size"]`` the real size at 5%."""
    out = scan.copy()
    out["p_calibrated"] = null.calibrate(out["pvalue"].to_numpy())
    out["q_calibrated"] = bh_qvalues(out["p_calibrated"].to_numpy())
    out.attrs.update(scan.attrs, placebo_size=null.size(0.05), placebo_pairs=len(null.pvalues),
                     placebo_shifts=list(null.shifts))
    return out
