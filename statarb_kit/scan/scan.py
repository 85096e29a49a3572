"""The universe scan: every unordered pair of a panel of closes, Engle-Granger at batch speed,
false discoveries controlled, checked out of sample. In-process, or on Dask workers.

Conventions (each is a column or ``DataFrame.attrs`` of the result):
- prices or log prices (``log_prices``, the rule's setting and default, ``statarb_kit.rule``:
  prices); across a universe of very different price levels logs are the usual choice (a hedge
  ratio in logs is a ratio of dollar amounts), and the pair's backtest and dashboard trade it so;
- one calendar split for every pair: ``split`` (a UTC time), else ``1 - validation`` of the time
  span; bars before it form, the rest validate, so every pair is validated on the same future;
- a symbol is left out, with its reason in ``attrs["left_out"]``, when it has fewer than
  ``min_obs`` closes in the formation period, a close that changed on fewer than ``min_move_share``
  of its formation bars (a density, not a count: three weeks of moves then months of a flat price
  do not pass), or a close that is not finite; a missing close is carried forward at most
  ``max_stale`` bars (as in the pair analytics). A bar in which nothing traded is no close
  (``bars.traded``: the readers leave it out);
- each pair is tested on its own bars: those of the formation period where both legs have a
  close (symbols list and delist at different times), ``n`` of them; a pair with fewer than
  ``min_obs`` is not tested, and ``note`` says why (as it does for a singular regression); a pair
  with fewer than ``HALF_LIVES`` times its formation half-life of bars is tested but not selected
  (its spread cannot have reverted often enough to say that it reverts), and ``note`` says so;
- for each unordered pair, ``x`` is the symbol first in column order: ``alpha``, ``beta``, ``r2``
  and ``eg_*`` are of x on y (Engle-Granger as ``statsmodels.tsa.stattools.coint(x, y,
  trend="c", autolag="aic")`` on the pair's bars, default maxlag), ``eg_*_yx`` of y on x (the
  test is not symmetric); ``pvalue`` = min(1, 2 min(p_xy, p_yx)) (Bonferroni over the two
  directions) and ``q_value`` its Benjamini-Hochberg value over the pairs tested
  (``attrs["pairs_tested"]``); ``selected`` = q_value <= q_level;
- ``half_life_bars`` (AR(1) of the formation spread), ``corr`` (of log returns), ``spread_std``
  (of the formation spread, in price or log units); ``crossings`` (times the spread crosses its mean) of the
  selected pairs;
- each selected pair is checked on its validation bars (both legs with a close) with its
  formation hedge held fixed, so plain ADF critical values apply (``adfuller(regression="c",
  autolag="aic")``): ``val_*`` columns and ``survives`` (validation p < ``val_level`` and a
  finite half-life). A pair that does not survive is marked, not hidden; one with fewer than
  ``MIN_VALIDATION_BARS`` validation bars was not validated: ``survives`` is NA, with a note.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from ..analytics.stationarity import half_life_of, half_life_rows
from ..errors import InvalidParameter
from ..rule import DEFAULT
from .engle_granger import ADFBatch, PairMoments, adf_or_nan, coint_moments, default_maxlag, pair_moments, series_sums

log = logging.getLogger(__name__)

#: Columns of a scan result, in order.
COLUMNS = ("x", "y", "n", "alpha", "beta", "r2", "eg_stat", "eg_pvalue", "eg_lags", "eg_stat_yx", "eg_pvalue_yx",
           "eg_lags_yx", "pvalue", "q_value", "selected", "half_life_bars", "corr", "spread_std", "crossings",
           "val_n", "val_adf_stat", "val_adf_pvalue", "val_adf_lags", "val_half_life_bars", "survives", "note")

#: Fewest validation bars (both legs with a close) on which a selected pair is validated.
MIN_VALIDATION_BARS = 50
#: Fewest half-lives of its formation spread a pair's formation must hold to be selected.
HALF_LIVES = 10.0


@dataclass(frozen=True)
class ScanParams:
    """Settings of a scan (see the module doc). ``split``: UTC time where validation starts (None:
    ``1 - validation`` of the time span); ``block``: pairs per unit of work."""

    log_prices: bool = DEFAULT.log_prices
    max_stale: int = 3
    min_obs: int = 500
    min_move_share: float = 0.05
    validation: float = 0.3
    split: str | None = None
    q_level: float = 0.05
    val_level: float = 0.05
    maxlag: int | None = None
    block: int = 1_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation < 0.9:
            raise InvalidParameter(f"validation must be a fraction in [0, 0.9), got {self.validation!r}")
        if not (0 < self.q_level < 1 and 0 < self.val_level < 1):
            raise InvalidParameter("q_level and val_level must be within (0, 1)")
        if self.min_obs < 50 or self.max_stale < 0 or self.block < 1 or not 0 < self.min_move_share <= 1:
            raise InvalidParameter("need min_obs >= 50 bars, 0 < min_move_share <= 1, max_stale >= 0 and block >= 1")
        if self.split is not None:
            try:
                pd.Timestamp(self.split)
            except (ValueError, TypeError):
                raise InvalidParameter(f"split must be a UTC date or time, got {self.split!r}") from None
        if self.maxlag is not None and self.maxlag < 0:
            raise InvalidParameter(f"maxlag must be >= 0 or None, got {self.maxlag!r}")


# ---- p-values and multiple testing ----------------------------------------------------------

@dataclass(frozen=True)
class MacKinnonTable:
    """MacKinnon's response-surface fit of the asymptotic tau distribution for one regression and
    number of series: p = Phi(poly(tau)), with ``small`` coefficients (ascending powers) up to
    ``star`` and ``large`` above it; outside [``lo``, ``hi``] p is 0 or 1."""

    small: tuple[float, ...]
    large: tuple[float, ...]
    lo: float
    hi: float
    star: float


#: MacKinnon, J. G. (1994), "Approximate Asymptotic Distribution Functions for Unit-Root and
#: Cointegration Tests", Journal of Business & Economic Statistics 12(2), 167-176, Table 3
#: (constant, "c"), for 1 series (ADF) and 2 series (Engle-Granger); the large-tau coefficients
#: with the table's scaling applied. statsmodels' ``mackinnonp`` uses the same values (tested equal).
MACKINNON_C: dict[int, MacKinnonTable] = {
    1: MacKinnonTable((2.1659, 1.4412, 0.038269), (1.7339, 0.93202, -0.12745, -0.010368), -18.83, 2.74, -1.61),
    2: MacKinnonTable((2.92, 1.5012, 0.039796), (2.1945, 0.64695, -0.29198, -0.042377), -18.86, 0.92, -2.62),
}


def mackinnon_p(stat: np.ndarray, regression: str = "c", n_series: int = 1) -> np.ndarray:
    """MacKinnon's (1994) approximate p-values of tau statistics, element-wise (MACKINNON_C; the
    scan's tests have a constant and 1 or 2 series). NaN stays NaN."""
    from scipy.stats import norm

    if regression != "c" or n_series not in MACKINNON_C:
        raise InvalidParameter(f"MacKinnon p-values are tabled here for regression 'c' and 1 or 2 series, "
                               f"not {regression!r} with {n_series}")
    t = MACKINNON_C[n_series]
    stat = np.asarray(stat, dtype=np.float64)
    inside = np.clip(np.nan_to_num(stat), t.lo, t.hi)  # outside the tables p is 0 or 1 (set below)
    z = np.where(inside <= t.star, np.polyval(t.small[::-1], inside), np.polyval(t.large[::-1], inside))
    p = norm.cdf(z)
    p = np.where(stat > t.hi, 1.0, p)
    p = np.where(stat < t.lo, 0.0, p)
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
    """The panel a scan runs on: formation and validation levels of the symbols kept (NaN where a
    symbol has no close), the split time, and the symbols left out with their reasons."""

    symbols: tuple[str, ...]
    formation: np.ndarray
    validation: np.ndarray
    time_formation: pd.DatetimeIndex
    time_validation: pd.DatetimeIndex
    split: pd.Timestamp
    left_out: dict[str, str]


