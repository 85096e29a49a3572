"""Dashboard refresh cost, kernel side, with 10,000 points per chart.

A live PairView over 10,000 bars feeds a Dashboard; each refresh follows one new final bar of
each symbol. Reports the median kernel-side time of one refresh and the messages / bytes it
sends to the browser (widget comm traffic, recorded), against a naive redraw that reassigns the
whole history to one line per series (what a simple bqplot dashboard does), in the same run.

Ends with one JSON line: {"benchmark": "dashboard", "refresh_ms_10k", "bytes_per_refresh", ...}.
Usage: python benchmarks/bench_dashboard.py [--points 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import bqplot as bq
import numpy as np

from bench_analytics import Idle, bars_of, prices
from statarb_kit import Session
from statarb_kit.bars import BAR_DTYPE
from statarb_kit.widgets import Dashboard
from statarb_kit.widgets.traffic import Traffic

SECOND = 1_000
START = 1_700_000_000_000


async def run(points: int, refreshes: int) -> dict:
    n = points + 200  # + warm-up rows, so every chart holds `points` drawn points
    x, y = prices(n + refreshes + 10)
    t = START + np.arange(len(x), dtype=np.int64) * SECOND
    session = Session(source=Idle(), timeframes=("1s",), retain_bars=n + refreshes + 100).start()
    for sym, p in ((0, x), (1, y)):
        session.builder.series["1s"][sym].load(bars_of(sym, t[:n], p[:n]))
    empty = np.empty(0, dtype=BAR_DTYPE)
    out: dict[str, list[float]] = {"ms": [], "bytes": [], "msgs": [], "naive_ms": [], "naive_bytes": []}
    with Traffic() as traffic:
        dash = Dashboard(session, timeframe="1s", refresh_s=3600, max_points=2 * n)
        naive = [bq.Lines(x=t[:0].astype("datetime64[ms]"), y=np.empty(0), scales={"x": bq.DateScale(), "y": bq.LinearScale()})
                 for _ in range(5)]
        for i in range(n, n + refreshes):
            new = np.concatenate((bars_of(0, t[i:i + 1], x[i:i + 1]), bars_of(1, t[i:i + 1], y[i:i + 1])))
            dash.view.update("1s", new, empty)
            traffic.reset()
            t0 = time.perf_counter()
            dash.refresh()
            out["ms"].append((time.perf_counter() - t0) * 1e3)
            out["bytes"].append(traffic.bytes)
            out["msgs"].append(traffic.messages)
            cols = dash.view.arrays()  # naive: resend every series' whole history
            traffic.reset()
            t0 = time.perf_counter()
            for mark, col in zip(naive, ("price_x", "price_y", "spread", "z", "corr")):
                with mark.hold_sync():
                    mark.x, mark.y = cols["time"].astype("datetime64[ms]"), cols[col]
            out["naive_ms"].append((time.perf_counter() - t0) * 1e3)
            out["naive_bytes"].append(traffic.bytes)
        drawn = min(dash.z.points, dash.spread.points, dash.corr.points)
    await session.stop()
    return {k: statistics.median(v) for k, v in out.items()} | {"drawn": drawn, "rows": len(dash.view)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--refreshes", type=int, default=200)
    args = ap.parse_args()
    r = asyncio.run(run(args.points, args.refreshes))
    print(f"{r['rows']:,} rows, >= {r['drawn']:,} points drawn per chart")
    print(f"refresh after one new bar: {r['ms']:.2f} ms kernel side, {r['msgs']:.0f} messages, "
          f"{r['bytes']:,.0f} bytes (median of {args.refreshes})")
    print(f"naive whole-history redraw: {r['naive_ms']:.2f} ms, {r['naive_bytes']:,.0f} bytes "
          f"-> {r['naive_bytes'] / r['bytes']:.0f}x the bytes")
    print(json.dumps({"benchmark": "dashboard", "refresh_ms_10k": round(r["ms"], 3),
                      "bytes_per_refresh": round(r["bytes"]), "messages_per_refresh": r["msgs"],
                      "naive_bytes_ratio": round(r["naive_bytes"] / r["bytes"], 1)}))


if __name__ == "__main__":
    main()
