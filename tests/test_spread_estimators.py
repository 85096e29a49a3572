"""Spreads estimated from bars: each estimator against the paper's formula written by hand, on
the shared real klines (a settled contract's flat tail included) and on the shared tape's 1 s
bars beside the spreads its quotes show."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from statarb_kit.analytics.spread_estimators import (abdi_ranaldo_terms, corwin_schultz_terms, rolling_spread,
                                                     spread_summary)
from statarb_kit.errors import InvalidParameter
from tests.test_dead_markets import shared_klines


def cs_by_hand(h0: float, l0: float, c0: float, h1: float, l1: float) -> float:
    """Corwin & Schultz (2012), eqs. (14), (18), (19), with the overnight adjustment of section
    II.B (bar t+1's range shifted by the gap from bar t's close)."""
    if l1 > c0:
        h1, l1 = h1 - (l1 - c0), c0
    elif h1 < c0:
        h1, l1 = c0, l1 + (c0 - h1)
    beta = math.log(h0 / l0) ** 2 + math.log(h1 / l1) ** 2
    gamma = math.log(max(h0, h1) / min(l0, l1)) ** 2
    k = 3 - 2 * math.sqrt(2)
    alpha = (math.sqrt(2 * beta) - math.sqrt(beta)) / k - math.sqrt(gamma / k)
    return 2 * (math.exp(alpha) - 1) / (1 + math.exp(alpha))


def ar_by_hand(h0: float, l0: float, c0: float, h1: float, l1: float) -> float:
    """Abdi & Ranaldo (2017), eq. (7)'s two-day term: 4 (c_t - eta_t)(c_t - eta_{t+1})."""
    eta0, eta1 = (math.log(h0) + math.log(l0)) / 2, (math.log(h1) + math.log(l1)) / 2
    return 4 * (math.log(c0) - eta0) * (math.log(c0) - eta1)


def bars_of(symbol: str, start: str, end: str) -> pd.DataFrame:
    k = pd.read_parquet(shared_klines(), filters=[("symbol", "==", symbol)])
    k = k[(k["open_time"] >= pd.Timestamp(start, tz="UTC").value // 10**6)
          & (k["open_time"] < pd.Timestamp(end, tz="UTC").value // 10**6)]
    return k.sort_values("open_time").reset_index(drop=True)


@pytest.mark.parametrize("symbol, start, end", [("BTCUSDT", "2024-03-01", "2024-05-01"),
                                                ("DOGEUSDT", "2023-01-01", "2023-03-01"),
                                                ("FTTUSDT", "2022-10-15", "2022-12-15")])  # FTT: trading, then a flat tail
def test_each_estimator_equals_the_papers_formula_by_hand_on_the_shared_klines(symbol, start, end):
    b = bars_of(symbol, start, end)
    h, lo, c = (b[k].to_numpy() for k in ("high", "low", "close"))
    traded = b["volume"].to_numpy() > 0
    cs, ar = corwin_schultz_terms(h, lo, c, traded), abdi_ranaldo_terms(h, lo, c, traded)
    want_cs, want_ar = np.full(len(b), np.nan), np.full(len(b), np.nan)
    for t in range(1, len(b)):
        if traded[t - 1] and traded[t]:
            want_cs[t] = cs_by_hand(h[t - 1], lo[t - 1], c[t - 1], h[t], lo[t])
            want_ar[t] = ar_by_hand(h[t - 1], lo[t - 1], c[t - 1], h[t], lo[t])
    np.testing.assert_allclose(cs, want_cs, rtol=1e-9, atol=1e-15, equal_nan=True)
    np.testing.assert_allclose(ar, want_ar, rtol=1e-9, atol=1e-15, equal_nan=True)
    assert np.isfinite(cs).sum() > 500
    if symbol == "FTTUSDT":  # the flat tail is no price: none of its bars makes a term
        assert np.isnan(cs[~traded]).all() and (~traded).sum() > 300
    # the window's estimate: negatives to 0 then the mean (CS); the mean then sqrt of its positive part (AR)
    window = 24 * 30
    got_cs, got_ar = (rolling_spread(h, lo, c, m, window, 100, traded) for m in ("corwin_schultz", "abdi_ranaldo"))
    for t in (window - 1, len(b) - 1, len(b) // 2):
        lo_t = max(0, t - window + 1)
        w_cs, w_ar = want_cs[lo_t : t + 1], want_ar[lo_t : t + 1]
        n = np.isfinite(w_cs).sum()
        if n < 100:
            assert np.isnan(got_cs[t]) and np.isnan(got_ar[t])
            continue
        assert got_cs[t] == pytest.approx(np.nanmean(np.maximum(w_cs, 0.0)), rel=1e-9)
        assert got_ar[t] == pytest.approx(math.sqrt(max(np.nanmean(w_ar), 0.0)), rel=1e-9, abs=1e-15)


def test_an_estimate_at_a_bar_reads_no_later_bar():
    b = bars_of("ETHUSDT", "2024-01-01", "2024-02-01")
    h, lo, c = (b[k].to_numpy() for k in ("high", "low", "close"))
    full = rolling_spread(h, lo, c, "corwin_schultz", 48)
    for cut in (100, 400, 700):
        early = rolling_spread(h[:cut], lo[:cut], c[:cut], "corwin_schultz", 48)
        np.testing.assert_array_equal(early, full[:cut])


def test_bad_parameters_are_refused():
    with pytest.raises(InvalidParameter, match="unknown spread estimator"):
        rolling_spread(np.ones(3), np.ones(3), np.ones(3), "roll")
    with pytest.raises(InvalidParameter, match="window"):
        rolling_spread(np.ones(3), np.ones(3), np.ones(3), window=1)
    with pytest.raises(InvalidParameter, match="same length"):
        corwin_schultz_terms(np.ones(3), np.ones(2), np.ones(3))


def test_on_the_tapes_1s_bars_the_estimates_sit_beside_the_quoted_spread():
    """BTCUSDT and ETHUSDT 1 s bars of the shared tape's trades against the time-weighted spread
    of its @bookTicker quotes: Corwin-Schultz within a few hundredths of a bp of the quotes;
    Abdi-Ranaldo's mean term negative (0). On 1 h klines of the same symbols both are far off
    (volatility swamps a spread of a tick): the figures are in README."""
    from tests.fake_binance import read_recording, read_tape_quotes, recorded_files

    for path in recorded_files():
        tape = read_recording(path)
        q = read_tape_quotes(path)
        trades = pd.Series(tape.price, index=pd.to_datetime(tape.ts, unit="ms"))
        bars = trades.resample("1s").ohlc().dropna()
        est = spread_summary(tape.symbol, bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy())
        mid = (q.bid + q.ask) / 2
        rel = (q.ask - q.bid) / mid
        dt = np.diff(q.time_ms, append=q.time_ms[-1]).astype(float)
        quoted = float((rel * dt).sum() / dt.sum())
        assert 0 < quoted < 0.5e-5  # under half a bp
        assert abs(est.corwin_schultz - quoted) < 0.1e-4, (tape.symbol, est, quoted)
        assert est.abdi_ranaldo == 0.0
