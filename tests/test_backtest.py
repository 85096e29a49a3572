"""Backtest engine: hand-computed PnL, the per-bar loop as a reference, no look-ahead, params."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statarb_kit import InvalidParameter
from statarb_kit.analytics import PairParams, pair_frame
from statarb_kit.analytics.hedge import KalmanParams, ols_hedge
from statarb_kit.backtest import (BacktestParams, DataSpec, SignalFrame, backtest, backtest_bars, expand_grid,
                                  parse_grid_spec, run_backtest)
from statarb_kit.backtest.engine import EXIT_REASONS, find_trades
from statarb_kit.backtest.frame import signal_frame
from statarb_kit.backtest.reference import loop_backtest
from statarb_kit.funding import FundingRates, PairFunding

NAN = math.nan


def frame(z, px, py, beta=2.0, corr=1.0, alpha=0.0):
    n = len(z)
    return SignalFrame(np.arange(n, dtype=np.int64) * 60_000, np.asarray(px, float), np.asarray(py, float),
                       np.full(n, alpha), np.full(n, beta), np.asarray(z, float), np.full(n, corr))


# bars:     0    1    2     3    4    5    6    7
Z = [NAN, 0.0, -2.5, -1.0, 0.5, 0.2, 0.0, 0.0]
PX = [100, 100, 100, 100, 101, 103, 104, 104]
PY = [50, 50, 50, 50, 50, 51, 51.5, 51.5]
TEN_BPS = dict(fee_bps=10.0, slippage_bps=0.0, z_entry=2.0, z_exit=0.0)


def test_hand_computed_long_spread_with_fees_and_one_bar_lag():
    r = run_backtest(frame(Z, PX, PY), BacktestParams(**TEN_BPS))
    assert len(r.trades) == 1
    t = r.trades.iloc[0]
    # signal at bar 2 (z = -2.5) fills at bar 3's close: k = 1 / (100 + 2 * 50) = 0.005,
    # long 0.005 x and short 0.01 y; exit signal at bar 4 (z = 0.5 >= 0) fills at bar 5.
    assert t.direction == "LONG_SPREAD" and t.reason == "exit"
    assert t.entry_time == pd.Timestamp(3 * 60_000, unit="ms", tz="UTC")
    assert t.exit_time == pd.Timestamp(5 * 60_000, unit="ms", tz="UTC")
    assert t.units_x == pytest.approx(0.005) and t.units_y == pytest.approx(-0.01)
    # gross 0.005 * 3 - 0.01 * 1 = 0.005; costs 10 bps on 1.0 then on 0.005*103 + 0.01*51 = 1.025
    assert t.gross_pnl == pytest.approx(0.005, abs=1e-15)
    assert t.costs == pytest.approx(0.001 + 0.001025, abs=1e-15)
    assert t.pnl == pytest.approx(0.002975, abs=1e-15)
    assert r.equity.iloc[-1] == pytest.approx(1.002975, abs=1e-15)
    # equity per bar: entry cost at bar 3, then marked to market: bar 4 +0.005, bar 5 +0.01-0.01
    np.testing.assert_allclose(r.equity.to_numpy(),
                               [1, 1, 1, 0.999, 1.004, 1.004 - 0.001025, 1.002975, 1.002975], atol=1e-15)
    m = r.metrics
    assert (m.trades, m.long_trades, m.short_trades, m.hit_rate) == (1, 1, 0, 1.0)
    assert m.avg_hold_bars == 2 and m.avg_hold_s == 120 and m.time_in_market == pytest.approx(2 / 8)
    assert m.turnover == pytest.approx(2.025) and m.costs == pytest.approx(0.002025)
    assert m.max_drawdown == pytest.approx((1.004 - 1.002975) / 1.004)


def test_a_two_bar_lag_trades_later_prices():
    r = run_backtest(frame(Z, PX, PY), BacktestParams(**TEN_BPS, lag=2))
    t = r.trades.iloc[0]
    # fills at bars 4 (101, 50: k = 1/201) and 6 (104, 51.5): gross 3/201 - 2 * 1.5/201 = 0
    assert (t.entry_time.value // 60_000_000_000, t.exit_time.value // 60_000_000_000) == (4, 6)
    assert t.gross_pnl == pytest.approx(0.0, abs=1e-15)
    assert t.pnl == pytest.approx(-(0.001 + 0.001 * 207 / 201), abs=1e-15)


def test_short_spread_stop_then_wait_for_calm():
    z = [0, 2.5, 3.0, 4.0, 2.5, 2.6, 1.0, 2.2, 1.0, 0.0, 0.0]
    p = BacktestParams(z_entry=2.0, z_exit=0.5, z_stop=3.5, fee_bps=0, slippage_bps=0)
    r = run_backtest(frame(z, np.full(11, 100.0), np.full(11, 50.0)), p)
    assert list(r.trades.direction) == ["SHORT_SPREAD", "SHORT_SPREAD"]
    assert list(r.trades.reason) == ["stop", "exit"]
    # stop signalled at bar 3; bars 4-5 (|z| >= 2) do not re-enter; |z| < 2 at bar 6, entry at 7,
    # filled at 8 where exits start to be judged: z <= 0.5 first at bar 9
    t = find_trades(r.frame, p)
    assert list(t.entry_signal) == [1, 7] and list(t.exit_signal) == [3, 9]


def test_max_hold_and_end_of_data():
    z = [-3.0, -2.8, -2.7, -2.6, -2.5, -2.4, -2.3]
    p = BacktestParams(z_entry=2.0, z_exit=0.0, max_hold=2, fee_bps=0, slippage_bps=0)
    t = find_trades(frame(z, np.full(7, 100.0), np.full(7, 50.0)), p)
    assert list(t.entry_signal) == [0, 3] and list(t.exit_signal) == [2, 5]
    assert [EXIT_REASONS[i] for i in t.reason] == ["max_hold", "max_hold"]
    # without max_hold the position is still open at the end: closed at the last bar, costs paid
    r = run_backtest(frame(z, np.linspace(100, 106, 7), np.full(7, 50.0)), p.with_(max_hold=None, fee_bps=5))
    assert list(r.trades.reason) == ["end"] and r.trades.exit_time.iloc[0] == r.equity.index[-1]
    assert r.trades.pnl.iloc[0] == pytest.approx(r.equity.iloc[-1] - 1.0)
    assert r.trades.costs.iloc[0] > 0


def test_no_entry_without_correlation_or_hedge_or_room_to_fill():
    z = [0, -3, -3, -3, 0, 0]
    px, py = np.full(6, 100.0), np.full(6, 50.0)
    assert len(run_backtest(frame(z, px, py, corr=0.1), BacktestParams(corr_min=0.5)).trades) == 0
    assert len(run_backtest(frame(z, px, py, beta=NAN), BacktestParams()).trades) == 0
    # a signal at the last bars cannot be filled and held: no trade
    assert len(run_backtest(frame([0, 0, 0, 0, 0, -3], px, py), BacktestParams()).trades) == 0


def test_no_trades_gives_flat_equity_and_nan_ratios():
    r = run_backtest(frame(np.zeros(20), np.full(20, 100.0), np.full(20, 50.0)), BacktestParams())
    m = r.metrics
    assert m.trades == 0 and m.total_return == 0 and math.isnan(m.sharpe) and math.isnan(m.hit_rate)
    assert (r.equity == 1.0).all() and m.max_drawdown == 0


random_params = st.builds(
    lambda entry, exit_frac, stop, corr, hold, lag, log, fee: BacktestParams(
        z_entry=entry, z_exit=exit_frac * entry, z_stop=stop and entry + stop, corr_min=corr, max_hold=hold,
        lag=lag, log_prices=log, fee_bps=fee, slippage_bps=1.0),
    st.floats(0.3, 2.5), st.floats(-0.95, 0.95), st.one_of(st.none(), st.floats(0.1, 1.5)),
    st.floats(-1, 0.9), st.one_of(st.none(), st.integers(1, 6)), st.integers(1, 4), st.booleans(),
    st.floats(0, 10))


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 90), st.integers(0, 2**32 - 1), random_params)
def test_engine_equals_the_per_bar_loop(n, seed, p):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    z[rng.random(n) < 0.1] = NAN
    beta = rng.normal(1.5, 0.5, n)
    beta[: rng.integers(0, 5)] = NAN
    px = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    py = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    f = SignalFrame(np.arange(n, dtype=np.int64) * 1000, px, py, np.zeros(n), beta, z, rng.uniform(-1, 1, n))
    funding = None
    if seed % 2:  # settlements on bar closes, between them, before and after the frame
        legs = []
        for sym in ("XUSDT", "YUSDT"):
            t = np.unique(rng.integers(-2_000, n * 1000 + 2_000, rng.integers(0, 2 * n)))
            t[::3] = t[::3] // 1000 * 1000
            t = np.unique(t)
            legs.append(FundingRates(sym, t, rng.normal(1e-4, 3e-3, len(t)), "test"))
        funding = PairFunding(*legs)
    r = run_backtest(f, p, funding=funding)
    trades, equity = loop_backtest(f, p, funding)
    t = find_trades(f, p)
    assert len(trades) == len(r.trades) and r.funding_included == (funding is not None)
    for k, ref in enumerate(trades):
        got = (t.entry_signal[k], t.entry_fill[k], t.exit_signal[k], t.exit_fill[k], t.side[k], EXIT_REASONS[t.reason[k]])
        assert got == (ref["entry_signal"], ref["entry_fill"], ref["exit_signal"], ref["exit_fill"], ref["side"],
                       ref["reason"])
        assert r.trades.pnl.iloc[k] == pytest.approx(ref["pnl"], rel=1e-9, abs=1e-12)
        if funding is not None:
            assert r.trades.funding.iloc[k] == pytest.approx(ref["funding"], rel=1e-9, abs=1e-15)
    np.testing.assert_allclose(r.equity.to_numpy(), equity, rtol=0, atol=1e-12)
    m = r.metrics
    assert m.total_return == pytest.approx(r.trades.pnl.sum(), abs=1e-12)
    assert m.costs == pytest.approx(m.fees + m.slippage, abs=1e-15)
    if funding is None:
        assert np.isnan(m.funding_pnl) and r.trades.funding.isna().all()  # not included: never a silent 0
    else:
        assert m.funding_pnl == pytest.approx(r.trades.funding.sum(), abs=1e-15)


def test_funding_by_hand_two_settlements_one_inside_a_trade():
    """Bars close at 0, 60, ..., 300 s. One LONG_SPREAD trade: signal at bar 1 (z = -3), filled at
    bar 2's close (120 s), exit signal at bar 3 (z = 0), filled at bar 4 (240 s). Settlements at
    180 s (inside: held over it) and 270 s (after the exit fill: not held)."""
    time = np.arange(6, dtype=np.int64) * 60_000
    px = np.array([100.0, 101.0, 102.0, 104.0, 103.0, 105.0])
    py = np.array([50.0, 50.5, 51.0, 51.5, 52.0, 52.5])
    beta = np.full(6, 2.0)
    z = np.array([0.0, -3.0, -2.5, 0.0, 0.1, 0.2])
    f = SignalFrame(time, px, py, np.zeros(6), beta, z, np.ones(6))
    p = BacktestParams(z_entry=2.0, z_exit=0.5, fee_bps=2.0, slippage_bps=1.0)
    rx, ry = 0.0010, -0.0004
    funding = PairFunding(FundingRates("XUSDT", np.array([180_000, 270_000]), np.array([rx, 0.05]), "test"),
                          FundingRates("YUSDT", np.array([180_000, 270_000]), np.array([ry, 0.05]), "test"))
    r = run_backtest(f, p, funding=funding)
    assert len(r.trades) == 1 and r.trades.direction.iloc[0] == "LONG_SPREAD"
    k = 1.0 / (102.0 + 2.0 * 51.0)  # units per unit of gross notional at the entry fill (bar 2)
    qx, qy = k, -2.0 * k
    # at 180 s (bar 3's close): long x pays 104 * qx * rx; short y (qy < 0) with ry < 0 pays too
    by_hand = -(qx * 104.0 * rx) - (qy * 51.5 * ry)
    assert r.trades.funding.iloc[0] == pytest.approx(by_hand, abs=1e-12)
    assert r.metrics.funding_pnl == pytest.approx(by_hand, abs=1e-12)
    gross = qx * (103.0 - 102.0) + qy * (52.0 - 51.0)
    fees = 2e-4 * (abs(qx) * 102 + abs(qy) * 51 + abs(qx) * 103 + abs(qy) * 52)
    slip = fees / 2
    assert r.trades.gross_pnl.iloc[0] == pytest.approx(gross, abs=1e-15)
    assert (r.trades.fees.iloc[0], r.trades.slippage.iloc[0]) == pytest.approx((fees, slip), abs=1e-15)
    assert r.trades.pnl.iloc[0] == pytest.approx(gross - fees - slip + by_hand, abs=1e-12)
    equity = r.equity.to_numpy()
    assert equity[3] - equity[2] == pytest.approx(qx * 2.0 + qy * 0.5 + by_hand, abs=1e-12)  # booked at bar 3
    assert equity[5] == equity[4]  # flat after the exit: the 270 s settlement is not paid


def test_funding_data_with_a_gap_is_refused_with_its_span():
    time = np.arange(0, 30 * 3_600_000, 60_000, dtype=np.int64)
    n = len(time)
    f = SignalFrame(time, np.full(n, 100.0), np.full(n, 50.0), np.zeros(n), np.ones(n), np.zeros(n), np.ones(n))
    full = np.arange(8, 30, 8, dtype=np.int64) * 3_600_000
    ok = FundingRates("XUSDT", full, np.full(len(full), 1e-4), "test")
    holed = FundingRates("YUSDT", full[[0, 2]], np.full(2, 1e-4), "test")  # 16:00 is missing
    run_backtest(f, BacktestParams(), funding=PairFunding(ok, ok))
    with pytest.raises(InvalidParameter, match="no funding data for YUSDT from 1970-01-01 08:00"):
        run_backtest(f, BacktestParams(), funding=PairFunding(ok, holed))


def coint_prices(n, seed):
    rng = np.random.default_rng(seed)
    y = 3000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    s = np.zeros(n)
    for i in range(1, n):
        s[i] = 0.9 * s[i - 1] + rng.normal(0, 5)
    return np.arange(n, dtype=np.int64) * 1000, 20 * y + 100 + s, y


@pytest.mark.parametrize("mode", ["rolling", "fixed", "kalman", "walk_forward"])
@settings(max_examples=12, deadline=None)
@given(cut=st.integers(150, 390), seed=st.integers(0, 2**32 - 1))
def test_no_look_ahead(mode, cut, seed):
    """Changing every bar after ``cut`` changes nothing the engine knew at cut: the frame up to cut,
    the trades decided and filled by then, and the equity up to cut."""
    t, px, py = coint_prices(400, 3)
    p = BacktestParams(z_entry=1.2, z_exit=0.0, z_window=20, corr_window=20, hedge_mode=mode, hedge_window=50,
                       trade_window=30, z_stop=3.0, max_hold=25)
    rng = np.random.default_rng(seed)
    px2, py2 = px.copy(), py.copy()
    px2[cut + 1 :] *= rng.uniform(0.9, 1.1, len(px) - cut - 1)
    py2[cut + 1 :] *= rng.uniform(0.9, 1.1, len(py) - cut - 1)
    a, b = backtest(t, px, py, p), backtest(t, px2, py2, p)
    for col in ("alpha", "beta", "z", "corr"):
        np.testing.assert_array_equal(getattr(a.frame, col)[: cut + 1], getattr(b.frame, col)[: cut + 1])
    np.testing.assert_array_equal(a.equity.to_numpy()[: cut + 1], b.equity.to_numpy()[: cut + 1])
    closed = a.trades[a.trades.exit_time <= pd.Timestamp(cut * 1000, unit="ms", tz="UTC")]
    assert len(closed) > 0
    pd.testing.assert_frame_equal(closed, b.trades.iloc[: len(closed)])


def test_kalman_variances_reach_the_hedge_and_only_kalman_frames_depend_on_them():
    t, px, py = coint_prices(300, 7)
    p = BacktestParams(hedge_mode="kalman", hedge_window=50, z_window=20, kalman_q_beta=1e-4, kalman_q_alpha=0.0)
    want = pair_frame(t, px, py, PairParams(hedge_mode="kalman", hedge_window=50, z_window=20,
                                            kalman=KalmanParams(q_alpha=0.0, q_beta=1e-4)))
    np.testing.assert_array_equal(signal_frame(t, px, py, p).beta, want.beta)
    assert not np.array_equal(signal_frame(t, px, py, p.with_(kalman_q_beta=None)).beta, want.beta, equal_nan=True)
    assert p.frame_key() != p.with_(kalman_q_beta=1e-2).frame_key()
    rolling = p.with_(hedge_mode="rolling")
    assert rolling.frame_key() == rolling.with_(kalman_q_beta=1e-2).frame_key()
    with pytest.raises(InvalidParameter, match="kalman_q_beta"):
        p.with_(kalman_q_beta=-1.0)


def test_walk_forward_fits_on_the_formation_window_only():
    t, px, py = coint_prices(300, 5)
    p = BacktestParams(hedge_mode="walk_forward", hedge_window=100, trade_window=50, z_window=20)
    f = signal_frame(t, px, py, p)
    assert np.isnan(f.beta[:100]).all()
    for start in (100, 150, 200, 250):
        fit = ols_hedge(px[start - 100 : start], py[start - 100 : start])
        assert (f.beta[start : start + 50] == fit.beta).all() and (f.alpha[start : start + 50] == fit.alpha).all()
        # the block's z uses the block's fit on the previous 20 spreads, even across the block edge
        s = px[start - 20 : start + 1] - (fit.alpha + fit.beta * py[start - 20 : start + 1])
        assert f.z[start] == pytest.approx((s[-1] - s[:-1].mean()) / s[:-1].std(ddof=1), rel=1e-9)


@pytest.mark.parametrize("bad", [
    dict(z_entry=0), dict(z_exit=2.5), dict(z_exit=-2.0), dict(z_stop=1.5), dict(corr_min=1.5),
    dict(lag=0), dict(lag=1.5), dict(max_hold=0), dict(hedge_mode="magic"), dict(z_window=1),
    dict(fee_bps=-1), dict(trade_window=0), dict(z_entry=math.nan), dict(z_entry="2"), dict(log_prices=1),
    dict(z_window=60.0), dict(hedge_mode=None),
])
def test_bad_params_are_refused_clearly(bad):
    with pytest.raises(InvalidParameter):
        BacktestParams(**bad)


def test_prices_must_be_positive_and_aligned():
    with pytest.raises(InvalidParameter, match="same length"):
        backtest(np.arange(3), np.ones(3), np.ones(2), BacktestParams())
    with pytest.raises(InvalidParameter, match="> 0"):
        backtest(np.arange(3), np.array([1.0, 0.0, 1.0]), np.ones(3), BacktestParams())


def test_grid_specs_and_expansion():
    assert parse_grid_spec("z_entry=1.5:3:0.5") == ("z_entry", [1.5, 2.0, 2.5, 3.0])
    assert parse_grid_spec("z_window=30:90:30") == ("z_window", [30, 60, 90])
    assert parse_grid_spec("hedge_mode=rolling,kalman") == ("hedge_mode", ["rolling", "kalman"])
    assert parse_grid_spec("z_stop=none,3") == ("z_stop", [None, 3])
    for bad in ("z_entry", "nope=1,2", "z_entry=3:1:-1", "z_entry=", "z_entry=abc", "z_window=1.5", "max_hold=x"):
        with pytest.raises(InvalidParameter):
            parse_grid_spec(bad)
    combos = expand_grid({"z_entry": [1.0, 2.0], "z_exit": [0.0, 1.5]})
    assert [(c.z_entry, c.z_exit) for c in combos] == [(1.0, 0.0), (2.0, 0.0), (2.0, 1.5)]  # 1.5 >= 1.0 left out
    with pytest.raises(InvalidParameter, match="unknown"):
        expand_grid({"zentry": [1]})


def test_annual_return_compounds_and_is_not_given_for_short_spans():
    """-0.64% in a day is not -234% a year: under 30 days there is no annual figure; a year of
    +10% then -100% compounds; a loss of all the capital is -100% a year, never below."""
    from statarb_kit.backtest.engine import annualised

    assert math.isnan(annualised(-0.0064, 1 / 365)) and math.isnan(annualised(0.5, 29 / 365))
    assert annualised(0.21, 2.0) == pytest.approx(0.1, rel=1e-12)
    assert annualised(-0.19, 2.0) == pytest.approx(-0.1, rel=1e-12)
    assert annualised(-1.5, 0.5) == -1.0 and annualised(0.1, 30 / 365) > 0.1
    r = backtest_bars(DataSpec(hours=24, seed=7).load(), BacktestParams())
    assert r.metrics.years < 30 / 365 and math.isnan(r.metrics.annual_return)


def test_annualisation_uses_calendar_time_not_rows():
    """Dropping 40% of the rows where the strategy is flat leaves the elapsed time, the PnL, the
    annual return and the Sharpe unchanged (counting rows overstated them 1.67x and 1.29x)."""
    rng = np.random.default_rng(11)
    n = 5_000
    y = 100 + np.cumsum(rng.normal(0, 0.1, n))
    x = 2 * y + rng.normal(0, 0.3, n)
    p = BacktestParams(z_entry=2.0, z_exit=0.0, hedge_window=120, z_window=60, corr_window=60)
    t = np.arange(n, dtype=np.int64) * 3_600_000  # hourly bars: 208 days, long enough to annualise
    full = signal_frame(t, x, y, p)
    r = run_backtest(full, p, bar_s=3600.0)
    assert r.metrics.trades > 5
    tix = find_trades(full, p)
    held = np.abs(full.z) >= p.z_entry  # every row that may decide an entry stays
    for i, j in zip(tix.entry_signal, tix.exit_fill):
        held[i : j + 1] = True
    held[[0, n - 1]] = True  # the span stays the same
    drop = ~held & (rng.random(n) < 0.6)
    assert drop.mean() > 0.3
    keep = ~drop
    part = SignalFrame(*(getattr(full, c)[keep] for c in ("time", "price_x", "price_y", "alpha", "beta", "z", "corr")))
    m, k = r.metrics, run_backtest(part, p, bar_s=3600.0).metrics
    assert k.trades == m.trades and k.total_return == pytest.approx(m.total_return, rel=1e-12)
    assert k.years == pytest.approx(m.years, rel=1e-12) and k.periods == pytest.approx(n)
    assert k.annual_return == pytest.approx(m.annual_return, rel=1e-12)
    assert m.annual_return == pytest.approx((1 + m.total_return) ** (1 / m.years) - 1, rel=1e-12)
    assert k.sharpe == pytest.approx(m.sharpe, rel=1e-9)
    assert k.time_in_market == pytest.approx(m.time_in_market, rel=1e-12) and k.bars < 0.7 * n
