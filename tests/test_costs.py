"""Costs a trader pays: fills at the touch (buy at the ask, sell at the bid) and at a spread
estimated from bars, each against a computation by hand, trade by trade."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from statarb_kit.analytics.spread_estimators import rolling_spread
from statarb_kit.backtest import BacktestParams
from statarb_kit.backtest.basket import basket_backtest
from statarb_kit.backtest.costs import LegSpreads, estimated_spreads, touch_spreads
from statarb_kit.backtest.engine import run_backtest
from statarb_kit.backtest.frame import signal_frame
from statarb_kit.errors import InvalidParameter
from statarb_kit.quotes import QuoteBars
from tests.test_backtest import coint_prices

BAR_MS = 60_000


def quoted(mid: np.ndarray, seed: int) -> tuple[QuoteBars, np.ndarray]:
    """Quote bars around ``mid`` with a half spread of 0.5 to 8 bps, and that half spread."""
    h = np.random.default_rng(seed).uniform(0.5e-4, 8e-4, len(mid))
    start = np.arange(len(mid), dtype=np.int64) * BAR_MS
    bid, ask = mid * (1 - h), mid * (1 + h)
    return QuoteBars("X", BAR_MS, start, bid, ask, 2 * h, 2 * h, np.ones(len(mid), dtype=np.int64)), h


def test_touch_fills_buy_at_the_ask_and_sell_at_the_bid_trade_by_trade():
    _, px, py = coint_prices(3_000, 4)
    qx, _ = quoted(px, 1)
    qy, _ = quoted(py, 2)
    close = qx.start + BAR_MS
    spreads, mid = touch_spreads([qx, qy], close)
    p = BacktestParams(z_entry=1.5, z_exit=0.0, hedge_window=200, z_window=50, corr_window=50, corr_min=-1.0,
                       fee_bps=2.0, slippage_bps=0.0)
    f = replace(signal_frame(close, mid[:, 0], mid[:, 1], p), spreads=spreads)
    r = run_backtest(f, p, 60.0)
    tr = r.trades
    assert len(tr) >= 10 and f.cost_model == "touch"
    at = lambda col: (tr[col].dt.as_unit("ms").astype("int64").to_numpy() - BAR_MS) // BAR_MS  # noqa: E731 (close -> bar)
    i, j = at("entry_time"), at("exit_time")
    ux, uy = tr["units_x"].to_numpy(), tr["units_y"].to_numpy()
    # by hand: a leg bought pays the ask, a leg sold gets the bid, at the fill bar's close
    ex = np.where(ux > 0, qx.ask[i], qx.bid[i])
    ey = np.where(uy > 0, qy.ask[i], qy.bid[i])
    xx = np.where(ux > 0, qx.bid[j], qx.ask[j])
    xy = np.where(uy > 0, qy.bid[j], qy.ask[j])
    for got, want in ((tr["entry_x"], ex), (tr["entry_y"], ey), (tr["exit_x"], xx), (tr["exit_y"], xy)):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    fees = 2e-4 * (np.abs(ux) * ex + np.abs(uy) * ey + np.abs(ux) * xx + np.abs(uy) * xy)
    pnl = ux * (xx - ex) + uy * (xy - ey) - fees
    np.testing.assert_allclose(tr["fees"], fees, rtol=1e-12)
    np.testing.assert_allclose(tr["pnl"], pnl, rtol=1e-10, atol=1e-15)
    half = lambda q, k: (q.ask[k] - q.bid[k]) / 2  # noqa: E731 (in price units)
    spread = np.abs(ux) * (half(qx, i) + half(qx, j)) + np.abs(uy) * (half(qy, i) + half(qy, j))
    np.testing.assert_allclose(tr["spread"], spread, rtol=1e-12)  # both legs, both fills
    assert r.equity.iloc[-1] == pytest.approx(1.0 + pnl.sum(), rel=1e-12)
    m = r.metrics
    assert m.spread == pytest.approx(tr["spread"].sum()) and m.costs == pytest.approx(m.fees + m.spread)
    assert m.total_return == pytest.approx(m.gross_pnl - m.costs, rel=1e-10)
    # the same trades at mid prices with no spread: what crossing cost, exactly
    flat = run_backtest(replace(f, spreads=None), p, 60.0)
    assert flat.trades["entry_time"].equals(tr["entry_time"])
    np.testing.assert_allclose(flat.trades["gross_pnl"], tr["gross_pnl"], rtol=1e-12)
    assert flat.metrics.total_return - m.total_return == pytest.approx(m.spread + m.fees - flat.metrics.fees, rel=1e-9)


def test_estimated_spread_fills_a_basket_at_the_close_plus_or_minus_half_the_estimate():
    _, px, py = coint_prices(2_000, 9)
    rng = np.random.default_rng(3)
    legs = []
    for close in (px, py):
        hi = close * (1 + rng.uniform(0, 2e-3, len(close)))
        lo = close * (1 - rng.uniform(0, 2e-3, len(close)))
        legs.append((hi, lo, close, None))
    spreads = estimated_spreads(legs, "corwin_schultz", 120)
    for k, (hi, lo, close, _) in enumerate(legs):
        np.testing.assert_allclose(spreads.half[:, k], rolling_spread(hi, lo, close, "corwin_schultz", 120) / 2)
    z = np.concatenate([np.full(150, np.nan), np.sin(np.arange(1_850) / 15.0) * 3])
    prices = np.column_stack([px, py])
    p = BacktestParams(z_entry=2.0, z_exit=0.0, fee_bps=1.0, slippage_bps=0.0)
    time = np.arange(2_000, dtype=np.int64) * BAR_MS
    r = basket_backtest(time, prices, np.array([1.0, -1.5]), z, p, 60.0, ("X", "Y"), spreads=spreads)
    tr = r.trades
    assert len(tr) >= 5
    i = tr["entry_time"].dt.as_unit("ms").astype("int64").to_numpy() // BAR_MS
    j = tr["exit_time"].dt.as_unit("ms").astype("int64").to_numpy() // BAR_MS
    u = r.units
    entry = prices[i] * (1 + np.sign(u) * spreads.half[i])
    out = prices[j] * (1 - np.sign(u) * spreads.half[j])
    fees = 1e-4 * (np.abs(u) * entry + np.abs(u) * out).sum(axis=1)
    np.testing.assert_allclose(tr["pnl"], (u * (out - entry)).sum(axis=1) - fees, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(tr["spread"], (np.abs(u) * (prices[i] * spreads.half[i] + prices[j] * spreads.half[j])).sum(axis=1),
                               rtol=1e-12)


def test_a_spread_model_is_named_and_shaped_or_refused():
    with pytest.raises(InvalidParameter, match="spread model"):
        LegSpreads("flat", np.zeros((3, 2)))
    with pytest.raises(InvalidParameter, match="bars x legs"):
        LegSpreads("touch", np.zeros(3))
    with pytest.raises(InvalidParameter, match="unknown spread estimator"):
        estimated_spreads([(np.ones(3), np.ones(3), np.ones(3), None)], "roll", 2)
    assert "mean half spread 2 bps" in LegSpreads("touch", np.full((4, 2), 2e-4)).describe()


def test_legging_refuses_a_bad_latency_or_leg():
    import pandas as pd

    from statarb_kit.backtest.costs import legging
    from statarb_kit.quotes import parse_book_tickers

    q = parse_book_tickers("ETHUSDT", [])
    trades = pd.DataFrame({"entry_time": pd.to_datetime([0], unit="ms", utc=True),
                           "exit_time": pd.to_datetime([1_000], unit="ms", utc=True), "units_x": [1.0],
                           "units_y": [-2.0]})
    with pytest.raises(InvalidParameter, match="latency_ms"):
        legging(trades, q, -1)
    with pytest.raises(InvalidParameter, match="leg"):
        legging(trades, q, 10, leg="z")
    assert legging(trades, q, 10)["legging"].isna().all()  # no quote in force: unknown, not 0


def test_sweeps_and_walk_forward_runs_fill_at_the_touch_as_backtests_of_the_same_bars(tmp_path):
    """Bars of a store that holds quotes (the synthetic pair with quotes, replayed): every row of
    a sweep equals ``backtest_bars`` of its combination, spread cost included."""
    import asyncio

    from statarb_kit import Session
    from statarb_kit.backtest import expand_grid
    from statarb_kit.backtest.data import backtest_bars, bars_from_store
    from statarb_kit.backtest.sweep import run_sweep
    from statarb_kit.backtest.walk_forward import walk_forward_optimise
    from statarb_kit.sources import SyntheticPair

    db = tmp_path / "s.duckdb"

    async def go():
        src = SyntheticPair(realtime=False, start_ms=1_700_000_000_000, max_ticks=2 * 20 * 3_600, quotes=True)
        async with Session(source=src, db=db) as session:
            await session.wait()

    asyncio.run(go())
    bars = bars_from_store(db, ("BTCUSDT", "ETHUSDT"), "1s")
    assert bars.quotes is not None
    combos = expand_grid({"z_entry": [1.5, 2.0], "z_exit": [0.0, 0.5]},
                         BacktestParams(hedge_window=120, z_window=60, corr_window=60, slippage_bps=0.0))
    rows = run_sweep(bars, combos, jobs=1, progress=False)
    for p, (_, row) in zip(combos, rows.iterrows()):
        m = backtest_bars(bars, p).metrics
        assert m.trades > 0 and m.spread > 0
        assert row["total_return"] == pytest.approx(m.total_return, rel=1e-12, abs=1e-15)
        assert row["spread"] == pytest.approx(m.spread, rel=1e-12)
    wf = walk_forward_optimise(bars, combos, 1_200, 600)
    assert wf.oos.spread > 0
