"""The monitor with 200 pairs (SyntheticGroups: 20 groups of 5, 1s bars) and 0, 1, 5 and 20 viewers.

Each viewer is its own process (``tests.monitor_viewer``: ``Session.attach`` and a mirror of every
pair, as a watchlist page keeps). Per configuration, after a warm-up: the monitor's CPU per 1s bar
(process CPU time over the seconds measured: one 1s bar of all 200 pairs a second; the 0-viewer run
is the baseline in the same run, so the cost of fan-out is the difference), the fan-out latency
(update published -> applied on a viewer, p50/p99 over every update of every viewer) and a
viewer's resident memory (the largest, at the end).

    python benchmarks/bench_monitor.py [--seconds 30] [--viewers 0,1,5,20]

Ends with one JSON line: viewers, fanout_p50_ms, fanout_p99_ms, viewer_rss_mb, monitor_cpu_per_bar_ms
(lists, one value per viewer count), and cpu_vs_no_viewers (ratio per viewer count).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_monitor import Viewer, health, monitor  # noqa: E402  (the tests' process helpers)


def measure(port: int, proc, n_viewers: int, seconds: float, warmup_s: float) -> dict:
    viewers = [Viewer(port, "--every", "1") for _ in range(n_viewers)]
    try:
        for v in viewers:
            v.line(timeout_s=120)
        time.sleep(warmup_s)
        counts = [len(v.lines) for v in viewers]
        mon = psutil.Process(proc.pid)
        cpu0, t0 = sum(mon.cpu_times()[:2]), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = sum(mon.cpu_times()[:2]), time.monotonic()
        lat = [ms for v, c in zip(viewers, counts) for line in v.lines[c:] for ms in line["fanout_ms"]]
        rss = [psutil.Process(v.proc.pid).memory_info().rss / 2**20 for v in viewers]
        drops = sum(v.lines[-1]["drops"] for v in viewers) if viewers else 0
        return {"viewers": n_viewers, "cpu_per_bar_ms": (cpu1 - cpu0) * 1000 / (t1 - t0),
                "p50": float(np.percentile(lat, 50)) if lat else None,
                "p99": float(np.percentile(lat, 99)) if lat else None, "updates": len(lat),
                "rss_mb": max(rss) if rss else None, "drops": drops, "health_viewers": health(port)["viewers"]}
    finally:
        for v in viewers:
            v.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--viewers", default="0,1,5,20")
    p.add_argument("--settle", type=float, default=10.0, help="seconds for the history's catch-up first")
    args = p.parse_args()
    counts = [int(x) for x in args.viewers.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp, monitor(Path(tmp), "--db", str(Path(tmp) / "bench.duckdb"),
                                                       "--history-min", "5", name="bench") as (proc, port, log):
        time.sleep(args.settle)  # the history's catch-up
        for n in counts:
            r = measure(port, proc, n, args.seconds, args.warmup)
            results.append(r)
            print(f"{n:3d} viewers: monitor {r['cpu_per_bar_ms']:7.1f} ms CPU per 1s bar of 200 pairs | fan-out "
                  f"p50 {r['p50'] or 0:6.2f} ms p99 {r['p99'] or 0:7.2f} ms over {r['updates']:,} updates | viewer "
                  f"RSS {r['rss_mb'] or 0:5.0f} MB | drops {r['drops']} | /health viewers {r['health_viewers']}",
                  flush=True)
    base = results[0]["cpu_per_bar_ms"] if counts and counts[0] == 0 else None
    out = {"benchmark": "monitor", "pairs": 200, "viewers": counts,
           "fanout_p50_ms": [None if r["p50"] is None else round(r["p50"], 3) for r in results],
           "fanout_p99_ms": [None if r["p99"] is None else round(r["p99"], 3) for r in results],
           "viewer_rss_mb": [None if r["rss_mb"] is None else round(r["rss_mb"], 1) for r in results],
           "monitor_cpu_per_bar_ms": [round(r["cpu_per_bar_ms"], 2) for r in results],
           "cpu_vs_no_viewers": [round(r["cpu_per_bar_ms"] / base, 3) for r in results] if base else None}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
