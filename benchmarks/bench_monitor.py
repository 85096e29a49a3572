"""The monitor with 200 pairs (SyntheticGroups: 20 groups of 5, 1s bars) and 0, 1, 5 and 20 viewers.

Each viewer is its own process (``tests.monitor_viewer``: ``Session.attach`` and a mirror of every
pair, as a watchlist page keeps). Per configuration, after a warm-up: the monitor's CPU per 1s bar
(process CPU time over the seconds measured: one 1s bar of all 200 pairs a second; the 0-viewer run
is the baseline in the same run, so the cost of fan-out is the difference), the fan-out latency
(update published -> applied on a viewer, p50/p99 over every update of every viewer) and a
viewer's resident memory (the largest, at the end). Then requests (snapshot, a pair's newest 200
rows, a symbol's bars) one after another for ``--request-seconds``: at the start, while the monitor
works through its history's catch-up with two CPU-bound processes beside it (both cores busy), then
after it on a quiet machine and with the two busy processes: their latency p50/p99.

    python benchmarks/bench_monitor.py [--seconds 30] [--viewers 0,1,5,20] [--request-seconds 10]

Ends with one JSON line: viewers, fanout_p50_ms, fanout_p99_ms, viewer_rss_mb, monitor_cpu_per_bar_ms
(lists, one value per viewer count), cpu_vs_no_viewers (ratio per viewer count), and request_p50_ms,
request_p99_ms, request_max_ms (catch-up and busy, quiet, busy) with requests_answered.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from statarb_kit.monitor import wire  # noqa: E402
from tests.test_monitor import Viewer, health, monitor  # noqa: E402  (the tests' process helpers)

#: A CPU-bound process (a core kept busy).
BURN = "while True: pass"


def request_latency(port: int, seconds: float, busy: int) -> dict:
    """Requests to the monitor one after another for ``seconds`` with ``busy`` CPU-bound processes
    beside it: latency (ms) of each answer; a request unanswered within 30 s is a failure."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(busy)]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{port + 2}")
    try:
        time.sleep(1.0 if busy else 0.0)  # the burners running
        config = None
        lat, ops, end, k = [], ("snapshot", "rows", "bars"), time.monotonic() + seconds, 0
        while time.monotonic() < end:
            op = ops[k % 3]
            req = {"op": op}
            if op == "rows":
                req.update(pair="/".join(config["pairs"][k % len(config["pairs"])]), last=200)
            elif op == "bars":
                req.update(symbol=config["symbols"][k % len(config["symbols"])], tf=config["timeframe"])
            t0 = time.perf_counter()
            sock.send_multipart(wire.encode("request", req))
            if not sock.poll(30_000):
                raise SystemExit(f"the monitor did not answer {op} within 30 s with {busy} busy cores")
            topic, header, _ = wire.decode(sock.recv_multipart())
            lat.append((time.perf_counter() - t0) * 1000)
            if topic == "error":
                raise SystemExit(f"the monitor refused {req}: {header}")
            config = config or header["config"]
            k += 1
        return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "max": max(lat),
                "n": len(lat)}
    finally:
        sock.close(0)
        ctx.term()
        for b in burners:
            b.kill()
            b.wait()


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
    p.add_argument("--request-seconds", type=float, default=10.0, help="seconds of requests, quiet and busy")
    p.add_argument("--history-min", type=float, default=5.0, help="minutes of synthetic history to catch up at start")
    args = p.parse_args()
    counts = [int(x) for x in args.viewers.split(",")]
    results = []
    with (tempfile.TemporaryDirectory() as tmp, monitor(Path(tmp), "--db", str(Path(tmp) / "bench.duckdb"),
                                                       "--history-min", f"{args.history_min:g}", name="bench")
          as (proc, port, log)):
        requests = [request_latency(port, args.request_seconds, 2)]  # during the history's catch-up
        time.sleep(args.settle)  # the rest of the catch-up
        for n in counts:
            r = measure(port, proc, n, args.seconds, args.warmup)
            results.append(r)
            print(f"{n:3d} viewers: monitor {r['cpu_per_bar_ms']:7.1f} ms CPU per 1s bar of 200 pairs | fan-out "
                  f"p50 {r['p50'] or 0:6.2f} ms p99 {r['p99'] or 0:7.2f} ms over {r['updates']:,} updates | viewer "
                  f"RSS {r['rss_mb'] or 0:5.0f} MB | drops {r['drops']} | /health viewers {r['health_viewers']}",
                  flush=True)
        requests += [request_latency(port, args.request_seconds, busy) for busy in (0, 2)]
        for what, r in zip(("catch-up, 2 CPU-bound processes beside", "0 CPU-bound processes beside",
                            "2 CPU-bound processes beside"), requests):
            print(f"requests ({what}): p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.1f} ms over "
                  f"{r['n']:,} (snapshot, 200 rows, bars)", flush=True)
    base = results[0]["cpu_per_bar_ms"] if counts and counts[0] == 0 else None
    out = {"benchmark": "monitor", "pairs": 200, "viewers": counts,
           "fanout_p50_ms": [None if r["p50"] is None else round(r["p50"], 3) for r in results],
           "fanout_p99_ms": [None if r["p99"] is None else round(r["p99"], 3) for r in results],
           "viewer_rss_mb": [None if r["rss_mb"] is None else round(r["rss_mb"], 1) for r in results],
           "monitor_cpu_per_bar_ms": [round(r["cpu_per_bar_ms"], 2) for r in results],
           "cpu_vs_no_viewers": [round(r["cpu_per_bar_ms"] / base, 3) for r in results] if base else None,
           "request_p50_ms": [round(r["p50"], 3) for r in requests], "request_p99_ms": [round(r["p99"], 3) for r in requests],
           "request_max_ms": [round(r["max"], 1) for r in requests], "requests_answered": [r["n"] for r in requests]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
