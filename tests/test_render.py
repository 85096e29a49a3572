"""Results render themselves: ``summary()`` text and ``_repr_html_`` with each result's key
figures (what a notebook cell that ends with the result shows)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from statarb_kit.analytics.hedge import ols_hedge
from statarb_kit.backtest import BacktestParams, expand_grid
from statarb_kit.backtest.basket import basket_backtest
from statarb_kit.backtest.data import backtest_bars, bars_synthetic
from statarb_kit.backtest.portfolio import run_portfolio
from statarb_kit.backtest.walk_forward import walk_forward_optimise


@pytest.fixture(scope="module")
def bars():
    return bars_synthetic(hours=6, timeframe="1m", seed=3)


def test_a_backtest_shows_its_figures_cost_model_and_equity(bars):
    r = backtest_bars(bars, BacktestParams(z_entry=1.5, z_exit=0.0))
    m = r.metrics
    page, text = r._repr_html_(), r.summary()
    assert m.trades > 0
    for shown in (f"{m.trades} ({m.long_trades} / {m.short_trades})", f"{m.total_return:+.3%}", f"{m.max_drawdown:.2%}",
                  f"{-m.fees:+.3%}", "flat: the rule&#x27;s fee and slippage bps per leg"):
        assert shown in page, shown
    assert "<svg" in page and "<polyline" in page
    assert f"total return           {m.total_return:+.3%}" in text and "no annual Sharpe from 360 min" in text


def test_a_basket_a_portfolio_and_a_walk_forward_run_show_theirs(bars):
    p = BacktestParams(z_entry=1.5, z_exit=0.0)
    r = backtest_bars(bars, p)
    z = r.frame.z
    basket = basket_backtest(r.frame.time, np.column_stack([bars.price_x, bars.price_y]), np.array([1.0, -20.0]),
                             z, p, 60.0, bars.symbols)
    assert f"{basket.metrics.total_return:+.3%}" in basket._repr_html_() and "+1 BTCUSDT -20 ETHUSDT" in basket.summary()
    port = run_portfolio([bars, bars_synthetic(("SOLUSDT", "AVAXUSDT"), hours=6, timeframe="1m", seed=4)], p)
    page = port._repr_html_()
    assert f"{port.metrics['total_return']:+.3%}" in page and "weight" in page and "<polyline" in page
    assert "BTCUSDT/ETHUSDT" in port.summary()
    wf = walk_forward_optimise(bars, expand_grid({"z_entry": [1.5, 2.0]}, p), 120, 60)
    page = wf._repr_html_()
    assert "Walk-forward optimisation" in page and f"{len(wf.windows)} windows" in page and "out of sample" in page


def test_the_tests_and_the_hedge_fit_show_theirs():
    import asyncio

    from statarb_kit import Session
    from statarb_kit.sources import SyntheticPair

    async def go():
        src = SyntheticPair(realtime=False, start_ms=1_700_000_000_000, max_ticks=2 * 20 * 1_200)
        async with Session(source=src) as session:
            await session.wait()
            view = session.pair("BTCUSDT", "ETHUSDT", "1s")
            return view.stationarity(), view.frame()

    report, frame = asyncio.run(go())
    page, text = report._repr_html_(), report.summary()
    assert f"stat {report.adf.stat:.3f}, p {report.adf.pvalue:.4f}" in page
    assert f"p {report.engle_granger.pvalue:.4f}" in text and report.engle_granger.verdict() in text
    fit = ols_hedge(frame["price_x"].to_numpy(), frame["price_y"].to_numpy())
    assert re.search(rf"{fit.beta:.6g} \* y", fit._repr_html_())
