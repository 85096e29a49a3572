"""How much of a sweep's best result is luck: the Deflated Sharpe Ratio and the Probability of
Backtest Overfitting by combinatorially symmetric cross-validation.

Both work on per-period returns (the PnL of each bar period on capital 1, periods without a row
counting as 0) and on Sharpe ratios per period, not annualised. A sweep keeps, per combination
and per block of time, the sums of the PnL's first four powers (``BlockSums``), which is all
either needs: no combination's return series has to be held.

- Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5).
- Bailey, D. H., Borwein, J., López de Prado, M. and Zhu, Q. J. (2017), "The Probability of
  Backtest Overfitting", Journal of Computational Finance 20(4).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameter

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True, eq=False)
class BlockSums:
    """Per combination (rows) and block of equal elapsed time (columns): the sums of the per-period
    PnL to the powers 1..4 (``power[k]`` has shape (combinations, blocks)) and the periods per
    block (``periods``, shape (blocks,); the PnL of a period without a row is 0)."""

    power: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    periods: np.ndarray

    @property
    def blocks(self) -> int:
        return len(self.periods)

    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Over the whole sample, per combination: (Sharpe per period, skewness, kurtosis (3 for
        a normal), periods). Sharpe uses the sample standard deviation (n - 1), the moments the
        population ones, as in the papers; NaN where the PnL is constant."""
        n = float(self.periods.sum())
        s1, s2, s3, s4 = (p.sum(axis=1) for p in self.power)
        mean = s1 / n
        m2 = s2 / n - mean**2
        m3 = s3 / n - 3 * mean * s2 / n + 2 * mean**3
        m4 = s4 / n - 4 * mean * s3 / n + 6 * mean**2 * s2 / n - 3 * mean**4
        with np.errstate(invalid="ignore", divide="ignore"):
            var = m2 * n / (n - 1)
            sharpe = np.where(var > 0, mean / np.sqrt(var), np.nan)
            skew = np.where(m2 > 0, m3 / m2**1.5, np.nan)
            kurt = np.where(m2 > 0, m4 / m2**2, np.nan)
        return sharpe, skew, kurt, np.full(len(mean), n)


def block_sums_of(active: np.ndarray, pnl: np.ndarray, block_of_bar: np.ndarray, blocks: int) -> np.ndarray:
    """(4, blocks): the sums of ``pnl`` (the PnL of bars ``active``, ascending) to the powers 1..4
    per block (``block_of_bar`` ascending)."""
    out = np.zeros((4, blocks))
    if not len(active):
        return out
    p2 = pnl * pnl
    powers = np.stack((pnl, p2, p2 * pnl, p2 * p2))
    b = block_of_bar[active]
    starts = np.flatnonzero(np.diff(b, prepend=-1))  # the first active bar of each block present
    out[:, b[starts]] = np.add.reduceat(powers, starts, axis=1)
    return out


def expected_max_sharpe(sharpe_var: float, trials: int) -> float:
    """SR0: the expected maximum of ``trials`` Sharpe ratios (per period) of strategies with no
    skill whose estimates vary with ``sharpe_var`` (Bailey & López de Prado 2014, eq. for SR0):
    sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))). 0 for one trial."""
    if trials < 2 or not sharpe_var > 0:
        return 0.0
    from scipy.stats import norm  # imported on first use: scipy.stats costs ~75 MB and 1.4 s

    return math.sqrt(sharpe_var) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1 / trials)
                                    + EULER_GAMMA * norm.ppf(1 - 1 / (trials * math.e)))


