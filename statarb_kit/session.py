"""Session: owns the pipeline's background tasks, from a source to stored bars.

    source --(ingest task)--> TickRing --(writer task: ``writer.Writer`` on the store thread)-->
        TickStore.insert_ticks (dedup) + BarBuilder.update + TickStore.write_bars
        --> views (``PairView.update`` returns alerts and events) --> published (``EventLog``:
        log, store, listeners, notifier) --> bar subscribers

The Session keeps the lifecycle, the tasks, the views and the status; both tasks run on the
caller's event loop (a notebook kernel's or ``asyncio.run``'s); DuckDB calls run on one dedicated
worker thread, so inserts never block the notebook.
``stop()`` drains the ring and writes the forming bars: a clean stop loses no tick.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .alerts import alerts_frame
from .bars import BAR_DTYPE, BarBuilder, BarChanges, timeframe_ms
from .buffer import TickRing
from .config import SessionConfig
from .errors import InvalidParameter, SessionStateError, StatarbError
from .event_log import EventLog
from .sources.base import SourceInfo
from .status import SessionStatus
from .quotes import LiveQuotes, QuoteBars, QuoteBatch
from .feed import BarListener
from .funding import FundingRates
from .notify import Notifier
from .sources import Source, SyntheticPair
from .exchange.binance.mark_price import FundingProvider
from .pair import PairView
from .rule import DEFAULT, Rule
from .store import TickStore
from .tasks import Tasks
from .view_options import ViewOptions
from .writer import Writer
from .ticks import VIA, TickBatch, normalize_symbol, now_ms

if TYPE_CHECKING:
    from .monitor.remote import RemoteSession

log = logging.getLogger(__name__)



class Session(EventLog):
    """Runs one source into one DuckDB store and keeps live pandas views.

    Parameters: ``source`` (default: a real-time synthetic cointegrated pair), ``db`` (file path
    or ``":memory:"``), ``config`` (``config.SessionConfig``: timeframes, ring and writer sizes,
    what is kept in memory, whether raw quotes are stored) or its fields as keywords (changes to
    ``config``), and a ``notifier`` for alert events. An in-memory store keeps the ticks and
    alerts of the last ``memory_retention_h`` hours of data time and the bars the live views
    hold, so a session left running for days stays flat; a file store keeps everything. A
    source's quotes are stored as quote bars per timeframe (table ``quote_bars``), and each quote
    too with ``raw_quotes`` (table ``quotes``: for short recordings, and fills after a latency).

    Use ``start()`` then ``await stop()`` (notebook), or ``async with Session(...) as s:``.
    """

    def __init__(self, source: Source | None = None, db: str | Path = ":memory:", config: SessionConfig | None = None,
                 notifier: Notifier | None = None, **settings: Any) -> None:
        self.config = c = SessionConfig.of(config, **settings)
        self.source: Source = source if source is not None else SyntheticPair()
        self.symbols = self.source.symbols
        #: the source's funding now (None: the source has none), for the dashboards
        self.funding: FundingProvider | None = self.source.funding
        self.db = str(db)
        self.ring = TickRing(c.buffer_capacity)
        self.builder = BarBuilder(len(self.symbols), c.timeframes, retain=c.retain_bars, grace_ms=c.grace_ms)
        self._history = [TickRing(c.retain_ticks) for _ in self.symbols]
        self._batch_rows = c.batch_rows
        self._stop_timeout_s = c.stop_timeout_s
        self.notifier = notifier
        self._flush_interval_s = c.flush_interval_s
        retention_ms = (int(c.memory_retention_h * 3_600_000) if c.memory_retention_h is not None and self.in_memory
                        else None)
        #: ticks from the ring into the store and the bars, pruning, the exit flush (store thread)
        self._writer = Writer(self.builder, self._history, self.symbols, retention_ms)
        self._listeners: list[BarListener] = []
        self._pairs: list[PairView] = []
        #: held while a view takes bars (``_notify``): another thread may read a view between updates
        self.views_lock = threading.Lock()
        EventLog.__init__(self, c.alert_log_size, stored=True)
        self._quotes_held: list[QuoteBatch] = []  # taken from the source, not stored yet (raw_quotes)
        self._quote_bars_held: list[pd.DataFrame] = []  # closed quote bars not stored yet
        self.quotes_received = 0
        self.quotes_stored = 0  # raw quotes stored (``raw_quotes``)
        self.quote_bars_stored = 0  # quote bar rows written (a bar a stop stored open counts again when closed)
        self.live_quotes = LiveQuotes(self.symbols, tuple(timeframe_ms(tf) for tf in self.timeframes),
                                      timeframes=self.timeframes)
        self._store: TickStore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._owned = Tasks(self.report_error)  # tasks started with spawn() / every()
        self._wake: asyncio.Event | None = None
        self._space: asyncio.Event | None = None
        self._held: TickBatch | None = None  # the rest of a batch a stop cut off on its way into the ring
        self._ingest_done = False
        self._busy = False  # the writer is between draining the ring and notifying
        self._closing = False
        self._state = "new"
        self._rows_at_start = 0
        self._rate = 0.0
        self._rate_mark = (time.monotonic(), 0)

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> Session:
        """Open the store, load recent history into the views, start the tasks. Returns self.

        Needs a running event loop (a notebook cell has one; in a script use ``async with``).
        Raises StoreLockedError when another process writes the same file.
        """
        if self._state != "new":
            raise SessionStateError(f"start() called on a session that is {self._state}")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise SessionStateError(
                "Session.start() needs a running event loop: call it in a notebook cell, or in a "
                "script use `async with Session(...) as s:` inside asyncio.run(...)"
            ) from None
        self._store = TickStore(self.db)
        self._store.ensure_bars_tables(self.builder.timeframes)
        self._rows_at_start = self._store.tick_count()
        if self._rows_at_start:  # a generated source continues the file's ids and clock
            try:
                self.source.resume(self._store.newest_trades())
            except StatarbError:
                self._store.close()
                raise
        self._writer.open(self._store)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statarb-store")
        self._wake, self._space = asyncio.Event(), asyncio.Event()
        self._tasks = [
            loop.create_task(self._ingest(), name="statarb-ingest"),
            loop.create_task(self._write_loop(), name="statarb-writer"),
        ]
        if self.notifier is not None:
            self.notifier.start()
            self._event_listeners.append(self.notifier.submit)
        self._state = "running"
        if not self.in_memory:  # an in-memory store ends with the process: nothing to keep
            atexit.register(self._write_at_exit)
        if self.funding is not None and self.funding.live:
            self.funding.on_settled = self._store_funding
            self.spawn(self.funding.run(), "statarb-markprice")
        log.info("session started: %s -> %s", self.source.status.name, self.db)
        return self

    def _store_funding(self, rates: FundingRates) -> None:
        """Loop thread: store a settlement the markPrice stream saw (table ``funding``)."""
        self.spawn(self._run(self._store.insert_funding, rates), "statarb-funding-store")

    async def stop(self) -> None:
        """Stop the source, reconcile a live one with the exchange up to now (see ``_reconcile``),
        write every buffered tick and the forming bars, close the store."""
        if self._state != "running":
            return
        self._state = "stopping"
        self._closing = True
        await self._owned.cancel()
        ingest, writer = self._tasks
        stop_ms = now_ms()
        ingest.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest
        if self._held is not None:  # what the ingest was waiting to put into the ring
            await self._accept(self._held)
            self._held = None
        await self._reconcile(stop_ms)
        self._ingest_done = True
        self._wake.set()
        try:
            await writer
            for view in list(self._pairs):  # after the writer: views see the last ticks too
                view.close()
            await self._run(self._writer.commit_forming)
            await self._flush_alerts()
            await self._store_quotes(final=True)
        finally:
            if self.notifier is not None:  # what is queued gets a few seconds, off the loop
                await asyncio.to_thread(self.notifier.close)
            await self._run(self._store.close)
            self._executor.shutdown(wait=True)
            self._state = "stopped"
            atexit.unregister(self._write_at_exit)
            log.info("session stopped: %d ticks stored", self._store.inserted)

    def _write_at_exit(self) -> None:
        """Interpreter exit with the session still running (a kernel shut down without ``await
        stop()``: Voila closing a page, a kernel restart): write what the ring holds, the forming
        bars and the alerts and events not stored yet, on this thread, and close the store. The
        loop no longer runs and the store thread has finished (its pool joins it before atexit
        handlers run). A live source is not reconciled: its next start backfills the gap."""
        if self._state != "running":
            return
        self._state = "stopped"
        try:
            self._writer.flush_at_exit(lambda: self.ring.drain(self._batch_rows) if len(self.ring) else None)
            for table, items in self.take_unstored():
                self._store.insert_alerts(alerts_frame(items), table)
            self._take_quotes(final=True)
            self._write_quotes(self._quote_bars_held, self._quotes_held)
            self._store.close()
            log.info("session written at exit: %d ticks stored", self._store.inserted)
        except Exception:
            log.exception("writing the session at exit failed")

    async def _reconcile(self, stop_ms: int) -> None:
        """A live source checks what it has against the exchange up to the stop (``reconcile``):
        trades withheld just before it, or gaps not filled yet, are stored too. Bounded by
        ``stop_timeout_s``; what could not be checked is in the status."""
        try:
            batch = await self.source.reconcile(stop_ms, self._stop_timeout_s)
        except Exception as exc:  # the stop goes on: everything already received is written
            self.report_error("reconcile at stop", exc)
            return
        if len(batch):
            await self._accept(batch.as_backlog())

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "statarb-task") -> asyncio.Task[Any]:
        """Run ``coro`` as a task this session owns: its error goes to the status, and
        ``stop()`` cancels it. Needs a running session."""
        if self._state != "running":
            coro.close()
            raise SessionStateError(f"spawn() needs a running session, this one is {self._state}")
        return self._owned.spawn(coro, name)

    def every(self, interval_s: float, fn: Callable[[], Any], name: str) -> asyncio.Task[Any]:
        """Call ``fn`` every ``interval_s`` seconds until the session stops; an error is
        reported in the status and the calls go on."""
        if self._state != "running":
            raise SessionStateError(f"every() needs a running session, this one is {self._state}")
        return self._owned.every(interval_s, fn, name)

    @staticmethod
    def attach(address: str, token: str | None = None) -> RemoteSession:
        """A viewer of a running ``statarb monitor`` at ``HOST:PORT``: the monitor's bars, pair
        rows, alerts, events and status, without ingesting (see ``monitor.remote``). Needs a
        running event loop, as ``start()``; ``await viewer.stop()`` ends it."""
        from .monitor.remote import RemoteSession

        return RemoteSession(address, token).start()

    async def flush(self) -> None:
        """Wait until every tick received so far is stored and its bars and views updated."""
        while self.running and (len(self.ring) or self._busy):
            self._wake.set()
            await asyncio.sleep(0.002)

    @property
    def in_memory(self) -> bool:
        """Whether the store is DuckDB's ``":memory:"`` (pruned to ``memory_retention_h``, gone with the process)."""
        return self.db == ":memory:"

    @property
    def source_done(self) -> bool:
        """Whether the source has ended: a finite source exhausted, or one that gave up."""
        return bool(self._tasks) and self._tasks[0].done()

    async def wait_source(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the source to end, the session running on; True if it has."""
        if self._tasks:
            await asyncio.wait([self._tasks[0]], timeout=timeout)
        return self.source_done

    async def wait(self) -> None:
        """Wait until a finite source is exhausted and all its ticks are stored (then stop)."""
        if self._state != "running":
            raise SessionStateError(f"wait() needs a running session, this one is {self._state}")
        await asyncio.shield(self._tasks[0])
        await self.flush()  # views and subscribers see every tick before stop() detaches them
        await self.stop()

    async def __aenter__(self) -> Session:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def memory_retention_ms(self) -> int | None:
        """Data time (ms) an in-memory store keeps before pruning (None: a file store keeps all)."""
        return self._writer.retention_ms

    @property
    def retained_ticks(self) -> int:
        """Recent ticks each symbol keeps in memory (``ticks()``)."""
        return self._history[0].capacity if self._history else 0

    @property
    def running(self) -> bool:
        return self._state == "running"

    # ---- tasks -------------------------------------------------------------------------

    async def with_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(store, *args)`` on the store's thread (after what is queued there); its result."""
        return await asyncio.wrap_future(self.store_future(fn, *args))

    def store_future(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """``fn(store, *args)`` queued on the store's thread from any thread (a monitor's request
        thread reads the history so); its future."""
        if self._state != "running" or self._executor is None:
            raise SessionStateError(f"the store is read while the session runs, this one is {self._state}")
        return self._executor.submit(fn, self._store, *args)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _ingest(self) -> None:
        try:
            async for batch in self.source.stream():
                await self._accept(batch)
        except Exception as exc:  # a broken source must not take the session down
            self.report_error("source", exc)
        finally:
            self._wake.set()  # write what it gave at once (the writer ends only in stop())

    async def _accept(self, batch: TickBatch) -> None:
        """Put a batch into the ring. History (a replay, a warm-up, a backfill: ``backlog``, or
        any batch of a source that is not real-time) waits for the writer, in pieces that fit;
        only the live edge of a real-time feed may overwrite, to stay live, and that is counted."""
        if self.source.realtime and not batch.backlog:
            self.ring.extend(batch)
        else:
            step = max(1, self.ring.capacity // 2)
            lo = 0
            try:
                while lo < len(batch):
                    piece = batch.take(slice(lo, lo + step))
                    while self.ring.free < len(piece):
                        self._space.clear()
                        self._wake.set()
                        await self._space.wait()
                    self.ring.extend(piece)
                    lo += len(piece)
            except asyncio.CancelledError:  # a stop: the source counts these as received
                self._held = batch.take(slice(lo, None))
                raise
        if len(self.ring) >= self._batch_rows:
            self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval_s):  # wait_for can swallow a cancel on 3.11
                    await self._wake.wait()
            self._wake.clear()
            self._busy = True
            try:
                while len(self.ring):
                    self._take_quotes()  # before the bars they close: a paper fill reads its bar's touch
                    batch = self.ring.drain(self._batch_rows)
                    try:
                        changes = await self._run(self._writer.cycle, batch)
                    except Exception:
                        self.ring.extend(batch)  # nothing of it was committed: retry, never lose it
                        raise
                    self._space.set()
                    self._notify(changes)
                    await self._housekeep()  # also while a fast source keeps the ring full
                if self.source.realtime:
                    self._notify(await self._run(self._writer.close_due, now_ms()))
                await self._housekeep()
            except Exception as exc:
                self.report_error("writer", exc)
                if self._closing:
                    raise
                await asyncio.sleep(self._flush_interval_s)
            finally:
                self._busy = False
            self._update_rate()
            if self._ingest_done and not len(self.ring):
                return

    async def _housekeep(self) -> None:
        """Store the alerts, events and quotes received so far; prune an in-memory store when due."""
        await self._flush_alerts()
        await self._store_quotes()
        if self._writer.prune_due():
            await self._run(self._writer.prune)

    def _notify(self, changes: dict[str, BarChanges]) -> None:
        """Loop thread: hand newly final and corrected bars to the views (publishing the alerts and
        events they return), then to the subscribers."""
        for tf, change in changes.items():
            if not (change.final or change.corrected):
                continue
            final, corrected, _ = change.arrays()
            for view in list(self._pairs):
                try:
                    with self.views_lock:  # a monitor's request thread reads a view between updates
                        signals = view.update(tf, final, corrected)
                except Exception as exc:
                    self.report_error(f"pair view {view.name}", exc)
                    continue
                if signals.alerts:
                    self.publish_alerts(list(signals.alerts))
                if signals.events:
                    self.publish_events(list(signals.events))
            for listener in list(self._listeners):
                try:
                    listener(tf, final, corrected)
                except Exception as exc:
                    self.report_error("bar listener", exc)

    def _take_quotes(self, final: bool = False) -> None:
        """Loop thread: the quotes the source received since the last call into the quote bars
        (``live_quotes``); the bars they closed (``final``: and the open ones) and, with
        ``raw_quotes``, the quotes into the queue to store."""
        batch = self.source.take_quotes()
        if batch is not None and len(batch):
            self.live_quotes.add(batch)
            self.quotes_received += len(batch)
            if self.config.raw_quotes:
                self._quotes_held.append(batch)
        rows = self.live_quotes.take_closed(with_open=final)
        if rows is not None:
            self._quote_bars_held.append(rows)

    @property
    def raw_quotes(self) -> bool:
        """Whether every quote is stored too (table ``quotes``; ``SessionConfig.raw_quotes``)."""
        return self.config.raw_quotes

    @property
    def owns_store(self) -> bool:
        """A Session holds its store (paper books and stored reads run here)."""
        return True

    def source_info(self) -> SourceInfo:
        """What pages show of the source (name, pacing, what was planted in generated data)."""
        return self.source.info()

    def quote_bars(self, symbol: str, timeframe: str) -> QuoteBars | None:
        """``symbol``'s bid and ask at each bar's close on ``timeframe`` (``quotes.LiveQuotes``:
        the newest bar provisional), None without quotes."""
        return self.live_quotes.bars(normalize_symbol(symbol), timeframe_ms(timeframe))

    async def _store_quotes(self, final: bool = False) -> None:
        """Store the quote bars (and raw quotes) taken so far (``final``: the open bars too), on
        the store thread; put back for the next call if the store fails."""
        self._take_quotes(final)
        bars, raw = self._quote_bars_held, self._quotes_held
        if not (bars or raw):
            return
        self._quote_bars_held, self._quotes_held = [], []
        try:
            await self._run(self._write_quotes, bars, raw)
        except Exception:
            self._quote_bars_held[:0], self._quotes_held[:0] = bars, raw  # a bar stored twice is replaced
            raise

    def _write_quotes(self, bars: list[pd.DataFrame], raw: list[QuoteBatch]) -> None:
        """Store thread (or the exit): write quote bar rows, then raw quotes."""
        if bars:
            rows = pd.concat(bars, ignore_index=True)
            self._store.insert_quote_bars(rows)
            self.quote_bars_stored += len(rows)
        if raw:
            held = QuoteBatch.concat(raw)
            self._store.insert_quotes(held.frame(self.source.symbols))
            self.quotes_stored += len(held)

    async def _flush_alerts(self) -> None:
        """Store the alerts and events published since the last flush (kept for the next one if
        the store fails)."""
        pending = self.take_unstored()
        for k, (table, items) in enumerate(pending):
            try:
                await self._run(self._store.insert_alerts, alerts_frame(items), table)
            except Exception:
                for later, held in pending[k:]:
                    self.put_back(later, held)
                raise

    def _update_rate(self) -> None:
        t0, n0 = self._rate_mark
        t1, n1 = time.monotonic(), self.ring.appended
        if t1 - t0 >= 1.0:
            self._rate = (n1 - n0) / (t1 - t0)
            self._rate_mark = (t1, n1)

    # ---- views -------------------------------------------------------------------------

    def subscribe_bars(self, listener: BarListener) -> Callable[[], None]:
        """Call ``listener(tf, final, corrected)`` after bars are stored (and the views have
        taken them); returns unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def pair(
        self,
        x: str,
        y: str,
        timeframe: str | None = None,
        rule: Rule | None = None,
        options: ViewOptions | None = None,
        **changes: object,
    ) -> PairView:
        """A live analytics view of ``x`` against ``y`` (x = alpha + beta * y) on ``timeframe``
        (None: 1m).

        ``rule`` (``rule.Rule``; None: its defaults) sets the analytics, the alerts' entry levels
        and how the view is traded; ``options`` the view's own settings (``ViewOptions``);
        keyword ``changes`` change either (e.g. ``z_window=30``, ``max_stale=0``). The view
        updates on each new final bar until the session stops.
        """
        rule, options = (options or ViewOptions()).apply(rule or DEFAULT, changes)
        view = PairView(self, x, y, timeframe or "1m", rule, options, on_close=self._forget)
        self._pairs.append(view)
        return view

    def _forget(self, view: PairView) -> None:
        if view in self._pairs:
            self._pairs.remove(view)

    @property
    def timeframes(self) -> tuple[str, ...]:
        """The bar timeframes this session builds."""
        return self.builder.timeframes

    def retained_bars(self, timeframe: str) -> int:
        """Final bars each symbol keeps in memory on ``timeframe``."""
        return self.builder.series[timeframe][0].retain if timeframe in self.builder.series else 0

    def final_bars(self, code: int, timeframe: str) -> np.ndarray:
        """A copy of the held final bars of one symbol (the forming bar left out)."""
        with self._writer.lock:
            series = self.builder.series[timeframe][code]
            bars = series.bars if series.last_final else series.bars[:-1]
            return bars.copy() if len(bars) else np.empty(0, dtype=BAR_DTYPE)

    def mids_at_close(self, code: int, timeframe: str, starts: np.ndarray) -> np.ndarray:
        """The quote mid in force at the close of each bar of ``timeframe`` starting at ``starts``
        (``quotes.LiveQuotes``: the quotes this session received; NaN where none)."""
        return self.live_quotes.mids_at_close(code, timeframe_ms(timeframe), starts)

    def code(self, symbol: str) -> int:
        """Index of ``symbol`` in ``symbols`` (InvalidParameter if this session has no such symbol)."""
        s = normalize_symbol(symbol)
        if s not in self.symbols:
            raise InvalidParameter(f"{s} is not a symbol of this session: {', '.join(self.symbols)}")
        return self.symbols.index(s)

    def ticks(self, symbol: str, last: int = 1_000) -> pd.DataFrame:
        """Newest ``last`` stored ticks of ``symbol`` (at most ``retain_ticks``), oldest first,
        indexed by exchange time (UTC DatetimeIndex). Reads memory only."""
        code = self.code(symbol)
        with self._writer.lock:
            rows = self._history[code].tail(last)
        return rows.to_view(self.symbols).drop(columns=["symbol"])

    def bars(self, symbol: str, timeframe: str = "1m", last: int | None = 500) -> pd.DataFrame:
        """Newest ``last`` bars of ``symbol`` (None: all held), indexed by bar open time (UTC).
        The newest bar has ``final`` False while it is still forming. Reads memory only."""
        code = self.code(symbol)
        with self._writer.lock:
            return self.builder.view(code, timeframe, last)

    def status(self) -> SessionStatus:
        src = self.source.status
        note = self.notifier.status() if self.notifier is not None else None
        stored = self._store.inserted if self._store else 0
        return SessionStatus(
            state=self._state,
            source=src.name,
            source_state=src.state,
            symbols=self.symbols,
            last_tick_age_s=src.age_s(),
            ticks_per_s=self._rate,
            ticks_received=self.ring.appended,
            ticks_stored=stored,
            stored_via={VIA[i]: int(n) for i, n in enumerate(self._store.inserted_via) if n} if self._store else {},
            rows_in_store=self._rows_at_start + stored - self._writer.ticks_pruned,
            ticks_pruned=self._writer.ticks_pruned,
            duplicates=self._store.duplicates if self._store else 0,
            pending=len(self.ring),
            overwritten=self.ring.overwritten,
            late_ticks=self.builder.late_ticks,
            corrected_bars=self.builder.corrected_bars,
            reconnects=src.reconnects,
            gaps_found=src.gaps_found,
            gaps_filled=src.gaps_filled,
            averaged_aggregates=src.averaged_aggregates,
            malformed=src.malformed,
            alerts=self.alerts_fired,
            events=self.events_fired,
            notified=note.sent if note else 0,
            notify_failed=note.failed if note else 0,
            notify_dropped=note.dropped if note else 0,
            errors=self._errors,
            last_error=self._last_error or src.last_error,
        )
