"""Degenerate windows give NaN, everywhere: each case of the outside audit, at levels near zero."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from statarb_kit import Session
from statarb_kit.analytics import PairParams, half_life, ols_hedge, pair_frame, rolling_corr, rolling_ols, rolling_zscore
from statarb_kit.analytics.rolling import constant_windows, rolling_mean_var
from tests.conftest import ListSource


def test_a_window_of_exact_zeros_has_variance_exactly_zero():
    rng = np.random.default_rng(0)
    a = np.concatenate((5.0 + rng.normal(0, 1, 30), np.zeros(10), rng.normal(0, 1, 5)))
    _, var = rolling_mean_var(a, 10)
    assert var[39] == 0.0  # the ten zeros (the block is anchored near 5, not at 0)
    assert np.isnan(rolling_zscore(a, 10, include_current=True)[39])  # inside the window: no signal
    assert np.isnan(rolling_zscore(a, 10)[40])  # nor on the next bar against the ten zeros


@pytest.mark.parametrize("level", [0.0, 1e-300, 1e-9, 0.1, 0.3, 1.0, 1e6])
def test_constant_windows_are_constant_at_any_level(level):
    rng = np.random.default_rng(1)
    a = np.concatenate((rng.normal(3, 1, 40), np.full(12, level), rng.normal(3, 1, 10)))
    assert constant_windows(a, 12)[51] and not constant_windows(a, 12)[52]
    _, var = rolling_mean_var(a, 12)
    assert var[51] == 0.0 and var[52] > 0


def test_correlation_is_nan_while_one_leg_is_flat():
    rng = np.random.default_rng(2)
    px = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 400)))
    py = px.copy()
    py[100:250] = 1.0  # y printed exactly 1.0: its log returns are exactly 0
    rx, ry = np.diff(np.log(px), prepend=np.nan), np.diff(np.log(py), prepend=np.nan)
    corr = rolling_corr(rx, ry, 30)
    flat = constant_windows(ry, 30)
    assert flat.sum() > 100 and np.isnan(corr[flat]).all()


def test_rolling_ols_has_no_beta_where_y_is_constant_on_logs():
    rng = np.random.default_rng(3)
    y = np.log(np.concatenate((rng.uniform(0.9, 1.1, 50), np.ones(150), rng.uniform(0.9, 1.1, 50))))
    x = 2 * y + rng.normal(0, 0.01, len(y))
    _, beta = rolling_ols(x, y, 120)
    constant = constant_windows(y, 120)
    assert constant.sum() == 31 and np.isnan(beta[constant]).all()


@pytest.mark.parametrize("value", [0.1, 0.3, 0.7, 1e-12, 123.456, 1e9])
def test_ols_hedge_refuses_a_constant_y(value):
    rng = np.random.default_rng(4)
    fit = ols_hedge(rng.normal(0, 1, 28), np.full(28, value))
    assert not fit.ok and np.isnan(fit.beta) and "constant" in fit.note


def test_half_life_of_a_constant_spread_says_so():
    hl = half_life(np.full(50, 0.3))
    assert not hl.ok and "constant" in hl.note


def test_the_live_view_equals_pair_frame_where_y_sits_still():
    """y at 0.3 for 75 bars: the live rolling hedge once alerted on a z of 470 there."""
    rng = np.random.default_rng(5)
    n = 400
    y = 0.3 + np.cumsum(rng.normal(0, 0.002, n))
    y[200:275] = 0.3
    x = 1.5 * y + rng.normal(0, 0.001, n)
    from statarb_kit.ticks import TickBatch

    t0 = 1_700_000_000_000
    ts = t0 + np.arange(n) * 1000 + 500
    batch = TickBatch.from_columns(sym=np.r_[np.zeros(n), np.ones(n)], trade_id=np.r_[np.arange(n), np.arange(n)],
                                   ts=np.r_[ts, ts], price=np.r_[x, y], qty=np.ones(2 * n),
                                   is_buyer_maker=np.zeros(2 * n, bool))
    params = PairParams(hedge_window=60, z_window=30, corr_window=30)

    async def go():
        session = Session(ListSource([batch]), timeframes=("1s",)).start()
        view = session.pair("AAAUSDT", "BBBUSDT", "1s", hedge_window=60, z_window=30, corr_window=30)
        assert view.params == params
        view.set_rule(z_entry=2.0, corr_min=-1.0)
        await session.wait()
        return view.arrays(), session

    live, session = asyncio.run(go())
    ref = pair_frame(live["time"], live["price_x"], live["price_y"], params)
    np.testing.assert_array_equal(np.isnan(live["z"]), np.isnan(ref.z))
    ok = ~np.isnan(ref.z)
    np.testing.assert_allclose(live["z"][ok], ref.z[ok], rtol=1e-9, atol=1e-9)
    assert np.nanmax(np.abs(live["z"])) < 50
    assert all(abs(a.z) < 50 for a in session.alert_log)


def test_warm_up_ends_exactly_when_the_first_z_exists():
    p = PairParams(hedge_window=120, z_window=60, corr_window=60)
    assert p.rows_for_z == 181 and p.rows_for_spread == 121 and p.rows_for_corr == 61
    rng = np.random.default_rng(6)
    for rows in (p.rows_for_z - 1, p.rows_for_z):
        y = 100 + np.cumsum(rng.normal(0, 1, rows))
        f = pair_frame(np.arange(rows), 2 * y + rng.normal(0, 1, rows), y, p)
        assert (~np.isnan(f.z)).any() == (rows == p.rows_for_z)
        assert (~np.isnan(f.spread)).sum() == rows - p.rows_for_spread + 1
        assert (~np.isnan(f.corr)).sum() == rows - p.rows_for_corr + 1
