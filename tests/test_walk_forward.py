"""Walk-forward optimisation: each window's choice equals a brute-force search of its in-sample
bars, the stitched out-of-sample figures add up, and no window sees bars after its own."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from statarb_kit import InvalidParameter
from statarb_kit.backtest import BacktestParams, DataSpec, expand_grid, run_backtest, signal_frame
from statarb_kit.backtest.walk_forward import cut, walk_forward_optimise

GRID = {"z_entry": [1.0, 1.5, 2.0], "z_exit": [-0.5, 0.0, 0.5], "hedge_mode": ["rolling", "kalman"]}
BASE = BacktestParams(z_window=30, corr_window=30, hedge_window=60)


@pytest.fixture(scope="module")
def bars():
    return DataSpec(timeframe="1m", hours=12, seed=5).load()


def test_each_window_trades_its_in_sample_best_and_the_pieces_add_up(bars):
    combos = expand_grid(GRID, BASE)
    wf = walk_forward_optimise(bars, combos, in_sample=240, out_of_sample=120, metric="sharpe", min_trades=2)
    w = wf.windows
    assert len(w) == (len(bars) - 240 - 2) // 120 + 1 and wf.trials == len(combos)
    frames = {p.frame_key(): signal_frame(bars.close_time, bars.price_x, bars.price_y, p) for p in combos}
    for k, row in w.iterrows():
        lo, mid = k * 120, k * 120 + 240
        hi = min(mid + 120, len(bars))
        scores = []
        for i, p in enumerate(combos):  # brute force: every combination alone on the in-sample rows
            m = run_backtest(cut(frames[p.frame_key()], lo, mid), p, funding=bars.funding).metrics
            scores.append(m.sharpe if m.trades >= 2 and not np.isnan(m.sharpe) else -np.inf)
        best = int(np.argmax(scores))
        if np.isinf(scores[best]):
            assert row["combination"] == -1
            continue
        assert row["combination"] == best and row["is_sharpe"] == pytest.approx(scores[best], rel=1e-12)
        oos = run_backtest(cut(frames[combos[best].frame_key()], mid, hi), combos[best], funding=bars.funding)
        assert row["oos_total_return"] == pytest.approx(oos.metrics.total_return, abs=1e-15)
        assert row["oos_funding_pnl"] == pytest.approx(oos.metrics.funding_pnl, abs=1e-15)
    traded = w[w["combination"] >= 0]
    assert wf.oos.total_return == pytest.approx(traded["oos_total_return"].sum(), abs=1e-12)
    assert wf.oos.trades == traded["oos_trades"].sum() and wf.oos.funding_pnl == pytest.approx(
        traded["oos_funding_pnl"].sum(), abs=1e-14)
    assert wf.equity.iloc[-1] == pytest.approx(1 + wf.oos.total_return, abs=1e-12)
    assert len(wf.equity) == min(len(bars), 240 + len(w) * 120) - 240
    side = wf.summary()
    assert list(side.columns) == ["in sample", "out of sample"] and side.loc["sharpe", "out of sample"] == wf.oos.sharpe


def test_no_window_sees_bars_after_its_out_of_sample_end(bars):
    combos = expand_grid(GRID, BASE)
    a = walk_forward_optimise(bars, combos, 240, 120)
    cut_at = 240 + 2 * 120  # the end of window 1's out-of-sample bars
    rng = np.random.default_rng(0)
    px = bars.price_x.copy()
    px[cut_at:] *= rng.uniform(0.95, 1.05, len(px) - cut_at)
    b = walk_forward_optimise(replace(bars, price_x=px), combos, 240, 120)
    cols = ["combination", "is_sharpe", "oos_total_return", "oos_trades"]
    assert a.windows.loc[:1, cols].equals(b.windows.loc[:1, cols])
    assert not a.windows[cols].equals(b.windows[cols])


def test_bad_walk_forward_settings_are_refused(bars):
    combos = expand_grid(GRID, BASE)
    with pytest.raises(InvalidParameter, match="not a metric"):
        walk_forward_optimise(bars, combos, 240, 120, metric="luck")
    with pytest.raises(InvalidParameter, match="fewer than one window"):
        walk_forward_optimise(bars, combos, len(bars), 120)


def test_windows_without_a_qualifying_combination_stay_flat(bars):
    combos = expand_grid({"z_entry": [1.5, 2.0]}, BASE)
    wf = walk_forward_optimise(bars, combos, 240, 120, min_trades=10_000)  # nothing qualifies
    assert (wf.windows["combination"] == -1).all() and wf.oos.trades == 0 and wf.oos.total_return == 0.0
    assert (wf.equity == 1.0).all() and np.isnan(wf.summary().loc["sharpe", "in sample"])