def split_time(index: pd.DatetimeIndex, p: ScanParams) -> pd.Timestamp:
    """The calendar split: ``p.split`` (UTC), else ``1 - p.validation`` of the index's time span."""
    if p.split is not None:
        t = pd.Timestamp(p.split)
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    first, last = index[0], index[-1]
    return last + pd.Timedelta(1, "ms") if p.validation == 0 else first + (last - first) * (1.0 - p.validation)


def prepare(closes: pd.DataFrame, p: ScanParams) -> Prepared:
    """Check, clean, transform and split a wide table of closes (see the module doc)."""
    if not isinstance(closes, pd.DataFrame) or closes.shape[1] < 2:
        raise InvalidParameter("closes must be a DataFrame with one column per symbol (at least 2)")
    if not isinstance(closes.index, pd.DatetimeIndex):
        raise InvalidParameter("closes must have a DatetimeIndex (UTC)")
    twice = closes.columns[closes.columns.duplicated()]
    if len(twice):
        raise InvalidParameter(f"symbols named twice: {', '.join(map(str, twice.unique()[:5]))}: one column each")
    if closes.index.has_duplicates:
        again = closes.index[closes.index.duplicated()]
        raise InvalidParameter(f"{len(again)} bar times appear twice (first {again[0]}): one row per bar time")
    frame = closes.sort_index().astype(np.float64)
    if frame.index.tz is None:
        frame.index = frame.index.tz_localize("UTC")
    split = split_time(frame.index, p)
    before = frame.index < split
    if before.sum() < p.min_obs:
        raise InvalidParameter(f"only {int(before.sum())} bars before the split {split} (min_obs={p.min_obs})")
    values = frame.to_numpy()
    bad = np.isinf(values).sum(axis=0)
    frame = frame.where(frame > 0)  # a close <= 0 is no price
    form = frame[before]
    counts = form.notna().sum()
    moves = (form.ffill().diff().abs() > 0).sum()  # changes at a traded bar from the last traded close
    left_out: dict[str, str] = {}
    for k, s in enumerate(frame.columns):
        if bad[k]:
            left_out[str(s)] = f"{int(bad[k])} infinite closes: not a price (fix the data)"
        elif counts[s] < p.min_obs:
            left_out[str(s)] = f"{int(counts[s])} closes in the formation period, fewer than min_obs={p.min_obs}"
        elif moves[s] == 0:
            left_out[str(s)] = "constant over the formation period: nothing to test"
        elif moves[s] < p.min_move_share * counts[s]:
            left_out[str(s)] = (f"its close changed on {int(moves[s])} of its {int(counts[s])} formation bars "
                                f"({moves[s] / counts[s]:.1%}), less than min_move_share={p.min_move_share:g}")
    kept = [s for s in frame.columns if str(s) not in left_out]
    if len(kept) < 2:
        raise InvalidParameter(f"fewer than 2 symbols have {p.min_obs} closes in the formation period: {left_out}")
    frame = frame[kept].ffill(limit=p.max_stale)
    if p.log_prices:
        frame = np.log(frame)
    form, val = frame[before], frame[~before]
    form, val = form[form.notna().any(axis=1)], val[val.notna().any(axis=1)]  # a bar where nothing trades
    return Prepared(tuple(str(s) for s in kept), form.to_numpy(), val.to_numpy(), form.index, val.index, split,
                    left_out)


