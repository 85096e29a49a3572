"""Live Binance USD-M Futures trades: WebSocket combined streams, exact REST fills, clean stops.

Connection rules Binance imposes, and what this client does about them:
- routed paths since 2026-04 (``routes``): ``@trade`` is read on ``/public/stream`` by
  default (``ws_path`` sets another); a wrong route is accepted and silent, so a connection
  that delivers nothing while REST shows trades is reported as "silent route" (which streams,
  which path, how many trades REST shows) and the other documented route is tried;
- the server pings every 3 minutes and drops a connection without a pong within 10 minutes:
  pings are answered at once (``trade_socket``), and a silent link is pinged and dropped when its
  pong is late;
- a connection lives at most 24 hours: each connection is rotated after ``max_connection_age_s``,
  the next one opened *before* the old one closes, and the old one read for ``rotation_overlap_s``
  more, so the cut loses nothing (the overlap is deduplicated by trade id);
- a connection that delivered trades and then dropped is opened again at once (at most one
  connection a second, Binance's limit; its trades meanwhile come from REST); the jittered backoff (``backoff_initial_s`` doubling up to
  ``backoff_max_s``) grows only while connecting fails or connections deliver nothing, and the
  status's error clears once a new connection delivers (a recovered drop leaves no error behind);
- at most 1024 streams per connection: symbols are sharded over connections of
  ``max_streams_per_connection``; streams are named in the URL, so no SUBSCRIBE frames are sent.

Nothing the exchange printed is lost: ``@trade`` ids are consecutive per symbol, so a gap (a
reconnect, a stall, a withheld run, the start after stored history) is visible; after
``gap_grace_s`` (late, out-of-order trades may still fill it) it is fetched over REST
(``rest``: exact from the recent trades, else historicalTrades with a key, else split
aggregates). The start is anchored on REST's newest trade, so a recording whose stream never
delivers still stores every trade since it began (from the aggregates when over 1,000 printed
before the anchor's call). ``reconcile`` (called by ``Session.stop``) asks REST once per symbol
for the trades after the last one received, up to the stop; REST fills are held until handed
over, so a stop between two REST calls returns them too. A helper task that fails ends the
stream with its error (the Session reports it), never silently.

Stalls are judged per connection against its own message rate (``rates``): silence of about
``stall_expected_msgs`` messages, within [``stall_min_s``, ``stall_timeout_s``] (``stall_min_s`` for
a connection that has delivered nothing and whose rate is unknown), triggers a REST check: none
missed -> a quiet market, kept (the next check waits twice as long); trades missed that the
connection still delivers within ``gap_grace_s`` -> in flight (or held up by a busy kernel), kept;
else a stalled stream, reconnected. Malformed and unknown frames are counted and sampled, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum

import httpx
import numpy as np

from ...errors import InvalidParameter
from ...quotes import HeldQuotes, QuoteBatch
from ...sources.base import SourceBase, SourceState, SourceStatus
from ...ticks import TickBatch, normalize_symbol, now_ms
from .endpoints import REST_URL, WS_URL
from .frames import SAMPLES, parse_frames
from .mark_price import MarkPriceStream
from .rates import RateMeter, silence_limit
from .rest import RECENT_LIMIT, Backoff, Fill, RestClient, RestError, WeightBudget, check_listed
from .routes import route_candidates, stream_url
from .sequencer import Gap, TradeSequencer
from .trade_socket import CONNECT_FAILURES, SocketClosed, TradeSocket

log = logging.getLogger(__name__)

QUIET_CHECKS = 3  # symbols asked over REST whether a silent connection missed trades
#: What a REST call or an unexpected reply can raise: logged and retried later, never fatal.
REST_FAILURES = (RestError, KeyError, TypeError, ValueError)
RATE_TAU_S = 60.0  # time constant of the message-rate estimates
#: Seconds between connection attempts at least, even after a connection that delivered: Binance
#: allows 300 connections per 5 minutes per IP, one a second.
RECONNECT_FLOOR_S = 1.0


@dataclass(frozen=True)
class BinanceConfig:
    """Endpoints and timings (seconds). ``ws_path`` None routes each stream by its tier
    (``@trade``: ``/public/stream``); a path (``/public/stream``, ``/market/stream``, ``/public/ws``,
    the legacy ``/stream``) is tried first, the other routed tiers after it if it is silent.
    ``api_key`` (never logged) enables exact fills of long gaps from historicalTrades. ``quotes``:
    also ``@bookTicker`` (a public-tier stream) on the same connections; a quote missed while a
    connection was down is gone (Binance keeps no quote history), so each such span is recorded
    (``quote_gaps``)."""

    ws_url: str = WS_URL
    ws_path: str | None = None
    rest_url: str = REST_URL
    api_key: str | None = field(default=None, repr=False)
    max_streams_per_connection: int = 200
    max_connection_age_s: float = 23.5 * 3600
    rotation_overlap_s: float = 2.0
    stall_min_s: float = 2.0
    stall_timeout_s: float = 30.0
    stall_expected_msgs: float = 20.0
    symbol_silence_s: float = 120.0
    gap_grace_s: float = 1.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    open_timeout_s: float = 10.0
    ping_interval_s: float | None = 20.0
    rest_timeout_s: float = 10.0
    rest_retries: int = 5
    rest_max_wait_s: float = 60.0
    rest_weight_per_min: int = 1_200
    batch_interval_s: float = 0.05
    batch_max: int = 5_000
    quotes: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_streams_per_connection <= 1024:
            raise InvalidParameter("max_streams_per_connection must be within 1..1024 (Binance's limit)")
        if min(self.stall_timeout_s, self.stall_min_s, self.max_connection_age_s, self.backoff_initial_s) <= 0:
            raise InvalidParameter("timeouts and backoff must be > 0")
        if self.stall_min_s > self.stall_timeout_s:
            raise InvalidParameter("stall_min_s must be <= stall_timeout_s")
        if self.rotation_overlap_s < 0:
            raise InvalidParameter("rotation_overlap_s must be >= 0")
        if not 1 <= self.rest_weight_per_min <= 2_400:
            raise InvalidParameter("rest_weight_per_min must be within 1..2400 (Binance's IP limit)")
        if self.ws_path is not None and not self.ws_path.startswith("/"):
            raise InvalidParameter(f"ws_path must start with '/', got {self.ws_path!r}")


class Verdict(StrEnum):
    """The watchdog's finding after a connection fell silent (``_judge_silence``; also recorded in
    ``stall_checks``)."""

    QUIET = "quiet"  # Binance printed nothing new: the connection stays
    IN_FLIGHT = "in flight"  # the trades REST showed arrived meanwhile
    SILENT_ROUTE = "silent route"  # this connection delivered nothing since it opened: another route
    STALLED = "stalled"  # trades are missing (or REST cannot tell): reconnect


@dataclass
class SymbolWatch:
    """One symbol beside its trade ids (``TradeSequencer``): its message-rate estimate, when it
    last traded (monotonic seconds), and what REST still owes it: ``resync`` (catch up every trade
    since its last one: after a reconnect, a resume), ``anchoring`` (its start is not fixed on
    REST's newest trade yet), ``from_start`` (nothing printed before the start: every trade since
    the start time belongs, fetched once caught up)."""

    meter: RateMeter
    last_seen: float = field(default_factory=time.monotonic)
    resync: bool = False
    anchoring: bool = False
    from_start: bool = False


@dataclass
class Shard:
    """One connection's streams, its route and its rate figures."""

    codes: list[int]
    streams: list[str]
    routes: list[str]
    route: int = 0
    meter: RateMeter = field(default_factory=RateMeter)
    delivered: int = 0  # trade messages on the current connection
    quiet_factor: float = 1.0  # doubles after each quiet-market verdict, reset by a message
    awaited: dict[int, int] = field(default_factory=dict)  # code -> trade id REST showed, while a silence is judged

    @property
    def path(self) -> str:
        return self.routes[self.route]


