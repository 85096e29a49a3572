"""Every statistic against an independent reference (statsmodels, pandas), plus properties."""

import inspect
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.regression.rolling import RollingOLS
from statsmodels.tsa.stattools import adfuller, coint

from statarb_kit import InvalidParameter
from statarb_kit.analytics import (
    PairParams, adf, align_pair, engle_granger, half_life, hedge_path, log_returns, ols_hedge, pair_frame,
    rolling_corr, rolling_ols, rolling_zscore,
)
from statarb_kit.analytics.signals import (
    FLAG_FILLED_X, FLAG_FILLED_Y, FLAG_WARMUP_CORR, FLAG_WARMUP_HEDGE, FLAG_WARMUP_Z,
)

# statsmodels >= 0.15 warns unless asked for tuples; older versions lack the flag
_TUPLE = {"result_object": False} if "result_object" in inspect.signature(adfuller).parameters else {}


def coint_pair(n, seed, beta=20.0, phi=0.9, noise=5.0, drift_vol=2e-3):
    rng = np.random.default_rng(seed)
    y = 3000 * np.exp(np.cumsum(rng.normal(0, drift_vol, n)))
    s = np.zeros(n)
    e = rng.normal(0, noise, n)
    for i in range(1, n):
        s[i] = phi * s[i - 1] + e[i]
    return 100 + beta * y + s, y


# ---- hedge ratio --------------------------------------------------------------------------

@pytest.mark.parametrize("log_prices", [False, True])
def test_ols_hedge_matches_statsmodels(log_prices):
    x, y = coint_pair(500, 1)
    fit = ols_hedge(x, y, log_prices=log_prices)
    xs, ys = (np.log(x), np.log(y)) if log_prices else (x, y)
    ref = sm.OLS(xs, sm.add_constant(ys)).fit()
    assert fit.ok and fit.n == 500 and fit.log_prices == log_prices
    np.testing.assert_allclose([fit.alpha, fit.beta], ref.params, rtol=1e-10)
    np.testing.assert_allclose(fit.r2, ref.rsquared, rtol=1e-12)
    np.testing.assert_allclose([fit.se_alpha, fit.se_beta], ref.bse, rtol=1e-8)
    np.testing.assert_allclose(fit.resid_std, math.sqrt(ref.scale), rtol=1e-10)


def test_ols_hedge_insufficient_and_degenerate():
    assert not ols_hedge(np.array([1.0, 2.0]), np.array([1.0, 3.0])).ok
    flat = ols_hedge(np.arange(5.0), np.full(5, 2.0))
    assert not flat.ok and "constant" in flat.note and math.isnan(flat.beta)
    with pytest.raises(InvalidParameter):
        ols_hedge(np.array([1.0, -1, 2]), np.array([1.0, 2, 3]), log_prices=True)


@pytest.mark.parametrize("w", [10, 30, 120])
def test_rolling_ols_matches_statsmodels_rolling_ols(w):
    x, y = coint_pair(2_000, 2)
    a, b = rolling_ols(x, y, w)
    ref = RollingOLS(x, sm.add_constant(y), window=w).fit().params
    assert np.isnan(b[: w - 1]).all() and not np.isnan(b[w - 1 :]).any()
    np.testing.assert_allclose(b, ref[:, 1], rtol=1e-8)
    # the intercept is ill-conditioned (y moves ~0.1% inside a window): compare it at 1e-8 of
    # the price level, which is what it contributes to the spread
    np.testing.assert_allclose(a, ref[:, 0], rtol=0, atol=1e-8 * np.abs(x).max())
    # and against a direct two-pass fit of every window, which both approximate
    direct = np.array([[f.alpha, f.beta] for f in (ols_hedge(x[i - w + 1 : i + 1], y[i - w + 1 : i + 1])
                                                    for i in range(w - 1, len(x)))])
    np.testing.assert_allclose(b[w - 1 :], direct[:, 1], rtol=1e-8)
    np.testing.assert_allclose(a[w - 1 :], direct[:, 0], rtol=0, atol=1e-8 * np.abs(x).max())


def test_rolling_ols_constant_window_is_nan_not_a_number():
    x = np.arange(10.0)
    y = np.array([1.0, 2, 3, 4, 4, 4, 4, 5, 6, 7])
    _, b = rolling_ols(x, y, 3)
    assert np.isnan(b[5]) and np.isnan(b[6]) and not np.isnan(b[4]) and not np.isnan(b[7])