@dataclass(frozen=True, eq=False)
class Spans:
    """Where each pair (xi, yi) of a panel is tested: rows ``start:end`` when both legs have a close
    on every row between (``gapped`` False), else the rows where both have one (found per pair)."""

    xi: np.ndarray
    yi: np.ndarray
    start: np.ndarray
    end: np.ndarray
    n: np.ndarray
    gapped: np.ndarray


def spans(levels: np.ndarray) -> Spans:
    """The span of every unordered pair of the columns of ``levels`` (NaN: no close): from the
    later first close to the earlier last one; ``gapped`` where either leg misses a row inside."""
    ok = ~np.isnan(levels)
    n_rows, n_sym = ok.shape
    has = ok.any(axis=0)
    first = np.where(has, ok.argmax(axis=0), n_rows)
    last = np.where(has, n_rows - ok[::-1].argmax(axis=0), 0)
    holes = [np.flatnonzero(~ok[first[k] : last[k], k]) + first[k] for k in range(n_sym)]
    xi, yi = np.triu_indices(n_sym, 1)
    start, end = np.maximum(first[xi], first[yi]), np.minimum(last[xi], last[yi])
    end = np.maximum(end, start)
    gapped = np.zeros(len(xi), dtype=bool)
    n = end - start
    for k in np.flatnonzero([len(h) for h in holes]):  # pairs of a symbol that misses rows in its span
        for legs in (xi, yi):
            sel = np.flatnonzero(legs == k)
            inside = np.searchsorted(holes[k], end[sel]) - np.searchsorted(holes[k], start[sel])
            gapped[sel] |= inside > 0
    for k in np.flatnonzero(gapped):  # the common rows of a gapped pair
        n[k] = int(np.count_nonzero(ok[start[k] : end[k], xi[k]] & ok[start[k] : end[k], yi[k]]))
    return Spans(xi, yi, start, end, n, gapped)


