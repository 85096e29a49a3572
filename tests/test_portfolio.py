"""Portfolios of pairs: the combined figures against the pairs' own backtests and pandas, the
weights by hand, a scan's selection traded after its formation, and Dask."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from statarb_kit import InvalidParameter
from statarb_kit.backtest import BacktestParams, backtest_bars
from statarb_kit.backtest.engine import YEAR_S
from statarb_kit.backtest.portfolio import run_portfolio, selection_bars, spread_volatility
from statarb_kit.funding import synthetic_funding
from statarb_kit.scan import scan_pairs, synthetic_universe

RULE = BacktestParams(z_entry=1.5, z_exit=0.0, z_window=60, corr_window=60, hedge_window=120, log_prices=True)


@pytest.fixture(scope="module")
def selection():
    u = synthetic_universe(n_symbols=40, n_bars=4_000, seed=3)
    scan = scan_pairs(u.closes, validation=0.5, log_prices=True)
    return u, scan, selection_bars(u.closes, scan, "1m", "synthetic universe", max_pairs=5,
                                   funding=lambda s, lo, hi: synthetic_funding(s, lo, hi, seed=3))


def test_a_scans_selection_is_traded_only_after_its_formation(selection):
    u, scan, bars = selection
    formation_end = pd.Timestamp(scan.attrs["formation"][1]).value // 10**6
    assert len(bars) == 5 and all(b.time[0] > formation_end for b in bars)
    chosen = scan[scan["selected"]].sort_values("pvalue").head(5)
    assert [b.symbols for b in bars] == list(zip(chosen["x"], chosen["y"]))
    assert all(b.funding is not None for b in bars)


def test_the_whole_equals_the_weighted_pairs(selection):
    _, _, bars = selection
    pf = run_portfolio(bars, RULE, "equal")
    alone = [backtest_bars(b, RULE) for b in bars]
    w = np.full(5, 0.2)
    np.testing.assert_allclose(pf.weights, w)
    assert pf.metrics["total_return"] == pytest.approx(sum(0.2 * r.metrics.total_return for r in alone), abs=1e-13)
    assert pf.metrics["funding_pnl"] == pytest.approx(sum(0.2 * r.metrics.funding_pnl for r in alone), abs=1e-15)
    assert pf.metrics["trades"] == sum(r.metrics.trades for r in alone)
    assert pf.contribution["contribution"].sum() == pytest.approx(pf.metrics["total_return"], abs=1e-13)
    # the equity and Sharpe from pandas: the weighted equity changes on the full minute grid, 0 where no bar
    eq = pd.concat([r.equity - 1 for r in alone], axis=1).ffill().fillna(0.0) @ w + 1
    np.testing.assert_allclose(pf.equity.to_numpy(), eq.to_numpy(), atol=1e-12)
    grid = pd.date_range(eq.index[0], eq.index[-1], freq="1min")
    per_min = eq.reindex(grid).ffill().diff().fillna(eq.iloc[0] - 1)
    sharpe = per_min.mean() / per_min.std(ddof=1) * math.sqrt(YEAR_S / 60)
    assert pf.metrics["sharpe"] == pytest.approx(sharpe, rel=1e-9)
    assert pf.correlation.shape == (5, 5) and np.allclose(np.diag(pf.correlation), 1.0)


def test_inverse_volatility_weights_by_hand(selection):
    _, _, bars = selection
    pf = run_portfolio(bars, RULE, "inverse_vol")
    vols = []
    for b in bars:  # the spread of the first 120 bars under their own OLS fit, per unit of gross notional
        x, y = np.log(b.price_x[:120]), np.log(b.price_y[:120])
        beta, alpha = np.polyfit(y, x, 1)
        vols.append(np.std(np.diff(x - alpha - beta * y) / (1 + abs(beta)), ddof=1))
    want = (1 / np.array(vols)) / (1 / np.array(vols)).sum()
    np.testing.assert_allclose(pf.weights.to_numpy(), want, rtol=1e-8)
    assert spread_volatility(bars[0], RULE) == pytest.approx(vols[0], rel=1e-8)
    with pytest.raises(InvalidParameter, match="weighting must be one of"):
        run_portfolio(bars, RULE, "kelly")


def test_dask_workers_give_the_same_portfolio(selection):
    distributed = pytest.importorskip("distributed")
    _, _, bars = selection
    here = run_portfolio(bars, RULE, "equal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            there = run_portfolio(bars, RULE, "equal", client=client)
    pd.testing.assert_series_equal(here.equity, there.equity)
    assert here.metrics == there.metrics