def test_hedge_path_uses_only_earlier_bars():
    x, y = coint_pair(300, 3)
    w = 50
    a, b, _ = hedge_path(x, y, "rolling", w)
    fit = ols_hedge(x[100 - w : 100], y[100 - w : 100])  # bars 50..99 for bar 100
    np.testing.assert_allclose([a[100], b[100]], [fit.alpha, fit.beta], rtol=1e-9)
    assert np.isnan(b[:w]).all() and not np.isnan(b[w:]).any()
    a, b, _ = hedge_path(x, y, "fixed", w)
    fit = ols_hedge(x[:w], y[:w])
    assert np.isnan(b[:w]).all() and (b[w:] == fit.beta).all() and (a[w:] == fit.alpha).all()
    a, b, state = hedge_path(x, y, "kalman", w)
    assert np.isnan(b[:w]).all() and state is not None
    assert abs(np.median(b[w:]) - 20) < 2  # tracks the true beta


# ---- z-score and correlation ---------------------------------------------------------------

@pytest.mark.parametrize("include_current", [False, True])
@pytest.mark.parametrize("level", [0.0, 1e4])
def test_rolling_zscore_matches_pandas_and_a_direct_computation(include_current, level):
    rng = np.random.default_rng(4)
    s = pd.Series(np.cumsum(rng.normal(size=3_000)) * 0.1 + level)
    s.iloc[:7] = np.nan  # warm-up NaNs, as a hedge window leaves them
    w = 60
    got = rolling_zscore(s.to_numpy(), w, include_current)
    first = 7 + w - (1 if include_current else 0)
    assert np.isnan(got[:first]).all() and not np.isnan(got[first:]).any()
    a = s.to_numpy()
    lo = 0 if include_current else 1
    direct = np.full(len(a), np.nan)
    for t in range(first, len(a)):
        win = a[t - w + 1 - lo : t + 1 - lo]
        direct[t] = (a[t] - win.mean()) / win.std(ddof=1)
    np.testing.assert_allclose(got, direct, rtol=1e-8, atol=1e-10)
    if level == 0.0:  # a spread lives near zero; at level 1e4 pandas' own rolling std is ~1e-8 off
        mean, std = s.rolling(w).mean(), s.rolling(w).std()
        if not include_current:
            mean, std = mean.shift(1), std.shift(1)
        np.testing.assert_allclose(got, ((s - mean) / std).to_numpy(), rtol=1e-8, atol=1e-10)


def test_zscore_is_nan_where_std_is_zero():
    s = np.array([1.0, 2, 3, 5, 5, 5, 5, 7, 8])
    z = rolling_zscore(s, 3)
    assert np.isnan(z[6]) and np.isnan(z[7])  # windows [5,5,5] -> no signal, not +-inf
    assert np.isfinite(z[5])  # window [3,5,5]


@pytest.mark.parametrize("w", [5, 60])
def test_rolling_corr_of_log_returns_matches_pandas(w):
    x, y = coint_pair(2_000, 5)
    got = rolling_corr(log_returns(x), log_returns(y), w)
    rx, ry = np.log(pd.Series(x)).diff(), np.log(pd.Series(y)).diff()
    ref = rx.rolling(w).corr(ry).to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)
    assert np.isnan(got[:w]).all() and not np.isnan(got[w:]).any()


def test_level_correlation_is_spurious_for_independent_trends_returns_are_not():
    rng = np.random.default_rng(0)
    t = np.arange(500)
    x = 100 + 0.5 * t + rng.normal(0, 1, 500)
    y = 50 + 0.2 * t + rng.normal(0, 1, 500)  # independent noise, common deterministic trend
    assert np.nanmean(rolling_corr(x, y, 200)) > 0.9
    assert abs(np.nanmean(rolling_corr(log_returns(x), log_returns(y), 200))) < 0.2


# ---- ADF, Engle-Granger, half-life ---------------------------------------------------------

def test_adf_matches_statsmodels_with_aic_and_fixed_lags():
    x, y = coint_pair(800, 6)
    s = x - (100 + 20 * y)
    r = adf(s)
    stat, p, lags, nobs, crit, _ = adfuller(s, regression="c", autolag="AIC", **_TUPLE)
    assert (r.stat, r.pvalue, r.lags, r.n) == (stat, p, lags, nobs) and r.critical == crit
    r3 = adf(s, lags=3)
    assert r3.lags == 3 and r3.stat == adfuller(s, maxlag=3, autolag=None, **_TUPLE)[0]
    assert "stationary at 5%" in r.verdict()


