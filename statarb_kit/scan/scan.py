"""The universe scan: every unordered pair of a panel of closes, Engle-Granger at batch speed,
false discoveries controlled, checked out of sample. In-process, or on Dask workers.

Conventions (each is a column or ``DataFrame.attrs`` of the result):
- prices are logged (``log_prices``): a hedge ratio in logs is a ratio of dollar amounts;
- a symbol with fewer than ``min_obs`` closes in the formation period, or whose closes there are
  all equal, is left out, with its reason in ``attrs["left_out"]``; a missing close is carried forward at most ``max_stale`` bars
  (as in the pair analytics), and bars where a kept symbol still has none are dropped;
- the first ``1 - validation`` of the bars form, the rest validate;
- for each unordered pair, ``x`` is the symbol first in column order: ``alpha``, ``beta``, ``r2``
  and ``eg_*`` are of x on y (Engle-Granger as ``statsmodels.tsa.stattools.coint(x, y,
  trend="c", autolag="aic")``, default maxlag), ``eg_*_yx`` of y on x (the test is not
  symmetric); ``pvalue`` = min(1, 2 min(p_xy, p_yx)) (Bonferroni over the two directions, so
  trying both does not double the chances) and ``q_value`` its Benjamini-Hochberg value over all
  pairs tested; ``selected`` = q_value <= q_level;
- ``half_life_bars`` (AR(1) of the formation spread), ``corr`` (of log returns), ``spread_std``
  (of the formation spread, log units), ``crossings`` (times the spread crosses its mean);
- each selected pair is checked on the validation bars with its formation hedge held fixed, so
  plain ADF critical values apply (``adfuller(regression="c", autolag="aic")``): ``val_*``
  columns and ``survives`` (validation p < ``val_level`` and a finite half-life). A pair that
  does not survive is marked, not hidden.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from ..analytics.stationarity import ar1_rows, half_life_of
from ..errors import InvalidParameter
from .engle_granger import Panel, adf_batch, coint_batch, default_maxlag, series_sums

log = logging.getLogger(__name__)

#: Columns of a scan result, in order.
COLUMNS = ("x", "y", "n", "alpha", "beta", "r2", "eg_stat", "eg_pvalue", "eg_lags", "eg_stat_yx", "eg_pvalue_yx",
           "eg_lags_yx", "pvalue", "q_value", "selected", "half_life_bars", "corr", "spread_std", "crossings",
           "val_n", "val_adf_stat", "val_adf_pvalue", "val_adf_lags", "val_half_life_bars", "survives")


@dataclass(frozen=True)
class ScanParams:
    """Settings of a scan (see the module doc). ``block``: pairs per unit of work."""

    log_prices: bool = True
    max_stale: int = 3
    min_obs: int = 500
    validation: float = 0.3
    q_level: float = 0.05
    val_level: float = 0.05
    maxlag: int | None = None
    block: int = 1_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation < 0.9:
            raise InvalidParameter(f"validation must be a fraction in [0, 0.9), got {self.validation!r}")
        if not (0 < self.q_level < 1 and 0 < self.val_level < 1):
            raise InvalidParameter("q_level and val_level must be within (0, 1)")
        if self.min_obs < 50 or self.max_stale < 0 or self.block < 1:
            raise InvalidParameter("need min_obs >= 50 bars, max_stale >= 0 and block >= 1")
        if self.maxlag is not None and self.maxlag < 0:
            raise InvalidParameter(f"maxlag must be >= 0 or None, got {self.maxlag!r}")


# ---- p-values and multiple testing ----------------------------------------------------------

def mackinnon_p(stat: np.ndarray, regression: str = "c", n_series: int = 1) -> np.ndarray:
    """MacKinnon's approximate p-values, element-wise: statsmodels' ``mackinnonp`` (same tables)."""
    from scipy.stats import norm
    from statsmodels.tsa import adfvalues as av

    stat = np.asarray(stat, dtype=np.float64)
    k = n_series - 1
    small = np.asarray(av._tau_smallps[regression][k])[::-1]
    large = np.asarray(av._tau_largeps[regression][k])[::-1]
    lo, hi = av._tau_mins[regression][k], av._tau_maxs[regression][k]
    inside = np.clip(np.nan_to_num(stat), lo, hi)  # outside the tables p is 0 or 1 (set below)
    z = np.where(inside <= av._tau_stars[regression][k], np.polyval(small, inside), np.polyval(large, inside))
    p = norm.cdf(z)
    p = np.where(stat > hi, 1.0, p)
    p = np.where(stat < lo, 0.0, p)
    return np.where(np.isnan(stat), np.nan, p)


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (adjusted p-values) of the tests ``p`` (NaN kept as NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    q = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(q[::-1])[::-1])
    return out


# ---- data ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Prepared:
    """The panel a scan runs on: formation and validation levels of the symbols kept."""

    symbols: tuple[str, ...]
    formation: np.ndarray
    validation: np.ndarray
    time_formation: pd.DatetimeIndex
    time_validation: pd.DatetimeIndex
    left_out: dict[str, str]


def prepare(closes: pd.DataFrame, p: ScanParams) -> Prepared:
    """Clean, transform and split a wide table of closes (see the module doc)."""
    if not isinstance(closes, pd.DataFrame) or closes.shape[1] < 2:
        raise InvalidParameter("closes must be a DataFrame with one column per symbol (at least 2)")
    if not isinstance(closes.index, pd.DatetimeIndex):
        raise InvalidParameter("closes must have a DatetimeIndex (UTC)")
    frame = closes.sort_index().astype(np.float64)
    frame = frame.where(frame > 0)  # a close <= 0 is no price
    split = int(round(len(frame) * (1.0 - p.validation)))
    counts = frame.iloc[:split].notna().sum()
    left_out = {str(s): f"{int(c)} closes in the formation period, fewer than min_obs={p.min_obs}"
                for s, c in counts.items() if c < p.min_obs}
    flat = frame.iloc[:split].max() == frame.iloc[:split].min()
    left_out.update({str(s): "constant over the formation period: nothing to test"
                     for s in frame.columns[flat.to_numpy()] if str(s) not in left_out})
    kept = [s for s in frame.columns if str(s) not in left_out]
    if len(kept) < 2:
        raise InvalidParameter(f"fewer than 2 symbols have {p.min_obs} closes in the formation period: {left_out}")
    frame = frame[kept].ffill(limit=p.max_stale)
    if p.log_prices:
        frame = np.log(frame)
    form, val = frame.iloc[:split].dropna(), frame.iloc[split:].dropna()
    if len(form) < p.min_obs:
        raise InvalidParameter(f"only {len(form)} formation bars where every kept symbol has a close "
                               f"(min_obs={p.min_obs}); scan fewer symbols or a longer range")
    return Prepared(tuple(str(s) for s in kept), form.to_numpy(), val.to_numpy(), form.index, val.index, left_out)


# ---- the work --------------------------------------------------------------------------------

def scan_block(panel: Panel, xi: np.ndarray, yi: np.ndarray) -> dict[str, np.ndarray]:
    """Formation statistics of the pairs (xi[k], yi[k]): both directions, half-life, correlation,
    spread std and mean crossings (a pure function of the shared panel: a unit of Dask work)."""
    fwd, rev = coint_batch(panel, xi, yi), coint_batch(panel, yi, xi)
    n = panel.n
    m = n - 1
    sd = panel.c[-1] - panel.c[0]  # sums of the differences of each symbol
    dd = np.diagonal(panel.cd[0])
    cov = panel.cd[0][xi, yi] - sd[xi] * sd[yi] / m
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.sqrt((dd[xi] - sd[xi] ** 2 / m) * (dd[yi] - sd[yi] ** 2 / m))
    e = panel.c[:, xi] - fwd.beta * panel.c[:, yi]  # formation spreads (mean 0)
    crossings = np.count_nonzero((e[1:] > 0) != (e[:-1] > 0), axis=0)
    return {"alpha": fwd.alpha, "beta": fwd.beta, "r2": fwd.r2, "eg_stat": fwd.adf.stat, "eg_lags": fwd.adf.lags,
            "eg_stat_yx": rev.adf.stat, "eg_lags_yx": rev.adf.lags, "half_life_bars": half_life_of(fwd.phi), "corr": corr,
            "spread_std": np.sqrt(fwd.resid_ssr / (n - 2)), "crossings": crossings}


def _blocks(n_symbols: int, block: int) -> list[tuple[np.ndarray, np.ndarray]]:
    xi, yi = np.triu_indices(n_symbols, 1)
    return [(xi[lo : lo + block], yi[lo : lo + block]) for lo in range(0, len(xi), block)]


def _run(panel: Panel, blocks: list[tuple[np.ndarray, np.ndarray]], client: object | None,
         progress: bool) -> list[dict[str, np.ndarray]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(x) for x, _ in blocks), desc="scan", unit="pair", disable=not progress)
    try:
        if client is None:
            out = []
            for xi, yi in blocks:
                out.append(scan_block(panel, xi, yi))
                bar.update(len(xi))
            return out
        from distributed import as_completed

        shared = client.scatter(panel, broadcast=True)  # the panel travels once to each worker
        futures = [client.submit(scan_block, shared, xi, yi, pure=False) for xi, yi in blocks]
        position = {f.key: i for i, f in enumerate(futures)}
        out: list[dict[str, np.ndarray] | None] = [None] * len(futures)
        try:
            for future in as_completed(futures):
                out[position[future.key]] = future.result()
                bar.update(len(blocks[position[future.key]][0]))
        finally:
            client.cancel(futures)
        return out  # type: ignore[return-value]
    finally:
        bar.close()


def _validate(prep: Prepared, rows: pd.DataFrame, p: ScanParams, maxlag: int) -> pd.DataFrame:
    """ADF (constant, AIC lags) and half-life of each row's validation spread under its formation
    hedge: out-of-sample, the hedge is fixed in advance, so plain ADF critical values apply."""
    out = pd.DataFrame(index=rows.index, columns=["val_n", "val_adf_stat", "val_adf_pvalue", "val_adf_lags",
                                                 "val_half_life_bars"], dtype="float64")
    n = len(prep.validation)
    if not len(rows) or n < 50:
        return out
    col = {s: i for i, s in enumerate(prep.symbols)}
    xi, yi = rows["x"].map(col).to_numpy(), rows["y"].map(col).to_numpy()
    spread = (prep.validation[:, xi] - rows["alpha"].to_numpy() - rows["beta"].to_numpy() * prep.validation[:, yi]).T
    lag = min(maxlag, default_maxlag(n, "c"))
    adf = adf_batch(series_sums(spread, lag), lag, const=True)
    hl = half_life_of(ar1_rows(spread)[0])
    out["val_n"] = n
    out["val_adf_stat"], out["val_adf_lags"] = adf.stat, adf.lags
    out["val_adf_pvalue"] = mackinnon_p(adf.stat, "c", 1)
    out["val_half_life_bars"] = hl
    return out


def scan_pairs(closes: pd.DataFrame, *, client: object | None = None, progress: bool = False,
               params: ScanParams | None = None, **changes: object) -> pd.DataFrame:
    """Scan every unordered pair of the columns of ``closes`` (UTC index, one column of closes per
    symbol): one row per pair, columns COLUMNS (see the module doc), sorted by ``pvalue``.
    ``client``: a ``distributed.Client`` to run the blocks of pairs on its workers (identical
    results); None runs here. Settings: ``params`` or keyword changes (q_level=0.01, ...).

    ``attrs`` holds ``pairs_tested``, ``selected``, ``symbols`` used, ``left_out`` (symbol ->
    reason), ``params``, the formation and validation ranges and ``seconds``."""
    p = replace(params or ScanParams(), **changes)
    started = time.perf_counter()
    prep = prepare(closes, p)
    panel = Panel.of(prep.formation, p.maxlag)
    blocks = _blocks(len(prep.symbols), p.block)
    parts = _run(panel, blocks, client, progress)
    xi = np.concatenate([b[0] for b in blocks])
    yi = np.concatenate([b[1] for b in blocks])
    got = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    names = np.asarray(prep.symbols, dtype=object)
    frame = pd.DataFrame({"x": names[xi], "y": names[yi], "n": panel.n, **got})
    frame["eg_pvalue"] = mackinnon_p(frame["eg_stat"].to_numpy(), "c", 2)
    frame["eg_pvalue_yx"] = mackinnon_p(frame["eg_stat_yx"].to_numpy(), "c", 2)
    frame["pvalue"] = np.minimum(1.0, 2.0 * np.minimum(frame["eg_pvalue"], frame["eg_pvalue_yx"]))
    frame["q_value"] = bh_qvalues(frame["pvalue"].to_numpy())
    frame["selected"] = frame["q_value"] <= p.q_level
    chosen = frame[frame["selected"]]
    val = _validate(prep, chosen, p, panel.p)
    frame = frame.join(val)
    frame["survives"] = pd.array([pd.NA] * len(frame), dtype="boolean")
    frame.loc[chosen.index, "survives"] = ((val["val_adf_pvalue"] < p.val_level)
                                           & np.isfinite(val["val_half_life_bars"])).to_numpy()
    frame = frame[list(COLUMNS)].sort_values("pvalue", kind="stable", ignore_index=True)
    frame.attrs.update(pairs_tested=len(frame), selected=int(frame["selected"].sum()), symbols=list(prep.symbols),
                       left_out=prep.left_out, params=asdict(p),
                       formation=(str(prep.time_formation[0]), str(prep.time_formation[-1]), len(prep.time_formation)),
                       validation=(str(prep.time_validation[0]), str(prep.time_validation[-1]), len(prep.time_validation))
                       if len(prep.time_validation) else None, seconds=time.perf_counter() - started)
    log.info("scan: %d pairs of %d symbols in %.1f s, %d selected at q <= %g", len(frame), len(prep.symbols),
             frame.attrs["seconds"], frame.attrs["selected"], p.q_level)
    return frame
