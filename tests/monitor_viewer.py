"""A monitor viewer in its own process, as a notebook kernel would be one.

``python -m tests.monitor_viewer HOST:PORT [--token T] [--pairs N] [--rows R] [--every S]`` attaches
with ``Session.attach``, mirrors the monitor's first N pairs (all by default) and prints one JSON
line every S seconds: its update ``seq``, drops, resyncs, peak RSS, fan-out latencies (ms) since the
last line, every event key it holds, and each view's newest row (time, z, beta). SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys

import orjson

from statarb_kit.session import Session


async def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("--token", default=None)
    p.add_argument("--pairs", type=int, default=None)
    p.add_argument("--rows", type=int, default=None, help="rows each mirror keeps (default: all)")
    p.add_argument("--every", type=float, default=1.0)
    args = p.parse_args(argv)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    viewer = Session.attach(args.address, args.token)
    with viewer.keeping(args.rows):
        views = [viewer.pair(x, y) for x, y in viewer.pairs[: args.pairs]]
    seen = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), args.every)
        except TimeoutError:
            pass
        lat = list(viewer.fanout_ms)[seen:]
        seen = len(viewer.fanout_ms)
        line = {"seq": viewer.seq, "run": viewer.run_id, "drops": viewer.drops, "resyncs": viewer.resyncs,
                "updates": viewer.updates, "connected": viewer.connected,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "fanout_ms": lat,
                "events": [[e.pair, e.timeframe, e.time_ms] for e in viewer.event_log],
                "events_fired": viewer.events_fired,
                "views": {v.name: [int(v.tail("time", 1)[0]), float(v.tail("z", 1)[0]), float(v.tail("beta", 1)[0])]
                          for v in views if len(v)}}
        sys.stdout.buffer.write(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        sys.stdout.flush()
    await viewer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