def test_engle_granger_matches_coint_and_shows_both_critical_value_sets():
    x, y = coint_pair(800, 7)
    r = engle_granger(x, y)
    stat, p, crit = coint(x, y, trend="c", autolag="aic")
    assert r.stat == pytest.approx(stat, rel=1e-12) and r.pvalue == pytest.approx(p, rel=1e-12)
    assert list(r.critical.values()) == pytest.approx(list(crit))
    # MacKinnon's values for an estimated cointegrating vector are stricter than plain ADF ones
    assert all(r.critical[k] < r.adf_critical[k] for k in ("1%", "5%", "10%"))
    assert abs(r.beta - 20) < 0.5 and r.verdict().startswith("cointegrated at 5%")


def test_tests_need_enough_data():
    short = np.arange(10.0)
    assert not adf(short).ok and "insufficient data" in adf(short).verdict()
    assert not engle_granger(short, short * 2 + np.sin(short)).ok
    assert not half_life(np.arange(5.0)).ok
    with pytest.raises(InvalidParameter):
        adf(np.arange(100.0), lags=-1)


def test_engle_granger_power_and_size_over_many_seeds():
    n = 400
    power = np.mean([engle_granger(*coint_pair(n, seed, phi=0.8)).pvalue < 0.05 for seed in range(60)])
    rng = np.random.default_rng(99)
    size = np.mean([
        engle_granger(np.cumsum(rng.normal(size=n)) + 100, np.cumsum(rng.normal(size=n)) + 100).pvalue < 0.05
        for _ in range(200)
    ])
    assert power >= 0.9, power
    assert 0.01 <= size <= 0.10, size  # nominal 5% (binomial sd 1.5% at 200 draws)


@pytest.mark.parametrize("phi", [0.5, 0.9, 0.98])
def test_half_life_recovers_ar1_coefficient(phi):
    rng = np.random.default_rng(8)
    s = np.zeros(20_000)
    for i in range(1, len(s)):
        s[i] = phi * s[i - 1] + rng.normal()
    hl = half_life(s)
    assert hl.ok and hl.phi == pytest.approx(phi, abs=0.01)
    assert hl.bars == pytest.approx(-math.log(2) / math.log(phi), rel=0.1)


def test_half_life_without_mean_reversion():
    rng = np.random.default_rng(9)
    explosive = np.zeros(500)
    explosive[0] = 1.0
    for i in range(1, 500):
        explosive[i] = 1.01 * explosive[i - 1] + rng.normal(0, 0.1)
    hl = half_life(explosive)
    assert math.isinf(hl.bars) and hl.phi >= 1 and "no mean reversion" in hl.note
    flip = np.array([(-1.0) ** i + rng.normal(0, 0.01) for i in range(200)])
    hl = half_life(flip)
    assert math.isnan(hl.bars) and "undefined" in hl.note


# ---- alignment -------------------------------------------------------------------------------

def test_alignment_fills_within_staleness_and_drops_beyond():
    m = 60_000
    tx = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8]) * m
    ty = np.array([1, 2, 7]) * m
    al = align_pair(tx, tx / m + 100, ty, ty / m + 10, m, max_stale=2)
    # y's bar at 2 fills 3 and 4; 5 and 6 are more than 2 bars stale -> dropped; 0 has no y yet
    assert (al.time // m).tolist() == [1, 2, 3, 4, 7, 8]
    assert al.y.tolist() == [11, 12, 12, 12, 17, 17]
    assert (al.flags & FLAG_FILLED_Y).astype(bool).tolist() == [False, False, True, True, False, True]
    assert not (al.flags & FLAG_FILLED_X).any()
    assert (al.filled_x, al.filled_y, al.dropped) == (0, 3, 3)


# ---- the pair frame: warm-up honesty and no look-ahead -----------------------------------------

def test_pair_frame_says_warming_up_instead_of_a_signal():
    x, y = coint_pair(100, 10)
    p = PairParams(hedge_window=60, z_window=30, corr_window=20)
    f = pair_frame(np.arange(100), x, y, p)
    assert np.isnan(f.z[: p.warmup]).all() and not np.isnan(f.z[p.warmup :]).any()
    assert (f.flags[: p.warmup] & FLAG_WARMUP_Z).all() and not (f.flags[p.warmup :] & FLAG_WARMUP_Z).any()
    assert (f.flags[:60] & FLAG_WARMUP_HEDGE).all() and (f.flags[:20] & FLAG_WARMUP_CORR).all()


@pytest.mark.parametrize("bad", [dict(z_window=1), dict(hedge_window=0), dict(corr_window=1.5),
                                 dict(hedge_mode="magic"), dict(corr_of="prices"), dict(max_stale=-1)])
def test_bad_parameters_raise(bad):
    with pytest.raises(InvalidParameter):
        PairParams(**bad)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    mode=st.sampled_from(["rolling", "fixed", "kalman"]),
    include=st.booleans(),
    corr_of=st.sampled_from(["returns", "levels"]),
    log_prices=st.booleans(),
    cut=st.floats(0.05, 0.95),
)
def test_no_look_ahead_changing_later_bars_leaves_earlier_rows_unchanged(seed, mode, include, corr_of, log_prices, cut):
    n = 240
    x, y = coint_pair(n, seed)
    p = PairParams(hedge_mode=mode, hedge_window=30, z_window=20, corr_window=15, z_include_current=include,
                   corr_of=corr_of, log_prices=log_prices)
    t = int(cut * n)
    rng = np.random.default_rng(seed + 1)
    x2, y2 = x.copy(), y.copy()
    x2[t + 1 :] *= np.exp(rng.normal(0, 0.05, n - t - 1))
    y2[t + 1 :] *= np.exp(rng.normal(0, 0.05, n - t - 1))
    a, b = pair_frame(np.arange(n), x, y, p), pair_frame(np.arange(n), x2, y2, p)
    for col in ("alpha", "beta", "spread", "z", "corr", "flags"):
        np.testing.assert_array_equal(getattr(a, col)[: t + 1], getattr(b, col)[: t + 1], err_msg=col)


