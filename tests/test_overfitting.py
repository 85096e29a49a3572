"""The Deflated Sharpe Ratio and the PBO by CSCV against the papers' formulas computed by hand,
and a sweep's figures against its combinations' return series."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import kurtosis, norm, skew

from statarb_kit.backtest import DataSpec, expand_grid
from statarb_kit.backtest.data import backtest_bars
from statarb_kit.backtest.engine import bar_seconds, block_of_bars
from statarb_kit.backtest.overfitting import (EULER_GAMMA, BlockSums, deflated_sharpe, expected_max_sharpe,
                                               pbo_cscv)
from statarb_kit.backtest.params import BacktestParams
from statarb_kit.backtest.sweep import run_sweep


def sums_of(returns: np.ndarray, blocks: int) -> BlockSums:
    """BlockSums of a (periods x trials) matrix cut into equal row blocks."""
    parts = np.array_split(np.arange(len(returns)), blocks)
    power = tuple(np.stack([(returns[i] ** k).sum(axis=0) for i in parts], axis=1) for k in (1, 2, 3, 4))
    return BlockSums(power, np.array([len(i) for i in parts], dtype=float))


def test_the_papers_worked_example():
    """Bailey & López de Prado (2014): SR 2.5 a year on 1,250 daily returns, 100 trials whose
    annualised Sharpe ratios vary by 0.5, skewness -3, kurtosis 10: SR0 = 0.1132 a day, DSR 0.9004."""
    sr0 = expected_max_sharpe(0.5 / 250, 100)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    assert float(deflated_sharpe(2.5 / math.sqrt(250), -3, 10, 1250, sr0)) == pytest.approx(0.9004, abs=5e-4)


def test_deflated_sharpe_equals_the_formula_by_hand():
    sr, var, n, t, g3, g4 = 0.08, 0.0009, 37, 900, 0.4, 5.5
    by_hand_sr0 = math.sqrt(var) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1 / n) + EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e)))
    by_hand = norm.cdf((sr - by_hand_sr0) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert expected_max_sharpe(var, n) == pytest.approx(by_hand_sr0, rel=1e-14)
    assert float(deflated_sharpe(sr, g3, g4, t, by_hand_sr0)) == pytest.approx(by_hand, rel=1e-13)
    assert expected_max_sharpe(var, 1) == 0.0  # one trial: nothing to deflate (the PSR against 0)


def test_moments_from_block_sums_equal_scipy_with_empty_periods_as_zero():
    rng = np.random.default_rng(1)
    r = rng.standard_t(4, (500, 3)) * 0.01 + 0.001
    r[rng.random(500) < 0.6] = 0.0  # flat periods, as between trades
    sharpe, g3, g4, n = sums_of(r, 8).moments()
    np.testing.assert_allclose(sharpe, r.mean(0) / r.std(0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(g3, skew(r, axis=0), rtol=1e-9)
    np.testing.assert_allclose(g4, kurtosis(r, axis=0, fisher=False), rtol=1e-9)
    assert (n == 500).all()


def cscv_by_hand(r: np.ndarray, s: int) -> tuple[float, list[float]]:
    """The paper's procedure literally: split M into S row blocks; for each half J, the in-sample
    matrix is J's blocks stacked, the out-of-sample one the others; Sharpe = mean / std (ddof 1)."""
    blocks = np.array_split(r, s)
    logits = []
    for j in itertools.combinations(range(s), s // 2):
        ins = np.vstack([blocks[k] for k in j])
        oos = np.vstack([blocks[k] for k in range(s) if k not in j])
        r_is = ins.mean(0) / ins.std(0, ddof=1)
        r_oos = oos.mean(0) / oos.std(0, ddof=1)
        best = int(np.argmax(r_is))
        rank = 1 + (r_oos < r_oos[best]).sum() + ((r_oos == r_oos[best]).sum() - 1) / 2
        w = rank / (r.shape[1] + 1)
        logits.append(math.log(w / (1 - w)))
    return float(np.mean(np.array(logits) <= 0)), logits


@pytest.mark.parametrize("s", [2, 4, 6])
def test_pbo_equals_cscv_by_hand(s):
    rng = np.random.default_rng(s)
    r = rng.normal(0, 0.01, (120, 5)) + rng.normal(0, 0.001, 5)
    pbo, logits = pbo_cscv(sums_of(r, s))
    want, want_logits = cscv_by_hand(r, s)
    assert pbo == want
    np.testing.assert_allclose(logits, want_logits, rtol=1e-9)


def test_pbo_is_low_for_real_skill_and_about_half_for_pure_noise():
    draws = [pbo_cscv(sums_of(np.random.default_rng(s).normal(0, 0.01, (1_000, 50)), 10))[0] for s in range(20)]
    assert 0.4 < np.mean(draws) < 0.6  # pure noise: the in-sample best is a coin flip out of sample
    noise = np.random.default_rng(5).normal(0, 0.01, (2_000, 200))
    skill = noise.copy()
    skill[:, 0] += 0.004  # one combination earns in every block
    assert pbo_cscv(sums_of(skill, 10))[0] == 0.0


def test_a_sweeps_deflated_sharpe_and_pbo_follow_from_its_combinations_returns():
    bars = DataSpec(timeframe="1m", hours=6, seed=4).load()
    combos = expand_grid({"z_entry": [1.0, 1.5, 2.0, 2.5], "z_exit": [-0.5, 0.0, 0.5]},
                         BacktestParams(z_window=30, corr_window=30, hedge_window=60))
    results = run_sweep(bars, combos, jobs=1, progress=False, blocks=6)
    bar_s = bar_seconds(bars.time)
    block, periods = block_of_bars(bars.close_time, bar_s, 6)
    series = []
    for p in combos:  # each combination's PnL per period: its equity changes, 0 where no row
        pnl = np.diff(backtest_bars(bars, p).equity.to_numpy(), prepend=1.0)
        extra = int(round(periods.sum())) - len(pnl)
        series.append((pnl, extra))
    sums = tuple(np.stack([np.bincount(block, weights=pnl**k, minlength=6) for pnl, _ in series])
                 for k in (1, 2, 3, 4))
    fit = results.attrs["overfitting"]
    full = [np.concatenate([pnl, np.zeros(extra)]) for pnl, extra in series]
    sr = np.array([x.mean() / x.std(ddof=1) for x in full])
    sr0 = expected_max_sharpe(float(np.var(sr, ddof=1)), len(combos))
    assert fit.sr0 == pytest.approx(sr0, rel=1e-9) and fit.trials == 12
    want = [norm.cdf((s - sr0) * math.sqrt(len(x) - 1) / math.sqrt(1 - skew(x) * s + (kurtosis(x, fisher=False) - 1) / 4 * s * s))
            for s, x in zip(sr, full)]
    np.testing.assert_allclose(results["deflated_sharpe"], want, rtol=1e-7)
    assert results["pbo"].iloc[0] == pytest.approx(pbo_cscv(BlockSums(sums, periods))[0])
    assert 0.0 <= fit.pbo <= 1.0 and fit.splits == math.comb(6, 3)


def test_pbo_counts_repeated_combinations_and_shares_tied_bests_as_by_hand():
    """A grid repeats combinations (thresholds that never bind make the same trades): PBO computes
    each distinct one once with its count. By hand over every column: the same logits, also where
    two combinations tie in sample and differ out of sample (the tied bests share the split)."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(11)
    base = rng.normal(0, 0.01, (160, 6)) + rng.normal(0, 0.001, 6)
    base[:, 0] += 0.003  # the best in most splits ...
    base[:, 1] = base[:, 0]
    base[140:, 1] += rng.normal(0, 0.01, 20)  # ... tied with column 1 except in the last block
    r = base[:, [0, 1, 1, 2, 3, 3, 3, 4, 5, 5, 2, 0]]  # repeated, in no order
    s = 8
    blocks = np.array_split(r, s)
    want = []
    for j in itertools.combinations(range(s), s // 2):
        ins = np.vstack([blocks[k] for k in j])
        oos = np.vstack([blocks[k] for k in range(s) if k not in j])
        r_is, r_oos = ins.mean(0) / ins.std(0, ddof=1), oos.mean(0) / oos.std(0, ddof=1)
        tied = r_is >= r_is.max() - 1e-12 * abs(r_is.max())
        rank = rankdata(r_oos, method="average")[tied].mean()
        w = rank / (r.shape[1] + 1)
        want.append(math.log(w / (1 - w)))
    pbo, logits = pbo_cscv(sums_of(r, s))
    np.testing.assert_allclose(logits, want, rtol=1e-9)
    assert pbo == float(np.mean(np.array(want) <= 0))
    shuffled = r[:, rng.permutation(r.shape[1])]
    np.testing.assert_allclose(pbo_cscv(sums_of(shuffled, s))[1], logits, rtol=1e-12)