# ---- the work --------------------------------------------------------------------------------

def scan_block(mo: PairMoments) -> dict[str, np.ndarray]:
    """Formation statistics of a block of pairs from their moments: both directions, half-life,
    correlation and spread std (a pure function: a unit of Dask work)."""
    fwd, rev = coint_moments(mo), coint_moments(mo.swapped())
    return {"alpha": fwd.alpha, "beta": fwd.beta, "r2": fwd.r2, "eg_stat": fwd.adf.stat, "eg_lags": fwd.adf.lags,
            "eg_stat_yx": rev.adf.stat, "eg_lags_yx": rev.adf.lags, "half_life_bars": half_life_of(fwd.phi),
            "corr": fwd.corr, "spread_std": np.sqrt(fwd.resid_ssr / (mo.n - 2)),
            "singular": fwd.singular | rev.singular}


def _gapped_moments(levels: np.ndarray, sp: Spans, rows: np.ndarray, maxlag: int | None) -> list[PairMoments]:
    """Moments of gapped pairs, one pair at a time on the rows where both legs have a close."""
    out = []
    for k in rows:
        two = np.column_stack(_common(levels[sp.start[k] : sp.end[k]], sp.xi[k], sp.yi[k]))
        out.append(pair_moments(two, np.array([0]), np.array([1]), np.array([0]), np.array([len(two)]), maxlag))
    return out


def _run(units: list[PairMoments], client: object | None, progress: bool) -> list[dict[str, np.ndarray]]:
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(u) for u in units), desc="scan", unit="pair", disable=not progress)
    try:
        if client is None:
            out = []
            for unit in units:
                out.append(scan_block(unit))
                bar.update(len(unit))
            return out
        from distributed import as_completed

        futures = [client.submit(scan_block, unit, pure=False) for unit in units]
        position = {f.key: i for i, f in enumerate(futures)}
        got: list[dict[str, np.ndarray] | None] = [None] * len(futures)
        try:
            for future in as_completed(futures):
                got[position[future.key]] = future.result()
                bar.update(len(units[position[future.key]]))
        finally:
            client.cancel(futures)
        return got  # type: ignore[return-value]
    finally:
        bar.close()