@pytest.mark.parametrize("mode", ["rolling", "fixed", "kalman"])
@pytest.mark.parametrize("log_prices", [False, True])
def test_next_row_equals_pair_frame_bar_for_bar(mode, log_prices):
    """The live per-bar update (analytics.incremental) is the full frame's row, bar after bar."""
    from statarb_kit.analytics.incremental import next_row

    rng = np.random.default_rng(9)
    n = 420
    y = 100 * np.exp(np.cumsum(rng.normal(0, 2e-3, n)))
    x = 2 * y + rng.normal(0, 0.3, n)
    y[250:262] = y[249]  # a flat stretch: degenerate windows must agree too
    p = PairParams(hedge_mode=mode, hedge_window=80, z_window=40, corr_window=30, log_prices=log_prices)
    full = pair_frame(np.arange(n), x, y, p)
    h = p.history
    warm = pair_frame(np.arange(h), x[:h], y[:h], p)
    kalman = warm.kalman_state
    fixed = (float(warm.alpha[p.hedge_window]), float(warm.beta[p.hedge_window]))
    spreads = list(warm.spread)
    for t in range(h, n):
        row = next_row(x[: t + 1], y[: t + 1], np.array(spreads[-p.z_window :]), t, 0, p, fixed, kalman)
        spreads.append(row.spread)
        for name in ("alpha", "beta", "spread", "z", "corr"):
            np.testing.assert_allclose(getattr(row, name), getattr(full, name)[t], rtol=1e-9, atol=1e-12,
                                       equal_nan=True, err_msg=f"{name} at bar {t}")
        assert row.flags == full.flags[t]


def test_vectorised_ar1_and_half_life_equal_half_life_row_by_row():
    from statarb_kit.analytics.stationarity import ar1_rows, half_life_of

    rng = np.random.default_rng(12)
    rows = [np.cumsum(rng.normal(0, 1, 120)),  # a walk
            np.r_[[np.nan] * 20, rng.normal(0.3, 1, 100)],  # NaN-led, then noise
            np.cumprod(np.full(120, 1.01)),  # explosive: phi > 1 -> inf
            (-1.0) ** np.arange(120) + rng.normal(0, 0.01, 120)]  # alternating: phi < 0 -> NaN
    e = np.zeros(120)
    for t in range(1, 120):
        e[t] = 0.9 * e[t - 1] + rng.normal()
    rows.append(e)
    phi, steps = ar1_rows(np.vstack(rows))
    for i, r in enumerate(rows):
        ref = half_life(r)
        assert steps[i] == np.count_nonzero(~np.isnan(r)) - 1
        np.testing.assert_allclose(phi[i], ref.phi, rtol=1e-9)
        np.testing.assert_allclose(half_life_of(phi[i : i + 1])[0], ref.bars, rtol=1e-9, equal_nan=True)
    assert np.isinf(half_life_of(np.array([1.0, 1.5]))).all() and np.isnan(half_life_of(np.array([0.0, -0.3, np.nan]))).all()
