"""The basket engine: two legs are the pair engine with a fixed hedge, to the bit; three legs are
booked as a per-bar loop by hand does it (units from the weights at the entry fill, fees and
slippage per leg, marked to market each bar); asymmetric exits exit at the first crossing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from statarb_kit.analytics.signals import REL_STD_FLOOR, log_returns, rolling_corr, rolling_zscore
from statarb_kit.backtest.basket import basket_backtest
from statarb_kit.backtest.engine import run_backtest
from statarb_kit.backtest.frame import SignalFrame
from statarb_kit.errors import InvalidParameter
from statarb_kit.rule import Rule

HOUR_MS = 3_600_000


def legs(k: int, n: int = 1_500, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Bar close times and prices of k legs: a common walk, each leg plus AR(1) noise."""
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(0, 0.01, n))
    prices = np.empty((n, k))
    for j in range(k):
        e = np.zeros(n)
        for t in range(1, n):
            e[t] = 0.9 * e[t - 1] + rng.normal(0, 0.004)
        prices[:, j] = 20.0 * (j + 1) * np.exp(common * (1 + 0.2 * j) + e)
    return 1_700_000_000_000 + HOUR_MS * np.arange(1, n + 1), prices


@pytest.mark.parametrize("log", [True, False])
def test_two_legs_are_the_pair_engine_with_a_fixed_hedge(log):
    t, px = legs(2)
    beta = 1.3 if log else 0.6
    rule = Rule(z_entry=1.5, z_window=50, corr_window=50, corr_min=0.2, log_prices=log, fee_bps=2, slippage_bps=1,
                z_stop=3.5, max_hold=60)
    x, y = (np.log(px[:, 0]), np.log(px[:, 1])) if log else (px[:, 0], px[:, 1])
    z = rolling_zscore(x - beta * y, rule.z_window, False, REL_STD_FLOOR * np.abs(x))
    corr = rolling_corr(log_returns(px[:, 0]), log_returns(px[:, 1]), rule.corr_window)
    n = len(t)
    pair = run_backtest(SignalFrame(t, px[:, 0], px[:, 1], np.zeros(n), np.full(n, beta), z, corr), rule, 3600.0)
    basket = basket_backtest(t, px, np.array([1.0, -beta]), z, rule, 3600.0, ("X", "Y"), corr)
    assert pair.metrics.trades > 10
    # on log prices the same arithmetic to the bit; on prices the unit size is 1 / sum |w| P, the
    # pair's 1 / (P_x + |beta| P_y): equal to rounding
    rtol = 0.0 if log else 1e-12
    a, b = pair.metrics.as_dict(), basket.metrics.as_dict()
    np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=rtol, atol=0.0, equal_nan=True)
    np.testing.assert_allclose(pair.equity.to_numpy(), basket.equity.to_numpy(), rtol=rtol, atol=0.0)
    assert (pair.equity.index == basket.equity.index).all()
    np.testing.assert_allclose(pair.trades[["units_x", "units_y"]].to_numpy(), basket.units, rtol=rtol, atol=0.0)
    np.testing.assert_allclose(pair.trades["pnl"].to_numpy(), basket.trades["pnl"].to_numpy(), rtol=rtol, atol=1e-17)
    assert (pair.trades["reason"].to_numpy() == basket.trades["reason"].to_numpy()).all()


def test_three_legs_are_booked_as_a_loop_by_hand():
    t, px = legs(3, seed=9)
    w = np.array([1.0, -0.7, -0.45])
    rule = Rule(z_entry=1.5, z_window=40, log_prices=True, fee_bps=4, slippage_bps=2)
    z = rolling_zscore(np.log(px) @ w, rule.z_window)
    r = basket_backtest(t, px, w, z, rule, 3600.0, ("A", "B", "C"))
    assert r.metrics.trades > 10 and np.isnan(r.metrics.funding_pnl)
    # by hand: one position at a time, units fixed at the entry fill, costs per leg on each fill
    equity, cash, held = [], 1.0, np.zeros(3)
    when = {ts.value // 1_000_000: k for k, ts in enumerate(r.trades["entry_time"])}
    leave = {ts.value // 1_000_000: k for k, ts in enumerate(r.trades["exit_time"])}
    rate = (rule.fee_bps + rule.slippage_bps) / 1e4
    for i in range(len(t)):
        if i:
            cash += held @ (px[i] - px[i - 1])
        if t[i] in when:
            k = when[t[i]]
            side = 1.0 if r.trades["direction"].iloc[k] == "long" else -1.0
            held = side * w / np.abs(w).sum() / px[i]
            np.testing.assert_allclose(held, r.units[k], rtol=1e-14)
            cash -= rate * np.abs(held) @ px[i]
            assert abs(z[i - 1]) >= rule.z_entry  # filled the bar after its signal
        if t[i] in leave:
            cash -= rate * np.abs(held) @ px[i]
            held = np.zeros(3)
        equity.append(cash)
    np.testing.assert_allclose(r.equity.to_numpy(), equity, rtol=0, atol=1e-12)
    assert r.metrics.total_return == pytest.approx(equity[-1] - 1.0, abs=1e-12)


def test_asymmetric_exits_leave_at_the_first_crossing():
    t, px = legs(3, seed=2)
    w = np.array([1.0, -0.5, -0.5])
    s = rolling_zscore(np.log(px) @ w, 30)
    rule = Rule(z_entry=1.25, z_exit=0.5, z_window=30)
    r = basket_backtest(t, px, w, s, rule, 3600.0, exits=(0.5, 0.75))
    assert r.metrics.trades > 10
    index = pd.to_datetime(t, unit="ms", utc=True)
    for row in r.trades.itertuples():
        if row.reason != "exit":
            continue
        a, b = index.get_loc(row.entry_time), index.get_loc(row.exit_time)
        inside = s[a:b - 1]  # judged from the entry fill bar's close to the exit signal (a bar before the fill)
        if row.direction == "long":
            assert s[b - 1] >= -0.5 and (inside < -0.5).all()
        else:
            assert s[b - 1] <= 0.75 and (inside > 0.75).all()


def test_bad_baskets_are_refused():
    t, px = legs(3, n=100)
    z = np.zeros(100)
    with pytest.raises(InvalidParameter, match="weight per leg"):
        basket_backtest(t, px, np.ones(2), z, Rule(), 3600.0)
    with pytest.raises(InvalidParameter, match="not all 0"):
        basket_backtest(t, px, np.zeros(3), z, Rule(), 3600.0)
    bad = px.copy()
    bad[5, 1] = np.nan
    with pytest.raises(InvalidParameter, match="finite and > 0"):
        basket_backtest(t, bad, np.ones(3), z, Rule(), 3600.0)
