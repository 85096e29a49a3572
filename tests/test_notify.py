"""Notifications of alert events through apprise, to a local HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from statarb_kit import InvalidParameter, Session, SyntheticPair, TickStore
from statarb_kit.notify import Notifier


class Receiver:
    """A webhook endpoint: records JSON posts; ``delay_s`` makes it slow, ``status`` refuse."""

    def __init__(self, delay_s: float = 0.0, status: int = 200) -> None:
        self.posts: list[dict] = []
        self.arrivals: list[float] = []  # time.time() of each post
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                receiver.arrivals.append(time.time())
                receiver.posts.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"json://127.0.0.1:{s.getsockname()[1]}/hook"  # nothing listens there any more


async def record(notifier: Notifier | None, db) -> tuple[Session, float]:
    src = SyntheticPair(realtime=False, start_ms=1_700_000_000_000, max_ticks=200_000, seed=4)
    t = time.perf_counter()
    async with Session(source=src, db=db, timeframes=("1s",), notifier=notifier) as session:
        session.pair("BTCUSDT", "ETHUSDT", "1s", hedge_window=60, z_window=30, corr_window=30, z_entry=1.5, corr_min=-1.0)
        await session.wait()
    return session, time.perf_counter() - t


def test_events_reach_a_webhook_with_pair_direction_z_corr_time_and_a_link(tmp_path):
    rx = Receiver()
    try:
        notifier = Notifier([rx.url], link_base="http://127.0.0.1:8866/", backoff_s=0.05)
        session, _ = asyncio.run(record(notifier, tmp_path / "n.duckdb"))
    finally:
        rx.close()
    st = session.status()
    events = TickStore(tmp_path / "n.duckdb", read_only=True).alerts("alert_events")
    assert st.events == len(events) == st.notified == len(rx.posts) > 3 and st.notify_failed == 0
    first, event = rx.posts[0], events.iloc[0]
    assert first["title"] == f"statarb_kit: {event.direction} BTCUSDT/ETHUSDT (1s)"
    text = first["message"]
    assert f"z {event.z:+.2f}" in text and f"corr {event['corr']:.2f}" in text and event.direction in text
    assert " UTC " in text and "http://127.0.0.1:8866/?symbols=BTCUSDT%2CETHUSDT&timeframe=1s" in text


@pytest.mark.parametrize("endpoint", ["down", "slow"])
def test_a_failing_endpoint_is_counted_and_never_slows_ingestion(tmp_path, endpoint):
    _, alone = asyncio.run(record(None, tmp_path / "alone.duckdb"))
    rx = Receiver(delay_s=3.0) if endpoint == "slow" else None
    try:
        url = rx.url if rx else closed_port_url()
        notifier = Notifier([url], retries=1, backoff_s=0.05, timeout_s=0.5, queue_size=5)
        session, took = asyncio.run(record(notifier, tmp_path / "n.duckdb"))
    finally:
        if rx:
            rx.close()
    st = session.status()
    stored = TickStore(tmp_path / "n.duckdb", read_only=True)
    assert len(stored.alerts("alert_events")) == st.events > 3  # every event is stored regardless
    assert st.ticks_stored == 200_000
    assert st.notified == 0 and st.notify_failed + st.notify_dropped + notifier.status().pending >= st.events - 1
    assert st.notify_dropped > 0  # a queue of 5 cannot hold them: dropped, counted, not grown
    assert took < 2.0 * alone + 8.0  # ingestion does not wait for the endpoint (closing waits at most 5 s)


def test_bad_notification_settings_are_refused(monkeypatch):
    monkeypatch.delenv("STATARB_NOTIFY", raising=False)
    with pytest.raises(InvalidParameter, match="no notification URL"):
        Notifier([])
    with pytest.raises(InvalidParameter, match="not a notification URL"):
        Notifier(["nonsense://x"])
    monkeypatch.setenv("STATARB_NOTIFY", "json://127.0.0.1:9/a, json://127.0.0.1:9/b")
    assert Notifier().status().sent == 0
