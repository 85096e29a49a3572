"""RemoteSession: a viewer of a running monitor, with the Session interface the pages use.

It ingests nothing. On start it subscribes to the monitor's update stream, then asks for a
snapshot (config, status, recent alerts and events, at update ``seq`` S) and applies the updates
after S in order: ZeroMQ's "clone" pattern. Pair views of the monitor's watchlist (same pair,
timeframe and parameters) are MirrorViews: their rows are the monitor's, fetched on creation and
extended by each update, so every viewer shows the monitor's numbers. Other views (other pairs,
parameters changed on a page) compute here from the monitor's bars, fetched on demand.

A gap in ``seq`` (this viewer's queue at the monitor overflowed while it was stalled), a new
monitor run (it restarted) or a status heartbeat ahead of the last update resynchronises from a
new snapshot; ZeroMQ reconnects by itself, so a monitor restarted on the same port is found again.

Nothing here waits on the monitor on the event loop: after the first snapshot (``start()``, or
``await open()``), every request is awaited (``zmq.asyncio``): a mirror's rows and another view's
bars arrive in the background (``await ready()`` waits for them), and a monitor that stopped
answering leaves the page responsive, saying since when it is unreachable, while the viewer keeps
trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import zmq
import zmq.asyncio

from ..alerts import Alert, alerts_frame
from ..bars import BAR_DTYPE, bars_frame
from ..errors import InvalidParameter, SessionStateError, StatarbError
from ..pair import MirrorView, PairView
from ..rule import Rule
from ..event_log import EventLog
from ..sources.base import SourceInfo
from ..status import SessionStatus
from ..tasks import Tasks
from ..ticks import normalize_symbol
from ..view_options import ViewOptions
from . import wire

log = logging.getLogger(__name__)

#: Seconds a request may wait for the monitor's answer.
REQUEST_TIMEOUT_S = 10.0
#: Seconds without any message after which the monitor counts as unreachable.
SILENCE_S = 5.0
#: Seconds between a viewer's hellos (its figures on the monitor's /health).
HELLO_EVERY_S = 2.0


class MonitorError(StatarbError):
    """The monitor did not answer, refused this viewer or answered with an error."""


def _key(alert: Alert) -> tuple[int, str, str]:
    return alert.time_ms, alert.pair, alert.timeframe


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (the monitor's --port) as (host, port); InvalidParameter otherwise."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidParameter(f"a monitor address is HOST:PORT (e.g. 127.0.0.1:8870), got {address!r}")
    return host.strip("[]"), int(port)


@dataclass
class RemoteSession(EventLog):
    """A running monitor's state in this kernel (see the module doc). ``start()`` (needs a
    running loop) / ``await stop()``; ``rows_kept`` rows per mirrored view (None: as many as the
    monitor holds)."""

    def __init__(self, address: str, token: str | None = None, rows_kept: int | None = None,
                 request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.address = address
        self.request_timeout_s = request_timeout_s
        self.host, self.port = parse_address(address)
        self.token = token
        self.rows_kept = rows_kept
        self.id = uuid.uuid4().hex[:8]
        self._tasks = Tasks(self.report_error)
        self._ctx = zmq.Context()
        self._actx = zmq.asyncio.Context.shadow(self._ctx.underlying)
        self._sub: zmq.asyncio.Socket | None = None
        self._req: zmq.asyncio.Socket | None = None
        self._asking: asyncio.Lock | None = None  # one request at a time on the REQ socket
        self._fetching: dict[tuple[int, str], asyncio.Task[None]] = {}  # bars on their way
        self._loading: set[asyncio.Task[None]] = set()  # mirrors' rows on their way
        self._lost_ms = 0  # when the monitor stopped answering (ms UTC; 0: it answers)
        self._state = "new"
        self._run = ""
        self._seq = 0
        self._config: dict[str, Any] = {}
        self._status: dict[str, Any] = {}
        EventLog.__init__(self, 10_000)
        self._history: list[Alert] = []  # the monitor's stored events, oldest first (loaded in pages)
        self._history_keys: set[tuple[int, str, str]] = set()
        self._history_of: dict[tuple[str, str], list[Alert]] = {}  # the same per (pair, timeframe)
        self._views: list[PairView] = []  # every view of this viewer: mirrors, and views computed here
        self._mirrors: dict[str, list[MirrorView]] = {}
        self._bars: dict[tuple[int, str], np.ndarray] = {}
        self.connected = False
        self.drops = 0  # updates this viewer missed (its queue at the monitor was full): a snapshot skipped them
        self.resyncs = 0
        self.updates = 0
        self.fanout_ms: deque[float] = deque(maxlen=100_000)  # publish -> applied here, per update
        self._heard = time.monotonic()

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> RemoteSession:
        """Connect, take a snapshot (MonitorError when the monitor does not answer: unreachable,
        or this viewer's token refused) and follow the updates. The one call that waits for the
        monitor (at most ``request_timeout_s``, milliseconds when it runs): ``await open()`` is
        the same without waiting on the loop."""
        self._connect()
        try:
            self._take_snapshot(self._ask_now("snapshot"))
        except BaseException:
            self._close_sockets()
            raise
        return self._follow()

    async def open(self) -> RemoteSession:
        """``start()`` with the first snapshot awaited (nothing waits on the event loop)."""
        self._connect()
        try:
            header, _ = await self._request("snapshot")
            self._take_snapshot(header)
        except BaseException:
            self._close_sockets()
            raise
        return self._follow()

    def _connect(self) -> None:
        if self._state != "new":
            raise SessionStateError(f"start() called on a viewer that is {self._state}")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise SessionStateError("RemoteSession.start() needs a running event loop: call it in a notebook "
                                    "cell, or inside asyncio.run(...)") from None
        self._asking = asyncio.Lock()
        self._sub = self._actx.socket(zmq.SUB)
        self._secure(self._sub)
        self._sub.rcvhwm = 100_000
        self._sub.rcvbuf = wire.SOCKET_BUFFER
        self._sub.connect(f"tcp://{self.host}:{self.port + 1}")
        self._sub.subscribe(b"")

    def _follow(self) -> RemoteSession:
        self._state = "running"
        self._load_history()
        self._tasks.spawn(self._receive(), "monitor updates")
        self._tasks.every(HELLO_EVERY_S, self._hello, "monitor hello")
        log.info("attached to monitor %s at %s (update %d)", self._run, self.address, self._seq)
        return self

    async def stop(self) -> None:
        """Stop following the monitor (idempotent); the views keep their rows."""
        if self._state != "running":
            return
        self._state = "stopped"
        await self._tasks.cancel()
        for views in self._mirrors.values():
            for view in list(views):
                view.close()
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in (self._sub, self._req):
            if sock is not None:
                sock.close(0)
        self._sub = self._req = None
        self._ctx.term()

    async def __aenter__(self) -> RemoteSession:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def seq(self) -> int:
        """The monitor's update this viewer has applied last."""
        return self._seq

    @property
    def run_id(self) -> str:
        """The monitor run this viewer follows (a new one after each restart)."""
        return self._run

    def _secure(self, sock: zmq.Socket) -> None:
        sock.linger = 0
        if self.token:
            sock.plain_username = wire.TOKEN_USER
            sock.plain_password = self.token.encode()

    # ---- requests ----------------------------------------------------------------------

    def _no_answer(self) -> MonitorError:
        refused = " or refused this viewer's token" if self.token else " (a monitor bound to another address needs --token)"
        return MonitorError(f"the monitor at {self.address} did not answer within {self.request_timeout_s:g} s: "
                            f"is `statarb monitor --port {self.port}` running there{refused}?")

    def _req_socket(self, ctx: zmq.Context) -> zmq.Socket:
        sock = ctx.socket(zmq.REQ)
        self._secure(sock)
        sock.setsockopt(zmq.REQ_RELAXED, 1)
        sock.setsockopt(zmq.REQ_CORRELATE, 1)
        sock.connect(f"tcp://{self.host}:{self.port + 2}")
        return sock

    @staticmethod
    def _reply(op: str, frames: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        topic, header, arrays = wire.decode(frames)
        if topic == "error":
            raise MonitorError(f"the monitor refused the request {op!r}: {header.get('error')}")
        return header, arrays

    def _ask_now(self, op: str) -> dict[str, Any]:
        """The first snapshot, waited for (``start()``): a socket of its own, closed after."""
        sock = self._req_socket(self._ctx)
        try:
            sock.send_multipart(wire.encode("request", {"op": op}))
            if not sock.poll(self.request_timeout_s * 1000):
                raise self._no_answer()
            return self._reply(op, sock.recv_multipart())[0]
        finally:
            sock.close(0)

    async def _request(self, op: str, **args: Any) -> tuple[dict[str, Any], list[bytes]]:
        """One request, awaited (one at a time): (header, array frames). MonitorError when the
        monitor does not answer within ``request_timeout_s`` (it is then marked unreachable)."""
        async with self._asking:
            if self._req is None:
                self._req = self._req_socket(self._actx)
            await self._req.send_multipart(wire.encode("request", {"op": op, **args}))
            if not await self._req.poll(self.request_timeout_s * 1000):
                self._req.close(0)
                self._req = None  # a fresh socket for the next request
                self._unreachable()
                raise self._no_answer()
            frames = await self._req.recv_multipart()
        self._reachable()
        return self._reply(op, frames)

    def _unreachable(self) -> None:
        if not self._lost_ms:
            self._lost_ms = int(time.time() * 1000)
            log.warning("viewer %s: the monitor at %s does not answer; retrying", self.id, self.address)
        self.connected = False

    def _reachable(self) -> None:
        if self._lost_ms:
            log.info("viewer %s: the monitor at %s answers again", self.id, self.address)
        self._lost_ms = 0

    def _take_snapshot(self, header: dict[str, Any]) -> list[Alert]:
        """Take the monitor's config, status and logs; the events new to this viewer."""
        if self._config and header["config"]["pairs"] != self._config["pairs"]:
            log.warning("the monitor at %s now watches other pairs: reattach to see them", self.address)
        if header["run"] == self._run:  # the updates between the last applied and the snapshot
            self.drops += max(0, header["seq"] - self._seq)
        self._run, self._seq = header["run"], header["seq"]
        self._config, self._status = header["config"], header["status"]
        self.connected, self._heard = True, time.monotonic()
        known = {(a.pair, a.timeframe, a.time_ms) for a in self.event_log}
        events = [wire.alert_of(e) for e in header["events"]]
        self.event_log.clear()
        self.event_log.extend(events)
        self.alert_log.clear()
        self.alert_log.extend(wire.alert_of(a) for a in header["alerts"])
        self.alerts_fired, self.events_fired = header["alerts_fired"], header["events_fired"]
        return [e for e in events if (e.pair, e.timeframe, e.time_ms) not in known] if known else []

    async def _snapshot(self) -> None:
        """Take a new snapshot, then reload every mirror and fetched series (and, from a new
        monitor run, the event history)."""
        header, _ = await self._request("snapshot")
        run = self._run
        new = self._take_snapshot(header)
        if self._run != run:
            self._load_history()
        for name, views in list(self._mirrors.items()):
            rows, count = await self._rows(name, max(v.max_rows for v in views))
            for view in views:
                view.load_rows(rows, count)
        for code, tf in list(self._bars):
            self._bars[(code, tf)] = await self._fetch_bars(code, tf)
        if new:  # events of the gap reach the pages too
            self._hand_over(new, self._event_listeners, "event", logged=False)

    async def _resync(self, why: str) -> None:
        self.resyncs += 1
        log.warning("viewer %s: resynchronising from the monitor's snapshot (%s)", self.id, why)
        await self._snapshot()

    async def _rows(self, pair: str, last: int | None) -> tuple[np.ndarray, int]:
        header, arrays = await self._request("rows", pair=pair, last=last)
        return wire.rows_array(arrays[0]), int(header["count"])

    async def _fetch_bars(self, code: int, tf: str) -> np.ndarray:
        _, arrays = await self._request("bars", symbol=self.symbols[code], tf=tf)
        bars = wire.bars_array(arrays[0])
        bars["sym"] = code
        return bars

    async def stored(self, table: str = "alert_events", page: int = wire.HISTORY_PAGE) -> list[Alert]:
        """Every alert (``table="alerts"``) or event the monitor has stored, oldest first, read in
        pages of ``page`` (one request each: the page stays responsive)."""
        out: list[Alert] = []
        after = None
        while True:
            header, _ = await self._request("history", table=table, after=after, limit=page)
            items = [wire.alert_of(a) for a in header["items"]]
            out.extend(items)
            if len(items) < page:
                return out
            after = [items[-1].time_ms, items[-1].pair, items[-1].timeframe]

    def _load_history(self) -> None:
        """Read the monitor's stored events in the background (``ready()`` waits for them)."""

        async def load() -> None:
            try:
                history = await self.stored("alert_events")
            except MonitorError as exc:
                self.report_error("the monitor's event history", exc)
                return
            by: dict[tuple[str, str], list[Alert]] = {}
            for e in history:
                by.setdefault((e.pair, e.timeframe), []).append(e)
            self._history, self._history_of = history, by
            self._history_keys = {_key(e) for e in history}

        task = self._tasks.spawn(load(), "monitor event history")
        self._loading.add(task)
        task.add_done_callback(self._loading.discard)

    def _all_events(self, pair: str | None = None, timeframe: str | None = None) -> list[Alert]:
        """The stored history and the events heard since (not stored yet at the monitor), once
        each, oldest first; of one pair and timeframe when given."""
        mine = (lambda e: True) if pair is None else (lambda e: e.pair == pair and e.timeframe == timeframe)  # noqa: E731
        held = self._history if pair is None else self._history_of.get((pair, timeframe), [])
        later = sorted((e for e in self.event_log if mine(e) and _key(e) not in self._history_keys), key=_key)
        return [*held, *later] if later else list(held)

    def events(self, last: int | None = None) -> pd.DataFrame:
        """The monitor's events from its first stored one (``await ready()`` after attaching: the
        history arrives in pages), the newest ``last``, indexed by bar time (UTC)."""
        items = self._all_events()
        return alerts_frame(items if last is None else items[-last:] if last > 0 else [])

    def held_events(self, pair: str, timeframe: str) -> list[Alert]:
        return self._all_events(pair, timeframe)

    async def _hello(self) -> None:
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        try:
            await self._request("hello", id=self.id, figures={
                "drops": self.drops, "resyncs": self.resyncs, "seq": self._seq, "peak_rss_mb": round(rss_mb, 1),
                "updates": self.updates})
        except MonitorError:
            return  # unreachable (the status says so since when); the next hello tries again

    async def ready(self) -> None:
        """Wait until the rows of every mirror, the bars asked for so far and the monitor's event
        history have arrived."""
        while self._loading or self._fetching:
            await asyncio.gather(*self._loading, *self._fetching.values(), return_exceptions=True)

    # ---- updates -----------------------------------------------------------------------

    async def _receive(self) -> None:
        while True:
            try:
                async with asyncio.timeout(SILENCE_S):
                    frames = await self._sub.recv_multipart()
            except TimeoutError:
                if self.connected:
                    log.warning("viewer %s: no word from the monitor at %s for %g s", self.id, self.address, SILENCE_S)
                self.connected = False
                continue
            try:
                await self._handle(*wire.decode(frames))
            except (MonitorError, wire.WireError) as exc:
                self.report_error("monitor update", exc)
                await asyncio.sleep(1.0)

    async def _handle(self, topic: str, header: dict[str, Any], arrays: list[bytes]) -> None:
        self._heard = time.monotonic()
        was_connected, self.connected = self.connected, True
        if header["run"] != self._run:
            await self._resync(f"the monitor restarted (run {header['run']})")
            return
        if topic == "status":
            self._status = header["status"]
            if header["seq"] > self._seq:
                await self._resync(f"{header['seq'] - self._seq} updates missed")
            elif not was_connected:
                await self._resync("the monitor is back")
            return
        if topic != "update" or header["seq"] <= self._seq:
            return  # taken by the snapshot already
        if header["seq"] != self._seq + 1:
            await self._resync(f"{header['seq'] - self._seq - 1} updates missed")
            return
        await self._apply(header, arrays)
        self._seq = max(self._seq, header["seq"])  # a resynchronisation may have passed it meanwhile
        self.updates += 1
        self.fanout_ms.append((time.time_ns() - header["t_ns"]) / 1e6)

    async def _apply(self, header: dict[str, Any], arrays: list[bytes]) -> None:
        tf = header["tf"]
        final, corrected = wire.bars_array(arrays[0]), wire.bars_array(arrays[1])
        self._merge_bars(tf, final, corrected)
        k = 2
        for name, count, n_new, reset in header["pairs"]:
            views = self._mirrors.get(name, [])
            if reset and views:
                rows, count = await self._rows(name, max(v.max_rows for v in views))
                for view in views:
                    view.load_rows(rows, count)
            elif n_new:
                rows = wire.rows_array(arrays[k])
                k += 1
                for view in views:
                    view.add_rows(rows, count)
        for view in list(self._views):  # those computed here (a mirror takes its rows above); their
            try:  # alerts and events are not the monitor's: they stay out of its log
                view.update(tf, final, corrected)
            except Exception as exc:
                self.report_error(f"pair view {view.name}", exc)
        alerts = [wire.alert_of(a) for a in header["alerts"]]
        events = [wire.alert_of(e) for e in header["events"]]
        self.publish_alerts(alerts, logged=False)  # the monitor's: it logged and stored them
        self.publish_events(events, logged=False)

    def _merge_bars(self, tf: str, final: np.ndarray, corrected: np.ndarray) -> None:
        """Fetched series take newly final bars after their newest and corrected bars in place."""
        for (code, t), held in list(self._bars.items()):
            if t != tf:
                continue
            fix = corrected[corrected["sym"] == code]
            if len(fix) and len(held):
                at = np.searchsorted(held["start"], fix["start"])
                ok = (at < len(held)) & (held["start"][np.minimum(at, len(held) - 1)] == fix["start"])
                held[at[ok]] = fix[ok]
            new = final[final["sym"] == code]
            if len(held):
                new = new[new["start"] > held["start"][-1]]
            if len(new):
                keep = self.retained_bars(tf)
                self._bars[(code, tf)] = np.concatenate([held, new])[-keep:]

    # ---- the Session interface of the pages (BarFeed included) --------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._config["symbols"])

    @property
    def timeframes(self) -> tuple[str, ...]:
        return tuple(self._config["timeframes"])

    @property
    def timeframe(self) -> str:
        """The timeframe of the monitor's watchlist."""
        return self._config["timeframe"]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The monitor's watchlist."""
        return [tuple(p) for p in self._config["pairs"]]

    @property
    def rule(self) -> Rule:
        """The rule of the monitor's views."""
        return wire.rule_of(self._config["rule"])

    @property
    def options(self) -> ViewOptions:
        """The options of the monitor's views."""
        return wire.options_of(self._config["options"])

    def source_info(self) -> SourceInfo:
        """The monitor's source as it describes it; not real time while the monitor is not heard
        (its bars stop following the clock: no page reads that as a catch-up)."""
        src = self._config["source"]
        planted = src.get("planted_hedge")
        return SourceInfo(src["name"], bool(src["realtime"]) and self.connected and not self._lost_ms, src["truth"],
                          tuple(planted) if planted else None)

    funding = None  # funding rates stay with the monitor

    @property
    def in_memory(self) -> bool:
        return False

    def code(self, symbol: str) -> int:
        s = normalize_symbol(symbol)
        if s not in self.symbols:
            raise InvalidParameter(f"{s} is not a symbol the monitor records: {', '.join(self.symbols[:10])}...")
        return self.symbols.index(s)

    def retained_bars(self, timeframe: str) -> int:
        return int(self._config["retained"]) if timeframe in self.timeframes else 0

    def mids_at_close(self, code: int, timeframe: str, starts: np.ndarray) -> None:
        """None: a viewer holds no quotes (a view priced at the mid is computed by the monitor)."""
        return None

    def final_bars(self, code: int, timeframe: str) -> np.ndarray:
        """The monitor's final bars of one symbol held here (kept up to date by the updates). The
        first ask starts their fetch and returns none: the views of that symbol recompute when
        they arrive (``await load_bars()`` or ``await ready()`` waits for them)."""
        if timeframe not in self.timeframes:
            raise InvalidParameter(f"timeframe {timeframe!r} is not built by the monitor: {self.timeframes}")
        key = (code, timeframe)
        if key not in self._bars:
            self._bars[key] = np.empty(0, dtype=BAR_DTYPE)  # updates collect here while it is fetched
            self._fetching[key] = self._tasks.spawn(self._load_bars(code, timeframe), "monitor bars")
        return self._bars[key].copy()

    async def _load_bars(self, code: int, tf: str) -> None:
        key = (code, tf)
        try:
            fetched = await self._fetch_bars(code, tf)
        except MonitorError:
            del self._bars[key]  # asked again on the next use
            raise
        finally:
            self._fetching.pop(key, None)
        held = self._bars.get(key, fetched[:0])
        newer = held[held["start"] > fetched["start"][-1]] if len(fetched) else held
        self._bars[key] = np.concatenate([fetched, newer])[-self.retained_bars(tf):]
        for view in list(self._views):
            if view.timeframe == tf and code in (view.x, view.y) and not getattr(view, "mirrored", False):
                view.reload()

    async def load_bars(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """All the monitor's final bars of ``symbol`` (fetched if not held yet), indexed by bar
        open time (UTC)."""
        code = self.code(symbol)
        self.final_bars(code, timeframe)
        if (code, timeframe) in self._fetching:
            await self._fetching[(code, timeframe)]
        return self.bars(symbol, timeframe, last=None)

    def bars(self, symbol: str, timeframe: str = "1m", last: int | None = 500) -> pd.DataFrame:
        """Newest ``last`` final bars of ``symbol`` held here (none until fetched: ``load_bars``),
        indexed by bar open time (UTC)."""
        bars = self.final_bars(self.code(symbol), timeframe)
        return bars_frame(bars if last is None else bars[-last:] if last > 0 else bars[:0])

    @property
    def owns_store(self) -> bool:
        """A viewer holds no store: the monitor's file is its own (paper trading runs there)."""
        return False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "statarb-task") -> asyncio.Task[Any]:
        if self._state != "running":
            coro.close()
            raise SessionStateError(f"spawn() needs a running viewer, this one is {self._state}")
        return self._tasks.spawn(coro, name)

    def every(self, interval_s: float, fn: Callable[[], Any], name: str) -> asyncio.Task[Any]:
        if self._state != "running":
            raise SessionStateError(f"every() needs a running viewer, this one is {self._state}")
        return self._tasks.every(interval_s, fn, name)

    def pair(self, x: str, y: str, timeframe: str | None = None, rule: Rule | None = None,
             options: ViewOptions | None = None, **changes: object) -> PairView:
        """The monitor's view of ``x``/``y`` (a MirrorView) when it watches that pair on that
        timeframe with the same analytics (None: the monitor's rule and options); otherwise a
        view computed here on the monitor's bars."""
        timeframe = timeframe or self.timeframe
        their_rule, their_options = self.rule, self.options
        rule, options = (options or their_options).apply(rule or their_rule, changes)
        name = f"{normalize_symbol(x)}/{normalize_symbol(y)}"
        same = options.params(rule) == their_options.params(their_rule)  # the monitor computes these rows
        if timeframe == self.timeframe and same and tuple(name.split("/")) in self.pairs:
            view: PairView = MirrorView(self, x, y, timeframe, rule, options, np.empty(0, dtype=wire.ROW_DTYPE), 0,
                                        max_rows=self.rows_kept or self.retained_bars(timeframe),
                                        on_close=self._forget)
            self._mirrors.setdefault(name, []).append(view)
            task = self._tasks.spawn(self._load_mirror(view), "monitor rows")
            self._loading.add(task)
            task.add_done_callback(self._loading.discard)
        else:
            view = PairView(self, x, y, timeframe, rule, options, on_close=self._forget)
        self._views.append(view)
        return view

    async def _load_mirror(self, view: MirrorView) -> None:
        """A new mirror's rows, fetched; rows that updates added meanwhile are kept after them."""
        rows, count = await self._rows(view.name, self.rows_kept)
        newest = rows["time"][-1] if len(rows) else -1
        meanwhile = view.arrays()
        later = wire.rows_of({c: v[meanwhile["time"] > newest] for c, v in meanwhile.items()})
        view.load_rows(rows, count)
        if len(later):
            view.add_rows(later, max(count, view.rows_added))

    @contextlib.contextmanager
    def keeping(self, rows: int | None) -> Iterator[None]:
        """Mirrors created in the block keep ``rows`` rows (a watchlist table needs few)."""
        saved, self.rows_kept = self.rows_kept, rows
        try:
            yield
        finally:
            self.rows_kept = saved

    def _forget(self, view: PairView) -> None:
        for views in (self._mirrors.get(view.name, []), self._views):
            if view in views:
                views.remove(view)

    def quote_bars(self, symbol: str, timeframe: str) -> None:
        """No quotes on a viewer: a monitor's quotes stay in its store (``statarb monitor --quotes``)."""
        return None

    def status(self) -> SessionStatus:
        """The monitor's status; the source state says this page views it, and whether it hears it
        (unreachable since when: the viewer keeps trying)."""
        st = {f.name: self._status.get(f.name) for f in fields(SessionStatus)}
        st["symbols"] = tuple(st["symbols"] or ())
        st["stored_via"] = st["stored_via"] or {}
        st["averaged_aggregates"] = st["averaged_aggregates"] or 0
        if self._lost_ms or not self.connected:  # its figures are as of the last word heard
            st["ticks_per_s"] = 0.0
            st["last_tick_age_s"] = (st["last_tick_age_s"] or 0.0) + time.monotonic() - self._heard
        if self._lost_ms:
            since = pd.Timestamp(self._lost_ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
            link = f", unreachable since {since}: retrying"
        else:
            link = "" if self.connected else f", monitor silent for {time.monotonic() - self._heard:.0f} s"
        st["source_state"] = f"{st['source_state']} (monitor {self.address}{link})"
        if self._last_error:
            st["last_error"] = self._last_error
        return SessionStatus(**st)
