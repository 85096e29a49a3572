"""Backtest sweep speed: 1,000 parameter combinations over 86,400 one-second bars.

Data: a day of the synthetic pair through the pipeline (ticks -> 1s bars), timed separately.
Grid: z_entry (5) x z_exit (5) x corr_min (8) x z_window (5) = 1,000 combinations in 5 signal
frames (rolling OLS hedge over 3,600 bars). Timed: ``run_sweep`` with its default worker count
(in-process below PARALLEL_MIN_WORK combinations x bars, as here) with funding of both legs
charged (the synthetic rates, 8-hourly) and, in the same run, without funding: their ratio is
the cost of funding; and with one worker process per core, for comparison. Every sweep also
computes each row's deflated Sharpe ratio and the PBO (CSCV, 16 blocks). Baseline in the same run: the plain per-bar Python loop
(``statarb_kit.backtest.reference.loop_backtest``, the engine's executable specification) on the
same frames, over the whole grid (about a minute), or with ``--sample N`` on N evenly spaced
combinations, extrapolated (and said so); each loop result is checked against the sweep's.

Where vectorbt is installed (not a dependency: ``pip install vectorbt``), the same grid through
``vectorbt.Portfolio.from_signals`` too, against the sweep without funding (vectorbt has none):
per combination two legs grouped with shared cash, the engine's entry and exit signals shifted by
``lag`` bars (the engine fills on the bar after the signal; vectorbt at the signal bar's close),
each leg sized at its share of the notional (the hedge of the signal bar), fee plus slippage per
leg, an opposite entry closing the position. Its timing includes building its signal arrays
and the frames they come from (as the sweep's does), not numba's compilation (a warm-up run).
It leaves a trade open at the end where the engine closes it: trade counts are compared, and
total returns agree up to that last trade's costs.

Ends with one JSON line: {"benchmark": "backtest", "grid_1000_s", "vs_loop_ratio", "funding_cost_ratio",
"vs_vectorbt_ratio" (null without vectorbt), ...}.
Usage: python benchmarks/bench_backtest.py [--bars 86400] [--sample N] [--jobs N] [--no-vectorbt]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from statarb_kit.backtest import BacktestParams, bars_synthetic, expand_grid, signal_frame
from statarb_kit.backtest.reference import loop_backtest
from statarb_kit.backtest.sweep import run_sweep
from statarb_kit.sources import PairModel

GRID = {
    "z_entry": [1.5, 2.0, 2.5, 3.0, 3.5],
    "z_exit": [-0.5, 0.0, 0.25, 0.5, 1.0],
    "corr_min": [-1.0, 0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95],
    "z_window": [300, 600, 1200, 1800, 3600],
}


def vectorbt_run(bars, combos: list[BacktestParams], chunk: int = 100) -> tuple[float, np.ndarray] | None:
    """(seconds, trades of each combination) of the grid through vectorbt's ``from_signals`` (see
    the module doc), or None without vectorbt."""
    try:
        import vectorbt as vbt
    except ImportError:
        return None

    def shifted(a: np.ndarray, lag: int, fill) -> np.ndarray:
        return np.concatenate([np.full(lag, fill, dtype=a.dtype), a[:-lag]])

    t = time.perf_counter()
    first = {p.frame_key(): p for p in reversed(combos)}
    frames = {k: signal_frame(bars.close_time, bars.price_x, bars.price_y, p) for k, p in first.items()}
    n, trades = len(bars), []
    for lo in range(0, len(combos), chunk):
        part = combos[lo : lo + chunk]
        shape = (n, 2 * len(part))
        long_in, long_out, short_in, short_out = (np.zeros(shape, bool) for _ in range(4))
        size, close = np.empty(shape), np.empty(shape)
        for j, p in enumerate(part):
            f = frames[p.frame_key()]
            ok = (f.corr >= p.corr_min) & np.isfinite(f.beta)
            signals = [shifted(a, p.lag, False) for a in (ok & (f.z <= -p.z_entry), ok & (f.z >= p.z_entry),
                                                         f.z >= -p.z_exit, f.z <= p.z_exit)]
            enter_long, enter_short, exit_long, exit_short = signals  # of the spread: x leg as is, y leg mirrored
            beta = np.abs(shifted(f.beta, p.lag, np.nan))
            share_x = f.price_x / (f.price_x + beta * f.price_y)
            for leg, (buy, sell, short, cover, share, price) in enumerate(
                    ((enter_long, exit_long, enter_short, exit_short, share_x, f.price_x),
                     (enter_short, exit_short, enter_long, exit_long, 1 - share_x, f.price_y))):
                c = 2 * j + leg
                long_in[:, c], long_out[:, c], short_in[:, c], short_out[:, c] = buy, sell, short, cover
                size[:, c], close[:, c] = share, price
        pf = vbt.Portfolio.from_signals(close, entries=long_in, exits=long_out, short_entries=short_in,
                                        short_exits=short_out, size=size, size_type="value",
                                        fees=part[0].cost_rate, init_cash=1.0, cash_sharing=True,
                                        group_by=np.repeat(np.arange(len(part)), 2), upon_opposite_entry="close",
                                        freq=f"{bars.bar_s:g}s")
        pf.total_return()
        trades.append(pf.trades.count().to_numpy() // 2)  # both legs of each trade
    return time.perf_counter() - t, np.concatenate(trades)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=86_400, help="one-second bars (default: a day)")
    ap.add_argument("--sample", type=int, default=None,
                    help="time the per-bar loop on this many combinations and extrapolate (default: all)")
    ap.add_argument("--jobs", type=int, default=None, help="sweep workers (default: run_sweep's choice)")
    ap.add_argument("--no-vectorbt", action="store_true", help="skip the vectorbt comparison")
    args = ap.parse_args()

    t = time.perf_counter()
    bars = bars_synthetic(timeframe="1s", hours=args.bars / 3600, seed=7, model=PairModel(rate=5.0))
    data_s = time.perf_counter() - t
    print(f"data: {len(bars):,} aligned 1s bars ({bars.origin}) built through the pipeline in {data_s:.2f} s")

    scale = min(1.0, len(bars) / 86_400)  # toy runs shrink the windows with the data
    grid = {**GRID, "z_window": [max(2, int(w * scale)) for w in GRID["z_window"]]}
    base = BacktestParams(hedge_window=max(2, int(3600 * scale)), corr_window=max(2, int(300 * scale)))
    combos = expand_grid(grid, base)
    groups = len({p.frame_key() for p in combos})
    print(f"grid: {len(combos)} combinations in {groups} signal frames, on {os.cpu_count()} cores")

    t = time.perf_counter()
    results = run_sweep(bars, combos, jobs=args.jobs, progress=False)
    sweep_s = time.perf_counter() - t
    t = time.perf_counter()
    unfunded = run_sweep(bars.without_funding(), combos, jobs=args.jobs, progress=False)
    unfunded_s = time.perf_counter() - t
    assert unfunded["funding_pnl"].isna().all() and results["funding_pnl"].notna().all()
    moved = (unfunded["total_return"] - results["total_return"]).abs().max()
    explained = (results["total_return"] - unfunded["total_return"] - results["funding_pnl"]).abs().max()
    print(f"funding: {sweep_s:.2f} s with it, {unfunded_s:.2f} s without: {sweep_s / unfunded_s:.2f}x; it moved a "
          f"total return by up to {moved:.2e}, all of it the funding paid (residual {explained:.1e})")
    cores = os.cpu_count() or 1
    t = time.perf_counter()
    parallel = run_sweep(bars, combos, jobs=cores, progress=False)
    parallel_s = time.perf_counter() - t
    assert results.equals(parallel), "parallel and in-process sweeps differ"
    print(f"sweep: {sweep_s:.2f} s ({sweep_s / len(combos) * 1e3:.2f} ms per combination); "
          f"with {cores} worker processes: {parallel_s:.2f} s")

    # baseline: frames once per group (as the sweep does), then the per-bar loop per combination
    t = time.perf_counter()
    first = {p.frame_key(): p for p in reversed(combos)}  # one combination per frame
    frames = {k: signal_frame(bars.close_time, bars.price_x, bars.price_y, p) for k, p in first.items()}
    frames_s = time.perf_counter() - t
    sample = min(args.sample or len(combos), len(combos))
    picks = np.unique(np.linspace(0, len(combos) - 1, sample).astype(int))
    loop_times = []
    for i in picks:
        p = combos[i]
        t = time.perf_counter()
        trades, equity = loop_backtest(frames[p.frame_key()], p, bars.funding)
        loop_times.append(time.perf_counter() - t)
        row = results.iloc[i]
        assert len(trades) == row.trades and math.isclose(equity[-1] - 1, row.total_return, rel_tol=1e-9, abs_tol=1e-12)
    loop_est = float(np.mean(loop_times)) * len(combos) + frames_s
    ratio = loop_est / sweep_s
    how = ("over the whole grid" if len(picks) == len(combos)
           else f"on {len(picks)} sampled combinations, extrapolated to the grid")
    print(f"per-bar loop: {np.mean(loop_times) * 1e3:.1f} ms per combination {how} (every result equals the "
          f"sweep's) + {frames_s:.2f} s of frames: {loop_est:.1f} s, {ratio:.0f}x the sweep's time")
    vbt_ratio = None
    if args.no_vectorbt or vectorbt_run(bars, combos[:2], chunk=2) is None:  # the warm-up compiles
        print("vectorbt: not run" + ("" if args.no_vectorbt else " (not installed: pip install vectorbt)"))
    else:
        import vectorbt

        vbt_s, vbt_trades = vectorbt_run(bars, combos)
        vbt_ratio = vbt_s / unfunded_s
        same = float(np.mean(vbt_trades == unfunded["trades"].to_numpy()))
        print(f"vectorbt {vectorbt.__version__} from_signals, same grid and frames, no funding: {vbt_s:.1f} s, "
              f"{vbt_ratio:.1f}x the sweep without funding ({unfunded_s:.2f} s); the same trade count in "
              f"{same:.0%} of the combinations")
    print(f"best Sharpe in the grid: {results['sharpe'].max():.2f} ({int(results['trades'].sum()):,} trades in all)")
    print(json.dumps({"benchmark": "backtest", "grid_1000_s": round(sweep_s, 3), "vs_loop_ratio": round(ratio, 1),
                      "funding_cost_ratio": round(sweep_s / unfunded_s, 3), "no_funding_s": round(unfunded_s, 3),
                      "vs_vectorbt_ratio": None if vbt_ratio is None else round(vbt_ratio, 1),
                      "parallel_s": round(parallel_s, 3), "combos": len(combos), "bars": len(bars),
                      "loop_ms_per_combo": round(float(np.mean(loop_times)) * 1e3, 2), "loop_combos": len(picks),
                      "data_s": round(data_s, 2)}))


if __name__ == "__main__":
    main()