class BinanceLive(SourceBase):
    """Source of live trades for ``symbols`` (upper case) from Binance USD-M Futures.

    ``resume_from`` maps a symbol to the (trade id, time ms) of its last stored trade: the gap
    since is filled from REST at once. Without it, a symbol's recording starts at REST's newest
    trade when the stream starts.
    """

    realtime = True

    def __init__(self, symbols: tuple[str, ...] | list[str], config: BinanceConfig | None = None,
                 resume_from: dict[str, tuple[int, int]] | None = None) -> None:
        self.symbols = tuple(normalize_symbol(s) for s in symbols)
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise InvalidParameter(f"need distinct symbols, got {symbols!r}")
        self.config = config or BinanceConfig()
        self.status = SourceStatus(name="binance")
        # funding now, from @markPrice on the /market tier (its Session runs and stores it)
        self.funding = MarkPriceStream(self.symbols, self.config.ws_url)
        self.code_of = {s: i for i, s in enumerate(self.symbols)}
        self.samples: list[str] = []  # a few malformed / unknown frames
        self.exchange_gaps: list[tuple[str, int, int]] = []  # confirmed empty by REST
        self.notes: dict[str, str] = {}  # per-symbol watchdog messages
        self.unreconciled: list[str] = []  # what a stop could not check against REST
        self.stall_checks: list[tuple[str, float, str]] = []  # (path, silence s, verdict)
        self.route_switches = 0
        self._away_note = ""  # the last connection problem reported (cleared once data flows again)
        self.budget = WeightBudget(self.config.rest_weight_per_min)
        n = len(self.symbols)
        # ids, gaps and duplicates per symbol (pure bookkeeping); the watchdog's view of each symbol
        self.seq = TradeSequencer(n, {self.code_of[normalize_symbol(s)]: v for s, v in (resume_from or {}).items()})
        # a resumed symbol catches up at once; a new one has its start fixed on REST first
        self.watch = [SymbolWatch(RateMeter(RATE_TAU_S, now=time.monotonic()), resync=sq.last_id is not None,
                                  anchoring=sq.last_id is None) for sq in self.seq.symbols]
        # REST fills already counted as received (their gap closed, the last id moved) and not yet
        # handed over: a cancellation between two REST calls must not drop them
        self._unsent: list[TickBatch] = []
        self._started_ms = 0
        kinds = ("trade", "bookTicker") if self.config.quotes else ("trade",)
        k = max(1, self.config.max_streams_per_connection // len(kinds))  # symbols per connection
        routes = route_candidates(self.config.ws_path, "trade")
        self.shards = [Shard(list(range(i, min(i + k, n))),
                             [f"{s.lower()}@{kind}" for s in self.symbols[i : i + k] for kind in kinds],
                             routes, meter=RateMeter(RATE_TAU_S, now=time.monotonic())) for i in range(0, n, k)]
        self._quotes = HeldQuotes()  # received and not taken by the session yet
        self._last_quote_ms: dict[int, int] = {}  # symbol code -> time of its newest quote
        self._quote_gap_open: set[int] = set()  # symbols whose connection went down since their last quote
        self.quote_gaps: list[tuple[str, int, int]] = []  # (symbol, last quote before, first quote after) ms

    # ---- the stream ----------------------------------------------------------------------

    def urls(self) -> list[str]:
        """The current WebSocket URL of each shard (at most ``max_streams_per_connection`` streams)."""
        return [self._url(sh) for sh in self.shards]

    def _rest(self, http: httpx.AsyncClient) -> RestClient:
        c = self.config
        return RestClient(http, self.status, self.budget, retries=c.rest_retries, backoff_initial_s=c.backoff_initial_s,
                          max_wait_s=c.rest_max_wait_s, api_key=c.api_key)

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.config.rest_url, timeout=self.config.rest_timeout_s)

    async def stream(self) -> AsyncIterator[TickBatch]:
        queue: asyncio.Queue[TickBatch] = asyncio.Queue()
        self.status.state = SourceState.CONNECTING
        self._started_ms = now_ms()
        async with self._http() as http:
            rest = self._rest(http)
            await self._check_symbols(rest)
            tasks = [asyncio.create_task(self._run_shard(sh, queue, rest), name=f"binance-shard-{i}")
                     for i, sh in enumerate(self.shards)]
            tasks.append(asyncio.create_task(self._watch_symbols(), name="binance-symbol-watchdog"))
            tasks.append(asyncio.create_task(self._anchor_starts(rest), name="binance-anchor"))
            try:
                while True:
                    try:
                        async with asyncio.timeout(self.config.gap_grace_s / 2):  # not wait_for: on 3.11
                            batch = await queue.get()  # it can swallow a cancellation (gh-86296)
                        batches = [batch]
                        while not queue.empty():
                            batches.append(queue.get_nowait())
                        fresh = self._sequence(TickBatch.concat(batches))
                        if len(fresh):
                            self.status.record(fresh)
                            yield fresh
                    except TimeoutError:
                        pass
                    for t in tasks:  # a helper that failed is a fault to report, never a silent gap
                        if t.done() and not t.cancelled() and t.exception() is not None:
                            raise t.exception()
                    await self._catch_up(rest)
                    await self._backfill(rest)
                    filled = self._take_unsent()
                    if len(filled):
                        self.status.record(filled)
                        yield filled.as_backlog()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.status.state = SourceState.FINISHED

    async def _check_symbols(self, rest: RestClient) -> None:
        try:
            listed = await rest.listed()
        except REST_FAILURES as exc:
            self.status.last_error = f"exchangeInfo unreachable ({exc}): symbols not checked"
            log.warning(self.status.last_error)
            return
        check_listed(self.symbols, listed)

    async def _anchor_starts(self, rest: RestClient) -> None:
        """Fix where each new symbol's recording starts: REST's newest trade at the start. A stream
        that is already delivering then shows the trades between as a gap; one that never
        delivers is caught up from here. Also seeds each symbol's rate from its recent trades."""
        for code in self._flagged("anchoring"):
            symbol = self.symbols[code]
            try:
                rows = await rest.recent_trades(symbol)
            except REST_FAILURES as exc:
                log.warning("start of %s not anchored on REST (%s): it starts at its first streamed trade", symbol, exc)
                self.watch[code].anchoring = False
                continue
            self.watch[code].anchoring = False
            if len(rows) > 1:
                span_s = (int(rows[-1]["time"]) - int(rows[0]["time"])) / 1000
                if span_s > 0:
                    self.watch[code].meter.reset_prior((len(rows) - 1) / span_s, time.monotonic())
            before = [r for r in rows if int(r["time"]) <= self._started_ms]
            if before:
                origin, origin_ts = int(before[-1]["id"]), int(before[-1]["time"])
            elif 0 < len(rows) < RECENT_LIMIT:  # every trade there is, all after the start
                origin, origin_ts = int(rows[0]["id"]) - 1, self._started_ms
            else:  # nothing printed yet, or more since the start than one call shows: every trade
                # from the start time on belongs (found from the aggregates when caught up)
                if self.seq[code].last_id is None:
                    self.watch[code].from_start = True
                elif self.seq[code].first is not None:  # the stream began first: fetch what it missed
                    self.watch[code].from_start = self.watch[code].resync = True
                continue
            first = self.seq[code].last_id
            if first is None:
                self.seq[code].last_id, self.seq[code].last_ts = origin, origin_ts
            elif self.seq[code].first is not None and self.seq[code].first[0] > origin + 1:
                f_id, f_ts = self.seq[code].first
                self.seq.gaps.append(Gap(code, origin + 1, f_id - 1, origin_ts, f_ts))
        for shard in self.shards:
            priors = [self.watch[c].meter.prior for c in shard.codes if self.watch[c].meter.prior is not None]
            if priors and not shard.delivered:
                shard.meter.reset_prior(sum(priors), time.monotonic())

    # ---- connections ---------------------------------------------------------------------

    async def _connect(self, url: str, backoff: Backoff) -> TradeSocket:
        while True:
            try:
                return await TradeSocket.open(url, self.config.open_timeout_s, self.config.ping_interval_s)
            except CONNECT_FAILURES as exc:
                delay = backoff.next()
                self.status.state = SourceState.RECONNECTING
                self._away(f"connect failed ({type(exc).__name__}: {exc}); retry in {delay:.1f} s")
                await asyncio.sleep(delay)

    def _away(self, note: str) -> None:
        """Report why the stream is away (cleared by the next delivery: ``_emit``)."""
        self.status.last_error = self._away_note = note
        log.warning("binance %s", note)

    def _url(self, shard: Shard) -> str:
        return stream_url(self.config.ws_url, shard.path, shard.streams)

    async def _run_shard(self, shard: Shard, queue: asyncio.Queue[TickBatch], rest: RestClient) -> None:
        c = self.config
        backoff = Backoff(c.backoff_initial_s, c.backoff_max_s)
        retiring: set[asyncio.Task[None]] = set()
        ws = await self._connect(self._url(shard), backoff)
        opened, shard.delivered = time.monotonic(), 0
        self.status.state = SourceState.STREAMING
        try:
            while True:
                reason = await self._read(ws, shard, opened + c.max_connection_age_s, queue)
                if shard.delivered:  # it worked: a drop now is retried at once, not after earlier failures
                    backoff.reset()
                if reason == "rotate":
                    # open the next connection first, then keep reading the old one a little longer:
                    # what it had in flight overlaps what the new one starts with (deduplicated)
                    nxt = await self._connect(self._url(shard), backoff)
                    overlap = min(c.rotation_overlap_s, c.max_connection_age_s / 2)
                    task = asyncio.create_task(self._retire(ws, shard, overlap, queue), name="binance-retiring")
                    retiring.add(task)
                    task.add_done_callback(retiring.discard)
                    ws, opened = nxt, time.monotonic()
                    continue
                if reason.startswith("stalled"):
                    verdict = await self._judge_silence(ws, shard, rest, queue, time.monotonic() - opened)
                    if verdict in (Verdict.QUIET, Verdict.IN_FLIGHT):
                        continue  # nothing missed, or it arrived after all: the connection is fine, keep it
                    if verdict.startswith("closed"):
                        reason = verdict
                    if verdict == Verdict.SILENT_ROUTE:
                        shard.route = (shard.route + 1) % len(shard.routes)
                        self.route_switches += 1
                        reason = f"silent on its route: trying {shard.path}"
                await ws.close()
                self.status.reconnects += 1
                self._quote_gap_open.update(shard.codes)
                if self.status.state != SourceState.SILENT_ROUTE:
                    self.status.state = SourceState.RECONNECTING
                    self._away(f"connection {reason}: reconnecting")
                # trades printed while away show as a gap only once a later trade arrives: ask now
                for code in shard.codes:
                    self.watch[code].resync = True
                if not shard.delivered:  # the backoff grows only while connecting gives nothing
                    await asyncio.sleep(backoff.next())
                else:  # at once, but never more than one connection a second (a server that drops at once)
                    await asyncio.sleep(max(0.0, RECONNECT_FLOOR_S - (time.monotonic() - opened)))
                ws = await self._connect(self._url(shard), backoff)
                opened, shard.delivered = time.monotonic(), 0
        finally:
            for task in list(retiring):
                task.cancel()
            await asyncio.gather(*retiring, return_exceptions=True)
            await ws.close()

    def silence_limit(self, shard: Shard) -> float:
        """Seconds of silence after which ``shard``'s connection is checked (see module doc)."""
        c = self.config
        rate = shard.meter.rate(time.monotonic())
        if rate == 0 and not shard.delivered:  # no rate known and nothing delivered: check early
            base = c.stall_min_s
        else:
            base = silence_limit(rate, c.stall_expected_msgs, c.stall_min_s, c.stall_timeout_s)
        return min(c.stall_timeout_s, base * shard.quiet_factor)

    async def _judge_silence(self, ws: TradeSocket, shard: Shard, rest: RestClient,
                             queue: asyncio.Queue[TickBatch], open_s: float) -> Verdict | str:
        """After a silence: "quiet" when Binance printed nothing past the last trade received of
        the shard's most active symbols (at most QUIET_CHECKS REST calls, so a shard of hundreds
        of symbols stays within the request weight). Trades REST shows may still be in flight, or
        waiting in the socket while a notebook cell held the loop: the connection is read for
        ``gap_grace_s`` more, and "in flight" when it then delivered them. Else "silent route"
        when this connection has delivered nothing since it opened, "closed (code)" when it closed
        meanwhile, else "stalled" (also when REST cannot tell)."""
        limit = self.silence_limit(shard)
        codes = sorted(shard.codes, key=lambda code: self.watch[code].meter.rate(time.monotonic()), reverse=True)
        newest: dict[int, int] = {}  # code -> REST's newest id, for symbols with trades not received
        for code in codes[:QUIET_CHECKS]:
            try:
                latest = await rest.latest_trade(self.symbols[code])
            except REST_FAILURES:
                self.stall_checks.append((shard.path, limit, Verdict.STALLED))
                return Verdict.STALLED
            last = self.seq[code].last_id
            if latest is not None and (last is None or latest[0] > last):
                newest[code] = latest[0]
        if not newest:
            shard.quiet_factor *= 2
            self.status.state = SourceState.QUIET  # until the next message (not an error: shown as the state)
            log.info("quiet market: Binance printed no trade of %s in %.1f s; connection kept",
                     ", ".join(self.symbols[k] for k in codes[:QUIET_CHECKS]), limit)
            self.stall_checks.append((shard.path, limit, Verdict.QUIET))
            return Verdict.QUIET
        before = {code: self.seq[code].last_id for code in newest}
        shard.awaited = dict(newest)  # _emit removes each symbol whose trade arrives
        try:
            reason = await self._read(ws, shard, time.monotonic() + self.config.gap_grace_s, queue, watch=False)
        finally:
            arrived, shard.awaited = not shard.awaited, {}
        if reason.startswith("closed"):
            return reason
        if arrived:
            self.stall_checks.append((shard.path, limit, Verdict.IN_FLIGHT))
            return Verdict.IN_FLIGHT
        missed = sum(hi - before[code] if before[code] is not None else 1 for code, hi in newest.items())
        if shard.delivered == 0:
            nxt = shard.routes[(shard.route + 1) % len(shard.routes)]
            streams = ", ".join(shard.streams[:3]) + (f" and {len(shard.streams) - 3} more" if len(shard.streams) > 3 else "")
            self.status.state = SourceState.SILENT_ROUTE
            self._away(f"{streams} on {shard.path} delivered nothing in {open_s:.1f} s while REST shows {missed:,} "
                       f"new trade(s) of {', '.join(self.symbols[k] for k in newest)}: a wrong route or a dead feed; "
                       f"trying {nxt} (trades meanwhile from REST)")
            self.stall_checks.append((shard.path, limit, Verdict.SILENT_ROUTE))
            return Verdict.SILENT_ROUTE
        self.stall_checks.append((shard.path, limit, Verdict.STALLED))
        return Verdict.STALLED

    async def _retire(self, ws: TradeSocket, shard: Shard, seconds: float,
                      queue: asyncio.Queue[TickBatch]) -> None:
        """Read a rotated-out connection for ``seconds`` more, then close it."""
        try:
            await self._read(ws, shard, time.monotonic() + seconds, queue, watch=False)
        finally:
            await ws.close()

    async def _read(self, ws: TradeSocket, shard: Shard, deadline: float,
                    queue: asyncio.Queue[TickBatch], watch: bool = True) -> str:
        """Read until the connection closes ("closed (code)"), is silent past its limit ("stalled:
        ...", when ``watch``) or is due for rotation ("rotate"), handing parsed trades to
        ``queue`` in batches of at most ``batch_interval_s``. One wake-up takes every message of the
        socket reads since the last one (hundreds at a burst), not one message per await."""
        c = self.config
        loop = asyncio.get_running_loop()
        frames: list[bytes | str] = []
        last_msg = flush_at = loop.time()
        try:
            while True:
                now = loop.time()
                if frames and now >= flush_at:
                    self._emit(frames, shard, queue)
                    frames = []
                if now >= deadline:
                    return "rotate"
                limit = self.silence_limit(shard) if watch else float("inf")
                if now - last_msg >= limit:
                    return f"stalled: no message for {now - last_msg:.1f} s"
                # re-judged at least every stall_min_s: the limit moves with the rate estimate
                wake = min(deadline, last_msg + limit, now + c.stall_min_s, flush_at if frames else deadline)
                try:
                    got = await ws.take(wake)  # every message of the reads since the last call
                except SocketClosed as exc:
                    return f"closed ({exc.code})"
                if got:
                    last_msg = loop.time()
                    if not frames:
                        flush_at = last_msg + c.batch_interval_s
                    frames.extend(got)
                    if len(frames) >= c.batch_max:
                        self._emit(frames, shard, queue)
                        frames = []
        finally:
            if frames:
                self._emit(frames, shard, queue)

    def _emit(self, frames: list[bytes | str], shard: Shard, queue: asyncio.Queue[TickBatch]) -> None:
        parsed = parse_frames(frames, self.code_of, now_ms())
        self.status.malformed += parsed.malformed + parsed.unknown
        self.status.last_message_ms = now_ms()
        if parsed.samples and len(self.samples) < 20:
            self.samples.extend(parsed.samples[:SAMPLES])
        for reply in parsed.replies:
            if "error" in reply:
                self.status.last_error = f"subscription error: {reply['error']}"
                log.warning(self.status.last_error)
        if parsed.quotes:
            self._take_in_quotes(parsed.quotes)
        if len(parsed.batch):
            if self.status.last_error and self.status.last_error == self._away_note:
                self.status.last_error = ""  # connected and delivering again: nothing is wrong now
            self.status.state = SourceState.STREAMING
            shard.delivered += len(parsed.batch)
            shard.quiet_factor = 1.0
            shard.meter.add(len(parsed.batch), time.monotonic())
            for code, wanted in list(shard.awaited.items()):
                if parsed.batch.trade_id[parsed.batch.sym == code].max(initial=-1) >= wanted:
                    del shard.awaited[code]
            queue.put_nowait(parsed.batch)

    def _take_in_quotes(self, rows: list[tuple[int, int, int, float, float, float, float]]) -> None:
        """Hold received quotes for the session; a symbol's first quote after its connection went
        down closes a quote gap."""
        batch = QuoteBatch.of_rows(rows)
        self._quotes.hold(batch)
        for code in np.unique(batch.sym).tolist():
            times = batch.time_ms[batch.sym == code]
            if code in self._quote_gap_open and code in self._last_quote_ms:
                self.quote_gaps.append((self.symbols[code], self._last_quote_ms[code], int(times.min())))
            self._quote_gap_open.discard(code)
            self._last_quote_ms[code] = max(int(times.max()), self._last_quote_ms.get(code, 0))

    @property
    def quotes_received(self) -> int:
        return self._quotes.count

    def take_quotes(self) -> QuoteBatch | None:
        """The quotes received since the last call (None: none)."""
        return self._quotes.take()

    # ---- sequencing and gaps -------------------------------------------------------------

    def _sequence(self, batch: TickBatch) -> TickBatch:
        """Drop duplicates (ids already passed and not missing); record new gaps; return the rest."""
        now = time.monotonic()
        for code in np.unique(batch.sym).tolist():
            w = self.watch[code]
            w.last_seen = now
            w.meter.add(len(np.unique(batch.trade_id[batch.sym == code])), now)
            self.notes.pop(self.symbols[code], None)
        kept, started = self.seq.accept(batch)
        for code in started:  # a symbol recorded from the start: the trades between it and this one
            if self.watch[code].from_start:
                self.watch[code].resync = True
        return kept

    @property
    def duplicates(self) -> int:
        """Trades received twice (and dropped)."""
        return self.seq.duplicates

    def _account(self, symbol: str, fill: Fill) -> None:
        """Count what a fill says: aggregates averaged, ids Binance never printed (logged)."""
        self.status.averaged_aggregates += fill.averaged
        for lo, hi in fill.holes:
            self.exchange_gaps.append((symbol, lo, hi))
            log.warning("exchange gap: %s trades %d..%d are not in Binance's records", symbol, lo, hi)

    async def _backfill(self, rest: RestClient, force: bool = False) -> None:
        """Fetch gaps older than the grace period (all of them when ``force``) from REST into
        ``_unsent``."""
        now = time.monotonic()
        due = [g for g in self.seq.gaps if force or (now - g.seen_at >= self.config.gap_grace_s and now >= g.next_try)]
        for g in due:
            symbol = self.symbols[g.code]
            if g.next_try == 0.0:
                self.status.gaps_found += 1
            try:
                fill = await rest.fill(symbol, g.code, g.lo, g.hi, g.lo_ts, known=g.known)
            except REST_FAILURES as exc:
                g.next_try = time.monotonic() + self.config.backoff_max_s / 4
                self.status.last_error = f"backfill of {symbol} {g.lo}..{g.hi} failed, will retry: {exc}"
                log.warning(self.status.last_error)
                continue
            self.seq.gaps.remove(g)
            self._account(symbol, fill)
            if len(fill.batch):
                self.status.gaps_filled += 1
                self._unsent.append(fill.batch)

    def _take_unsent(self) -> TickBatch:
        """The REST fills not handed over yet, as one batch (and the list emptied)."""
        batch, self._unsent = TickBatch.concat(self._unsent), []
        return batch

    async def _catch_up(self, rest: RestClient, until_ms: int | None = None) -> None:
        """Every trade since each resynced symbol's last one (after a reconnect, a silent route, a
        resume), from REST into ``_unsent``; ``until_ms`` bounds it (a stop)."""
        for code in self._flagged("resync"):
            w, last = self.watch[code], self.seq[code].last_id
            from_start = w.from_start
            if last is None and not from_start:
                if w.anchoring:
                    continue  # its start is being fixed: catch up after
                w.resync = False
                continue
            symbol = self.symbols[code]
            if from_start and last is not None:  # the stream delivered first: only what precedes it
                lo, hi, lo_ts = None, self.seq[code].first[0] - 1, self._started_ms
            elif from_start:
                lo, hi, lo_ts = None, None, self._started_ms
            else:
                lo, hi, lo_ts = last + 1, None, self.seq[code].last_ts
            try:
                fill = await rest.fill(symbol, code, lo, hi, lo_ts, until_ms, known=self.seq[code].edge)
            except REST_FAILURES as exc:
                self.status.last_error = f"catch-up of {symbol} failed, will retry: {exc}"
                if until_ms is not None:
                    continue  # a stop: try the other symbols; this one is reported unreconciled
                return
            w.resync = False
            self._account(symbol, fill)
            if hi is not None or fill.last_id is not None:  # the trades since the start are fetched
                w.from_start = False
            if fill.last_id is None:
                continue  # nothing printed since
            self.status.gaps_found += 1
            self.status.gaps_filled += 1
            w.meter.add(len(fill.batch), time.monotonic())
            if hi is None:  # an open range: the stream takes over after what REST had
                self.seq[code].last_id, self.seq[code].last_ts = fill.last_id, fill.last_ts
            self._unsent.append(fill.batch)

    async def reconcile(self, until_ms: int, timeout_s: float = 10.0) -> TickBatch:
        """At a clean stop: the trades after the last one received of each symbol up to
        ``until_ms``, and every gap still open, from REST (one recent-trades call per symbol
        usually). Bounded by ``timeout_s``; what could not be checked is listed in
        ``unreconciled``, the status and the log. The stream must have stopped."""
        for code, w in enumerate(self.watch):
            if self.seq[code].last_id is not None or w.from_start:
                w.resync = True
        why = ""
        try:
            async with asyncio.timeout(timeout_s), self._http() as http:
                rest = self._rest(http)
                await self._backfill(rest, force=True)
                await self._catch_up(rest, until_ms)
        except TimeoutError:
            why = f"no answer within {timeout_s:g} s"
        except (RestError, httpx.HTTPError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        left = sorted({self.symbols[c] for c in self._flagged("resync")} | {self.symbols[g.code] for g in self.seq.gaps})
        if left:
            self.unreconciled = [f"{s} after trade {self.seq[self.code_of[s]].last_id}" for s in left]
            self.status.last_error = (f"stop: REST {why or 'failed'}; not reconciled: {', '.join(self.unreconciled)} "
                                      "(trades printed just before the stop may be missing there)")
            log.warning("binance %s", self.status.last_error)
        batch = self._take_unsent()  # with what a stopped stream had fetched and not handed over
        if len(batch):
            self.status.record(batch)
        return batch.as_backlog()

    async def _watch_symbols(self) -> None:
        """Note symbols without a trade for ``symbol_silence_s`` while others may flow (a note for
        the status: the connection watchdog is what acts on a stall)."""
        silence = self.config.symbol_silence_s
        while True:
            await asyncio.sleep(min(silence / 4, 5.0))
            now = time.monotonic()
            for code, symbol in enumerate(self.symbols):
                quiet = now - self.watch[code].last_seen
                if quiet >= silence:
                    self.notes[symbol] = f"no trade for {symbol} in {quiet:.0f} s"
                    self.status.last_error = self.notes[symbol]

    def _flagged(self, flag: str) -> list[int]:
        """Codes of the symbols whose SymbolWatch has ``flag`` set, ascending."""
        return [code for code, w in enumerate(self.watch) if getattr(w, flag)]

    @property
    def pending_gaps(self) -> int:
        """Gaps not filled yet, symbols to catch up and starts not fixed."""
        return len(self.seq.gaps) + len(self._flagged("resync")) + len(self._flagged("anchoring"))
