"""Soak of a long-open page: a day of 1s bars at accelerated time in headless Chromium (Debian's),
with the kernel RSS, the page's JS heap (after a forced garbage collection, so the figure is what
the page retains, not when the collector last ran) and its DOM node count, after warm-up and at
the end.

`statarb dashboard` serves the synthetic pair (``--page pair``) or the synthetic watchlist of 200
pairs over 100 symbols (``--page watchlist``) played from ``--hours`` ago at ``--speed`` times real
time (bars finalise on later trades, so no clock needs faking); the page stays open throughout.

    python benchmarks/bench_soak.py [--page pair] [--speed 600] [--hours 24] [--warm-hours 2]

Ends with one JSON line: page, simulated_hours, and dom / heap_mb / rss_mb at warm-up and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import psutil
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--enable-precise-memory-info"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kernel_rss_mb(server: psutil.Process) -> float:
    kernels = [p for p in server.children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    return sum(p.memory_info().rss for p in kernels) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--page", choices=("pair", "watchlist"), default="pair")
    ap.add_argument("--speed", type=float, default=600.0, help="times real time")
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours to play")
    ap.add_argument("--warm-hours", type=float, default=2.0, help="simulated hours before the first figures")
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "STATARB_SPEED": str(args.speed), "STATARB_HISTORY_MIN": str(min(1440, args.hours * 60))}
    env.pop("STATARB_PREVIEW_S", None)
    server = subprocess.Popen([sys.executable, "-m", "statarb_kit.cli", "dashboard", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    figures: dict[str, float] = {}
    try:
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            watchlist = args.page == "watchlist"
            page.goto(f"http://127.0.0.1:{port}/" + ("?pairs=synthetic&timeframe=1s" if watchlist else ""),
                      timeout=300_000)
            page.wait_for_selector("#sak-wl-last" if watchlist else "#sak-pair", timeout=300_000)
            cdp = page.context.new_cdp_session(page)
            first_bar = None
            warm_at = None
            started = time.monotonic()
            limit_s = args.hours * 3600 / args.speed * 3 + 120
            while time.monotonic() - started < limit_s:
                page.wait_for_timeout(5000)
                text = page.inner_text("#sak-wl-last") if watchlist else page.inner_text("#sak-hedge").split("last bar")[1]
                if "UTC" not in text:
                    continue  # no bar yet
                last = pd.Timestamp(text.split("UTC")[0].strip(), tz="UTC")
                first_bar = first_bar or last
                cdp.send("HeapProfiler.collectGarbage")
                hours = (last - first_bar).total_seconds() / 3600
                sample = {"dom": page.evaluate("document.getElementsByTagName('*').length"),
                          "heap_mb": page.evaluate("performance.memory.usedJSHeapSize") / 2**20,
                          "rss_mb": kernel_rss_mb(psutil.Process(server.pid))}
                print(f"{time.monotonic() - started:6.0f} s: {hours:5.2f} simulated h, DOM {sample['dom']:,} nodes, "
                      f"JS heap {sample['heap_mb']:.1f} MB, kernel RSS {sample['rss_mb']:.0f} MB", flush=True)
                if warm_at is None and hours >= args.warm_hours:
                    warm_at = hours
                    figures.update({f"{k}_warm": round(v, 1) for k, v in sample.items()})
                if hours >= args.hours * 0.98:
                    break
            figures.update({f"{k}_end": round(v, 1) for k, v in sample.items()})
            figures["simulated_hours"] = round(hours, 2)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(json.dumps({"benchmark": "soak", "page": args.page, "speed": args.speed, **figures}))


if __name__ == "__main__":
    main()
