"""A viewer never freezes its page: nothing it asks of the monitor waits on the event loop.

The loop is probed every 10 ms (how late each probe wakes is the loop's stall). Attached with
``Session.attach`` to a monitor that is then killed, the viewer keeps the loop free, says since
when the monitor is unreachable and keeps trying; attached to a monitor in the same process (the
same loop), it gets its answers (the monitor answers on a thread of its own) and both go on."""

from __future__ import annotations

import asyncio
import signal
import time

from statarb_kit.monitor.service import Monitor
from statarb_kit.session import Session
from statarb_kit.sources import SyntheticPair
from statarb_kit.ticks import now_ms
from tests.test_browser import free_ports
from tests.test_monitor import monitor

#: A stall this long would be the viewer waiting on a socket (a request's timeout is seconds); a
#: loaded machine's scheduling stays far below it.
FROZEN_S = 1.0


async def longest_stall(seconds: float, every_s: float = 0.01) -> float:
    """The largest lateness of a ``every_s`` sleep over ``seconds`` (s)."""
    loop = asyncio.get_running_loop()
    worst, end = 0.0, loop.time() + seconds
    while loop.time() < end:
        t0 = loop.time()
        await asyncio.sleep(every_s)
        worst = max(worst, loop.time() - t0 - every_s)
    return worst


def test_a_killed_monitor_never_stalls_the_viewers_loop(tmp_path):
    with monitor(tmp_path, "--db", str(tmp_path / "m.duckdb"), "--pairs", "BTCUSDT/ETHUSDT",
                 "--history-min", "3") as (proc, port, log):

        async def go():
            viewer = Session.attach(f"127.0.0.1:{port}")
            try:
                view = viewer.pair("BTCUSDT", "ETHUSDT")
                local = viewer.pair("BTCUSDT", "ETHUSDT", z_window=30)  # computed here: asks for bars
                await viewer.ready()
                assert len(view) > 0 and len(local) > 0
                attached = await longest_stall(2.0)
                killed_at = now_ms()
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                # hellos every 2 s, each waiting up to its timeout, and new asks for bars and rows
                late = viewer.pair("BTCUSDT", "ETHUSDT", z_window=40)
                other = viewer.pair("BTCUSDT", "ETHUSDT")
                dead = await longest_stall(12.0)
                state = viewer.status().source_state
                return attached, dead, state, killed_at, len(late), len(other)
            finally:
                await viewer.stop()

        attached, dead, state, killed_at, *_ = asyncio.run(go())
    print(f"longest loop stall: attached {attached * 1000:.1f} ms, monitor killed {dead * 1000:.1f} ms")
    assert attached < FROZEN_S and dead < FROZEN_S, (attached, dead)
    assert "unreachable since" in state and "retrying" in state, state
    since = time.strptime(state.split("unreachable since ")[1][:19], "%Y-%m-%d %H:%M:%S")
    assert abs(time.mktime(since) - time.timezone - killed_at / 1000) < 15


def test_a_viewer_in_the_monitors_own_process_is_answered(tmp_path):
    """Session.attach on the loop that runs the monitor: the first snapshot waits for an answer,
    which the monitor's request thread gives while its loop is held; then both run on."""

    async def go():
        port = free_ports(3)
        session = Session(source=SyntheticPair(start_ms=now_ms() - 120_000), db=tmp_path / "same.duckdb")
        async with Monitor(session, [("BTCUSDT", "ETHUSDT")], port=port) as mon:
            t0 = time.monotonic()
            viewer = Session.attach(f"127.0.0.1:{port}")
            attach_s = time.monotonic() - t0
            try:
                view = viewer.pair("BTCUSDT", "ETHUSDT")
                stall = await longest_stall(3.0)
                await viewer.ready()
                seq = viewer.seq
                await asyncio.sleep(1.5)
                return attach_s, stall, len(view), seq, viewer.seq, mon.seq
            finally:
                await viewer.stop()

    attach_s, stall, rows, seq0, seq1, mon_seq = asyncio.run(go())
    print(f"in-process attach {attach_s * 1000:.1f} ms, longest loop stall {stall * 1000:.1f} ms")
    assert attach_s < 5.0 and stall < FROZEN_S
    assert rows > 0 and seq1 > seq0 and mon_seq >= seq1
