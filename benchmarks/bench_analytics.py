"""Pair analytics speed on 100,000 bars, with references timed in the same run.

- frame: the whole live frame (rolling OLS hedge, spread, z, correlation, flags) from prices;
- update: one new final bar of each symbol through a live PairView holding 100,000 rows
  (PairView.update -> alignment -> O(window) row -> alert check);
- rolling OLS against statsmodels RollingOLS (same window), with the largest difference;
- rolling z-score + correlation against pandas rolling.

Ends with one JSON line: {"benchmark": "analytics", "frame_100k_ms", "update_ms", "rolling_ols_speedup", ...}.
Usage: python benchmarks/bench_analytics.py [--bars 100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.regression.rolling import RollingOLS

from statarb_kit import Session, SourceStatus
from statarb_kit.sources import SourceBase
from statarb_kit.analytics import PairParams, log_returns, pair_frame, rolling_corr, rolling_ols, rolling_zscore
from statarb_kit.bars import BAR_DTYPE

MINUTE = 60_000
START = 1_700_000_000_000 // MINUTE * MINUTE


class Idle(SourceBase):
    """A source that never yields: the benchmark feeds bars to the view directly."""

    symbols, realtime = ("BTCUSDT", "ETHUSDT"), False
    status = SourceStatus(name="idle")

    async def stream(self):
        return
        yield


def prices(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = 3000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    s = np.zeros(n)
    e = rng.normal(0, 5, n)
    for i in range(1, n):
        s[i] = 0.95 * s[i - 1] + e[i]
    return 100 + 20 * y + s, y


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bars_of(sym: int, start: np.ndarray, close: np.ndarray) -> np.ndarray:
    b = np.zeros(len(start), dtype=BAR_DTYPE)
    b["sym"], b["start"] = sym, start
    for f in ("open", "high", "low", "close"):
        b[f] = close
    b["volume"] = b["trades"] = 1
    return b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    n = args.bars
    x, y = prices(n + 200)
    t = START + np.arange(n + 200, dtype=np.int64) * MINUTE
    params = PairParams()  # rolling OLS, hedge window 120, z and corr windows 60

    frame_s = timed(lambda: pair_frame(t[:n], x[:n], y[:n], params), args.repeats)
    print(f"full frame, {n:,} bars: {frame_s * 1e3:.1f} ms")

    # live update through a PairView over n stored bars
    session = Session(source=Idle(), timeframes=("1m",), retain_bars=n + 400)
    for sym, p in ((0, x), (1, y)):
        session.builder.series["1m"][sym].load(bars_of(sym, t[:n], p[:n]))
    view = session.pair("BTCUSDT", "ETHUSDT", "1m")  # the default rule: these params
    empty = np.empty(0, dtype=BAR_DTYPE)
    updates = []
    for i in range(n, n + 200):
        new = np.concatenate((bars_of(0, t[i : i + 1], x[i : i + 1]), bars_of(1, t[i : i + 1], y[i : i + 1])))
        t0 = time.perf_counter()
        view.update("1m", new, empty)
        updates.append(time.perf_counter() - t0)
    assert len(view) == n + 200 - 1 or len(view) == n + 200, len(view)
    update_s = statistics.median(updates)
    print(f"one live bar update at {n:,} rows: {update_s * 1e3:.3f} ms (median of 200)")

    w = params.hedge_window
    ours_s = timed(lambda: rolling_ols(x[:n], y[:n], w), args.repeats)
    exog = sm.add_constant(y[:n])
    ref_s = timed(lambda: RollingOLS(x[:n], exog, window=w).fit(params_only=True), 3)
    a, b = rolling_ols(x[:n], y[:n], w)
    ref = RollingOLS(x[:n], exog, window=w).fit(params_only=True).params
    beta_diff = float(np.nanmax(np.abs(b / ref[:, 1] - 1)))
    alpha_diff = float(np.nanmax(np.abs(a - ref[:, 0])) / np.abs(x).max())
    print(f"rolling OLS (w={w}): ours {ours_s * 1e3:.1f} ms vs statsmodels RollingOLS {ref_s * 1e3:.0f} ms "
          f"-> {ref_s / ours_s:.0f}x; max rel diff beta {beta_diff:.1e}, alpha {alpha_diff:.1e} of price level")

    spread = pair_frame(t[:n], x[:n], y[:n], params).spread
    rx, ry = log_returns(x[:n]), log_returns(y[:n])
    zs = pd.Series(spread)
    rxs, rys = pd.Series(rx), pd.Series(ry)
    ours_zc = timed(lambda: (rolling_zscore(spread, 60), rolling_corr(rx, ry, 60)), args.repeats)
    pandas_zc = timed(lambda: ((zs - zs.rolling(60).mean().shift(1)) / zs.rolling(60).std().shift(1),
                               rxs.rolling(60).corr(rys)), args.repeats)
    print(f"rolling z + corr (w=60): ours {ours_zc * 1e3:.1f} ms vs pandas {pandas_zc * 1e3:.1f} ms "
          f"-> {pandas_zc / ours_zc:.1f}x")
    print(json.dumps({
        "benchmark": "analytics",
        "frame_100k_ms": round(frame_s * 1e3, 2),
        "update_ms": round(update_s * 1e3, 4),
        "rolling_ols_speedup": round(ref_s / ours_s, 1),
        "rolling_ols_max_rel_diff_beta": beta_diff,
        "zcorr_vs_pandas_ratio": round(pandas_zc / ours_zc, 2),
    }))


if __name__ == "__main__":
    main()