def _common(levels: np.ndarray, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = levels[:, i], levels[:, j]
    both = ~(np.isnan(x) | np.isnan(y))
    return x[both], y[both]


def _crossings(prep: Prepared, rows: pd.DataFrame) -> np.ndarray:
    """Times each row's formation spread (its own bars) crosses its mean."""
    col = {s: i for i, s in enumerate(prep.symbols)}
    out = np.zeros(len(rows))
    for k, (x, y, b) in enumerate(zip(rows["x"], rows["y"], rows["beta"])):
        lx, ly = _common(prep.formation, col[x], col[y])
        e = lx - b * ly
        e = e - e.mean()
        out[k] = np.count_nonzero((e[1:] > 0) != (e[:-1] > 0))
    return out


def _validate(prep: Prepared, rows: pd.DataFrame, p: ScanParams) -> tuple[pd.DataFrame, list[object]]:
    """ADF (constant, AIC lags) and half-life of each row's validation spread (its own bars) under
    its formation hedge: out-of-sample, the hedge is fixed in advance, so plain ADF critical
    values apply. Rows with fewer than MIN_VALIDATION_BARS bars get NaN; so do those whose
    regression is singular (their labels are returned)."""
    out = pd.DataFrame(index=rows.index, columns=["val_n", "val_adf_stat", "val_adf_pvalue", "val_adf_lags",
                                                 "val_half_life_bars"], dtype="float64")
    col = {s: i for i, s in enumerate(prep.symbols)}
    items: list[tuple[object, np.ndarray, int]] = []
    for label, x, y, a, b, lags in zip(rows.index, rows["x"], rows["y"], rows["alpha"], rows["beta"], rows["eg_lags_max"]):
        vx, vy = _common(prep.validation, col[x], col[y])
        out.loc[label, "val_n"] = len(vx)
        if len(vx) >= MIN_VALIDATION_BARS:
            items.append((label, vx - a - b * vy, min(int(lags), default_maxlag(len(vx), "c"))))
    singular: list[object] = []
    for labels, spread, adf, p, bad in adf_batches(items):
        singular += [label for label, b in zip(labels, bad) if b]
        out.loc[labels, "val_adf_stat"], out.loc[labels, "val_adf_lags"] = adf.stat, adf.lags
        out.loc[labels, "val_adf_pvalue"] = p
        out.loc[labels, "val_half_life_bars"] = half_life_rows(spread)
    return out, singular


def adf_batches(items: list[tuple[object, np.ndarray, int]]) -> Iterator[tuple[list[object], np.ndarray, ADFBatch,
                                                                              np.ndarray, np.ndarray]]:
    """ADF with a constant and AIC lags of each (key, series, maximum lag) of ``items``, batched by
    length and maximum lag: per batch the keys, the stacked series, the ADFBatch, MacKinnon's p and
    the mask of singular regressions (statistic NaN)."""
    groups: dict[tuple[int, int], list[tuple[object, np.ndarray]]] = {}
    for key, series, lag in items:
        groups.setdefault((len(series), lag), []).append((key, series))
    for (_, lag), batch in groups.items():
        spread = np.stack([s for _, s in batch])
        adf, bad = adf_or_nan(series_sums(spread, lag), lag, const=True)
        yield [key for key, _ in batch], spread, adf, mackinnon_p(adf.stat, "c", 1), bad


def scan_pairs(closes: pd.DataFrame, *, client: object | None = None, progress: bool = False,
               params: ScanParams | None = None, **changes: object) -> pd.DataFrame:
    """Scan every unordered pair of the columns of ``closes`` (UTC index, one column of closes per
    symbol, NaN where a symbol has none): one row per pair, columns COLUMNS (see the module doc),
    sorted by ``pvalue``. ``client``: a ``distributed.Client`` to run the blocks of pairs on its
    workers (identical results); None runs here. Settings: ``params`` or keyword changes
    (q_level=0.01, split="2025-07-01", ...).

    ``attrs`` holds ``pairs_tested``, ``selected``, ``symbols`` used, ``left_out`` (symbol ->
    reason), ``params``, ``split``, the formation and validation ranges and ``seconds``."""
    p = replace(params or ScanParams(), **changes)
    started = time.perf_counter()
    prep = prepare(closes, p)
    sp = spans(prep.formation)
    testable = sp.n >= p.min_obs
    plain, gapped = np.flatnonzero(testable & ~sp.gapped), np.flatnonzero(testable & sp.gapped)
    units: list[PairMoments] = []
    if len(plain):
        mo = pair_moments(prep.formation, sp.xi[plain], sp.yi[plain], sp.start[plain], sp.end[plain], p.maxlag)
        units = [mo.take(slice(lo, lo + p.block)) for lo in range(0, len(plain), p.block)]
    units += _gapped_moments(prep.formation, sp, gapped, p.maxlag)
    parts = _run(units, client, progress)
    order = np.concatenate([plain, gapped])
    names = np.asarray(prep.symbols, dtype=object)
    frame = pd.DataFrame({"x": names[sp.xi], "y": names[sp.yi], "n": sp.n})
    note = np.full(len(frame), None, dtype=object)
    for k in np.flatnonzero(~testable):
        note[k] = (f"only {sp.n[k]} formation bars where both trade, fewer than min_obs={p.min_obs}" if sp.n[k]
                   else "the two never traded at the same time in the formation period")
    if parts:
        got = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
        for k, v in got.items():
            if k == "singular":
                continue
            column = np.full(len(frame), np.nan)
            column[order] = v
            frame[k] = column
        maxlags = np.concatenate([u.p for u in units])
        lags_max = np.zeros(len(frame), dtype=np.int64)
        lags_max[order] = maxlags
        frame["eg_lags_max"] = lags_max
        for k in order[got["singular"]]:
            note[k] = "singular ADF regression: no statistic"
    else:
        for k in ("alpha", "beta", "r2", "eg_stat", "eg_lags", "eg_stat_yx", "eg_lags_yx", "half_life_bars", "corr",
                  "spread_std"):
            frame[k] = np.nan
        frame["eg_lags_max"] = 0
    frame["eg_pvalue"] = mackinnon_p(frame["eg_stat"].to_numpy(), "c", 2)
    frame["eg_pvalue_yx"] = mackinnon_p(frame["eg_stat_yx"].to_numpy(), "c", 2)
    frame["pvalue"] = np.minimum(1.0, 2.0 * np.fmin(frame["eg_pvalue"], frame["eg_pvalue_yx"]))
    frame.loc[frame["eg_pvalue"].isna() | frame["eg_pvalue_yx"].isna(), "pvalue"] = np.nan
    frame["q_value"] = bh_qvalues(frame["pvalue"].to_numpy())
    hl, n = frame["half_life_bars"].to_numpy(dtype=float), frame["n"].to_numpy(dtype=float)
    brief = (frame["q_value"] <= p.q_level).to_numpy() & (np.isposinf(hl) | (np.isfinite(hl) & (n < HALF_LIVES * hl)))
    for k in np.flatnonzero(brief):
        note[k] = ("not selected: its formation spread does not revert (no finite half-life)" if np.isinf(hl[k]) else
                   f"not selected: {int(n[k])} formation bars hold fewer than {HALF_LIVES:g} half-lives of "
                   f"{hl[k]:.0f} bars")
    frame["selected"] = (frame["q_value"] <= p.q_level) & ~brief
    chosen = frame[frame["selected"]]
    frame["crossings"] = np.nan
    frame.loc[chosen.index, "crossings"] = _crossings(prep, chosen)
    val, singular = _validate(prep, chosen, p)
    frame = frame.join(val)
    judged = (val["val_n"] >= MIN_VALIDATION_BARS) & ~val.index.isin(singular)
    frame["survives"] = pd.array([pd.NA] * len(frame), dtype="boolean")
    frame.loc[judged[judged].index, "survives"] = ((val["val_adf_pvalue"] < p.val_level)
                                                   & np.isfinite(val["val_half_life_bars"]))[judged].to_numpy()
    for label in judged[~judged].index:
        note[label] = ("not validated: its validation spread is constant (singular ADF regression)" if label in singular
                       else f"not validated: {int(val.loc[label, 'val_n'])} validation bars where both trade "
                            f"(needs {MIN_VALIDATION_BARS})")
    frame["note"] = pd.array(note, dtype="string")
    frame = frame[list(COLUMNS)].sort_values("pvalue", kind="stable", ignore_index=True)
    tested = int(frame["pvalue"].notna().sum())
    frame.attrs.update(pairs_tested=tested, selected=int(frame["selected"].sum()), symbols=list(prep.symbols),
                       left_out=prep.left_out, params=asdict(p), split=str(prep.split),
                       pairs_not_tested=len(frame) - tested, median_pair_n=float(np.median(sp.n[testable]))
                       if testable.any() else 0.0,
                       formation=(str(prep.time_formation[0]), str(prep.time_formation[-1]), len(prep.time_formation)),
                       validation=(str(prep.time_validation[0]), str(prep.time_validation[-1]), len(prep.time_validation))
                       if len(prep.time_validation) else None, seconds=time.perf_counter() - started)
    log.info("scan: %d pairs of %d symbols tested in %.1f s (%d not), %d selected at q <= %g", tested,
             len(prep.symbols), frame.attrs["seconds"], len(frame) - tested, frame.attrs["selected"], p.q_level)
    return frame
