"""Selection methods, each a pure function of one formation window (``Formation``) to the pairs it
tested, the weights of each pair's spread and the ones it selects, best first (``Candidates``).
Nothing here sees the trading window.

- ``engle_granger``: the scan's test (``scan_pairs`` on the window), Benjamini-Hochberg q <=
  ``q_level``, ranked by p; spread = log x - beta log y (the formation OLS hedge).
- ``distance`` (Gatev, Goetzmann & Rouwenhorst 2006): prices normalised to 1 at the pair's first
  common bar, the mean squared difference over the common bars, the ``top`` smallest; spread =
  x / x0 - y / y0.
- ``correlation``: correlation of log returns, pairs formed only within clusters of symbols
  (hierarchical, average linkage on 1 - correlation, ``clusters`` groups), the most correlated
  first; spread as Engle-Granger's.
- ``stability``: cointegrated (Engle-Granger p < 0.05) in at least ``k`` of ``K`` equal sub-windows
  of the formation, not once over all of it; ranked by that count, then p; spread as Engle-Granger's.
- ``johansen``: the Johansen trace test (``statsmodels``' ``coint_johansen``, a constant, one lagged
  difference) on the pairs and the baskets of three within clusters of about ``JOHANSEN_CLUSTER``
  symbols (correlation clusters, as above; the baskets of a larger cluster from its
  ``JOHANSEN_CLUSTER`` most central members, each of their pairs tested by the scan), on their
  common bars; selected where the trace statistic for no cointegration exceeds its 95% critical
  value, ranked by statistic / critical value; spread = the first cointegrating vector on log
  prices, scaled to 1 on the first leg. A basket trades as a pair does (``backtest.basket``).
- ``pca`` (Avellaneda & Lee 2010): see ``research.pca``; one candidate per symbol, its residual
  against the top eigenportfolios, traded by its s-score.

Every method leaves out a pair (or basket) with fewer common formation bars than ``HALF_LIVES``
times its half-life (its spread cannot have reverted often enough to say it reverts), and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import InvalidParameter
from ..scan import scan_pairs
from ..analytics.stationarity import half_life
from ..scan.scan import HALF_LIVES
from .pca import S_ENTRY, S_EXIT_LONG, S_EXIT_SHORT, VARIANCE, residuals
#: The p below which a sub-window counts as cointegrated (stability).
SUB_LEVEL = 0.05


@dataclass(frozen=True)
class MethodParams:
    """Settings of the methods: ``top`` selections at most; the scan's ``q_level``, ``min_obs``
    (bars a symbol and a pair need in the window) and ``max_stale``; ``clusters`` (correlation);
    ``k`` of ``K`` sub-windows (stability); for ``pca`` the ``variance`` its eigenportfolios
    explain, the longest mean-reversion time as a share of the window (``max_reversion``) and
    the s-score thresholds (open beyond ``s_entry``, close a long above -``s_exit_long``, a
    short below ``s_exit_short``)."""

    top: int = 20
    q_level: float = 0.05
    min_obs: int = 500
    max_stale: int = 3
    clusters: int = 8
    k: int = 3
    K: int = 4
    variance: float = VARIANCE
    max_reversion: float = 0.5
    s_entry: float = S_ENTRY
    s_exit_long: float = S_EXIT_LONG
    s_exit_short: float = S_EXIT_SHORT

    def __post_init__(self) -> None:
        if self.top < 1 or self.clusters < 1 or not 1 <= self.k <= self.K or self.min_obs < 50:
            raise InvalidParameter("need top >= 1, clusters >= 1, 1 <= k <= K and min_obs >= 50")
        if not (0 < self.variance < 1 and 0 < self.max_reversion <= 1):
            raise InvalidParameter("need 0 < variance < 1 and 0 < max_reversion <= 1")
        if not (self.s_entry > 0 and -self.s_entry < -self.s_exit_long and self.s_exit_short < self.s_entry):
            raise InvalidParameter("need s_entry > 0 and both s exits inside (-s_entry, s_entry)")


@dataclass(frozen=True)
class Formation:
    """One formation window: ``closes`` (UTC index, a column per symbol that traded in it, NaN
    where it did not) and the Engle-Granger scan of its pairs on log prices (``scan``: one row per
    pair the scan could test, with alpha, beta, n, pvalue, q_value, corr, half_life_bars)."""

    closes: pd.DataFrame
    scan: pd.DataFrame
    left_out: dict[str, str]

    @classmethod
    def of(cls, closes: pd.DataFrame, p: MethodParams) -> Formation:
        r = scan_pairs(closes, validation=0.0, log_prices=True, min_obs=p.min_obs, max_stale=p.max_stale,
                       q_level=p.q_level)
        tested = r[np.isfinite(r["beta"].to_numpy(dtype=float)) & r["pvalue"].notna()].reset_index(drop=True)
        return cls(closes, tested, dict(r.attrs["left_out"]))


@dataclass(frozen=True)
class Candidates:
    """What a method tested in one window: per candidate its ``legs`` (2 for a pair, more for a
    basket) and ``weights``, the spread being ``sum w_i X_i`` where X are log prices (``prices``
    "log") or prices ("level"); ``score`` (lower is better); ``selected``: positions of the
    chosen ones, best first; ``notes``: why one that ranked was left out; ``signal``: what trades
    it, "z" (the Rule's rolling z-score) or "s" (the OU s-score of ``research.pca``)."""

    legs: tuple[tuple[str, ...], ...]
    weights: tuple[np.ndarray, ...]
    prices: str
    score: np.ndarray
    selected: np.ndarray
    notes: dict[tuple[str, ...], str] = field(default_factory=dict)
    signal: str = "z"

    @classmethod
    def of_pairs(cls, x: np.ndarray, y: np.ndarray, wx: np.ndarray, wy: np.ndarray, prices: str, score: np.ndarray,
                 selected: np.ndarray, notes: dict[tuple[str, ...], str]) -> Candidates:
        return cls(tuple(zip(map(str, x), map(str, y))), tuple(np.array([a, b], dtype=float) for a, b in zip(wx, wy)),
                   prices, score, selected, notes)

    def __len__(self) -> int:
        return len(self.legs)

    def key(self) -> tuple:
        """Equal keys: the same spreads (methods that share them share their judging)."""
        return self.prices, self.legs, b"".join(w.tobytes() for w in self.weights)


def _enough_history(scan: pd.DataFrame) -> tuple[np.ndarray, dict[tuple[str, ...], str]]:
    """Mask of pairs with n >= HALF_LIVES x half-life (finite), and a note for each other one."""
    n, hl = scan["n"].to_numpy(dtype=float), scan["half_life_bars"].to_numpy(dtype=float)
    return _history_notes(list(zip(scan["x"], scan["y"])), n, hl)


def _history_notes(legs: list[tuple[str, ...]], n: np.ndarray, hl: np.ndarray
                   ) -> tuple[np.ndarray, dict[tuple[str, ...], str]]:
    ok = np.isfinite(hl) & (hl > 0) & (n >= HALF_LIVES * hl)  # as the scan's selection (scan.HALF_LIVES)
    notes = {tuple(names): (f"{int(k)} formation bars, fewer than {HALF_LIVES:g} half-lives of {h:.0f} bars"
                            if np.isfinite(h) else "its formation spread does not revert (no finite half-life)")
             for names, k, h, good in zip(legs, n, hl, ok) if not good}
    return ok, notes


def _pick(order: np.ndarray, eligible: np.ndarray, top: int, notes: dict, legs: list[tuple[str, ...]],
          ranked_notes: dict) -> np.ndarray:
    """The first ``top`` of ``order`` that are ``eligible``; the notes of the ineligible ones
    ranked above the last one chosen go into ``ranked_notes``."""
    good = eligible[order]
    chosen = order[good][:top]
    reach = int(np.flatnonzero(good)[top - 1]) + 1 if good.sum() >= top else len(order)
    for i in order[:reach][~good[:reach]].tolist():
        if tuple(legs[i]) in notes:
            ranked_notes[tuple(legs[i])] = notes[tuple(legs[i])]
    return chosen.astype(np.int64)


def _pairs(s: pd.DataFrame) -> list[tuple[str, ...]]:
    return list(zip(s["x"], s["y"]))


def _log_hedge(f: Formation, score: np.ndarray, order: np.ndarray, eligible: np.ndarray,
               p: MethodParams) -> Candidates:
    s = f.scan
    ok, notes = _enough_history(s)
    ranked_notes: dict = {}
    selected = _pick(order, eligible & ok, p.top, notes, _pairs(s), ranked_notes)
    return Candidates.of_pairs(s["x"].to_numpy(object), s["y"].to_numpy(object), np.ones(len(s)),
                               -s["beta"].to_numpy(dtype=float), "log", score, selected, ranked_notes)


def engle_granger(f: Formation, p: MethodParams) -> Candidates:
    """See the module doc."""
    pv = f.scan["pvalue"].to_numpy(dtype=float)
    order = np.argsort(pv, kind="stable")
    return _log_hedge(f, pv, order, f.scan["q_value"].to_numpy(dtype=float) <= p.q_level, p)


def distance(f: Formation, p: MethodParams) -> Candidates:
    """See the module doc: the mean squared difference of the normalised prices (a pair's own
    common bars, carried at most ``max_stale`` bars as in the scan)."""
    s = f.scan
    panel = f.closes.ffill(limit=p.max_stale)
    col = {c: k for k, c in enumerate(panel.columns)}
    values = panel.to_numpy(dtype=float)
    ssd, wx, wy = np.full(len(s), np.inf), np.zeros(len(s)), np.zeros(len(s))
    for i, (x, y) in enumerate(zip(s["x"], s["y"])):
        a, b = values[:, col[x]], values[:, col[y]]
        both = np.isfinite(a) & np.isfinite(b)
        if both.sum() < p.min_obs:
            continue
        a, b = a[both], b[both]
        ssd[i] = float(np.mean((a / a[0] - b / b[0]) ** 2))
        wx[i], wy[i] = 1.0 / a[0], -1.0 / b[0]
    ok, notes = _enough_history(s)
    ranked_notes: dict = {}
    selected = _pick(np.argsort(ssd, kind="stable"), np.isfinite(ssd) & ok, p.top, notes, _pairs(s), ranked_notes)
    return Candidates.of_pairs(s["x"].to_numpy(object), s["y"].to_numpy(object), wx, wy, "level", ssd, selected,
                               ranked_notes)


def return_corr(closes: pd.DataFrame, min_obs: int) -> pd.DataFrame:
    """Correlation of log returns, pairwise complete, NaN where fewer than ``min_obs`` common."""
    return np.log(closes).diff().corr(min_periods=min_obs)


def clusters_of(closes: pd.DataFrame, n: int, min_obs: int, corr: pd.DataFrame | None = None) -> dict[str, int]:
    """Symbol -> cluster: hierarchical clustering (average linkage) of the correlation distance
    1 - corr of log returns (``return_corr``; no correlation: distance 1), cut into at most ``n``
    clusters."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    corr = return_corr(closes, min_obs) if corr is None else corr
    dist = np.clip(1.0 - corr.fillna(0.0).to_numpy(), 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    if len(dist) < 2:
        return {str(c): 1 for c in closes.columns}
    labels = fcluster(linkage(squareform(dist, checks=False), method="average"), t=n, criterion="maxclust")
    return {str(c): int(k) for c, k in zip(closes.columns, labels)}


def correlation(f: Formation, p: MethodParams) -> Candidates:
    """See the module doc."""
    s = f.scan
    group = clusters_of(f.closes[sorted(set(s["x"]) | set(s["y"]))], p.clusters, p.min_obs) if len(s) else {}
    corr = s["corr"].to_numpy(dtype=float)
    same = np.array([group.get(x) == group.get(y) for x, y in zip(s["x"], s["y"])], dtype=bool)
    score = -np.where(np.isfinite(corr), corr, -np.inf)
    return _log_hedge(f, score, np.argsort(score, kind="stable"), same & np.isfinite(corr), p)


def stability(f: Formation, p: MethodParams) -> Candidates:
    """See the module doc: each sub-window scanned on its own bars (``min_obs`` / K bars at least)."""
    s = f.scan
    edges = np.linspace(0, len(f.closes), p.K + 1).astype(int)
    count = np.zeros(len(s))
    key = {(x, y): i for i, (x, y) in enumerate(zip(s["x"], s["y"]))}
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = f.closes.iloc[lo:hi]
        part = part.loc[:, part.notna().sum() >= max(50, p.min_obs // p.K)]
        if part.shape[1] < 2:
            continue
        try:
            r = scan_pairs(part, validation=0.0, log_prices=True, min_obs=max(50, p.min_obs // p.K),
                           max_stale=p.max_stale)
        except InvalidParameter:
            continue
        for x, y, pv in zip(r["x"], r["y"], r["pvalue"]):
            if (x, y) in key and pv < SUB_LEVEL:
                count[key[(x, y)]] += 1
    pv = s["pvalue"].to_numpy(dtype=float)
    order = np.lexsort((pv, -count))
    return _log_hedge(f, -count + pv * 1e-3, order, count >= p.k, p)


#: Symbols per Johansen cluster, about (the pairs tested grow with its square, not the universe's);
#: also the most members of one cluster that baskets of three are formed from.
JOHANSEN_CLUSTER = 8


def johansen(f: Formation, p: MethodParams) -> Candidates:
    """See the module doc."""
    from itertools import combinations

    from statsmodels.tsa.vector_ar.vecm import coint_johansen

    s = f.scan
    names = sorted(set(s["x"]) | set(s["y"]))
    corr = return_corr(f.closes[names], p.min_obs) if names else pd.DataFrame()
    group = clusters_of(f.closes[names], -(-len(names) // JOHANSEN_CLUSTER), p.min_obs, corr) if names else {}
    tested = set(_pairs(s))
    legs: list[tuple[str, ...]] = [(x, y) for x, y in _pairs(s) if group.get(x) == group.get(y)]
    members: dict[int, list[str]] = {}
    for name in names:
        members.setdefault(group[name], []).append(name)
    for ms in members.values():
        if len(ms) > JOHANSEN_CLUSTER:  # its most central members: highest mean correlation with the rest
            centrality = corr.loc[ms, ms].fillna(0.0).mean(axis=1)
            ms = sorted(centrality.nlargest(JOHANSEN_CLUSTER).index)
        legs += [c for c in combinations(ms, 3) if {c[:2], c[1:], (c[0], c[2])} <= tested]
    filled = f.closes.ffill(limit=p.max_stale)
    col = {str(s): k for k, s in enumerate(filled.columns)}
    logs = np.log(filled.to_numpy(dtype=float))
    score, n, hl = np.full(len(legs), np.inf), np.zeros(len(legs)), np.full(len(legs), np.nan)
    weights = [np.full(len(c), np.nan) for c in legs]
    for i, c in enumerate(legs):
        common = logs[:, [col[s] for s in c]]
        common = common[np.isfinite(common).all(axis=1)]
        if len(common) < p.min_obs:
            continue
        r = coint_johansen(common, 0, 1)
        vec = r.evec[:, 0]
        if vec[0] != 0:
            weights[i] = vec / vec[0]
            score[i], n[i] = -r.lr1[0] / r.cvt[0, 1], len(common)
            hl[i] = half_life(common @ weights[i]).bars
    ok, notes = _history_notes(legs, n, hl)
    ranked_notes: dict = {}
    selected = _pick(np.argsort(score, kind="stable"), (score < -1.0) & ok, p.top, notes, legs, ranked_notes)
    return Candidates(tuple(legs), tuple(weights), "log", score, selected, ranked_notes)


def pca(f: Formation, p: MethodParams) -> Candidates:
    """See ``research.pca``: the symbols with a price on every bar of the window (carried at most
    ``max_stale`` bars); one candidate per symbol, its residual basket (the symbol first, then the
    rest), eligible when it reverts in under ``max_reversion`` of the window and within
    HALF_LIVES half-lives; the fastest first."""
    panel = f.closes.ffill(limit=p.max_stale)
    full = panel.loc[:, panel.notna().all()]
    if full.shape[1] < 3 or len(full) < p.min_obs:
        return Candidates((), (), "log", np.empty(0), np.empty(0, dtype=np.int64), signal="s")
    names = [str(c) for c in full.columns]
    r = residuals(np.log(full.to_numpy(dtype=float)), p.variance)
    legs, weights = [], []
    for i, name in enumerate(names):
        order = [i, *(k for k in range(len(names)) if k != i)]
        legs.append(tuple(names[k] for k in order))
        weights.append(r.weights[i, order])
    n = np.full(len(names), float(len(full)))
    ok, notes = _history_notes(legs, n, r.tau * np.log(2.0))
    fast = np.isfinite(r.tau) & (r.tau < p.max_reversion * len(full))
    score = np.where(np.isfinite(r.tau), r.tau, np.inf)
    ranked_notes: dict = {}
    selected = _pick(np.argsort(score, kind="stable"), fast & ok, p.top, notes, legs, ranked_notes)
    return Candidates(tuple(legs), tuple(weights), "log", score, selected, ranked_notes, signal="s")


#: Every method by name, in the order results show them.
METHODS: dict[str, Callable[[Formation, MethodParams], Candidates]] = {
    "engle_granger": engle_granger, "distance": distance, "correlation": correlation, "stability": stability,
    "johansen": johansen, "pca": pca}


def method_names(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Names of methods (comma-separated or a list; ``all``), checked against METHODS."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return tuple(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise InvalidParameter(f"unknown method(s) {', '.join(unknown) or '(none given)'}: choose from "
                               f"{', '.join(METHODS)} or all")
    return tuple(names)
