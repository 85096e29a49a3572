"""The backtest details an independent audit found (issue 21, section 6), one test each:
funding settlement-time jitter, PBO block boundaries and tied bests, the bar length of a known
timeframe."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from statarb_kit import InvalidParameter
from statarb_kit.backtest import BacktestParams, DataSpec, backtest_bars
from statarb_kit.backtest.engine import block_of_bars
from statarb_kit.backtest.overfitting import pbo_cscv
from statarb_kit.backtest.sweep import run_sweep
from statarb_kit.backtest.params import expand_grid
from statarb_kit.funding import FundingRates, PairFunding

from .test_overfitting import cscv_by_hand, sums_of

HOUR = 3_600_000


def _ms(times) -> np.ndarray:
    return ((times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)


def _jittered(bars, jitter_ms: list[int], drop: int | None = None) -> PairFunding:
    """8-hourly settlements over ``bars``' span, each stamped a few ms after the hour."""
    first = (int(bars.close_time[0]) // (8 * HOUR) + 1) * 8 * HOUR
    times = np.arange(first, int(bars.close_time[-1]), 8 * HOUR)
    times = times + np.resize(np.array(jitter_ms), len(times))
    if drop is not None:
        times = np.delete(times, drop)
    rates = np.full(len(times), 1e-4)
    return PairFunding(*(FundingRates(s, times, rates, "dump") for s in bars.symbols))


def test_funding_settled_a_few_ms_after_the_hour_is_covered():
    """Settlements at 08:00:00.001 and 16:00:00.009 (8 h + 8 ms apart) cover the span: the backtest
    charges them; a settlement missing altogether still refuses with a message."""
    bars = DataSpec(timeframe="5m", hours=40, seed=2).load()
    p = BacktestParams(z_entry=1.5, z_exit=-1.4, z_window=48, corr_window=48, hedge_window=96)
    jittered = dataclasses.replace(bars, funding=_jittered(bars, [1, 9, 3, 250, 7]))
    result = backtest_bars(jittered, p)
    assert result.funding_included and (result.trades["funding"] != 0).sum() >= 1
    # by hand: each settlement T while a trade is held (entry fill < T <= exit fill), at the leg's close
    close = bars.close_time
    total = 0.0
    for leg, rates, units in ((0, jittered.funding.x, "units_x"), (1, jittered.funding.y, "units_y")):
        for T, r in zip(rates.time, rates.rate):
            held = result.trades[(_ms(result.trades.entry_time) < T) & (T <= _ms(result.trades.exit_time))]
            if len(held):
                price = (bars.price_x, bars.price_y)[leg][np.searchsorted(close, T, side="right") - 1]
                total += -held[units].iloc[0] * price * r
    assert result.metrics.funding_pnl == pytest.approx(total, rel=1e-12) and total != 0
    with pytest.raises(InvalidParameter, match="no funding data"):
        backtest_bars(dataclasses.replace(bars, funding=_jittered(bars, [1, 9], drop=3)), p)


def test_pbo_blocks_hold_equal_periods_at_exact_boundaries():
    """4,000 one-minute bars in 8 blocks: 500 bars each (a bar closing on a boundary closes the
    earlier block), and a sweep's PBO equals CSCV by hand on those equal blocks."""
    close = 1_700_000_000_000 + 60_000 * np.arange(1, 4_001)
    block, periods = block_of_bars(close, 60.0, 8)
    assert np.bincount(block).tolist() == [500] * 8 and periods.tolist() == [500.0] * 8
    assert np.all(np.diff(block) >= 0)

    bars = DataSpec(timeframe="1m", hours=8, seed=4).load()
    n = len(bars) // 8 * 8
    bars = bars.between(None, None)
    bars = dataclasses.replace(bars, time=bars.time[:n], price_x=bars.price_x[:n], price_y=bars.price_y[:n],
                               funding=None)
    assert np.all(np.diff(bars.time) == 60_000)  # no gaps: a period is a bar
    combos = expand_grid({"z_entry": [1.0, 1.5, 2.0, 2.5], "z_exit": [-0.5, 0.0, 0.5]},
                         BacktestParams(z_window=30, corr_window=30, hedge_window=60))
    results = run_sweep(bars, combos, jobs=1, progress=False, blocks=8)
    pnl = np.stack([np.diff(backtest_bars(bars, p).equity.to_numpy(), prepend=1.0) for p in combos], axis=1)
    want, _ = cscv_by_hand(pnl, 8)
    assert results["pbo"].iloc[0] == pytest.approx(want, abs=1e-15)


def test_pbo_treats_combinations_tied_in_sample_alike_whatever_the_grid_order():
    """16 combinations that each trade in one block of 8 and lose there (as grid points whose
    entries are rare): in a split, the ones trading only out of sample tie in sample at Sharpe 0
    and differ out of sample. The PBO is the same for the grid and the grid reversed."""
    rng = np.random.default_rng(11)
    r = np.zeros((800, 16))
    for j in range(16):
        rows = slice(100 * (j % 8), 100 * (j % 8 + 1))
        r[rows, j] = rng.normal(-0.002 * (1 + j), 0.01, 100)
    forward = pbo_cscv(sums_of(r, 8))
    backward = pbo_cscv(sums_of(r[:, ::-1], 8))
    assert forward[0] == backward[0]
    np.testing.assert_allclose(np.sort(forward[1]), np.sort(backward[1]), rtol=1e-12)
    # with no ties the rule is the paper's: the in-sample best's own rank
    distinct = rng.normal(0, 0.01, (800, 6))
    assert pbo_cscv(sums_of(distinct, 4))[0] == cscv_by_hand(distinct, 4)[0]


def test_the_bar_length_comes_from_the_timeframe_not_from_the_gaps():
    """Every other 1m bar missing: the steps are all 120 s, but a period is still 60 s, so the
    elapsed periods (and the Sharpe's annualisation) count minutes."""
    bars = DataSpec(timeframe="1m", hours=12, seed=3).load()
    half = dataclasses.replace(bars, time=bars.time[::2], price_x=bars.price_x[::2], price_y=bars.price_y[::2],
                               funding=None)
    assert np.all(np.diff(half.time) == 120_000) and half.bar_s == 60.0
    m = backtest_bars(half, BacktestParams(z_window=30, corr_window=30, hedge_window=60)).metrics
    elapsed_s = (half.close_time[-1] - half.time[0]) / 1000
    assert m.periods == pytest.approx(elapsed_s / 60.0, rel=1e-12)
    sweep = run_sweep(half, [BacktestParams(z_window=30, corr_window=30, hedge_window=60)], jobs=1, progress=False,
                      blocks=2)
    assert sweep["periods"].iloc[0] == pytest.approx(m.periods, rel=1e-12)
