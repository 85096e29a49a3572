"""Monitor: one Session, one watchlist, one event log and one notification per event, served to
any number of viewers over ZeroMQ (see ``wire``), with ``GET /health`` for probes.

Ports, from ``port`` P: HTTP ``/health`` on P, the update stream (PUB) on P + 1, requests
(ROUTER: snapshots, rows, bars) on P + 2. A viewer's address is ``HOST:P``.

Requests are answered on a thread of their own (``_Requests``), never behind the bar work on the
event loop: a snapshot is the state as of the last update sent (``seq``, the newest events and
alerts, the status of the last heartbeat), rows are copied from a view between two of its updates
(``Session.views_lock``), bars under the writer's lock. A busy monitor, or a viewer in the same
process that waits for an answer, still gets one in milliseconds.

Fan-out never waits for a viewer: each has a bounded queue (PUB's high-water mark, ``viewer_queue``
messages); what a stalled viewer cannot take is dropped for it alone, and it sees the gap in
``seq`` and resynchronises from a snapshot.

Restarts: every ``persist_every_s`` the monitor commits, in one transaction, the events found
since the last commit into its outbox (table ``notifications``) and each pair's event state as of
its newest row (table ``event_states``); only then are the events handed to the Notifier, whose
outcome is written back (``sent_ms``). Started again on its file, it continues each pair's event
test from the stored state over the rows after it (events found there are stored and notified:
they occurred while it was down), and sends what the outbox holds unsent. An event is notified
at most once more than it should only if the process dies between an endpoint accepting it and the
next commit (within ``persist_every_s``); ``/health``'s ``notify_unconfirmed`` counts the events
found whose sending is not committed yet (0: a kill now repeats nothing).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

import numpy as np
import orjson
import pandas as pd
import zmq

from ..alerts import Alert, EventState, alerts_frame
from ..bars import timeframe_ms
from ..config import MonitorConfig
from ..errors import InvalidParameter, StatarbError
from ..notify import Notifier
from ..pair import PairView
from ..rule import DEFAULT, Rule
from ..session import Session
from ..store import TickStore
from ..view_options import ViewOptions
from ..watchlist import Watchlist
from . import wire

log = logging.getLogger(__name__)

#: Events and alerts a snapshot carries (the newest).
SNAPSHOT_EVENTS = 500
#: Seconds a request may wait for the store's thread.
REQUEST_WAIT_S = 8.0
#: Seconds after its last hello a viewer is no longer counted.
VIEWER_TIMEOUT_S = 10.0


class Monitor:
    """Runs ``session`` (not started yet) with live views of ``pairs`` and serves them.

    ``notifier`` (optional) gets each event once, from the outbox; ``config``
    (``config.MonitorConfig``: host, port, token, viewer queue, persist and status intervals) or
    its fields as keywords; a host other than loopback needs a token (viewers without it are
    refused by ZeroMQ's PLAIN handshake before any data is sent). Use ``await start()`` /
    ``await stop()`` or ``async with``.
    """

    def __init__(self, session: Session, pairs: list[tuple[str, str]], timeframe: str = "1s",
                 rule: Rule | None = None, options: ViewOptions | None = None, notifier: Notifier | None = None,
                 config: MonitorConfig | None = None, **settings: Any) -> None:
        self.settings = c = MonitorConfig.of(config, **settings)
        if session.in_memory:
            raise InvalidParameter("a monitor records into a DuckDB file (it restores its events from it): give --db")
        self.session = session
        self.pairs, self.timeframe = pairs, timeframe
        self.rule, self.options = rule or DEFAULT, options or ViewOptions()
        self.notifier = notifier
        self.host, self.port, self.token = c.host, c.port, c.token
        self.run_id = uuid.uuid4().hex[:12]
        self.seq = 0
        self._queue, self._persist_s, self._status_s = c.viewer_queue, c.persist_every_s, c.status_every_s
        self.watchlist: Watchlist | None = None
        self._changed: dict[PairView, int] = {}  # view -> rows added since the last update (-1: recomputed)
        self._alerts: list[Alert] = []
        self._events: list[Alert] = []
        self._outbox: list[Alert] = []  # events to commit into the outbox, then send
        self._outcomes: list[tuple[Alert, bool]] = []  # the notifier's results, to write back
        self._in_flight = 0  # events handed to the notifier whose outcome is not committed yet
        self._viewers: dict[str, dict[str, Any]] = {}  # under _lock (the request thread writes it)
        # what a snapshot gives, as of the last update sent (under _lock): the newest events and
        # alerts, how many fired, the status of the last heartbeat
        self._lock = threading.Lock()
        self._recent_events: deque[Alert] = deque(maxlen=SNAPSHOT_EVENTS)
        self._recent_alerts: deque[Alert] = deque(maxlen=SNAPSHOT_EVENTS)
        self._fired = (0, 0)
        self._status: dict[str, Any] = {}
        self._config: dict[str, Any] = {}
        self._saved: dict[PairView, tuple[bool, int | None]] = {}  # event state last committed per view
        self.recovered_events = 0
        self.resent = 0
        self.updates_sent = 0
        self.update_bytes = 0  # bytes of the updates published (every viewer's share of the stream)
        self.bars_seen = 0
        self._last_event: Alert | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ctx: zmq.Context | None = None
        self._pub: zmq.Socket | None = None
        self._requests: _Requests | None = None
        self._auth = None
        self._http = None
        self._unsubscribe: list = []

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> Monitor:
        """Start the session, build the views, restore their event state, open the ports."""
        self._loop = asyncio.get_running_loop()
        s = self.session.start()
        try:
            self.watchlist = Watchlist(s, self.pairs, self.timeframe, self.rule, self.options)
            self._unsubscribe = [s.subscribe_alerts(self._alerts.append), s.subscribe_events(self._on_event),
                                 *(v.subscribe(self._on_view) for v in self.watchlist.views),
                                 s.subscribe_bars(self._on_bars)]  # after the views: their rows are in
            unsent = await self._restore()
            self._config = self.config()
            self._publish_state()
            self._open()
        except BaseException:
            await s.stop()
            raise
        if self.notifier is not None:
            self.notifier.on_done = self._notified
            self.notifier.start()
            for event in unsent:
                self.notifier.submit(event)
            self.resent = self._in_flight = len(unsent)
        self._requests.start()
        s.every(self._persist_s, self._persist, "monitor ledger")
        s.every(self._status_s, self._heartbeat, "monitor status")
        log.info("monitor %s: %d pairs on %s, /health on http://%s:%d/health, viewers at %s:%d", self.run_id,
                 len(self.pairs), self.timeframe, self.host, self.port, self.host, self.port)
        return self

    async def stop(self) -> None:
        """Stop the session (its stop reconciliation included), commit the ledger, close the ports."""
        if not self.session.running:
            return
        await self.session.flush()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self.watchlist.desk is not None:
            await self.watchlist.desk.flush()  # the paper books as of the last bar
        self.watchlist.close()
        persisted = False
        try:
            await self._persist()
            persisted = True
        finally:
            await self.session.stop()
            if self.notifier is not None:
                await asyncio.to_thread(self.notifier.close)
            if self._outcomes and persisted:  # sends finished after the last commit: the store is closed now
                self._write_outcomes_at_close()
            self._close()
        log.info("monitor %s stopped: %d events, %d updates sent", self.run_id, self.session.events_fired,
                 self.updates_sent)

    async def __aenter__(self) -> Monitor:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _open(self) -> None:
        self._ctx = zmq.Context()
        if self.token:  # the handshake on a thread of its own too: a busy loop never delays it
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_plain(domain="statarb", passwords={wire.TOKEN_USER.decode(): self.token})
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.sndhwm = self._queue
        self._pub.sndbuf = wire.SOCKET_BUFFER  # with the viewer's receive buffer: what a stalled viewer holds beyond its queue
        self._pub.linger = 0
        router = self._ctx.socket(zmq.ROUTER)
        router.linger = 0
        for sock in (self._pub, router):
            if self.token:
                sock.plain_server = True
                sock.zap_domain = b"statarb"
        self._requests = _Requests(router, self._answer, self._refusal)
        try:
            self._pub.bind(f"tcp://{self.host}:{self.port + 1}")
            router.bind(f"tcp://{self.host}:{self.port + 2}")
            self._http = _health_server(self, self.host, self.port)
        except (zmq.ZMQError, OSError) as exc:
            self._close()
            raise InvalidParameter(f"cannot listen on {self.host} ports {self.port}-{self.port + 2}: {exc} "
                                   "(another monitor there? choose --port)") from None

    def _close(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._requests is not None:
            self._requests.stop()  # joins the thread, closes its socket
            self._requests = None
        if self._pub is not None:
            self._pub.close(0)
        self._pub = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # ---- restart -----------------------------------------------------------------------

    async def _restore(self) -> list[Alert]:
        """Continue each pair's event test from its stored state (see the module doc); returns the
        outbox's unsent events."""
        states, stored, queued, unsent = await self.session.with_store(_ledger)
        recovered: list[Alert] = []
        for view in self.watchlist.views:
            row = states.get((view.name, view.timeframe))
            if row is None:
                continue
            evaluated_ms, armed, last_ms = row
            for event in view.resume_events(EventState(armed, last_ms), evaluated_ms):
                key = (event.pair, event.timeframe, event.time_ms)
                if key in queued:
                    continue
                if key in stored:  # stored before the end, never queued: notify only
                    self._outbox.append(event)
                else:
                    recovered.append(event)
        self.session.publish_events(recovered)  # stored, logged and (through _on_event) queued
        self.recovered_events = len(recovered)
        self._alerts.clear()
        self._events.clear()
        if recovered:
            log.warning("monitor: %d events occurred while it was down (found on the stored bars)", len(recovered))
        return unsent

    # ---- the pipeline's callbacks (loop thread) -----------------------------------------

    def _on_event(self, event: Alert) -> None:
        self._events.append(event)
        self._outbox.append(event)
        self._last_event = event

    def _on_view(self, view: PairView, added: int) -> None:
        self._changed[view] = -1 if added == 0 or self._changed.get(view) == -1 else self._changed.get(view, 0) + added

    def _on_bars(self, tf: str, final: np.ndarray, corrected: np.ndarray) -> None:
        """Publish one update: the bars, the watched pairs' new rows, their alerts and events."""
        self.bars_seen += len(final)
        changed, self._changed = self._changed, {}
        pairs, arrays = [], [final, corrected]
        for view, added in changed.items():
            if added == -1:
                pairs.append([view.name, view.rows_added, 0, True])
            else:
                rows = wire.rows_of(view.arrays(last=added))
                pairs.append([view.name, view.rows_added, len(rows), False])
                arrays.append(rows)
        header = {"run": self.run_id, "seq": self.seq + 1, "tf": tf, "t_ns": time.time_ns(), "pairs": pairs,
                  "alerts": [wire.alert_dict(a) for a in self._alerts],
                  "events": [wire.alert_dict(e) for e in self._events]}
        self._publish_state(1)
        if self._pub is not None:
            frames = wire.encode("update", header, *arrays)
            self._pub.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            self.updates_sent += 1
            self.update_bytes += sum(len(f) for f in frames)

    def _publish_state(self, updates: int = 0) -> None:
        """Loop thread: what snapshots give from now on: ``updates`` more sent, with the events
        and alerts found since the last one (the first call: the session's logs)."""
        with self._lock:
            if updates:
                self.seq += updates
                self._recent_alerts.extend(self._alerts)
                self._recent_events.extend(self._events)
            else:
                self._recent_alerts.extend(self.session.alert_log)
                self._recent_events.extend(self.session.event_log)
            self._alerts, self._events = [], []
            self._fired = (self.session.alerts_fired, self.session.events_fired)

    def _notified(self, event: Alert, sent: bool) -> None:
        """Notifier thread: hand the outcome to the loop (written back at the next commit)."""
        try:
            self._loop.call_soon_threadsafe(self._outcomes.append, (event, sent))
        except RuntimeError:  # the loop has closed: the outbox keeps it unsent, sent again next start
            pass

    async def _persist(self) -> None:
        """Commit new events into the outbox with every pair's event state, then send them."""
        events, self._outbox = self._outbox, []
        outcomes, self._outcomes = self._outcomes, []
        states = self._states()
        try:
            new = await self.session.with_store(_commit, events, outcomes, states, int(time.time() * 1000))
        except BaseException:
            self._outbox[:0], self._outcomes[:0] = events, outcomes
            self._saved.clear()  # write every state at the next commit
            raise
        self._in_flight -= len(outcomes)
        if self.notifier is not None:
            self._in_flight += len(new)
            for event in new:
                self.notifier.submit(event)

    def _states(self) -> pd.DataFrame:
        """Event states that changed since the last commit, as of each view's newest row. A stored
        state stays exact while it does not change (the rows since then changed nothing), so a
        commit writes only the pairs that had an event or re-armed (and every pair once)."""
        rows = []
        for v in self.watchlist.views:
            st = v.event_state
            key = (st.armed, st.last_ms)
            if len(v) and self._saved.get(v) != key:
                self._saved[v] = key
                rows.append((v.name, v.timeframe, int(v.tail("time", 1)[0]), st.armed,
                             -1 if st.last_ms is None else st.last_ms))
        return pd.DataFrame(rows, columns=["pair", "timeframe", "evaluated_ms", "armed", "last_event_ms"])

    def _write_outcomes_at_close(self) -> None:
        store = TickStore(self.session.db)
        try:
            store.mark_notified(_outcome_frame(self._outcomes), int(time.time() * 1000))
        finally:
            store.close()
        self._outcomes = []

    def _heartbeat(self) -> None:
        now = time.monotonic()
        status = _status_dict(self.session)
        with self._lock:
            for vid in [k for k, v in self._viewers.items() if now - v["seen"] > VIEWER_TIMEOUT_S]:
                del self._viewers[vid]
            self._status, viewers = status, len(self._viewers)
        if self._pub is not None:
            self._pub.send_multipart(wire.encode("status", {"run": self.run_id, "seq": self.seq, "status": status,
                                                            "viewers": viewers}), flags=zmq.NOBLOCK)

    # ---- requests ----------------------------------------------------------------------

    def _refusal(self, exc: Exception) -> list[bytes]:
        return wire.encode("error", {"run": self.run_id, "seq": self.seq, "error": str(exc)})

    def _answer(self, body: list[bytes]) -> list[bytes]:
        """Request thread: the reply to one request (see the module doc for what each reads)."""
        _, req, _ = wire.decode(body)
        op = req.get("op")
        s = self.session
        if op == "snapshot":
            with self._lock:
                base = {"run": self.run_id, "seq": self.seq}
                events, alerts = list(self._recent_events), list(self._recent_alerts)
                (alerts_fired, events_fired), status = self._fired, self._status or _status_dict(s)
            return wire.encode("snapshot", {**base, "config": self._config, "status": status,
                                            "events": [wire.alert_dict(e) for e in events],
                                            "alerts": [wire.alert_dict(a) for a in alerts],
                                            "events_fired": events_fired, "alerts_fired": alerts_fired})
        base = {"run": self.run_id, "seq": self.seq}
        if op == "rows":
            view = self.watchlist.view(req["pair"])
            last = req.get("last")
            with s.views_lock:  # between two of the view's updates
                cols, count = view.arrays(last=None if last is None else int(last)), view.rows_added
            return wire.encode("rows", {**base, "pair": view.name, "count": count}, wire.rows_of(cols))
        if op == "bars":
            bars = s.final_bars(s.code(req["symbol"]), req["tf"]) if req["tf"] in s.timeframes else None
            if bars is None:
                raise InvalidParameter(f"the monitor builds no {req['tf']!r} bars: {s.timeframes}")
            return wire.encode("bars", {**base, "symbol": req["symbol"], "tf": req["tf"]}, bars)
        if op == "history":  # a page of the stored alerts or events, read on the store's thread
            limit = min(int(req.get("limit") or wire.HISTORY_PAGE), wire.HISTORY_PAGE)
            after = tuple(req["after"]) if req.get("after") else None
            page = s.store_future(lambda store: store.alerts_after(req["table"], after, limit)).result(REQUEST_WAIT_S)
            return wire.encode("history", {**base, "table": req["table"],
                                           "items": [wire.alert_dict(wire.alert_of(r)) for r in page.to_dict("records")]})
        if op == "hello":
            with self._lock:
                self._viewers[str(req["id"])] = {**req.get("figures", {}), "seen": time.monotonic()}
            return wire.encode("hello", base)
        raise InvalidParameter(f"unknown request {op!r}")

    def config(self) -> dict[str, Any]:
        """What a viewer needs to know of this monitor: symbols, timeframes, the watchlist, its rule."""
        s = self.session
        info = s.source_info()
        return {"symbols": list(s.symbols), "timeframes": list(s.timeframes), "timeframe": self.timeframe,
                "pairs": [list(p) for p in self.pairs], "rule": wire.rule_dict(self.rule),
                "options": wire.options_dict(self.options), "retained": s.retained_bars(self.timeframe),
                "source": {"name": info.name, "realtime": bool(info.realtime), "truth": info.truth,
                           "planted_hedge": info.planted_hedge}}

    def health(self) -> dict[str, Any]:
        """The figures of ``GET /health`` (``ok`` False when the session stopped or the source
        stalled for more than 60 s)."""
        st = self.session.status()
        newest = max((int(v.tail("time", 1)[0]) for v in self.watchlist.views if len(v)), default=None)
        lag = None if newest is None else time.time() - (newest + timeframe_ms(self.timeframe)) / 1000
        age = st.last_tick_age_s
        ok = st.state == "running" and (age is None or age < 60)
        note = self.notifier.status() if self.notifier is not None else None
        last = self._last_event
        with self._lock:
            viewers = dict(self._viewers)
        return {"ok": ok, "run": self.run_id, "version": wire.VERSION, "state": st.state, "source": st.source,
                "source_state": st.source_state, "last_message_age_s": age, "ticks_per_s": st.ticks_per_s,
                "bars_lag_s": lag, "pairs": len(self.pairs), "seq": self.seq, "update_bytes": self.update_bytes,
                "events": st.events,
                "recovered_events": self.recovered_events, "resent_notifications": self.resent,
                "last_event": str(last) if last else None,
                "notified": note.sent if note else 0, "notify_failed": note.failed if note else 0,
                "notify_pending": note.pending if note else 0,
                "notify_unconfirmed": len(self._outbox) + self._in_flight - (note.dropped if note else 0),
                "viewers": len(viewers), "viewer_figures": {k: {f: v for f, v in d.items() if f != "seen"}
                                                            for k, d in viewers.items()},
                "paper": {v.name: {"position": p.direction, "realised_pnl": p.realised_pnl, "open_pnl": p.open_pnl,
                                   "trades": p.trades, "pending_leg": p.pending_leg, "exposure": p.exposure}
                          for v, b in zip(self.watchlist.views, self.watchlist.books) if b is not None
                          for p in (b.position(),)},
                "errors": st.errors, "last_error": st.last_error, "pid": os.getpid()}


class _Requests:
    """The monitor's request socket (a bound ROUTER) served on a thread of its own: each request
    gets ``answer(body)``, or ``refusal(exc)`` when answering raised a caller's mistake."""

    POLL_MS = 100  # how often the thread looks at its stop flag

    def __init__(self, router: zmq.Socket, answer, refusal) -> None:
        self._router, self._answer, self._refusal = router, answer, refusal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="monitor-requests", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._router.close(0)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._router.poll(self.POLL_MS):
                continue
            frames = self._router.recv_multipart()
            cut = frames.index(b"") + 1 if b"" in frames else 1  # REQ's envelope: identity, request id, b""
            envelope, body = frames[:cut], frames[cut:]
            try:
                reply = self._answer(body)
            except (StatarbError, wire.WireError, KeyError, TypeError, ValueError) as exc:
                reply = self._refusal(exc)
            except Exception as exc:  # a fault answered, never a thread that dies and leaves viewers waiting
                log.exception("monitor request failed")
                reply = self._refusal(exc)
            self._router.send_multipart([*envelope, *reply])


def _status_dict(session: Session) -> dict[str, Any]:
    return dataclasses.asdict(session.status())


def _ledger(store: TickStore) -> tuple[dict, set, set, list[Alert]]:
    """Store thread: stored event states, event keys, outbox keys and the outbox's unsent events."""
    states = {(r.pair, r.timeframe): (int(r.evaluated_ms), bool(r.armed),
                                      None if r.last_event_ms < 0 else int(r.last_event_ms))
              for r in store.event_states().itertuples()}
    unsent = store.notifications(unsent_only=True)
    events = [wire.alert_of(r) for r in unsent.drop(columns=["queued_ms", "sent_ms", "failed"]).to_dict("records")]
    return states, store.event_keys("alert_events"), store.event_keys("notifications"), events


def _outcome_frame(outcomes: list[tuple[Alert, bool]]) -> pd.DataFrame:
    return pd.DataFrame([(e.pair, e.timeframe, e.time_ms, ok) for e, ok in outcomes],
                        columns=["pair", "timeframe", "time_ms", "ok"])


def _commit(store: TickStore, events: list[Alert], outcomes: list[tuple[Alert, bool]], states: pd.DataFrame,
            now: int) -> list[Alert]:
    """Store thread: one transaction of new outbox rows, outcomes and event states; returns the
    events newly queued (to send)."""
    with store.transaction():
        fresh = store.queue_notifications(alerts_frame(events).reset_index(drop=True), now) if events else set()
        new = [e for e in events if (e.pair, e.timeframe, e.time_ms) in fresh]
        store.mark_notified(_outcome_frame(outcomes), now)
        store.save_event_states(states)
    return new


def _health_server(monitor: Monitor, host: str, port: int):
    """A tornado HTTP server answering ``GET /health`` with ``monitor.health()`` (503 when not ok)."""
    from tornado.httpserver import HTTPServer
    from tornado.web import Application, RequestHandler

    class Health(RequestHandler):
        def get(self) -> None:
            body = monitor.health()
            self.set_status(200 if body["ok"] else 503)
            self.set_header("Content-Type", "application/json")
            self.finish(orjson.dumps(body))

    server = HTTPServer(Application([(r"/health", Health)]))
    server.listen(port, address=host)
    return server