def deflated_sharpe(sharpe: np.ndarray | float, skew: np.ndarray | float, kurt: np.ndarray | float,
                    periods: float, sr0: float) -> np.ndarray:
    """DSR = Phi((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2)): the probability
    that the true Sharpe exceeds SR0 (the best that luck gives, see expected_max_sharpe) given the
    estimate SR over T periods and the returns' skewness and kurtosis. NaN where SR is."""
    sr = np.asarray(sharpe, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        denom = 1 - np.asarray(skew) * sr + (np.asarray(kurt) - 1) / 4 * sr**2
        z = (sr - sr0) * math.sqrt(max(periods - 1, 0)) / np.sqrt(denom)
    from scipy.stats import norm

    return np.where(np.isfinite(z), norm.cdf(z), np.nan)


@dataclass(frozen=True, eq=False)
class Overfitting:
    """What luck explains of a sweep: ``trials`` (combinations), ``sharpe_var`` (variance of their
    Sharpe per period), ``sr0`` (expected best Sharpe per period with no skill), ``pbo`` (the share
    of CSCV splits whose in-sample best ranks at or below the out-of-sample median), ``logits``
    (lambda per split), ``splits`` and ``blocks``; ``deflated`` per combination (DSR)."""

    trials: int
    sharpe_var: float
    sr0: float
    pbo: float
    logits: np.ndarray
    splits: int
    blocks: int
    deflated: np.ndarray


def _sharpe_of(s1: np.ndarray, s2: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    """Sharpe per period from sums over n periods (0 for a PnL that never moved: no trades)."""
    mean = s1 / n
    var = (s2 - n * mean**2) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, mean / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)


def _weighted_ranks(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per row: the rank (1 = lowest, ties averaged) of each column's value among all trials, a
    column standing for ``weight`` identical trials (``scipy.stats.rankdata(..., "average")`` of
    the values repeated by their weights, taken once per column)."""
    out = np.empty(values.shape)
    for r, row in enumerate(values):
        order = np.argsort(row, kind="stable")
        ranked, total = row[order], np.concatenate([[0], np.cumsum(weight[order])])
        below = total[np.searchsorted(ranked, row, side="left")]
        upto = total[np.searchsorted(ranked, row, side="right")]
        out[r] = below + (upto - below + 1) / 2
    return out


def _best_rank(is_sr: np.ndarray, oos_sr: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per split (rows): the out-of-sample rank (1 = worst, ties averaged) of the in-sample best
    combination among all trials, column j standing for ``weight[j]`` identical combinations;
    when several tie for best in sample (within 1e-12 relative), the mean of their ranks (each
    counted by its weight), so the result does not depend on the grid's order."""
    top = is_sr.max(axis=1, keepdims=True)
    best = is_sr >= top - 1e-12 * np.abs(top)
    pick = oos_sr[np.arange(len(is_sr)), np.argmax(is_sr, axis=1)][:, None]
    rank = 1 + (oos_sr < pick) @ weight + ((oos_sr == pick) @ weight - 1) / 2
    # tied bests that also agree out of sample (identical combinations, the usual tie) have one rank
    hi = np.where(best, oos_sr, -np.inf).max(axis=1)
    lo = np.where(best, oos_sr, np.inf).min(axis=1)
    split = np.flatnonzero(hi > lo)
    if len(split):
        tied = best[split] * weight
        rank[split] = (_weighted_ranks(oos_sr[split], weight) * tied).sum(axis=1) / tied.sum(axis=1)
    return rank


def pbo_cscv(sums: BlockSums) -> tuple[float, np.ndarray]:
    """(PBO, logits) by CSCV: for every way to pick half of the S blocks as in-sample J (the rest
    out of sample), take the combination n* with the best in-sample Sharpe, its relative rank
    w = rank / (N + 1) among the out-of-sample Sharpe ratios (ties averaged; combinations tied
    for best in sample share the split: w is the mean of their ranks) and
    lambda = ln(w / (1 - w)); PBO = the share of splits with lambda <= 0. Combinations with the
    same block sums (the same trades) are computed once, counted as many times as they occur."""
    s = sums.blocks
    if s < 2 or s % 2:
        raise InvalidParameter(f"CSCV needs an even number of blocks >= 2, got {s}")
    trials = sums.power[0].shape[0]
    if trials < 2:
        raise InvalidParameter("PBO needs at least 2 combinations")
    distinct, weight = np.unique(np.hstack(sums.power[:2]), axis=0, return_counts=True)
    p1, p2 = distinct[:, :s], distinct[:, s:]
    weight = weight.astype(np.float64)
    picks = np.array(list(itertools.combinations(range(s), s // 2)))
    logits = np.empty(len(picks))
    for lo in range(0, len(picks), 512):  # bounded memory: 512 splits x combinations at a time
        chunk = picks[lo : lo + 512]
        member = np.zeros((len(chunk), s))
        member[np.arange(len(chunk))[:, None], chunk] = 1.0
        rest = 1.0 - member
        is_sr = _sharpe_of(member @ p1.T, member @ p2.T, (member @ sums.periods)[:, None])
        oos_sr = _sharpe_of(rest @ p1.T, rest @ p2.T, (rest @ sums.periods)[:, None])
        w = _best_rank(is_sr, oos_sr, weight) / (trials + 1)
        logits[lo : lo + 512] = np.log(w / (1 - w))
    return float(np.mean(logits <= 0)), logits


def overfitting(sums: BlockSums) -> Overfitting:
    """The Deflated Sharpe Ratio of every combination (deflated by the expected best Sharpe of
    all of them) and the PBO of the sweep (see the module doc)."""
    sharpe, skew, kurt, n = sums.moments()
    finite = sharpe[np.isfinite(sharpe)]
    trials = len(sharpe)
    var = float(np.var(finite, ddof=1)) if len(finite) > 1 else math.nan
    sr0 = expected_max_sharpe(var, trials)
    pbo, logits = pbo_cscv(sums) if trials >= 2 else (math.nan, np.empty(0))
    return Overfitting(trials, var, sr0, pbo, logits, len(logits), sums.blocks,
                       deflated_sharpe(sharpe, skew, kurt, float(n[0]) if len(n) else 0.0, sr0))
