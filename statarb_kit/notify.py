"""Alert events to where people are, through apprise: one list of URLs covers Slack, Discord,
Telegram, e-mail, generic webhooks (``json://``, ``form://``) and dozens more.

Sending never touches the event loop: ``submit`` puts the event on a bounded queue and returns;
a worker thread sends each one with bounded retries (exponential backoff). A full queue drops
the event and counts it; a failing or slow endpoint is counted in ``status()``. The events
themselves are stored by the Session whatever happens here.

Configuration: URLs passed in, ``STATARB_NOTIFY`` (URLs separated by spaces or commas), or an
apprise configuration file (``config_path``, YAML or text, as apprise documents).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from .alerts import Alert
from .errors import InvalidParameter

log = logging.getLogger(__name__)

ENV = "STATARB_NOTIFY"


@dataclass(frozen=True)
class NotifierStatus:
    """Counts since start: sent, failed (after every retry), dropped (queue full), retries, and
    what waits in the queue; the last failure's text."""

    sent: int
    failed: int
    dropped: int
    retries: int
    pending: int
    last_error: str


def message(event: Alert, link_base: str | None = None) -> tuple[str, str]:
    """(title, body) of an event: pair, direction, z, corr, bar time (UTC), a link to the pair."""
    x, y = event.symbols
    title = f"statarb_kit: {event.direction} {event.pair} ({event.timeframe})"
    body = (f"{event.pair} {event.direction}: z {event.z:+.2f}, corr {event.corr:.2f}, beta {event.beta:.4g}, "
            f"at {event.time:%Y-%m-%d %H:%M:%S} UTC ({event.rule})")
    if link_base:
        body += f"\n{link_base}?{urlencode({'symbols': f'{x},{y}', 'timeframe': event.timeframe})}"
    return title, body


class Notifier:
    """Sends events to ``urls`` (apprise URLs) off the event loop. ``start()`` / ``close()``;
    a Session given one starts it, feeds it its events and closes it on stop."""

    def __init__(self, urls: list[str] | str | None = None, config_path: str | None = None,
                 link_base: str | None = None, queue_size: int = 1_000, retries: int = 3,
                 backoff_s: float = 1.0, timeout_s: float = 10.0,
                 on_done: Callable[[Alert, bool], None] | None = None) -> None:
        import apprise

        if isinstance(urls, str):
            urls = urls.replace(",", " ").split()
        urls = list(urls or []) or os.environ.get(ENV, "").replace(",", " ").split()
        if queue_size < 1 or retries < 0 or backoff_s < 0:
            raise InvalidParameter("need queue_size >= 1, retries >= 0 and backoff_s >= 0")
        asset = apprise.AppriseAsset(async_mode=False)
        self._apprise = apprise.Apprise(asset=asset)
        for url in urls:
            if not self._apprise.add(url):
                raise InvalidParameter(f"not a notification URL apprise knows: {_redact(url)!r} "
                                       "(see apprise's list of services, e.g. json://host/path)")
        if config_path:
            config = apprise.AppriseConfig()
            if not config.add(config_path):
                raise InvalidParameter(f"cannot read the apprise configuration {config_path}")
            self._apprise.add(config)
        if not len(self._apprise) and not config_path:
            raise InvalidParameter(f"no notification URL: pass some, or set {ENV}")
        for server in self._apprise:
            server.socket_connect_timeout = server.socket_read_timeout = timeout_s
        self.link_base = link_base
        self.on_done = on_done  # called on the worker thread with (event, sent) after each event
        self.retries, self.backoff_s = retries, backoff_s
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sent = self._failed = self._dropped = self._retried = 0
        self._last_error = ""

    def start(self) -> Notifier:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="statarb-notify", daemon=True)
            self._thread.start()
        return self

    def submit(self, event: Alert) -> None:
        """Queue ``event`` for sending; never blocks (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            log.warning("notification queue full: event %s dropped (it is stored)", event)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued within ``timeout_s``, then stop the worker (what is left is dropped)."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        while True:
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:  # still busy: make room for the stop mark, counting what is dropped
                if self._queue.get_nowait() is not None:
                    with self._lock:
                        self._dropped += 1
        self._thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        self._thread = None

    def status(self) -> NotifierStatus:
        with self._lock:
            return NotifierStatus(self._sent, self._failed, self._dropped, self._retried, self._queue.qsize(),
                                  self._last_error)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            title, body = message(event, self.link_base)
            for attempt in range(self.retries + 1):
                try:
                    ok = bool(self._apprise.notify(title=title, body=body))
                except Exception as exc:  # a plugin error must not end the worker
                    ok, err = False, f"{type(exc).__name__}: {exc}"
                else:
                    err = "an endpoint refused or did not answer"
                if ok:
                    with self._lock:
                        self._sent += 1
                    self._done(event, True)
                    break
                if attempt < self.retries:
                    with self._lock:
                        self._retried += 1
                    time.sleep(self.backoff_s * 2**attempt)
            else:
                with self._lock:
                    self._failed += 1
                    self._last_error = f"{event.pair} {event.direction}: {err} after {self.retries + 1} attempts"
                log.warning("notification failed: %s", self._last_error)
                self._done(event, False)

    def _done(self, event: Alert, sent: bool) -> None:
        if self.on_done is not None:
            try:
                self.on_done(event, sent)
            except Exception:  # the worker goes on
                log.exception("notification callback failed")


def _redact(url: str) -> str:
    """A URL without credentials or tokens, for messages."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@')[-1].split('/')[0]}/..."
