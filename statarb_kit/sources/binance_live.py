"""Live Binance USD-M Futures trades: WebSocket combined streams with REST gap backfill.

Connection rules Binance imposes, and what this client does about them:
- the server pings every 3 minutes and drops a connection without a pong within 10 minutes:
  the websockets library answers pings itself (and pings the server, closing a dead link);
- a connection lives at most 24 hours: each connection is rotated after ``max_connection_age_s``,
  the next one opened *before* the old one closes, and the old one read for ``rotation_overlap_s``
  more, so the cut loses nothing (the overlap is deduplicated by trade id);
- at most 1024 streams per connection: symbols are sharded over connections of
  ``max_streams_per_connection``; streams are named in the URL, so no SUBSCRIBE frames are sent
  (and the 10 incoming messages/s limit is never approached).

Robustness: reconnect with exponential backoff and jitter (reset after a stable period); a
watchdog checks a connection that is open but silent for ``stall_timeout_s``: it is reconnected
if REST shows trades it did not deliver (a stalled stream), kept if the market was just quiet
(a dead link is closed by the websockets keepalive ping, then reconnected); a per-symbol
watchdog reports a symbol with no trade for ``symbol_silence_s``; malformed and unknown frames are
counted and sampled, never raised. ``@trade`` ids are consecutive per symbol, so a gap (a
reconnect, a stall, the start after stored history) is visible: after ``gap_grace_s`` (late,
out-of-order trades may still fill it) it is fetched from ``/fapi/v1/aggTrades`` and the rows
are marked ``backfilled``. A gap REST confirms empty is an exchange gap: recorded, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import numpy as np
import websockets

from ..errors import InvalidParameter, StatarbError
from ..ticks import TickBatch, normalize_symbol, now_ms
from .base import SourceStatus
from .binance_format import SAMPLES, expand_agg_trades, parse_frames

log = logging.getLogger(__name__)

AGG_WINDOW_MS = 3_600_000  # Binance: startTime..endTime at most one hour per aggTrades call
AGG_LIMIT = 1_000
QUIET_CHECKS = 3  # symbols asked over REST whether a silent connection missed trades


class RestError(StatarbError):
    """A Binance REST call failed after its retries."""


@dataclass(frozen=True)
class BinanceConfig:
    """Endpoints and timings (seconds). ``ws_path``: "/stream" (combined streams, default),
    "/market/stream" (Binance's newer market path) or "/ws" (raw streams)."""

    ws_url: str = "wss://fstream.binance.com"
    ws_path: str = "/stream"
    rest_url: str = "https://fapi.binance.com"
    max_streams_per_connection: int = 200
    max_connection_age_s: float = 23.5 * 3600
    rotation_overlap_s: float = 2.0
    stall_timeout_s: float = 30.0
    symbol_silence_s: float = 120.0
    gap_grace_s: float = 1.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    stable_after_s: float = 60.0
    open_timeout_s: float = 10.0
    ping_interval_s: float | None = 20.0
    rest_timeout_s: float = 10.0
    rest_retries: int = 5
    rest_max_wait_s: float = 60.0
    batch_interval_s: float = 0.05
    batch_max: int = 5_000

    def __post_init__(self) -> None:
        if not 1 <= self.max_streams_per_connection <= 1024:
            raise InvalidParameter("max_streams_per_connection must be within 1..1024 (Binance's limit)")
        if min(self.stall_timeout_s, self.max_connection_age_s, self.backoff_initial_s) <= 0:
            raise InvalidParameter("timeouts and backoff must be > 0")
        if self.rotation_overlap_s < 0:
            raise InvalidParameter("rotation_overlap_s must be >= 0")


class Backoff:
    """Exponential backoff with jitter: attempt k waits uniform(d/2, d), d = min(max, initial * 2^k)."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial, self.maximum, self.attempt = initial, maximum, 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        d = min(self.maximum, self.initial * 2**self.attempt)
        self.attempt += 1
        return self._rng.uniform(d / 2, d)

    def reset(self) -> None:
        self.attempt = 0


class RestClient:
    """The keyless Binance REST calls the live source needs, over httpx, honouring 429/418."""

    def __init__(self, http: httpx.AsyncClient, config: BinanceConfig, status: SourceStatus) -> None:
        self.http, self.config, self.status = http, config, status

    async def get(self, path: str, params: dict | None = None) -> object:
        backoff = Backoff(self.config.backoff_initial_s, self.config.rest_max_wait_s)
        for attempt in range(self.config.rest_retries + 1):
            try:
                r = await self.http.get(path, params=params)
            except httpx.HTTPError as exc:
                if attempt == self.config.rest_retries:
                    raise RestError(f"GET {path} failed: {exc}") from exc
                await asyncio.sleep(backoff.next())
                continue
            if r.status_code in (418, 429) or r.status_code >= 500:
                wait = _retry_after(r) or backoff.next()
                self.status.last_error = f"REST {path}: HTTP {r.status_code}, retrying in {wait:.1f} s"
                log.warning(self.status.last_error)
                if attempt == self.config.rest_retries:
                    break
                await asyncio.sleep(min(wait, self.config.rest_max_wait_s))
                continue
            if r.status_code >= 400:
                raise RestError(f"GET {path} {params}: HTTP {r.status_code}: {r.text[:200]}")
            return r.json()
        raise RestError(f"GET {path}: still rate limited after {self.config.rest_retries} retries")

    async def symbols(self) -> set[str]:
        info = await self.get("/fapi/v1/exchangeInfo")
        return {s["symbol"] for s in info["symbols"]}

    async def latest_trade_id(self, symbol: str) -> int | None:
        """Id of the newest trade Binance has printed for ``symbol`` (None: none yet)."""
        rows = await self.get("/fapi/v1/aggTrades", {"symbol": symbol, "limit": 1})  # the most recent
        return int(rows[-1]["l"]) if rows else None

    async def agg_trades(self, symbol: str, start_ms: int, end_ms: int) -> list[dict]:
        """Every aggregate trade in [start_ms, end_ms], in one-hour windows, paginated."""
        rows: list[dict] = []
        lo = start_ms
        while lo <= end_ms:
            hi = min(end_ms, lo + AGG_WINDOW_MS - 1)
            page = await self.get("/fapi/v1/aggTrades",
                                  {"symbol": symbol, "startTime": lo, "endTime": hi, "limit": AGG_LIMIT})
            rows.extend(page)
            while len(page) == AGG_LIMIT:  # more in this window: continue by aggregate id
                page = await self.get("/fapi/v1/aggTrades",
                                      {"symbol": symbol, "fromId": page[-1]["a"] + 1, "limit": AGG_LIMIT})
                page = [r for r in page if r["T"] <= hi]
                rows.extend(page)
            lo = hi + 1
        return rows


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return float(r.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


@dataclass
class Gap:
    """Missing trade ids [lo, hi] of one symbol, between two seen trades' times."""

    code: int
    lo: int
    hi: int
    lo_ts: int
    hi_ts: int
    seen_at: float = field(default_factory=time.monotonic)
    next_try: float = 0.0


class BinanceLive:
    """Source of live trades for ``symbols`` (upper case) from Binance USD-M Futures.

    ``resume_from`` maps a symbol to the (trade id, time ms) of its last stored trade: the
    first live trade then reveals the gap since, which is backfilled from REST.
    """

    realtime = True

    def __init__(self, symbols: tuple[str, ...] | list[str], config: BinanceConfig | None = None,
                 resume_from: dict[str, tuple[int, int]] | None = None) -> None:
        self.symbols = tuple(normalize_symbol(s) for s in symbols)
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise InvalidParameter(f"need distinct symbols, got {symbols!r}")
        self.config = config or BinanceConfig()
        self.status = SourceStatus(name="binance")
        self.code_of = {s: i for i, s in enumerate(self.symbols)}
        self.samples: list[str] = []  # a few malformed / unknown frames
        self.exchange_gaps: list[tuple[str, int, int]] = []  # confirmed empty by REST
        self.notes: dict[str, str] = {}  # per-symbol watchdog messages
        self.duplicates = 0
        self._last_id: list[int | None] = [None] * len(self.symbols)
        self._last_ts: list[int] = [0] * len(self.symbols)
        self._last_seen: list[float] = [time.monotonic()] * len(self.symbols)
        for s, (tid, ts) in (resume_from or {}).items():
            code = self.code_of[normalize_symbol(s)]
            self._last_id[code], self._last_ts[code] = int(tid), int(ts)
        self._gaps: list[Gap] = []
        # symbols to catch up from REST: after a reconnect, and at once when resuming stored history
        self._resync: set[int] = {c for c, last in enumerate(self._last_id) if last is not None}

    # ---- the stream ----------------------------------------------------------------------

    def urls(self) -> list[str]:
        """One WebSocket URL per shard of at most ``max_streams_per_connection`` streams."""
        c = self.config
        streams = [f"{s.lower()}@trade" for s in self.symbols]
        k = c.max_streams_per_connection
        shards = [streams[i : i + k] for i in range(0, len(streams), k)]
        if c.ws_path.rstrip("/").endswith("/ws"):
            return [f"{c.ws_url}{c.ws_path.rstrip('/')}/{'/'.join(sh)}" for sh in shards]
        return [f"{c.ws_url}{c.ws_path}?streams={'/'.join(sh)}" for sh in shards]

    async def stream(self) -> AsyncIterator[TickBatch]:
        queue: asyncio.Queue[TickBatch] = asyncio.Queue()
        self.status.state = "connecting"
        async with httpx.AsyncClient(base_url=self.config.rest_url, timeout=self.config.rest_timeout_s) as http:
            rest = RestClient(http, self.config, self.status)
            await self._check_symbols(rest)
            tasks = [asyncio.create_task(self._shard(url, queue, rest), name=f"binance-shard-{i}")
                     for i, url in enumerate(self.urls())]
            tasks.append(asyncio.create_task(self._watch_symbols(), name="binance-symbol-watchdog"))
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
                    filled = TickBatch.concat([await self._catch_up(rest), await self._backfill(rest)])
                    if len(filled):
                        self.status.record(filled)
                        yield filled
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.status.state = "finished"

    async def _check_symbols(self, rest: RestClient) -> None:
        try:
            known = await rest.symbols()
        except (RestError, KeyError, TypeError, ValueError) as exc:
            self.status.last_error = f"exchangeInfo unreachable ({exc}): symbols not checked"
            log.warning(self.status.last_error)
            return
        unknown = [s for s in self.symbols if s not in known]
        if unknown:
            raise InvalidParameter(f"Binance USD-M Futures has no symbol {', '.join(unknown)} (exchangeInfo)")

    # ---- connections ---------------------------------------------------------------------

    async def _connect(self, url: str, backoff: Backoff) -> websockets.ClientConnection:
        while True:
            try:
                return await websockets.connect(url, open_timeout=self.config.open_timeout_s,
                                                ping_interval=self.config.ping_interval_s, max_size=2**24)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                delay = backoff.next()
                self.status.state = "reconnecting"
                self.status.last_error = f"connect failed ({type(exc).__name__}: {exc}); retry in {delay:.1f} s"
                log.warning(self.status.last_error)
                await asyncio.sleep(delay)

    async def _shard(self, url: str, queue: asyncio.Queue[TickBatch], rest: RestClient) -> None:
        c = self.config
        backoff = Backoff(c.backoff_initial_s, c.backoff_max_s)
        retiring: set[asyncio.Task[None]] = set()
        ws = await self._connect(url, backoff)
        opened = time.monotonic()
        self.status.state = "streaming"
        try:
            while True:
                reason = await self._read(ws, opened + c.max_connection_age_s, queue)
                if time.monotonic() - opened >= c.stable_after_s:
                    backoff.reset()
                if reason == "rotate":
                    # open the next connection first, then keep reading the old one a little longer:
                    # what it had in flight overlaps what the new one starts with (deduplicated)
                    nxt = await self._connect(url, backoff)
                    overlap = min(c.rotation_overlap_s, c.max_connection_age_s / 2)
                    task = asyncio.create_task(self._retire(ws, overlap, queue), name="binance-retiring")
                    retiring.add(task)
                    task.add_done_callback(retiring.discard)
                    ws, opened = nxt, time.monotonic()
                    continue
                if reason.startswith("stalled") and await self._quiet_market(url, rest):
                    continue  # nothing to deliver: the connection is fine, keep it
                await ws.close()
                self.status.reconnects += 1
                self.status.state = "reconnecting"
                self.status.last_error = f"connection {reason}: reconnecting"
                log.warning("binance %s", self.status.last_error)
                await asyncio.sleep(backoff.next())
                ws, opened = await self._connect(url, backoff), time.monotonic()
                self.status.state = "streaming"
                # trades printed while away show as a gap only once a later trade arrives: ask now
                self._resync.update(self._codes_of(url))
        finally:
            for task in list(retiring):
                task.cancel()
            await asyncio.gather(*retiring, return_exceptions=True)
            await ws.close()

    def _codes_of(self, url: str) -> list[int]:
        """Codes of the symbols streamed by a connection URL."""
        return [self.code_of[s.split("@")[0].upper()] for s in _streams_of(url)]

    async def _quiet_market(self, url: str, rest: RestClient) -> bool:
        """After ``stall_timeout_s`` without a message: is the market just quiet? True when Binance
        has printed nothing past the last trade received of this connection's most recently active
        symbols (at most QUIET_CHECKS REST calls, so a shard of hundreds of symbols stays within
        the request weight); False when it has (a stalled stream) or REST cannot tell."""
        codes = sorted(self._codes_of(url), key=lambda code: self._last_seen[code], reverse=True)[:QUIET_CHECKS]
        for code in codes:
            try:
                latest = await rest.latest_trade_id(self.symbols[code])
            except (RestError, KeyError, TypeError, ValueError):
                return False
            last = self._last_id[code]
            if latest is not None and (last is None or latest > last):
                return False
        self.status.state = "quiet"  # until the next message (not an error: shown as the state)
        log.info("quiet market: Binance printed no trade of %s in %g s; connection kept",
                 ", ".join(self.symbols[k] for k in codes), self.config.stall_timeout_s)
        return True

    async def _retire(self, ws: websockets.ClientConnection, seconds: float, queue: asyncio.Queue[TickBatch]) -> None:
        """Read a rotated-out connection for ``seconds`` more, then close it."""
        try:
            await self._read(ws, time.monotonic() + seconds, queue)
        finally:
            await ws.close()

    async def _read(self, ws: websockets.ClientConnection, deadline: float, queue: asyncio.Queue[TickBatch]) -> str:
        """Read until the connection closes ("closed (code)"), stalls ("stalled: ...") or is due
        for rotation ("rotate"), handing parsed trades to ``queue`` in batches of at most
        ``batch_interval_s``. One timer covers many messages: it is re-armed only when it fires
        or when a batch opens, not per message (a timer per message costs more than the parse)."""
        c = self.config
        loop = asyncio.get_running_loop()
        frames: list[bytes | str] = []
        last_msg = flush_at = loop.time()
        try:
            while True:
                now = loop.time()
                if frames and now >= flush_at:
                    self._emit(frames, queue)
                    frames = []
                if now >= deadline:
                    return "rotate"
                if now - last_msg >= c.stall_timeout_s:
                    return f"stalled: no message for {c.stall_timeout_s:g} s"
                wake = min(deadline, last_msg + c.stall_timeout_s, flush_at if frames else deadline)
                try:
                    async with asyncio.timeout_at(wake):  # cancelling recv() loses nothing
                        while True:
                            raw = await ws.recv(decode=False)  # orjson takes the bytes
                            last_msg = loop.time()
                            frames.append(raw)
                            if len(frames) == 1:
                                flush_at = last_msg + c.batch_interval_s
                                break  # re-arm the timer for this batch's flush
                            if len(frames) >= c.batch_max or last_msg >= flush_at:
                                self._emit(frames, queue)
                                frames = []
                            if last_msg >= deadline:
                                break
                except TimeoutError:
                    pass
                except websockets.ConnectionClosed as exc:
                    return f"closed ({exc.rcvd.code if exc.rcvd else 1006})"
        finally:
            if frames:
                self._emit(frames, queue)

    def _emit(self, frames: list[bytes | str], queue: asyncio.Queue[TickBatch]) -> None:
        self.status.state = "streaming"
        parsed = parse_frames(frames, self.code_of, now_ms())
        self.status.malformed += parsed.malformed + parsed.unknown
        self.status.last_message_ms = now_ms()
        if parsed.samples and len(self.samples) < 20:
            self.samples.extend(parsed.samples[:SAMPLES])
        for reply in parsed.replies:
            if "error" in reply:
                self.status.last_error = f"subscription error: {reply['error']}"
                log.warning(self.status.last_error)
        if len(parsed.batch):
            queue.put_nowait(parsed.batch)

    # ---- sequencing and gaps -------------------------------------------------------------

    def _sequence(self, batch: TickBatch) -> TickBatch:
        """Drop duplicates (ids already passed and not missing); record new gaps; return the rest."""
        keep = np.ones(len(batch), dtype=bool)
        now = time.monotonic()
        for code in np.unique(batch.sym).tolist():
            rows = np.flatnonzero(batch.sym == code)
            order = rows[np.argsort(batch.trade_id[rows], kind="stable")]
            ids, ts = batch.trade_id[order], batch.ts[order]
            first = np.ones(len(ids), dtype=bool)
            first[1:] = ids[1:] != ids[:-1]
            keep[order[~first]] = False
            last = self._last_id[code]
            self._last_seen[code] = now
            self.notes.pop(self.symbols[code], None)
            if last is None:
                self._last_id[code], self._last_ts[code] = int(ids[-1]), int(ts[-1])
                continue
            old = first & (ids <= last)
            for i in np.flatnonzero(old):
                if not self._fill(code, int(ids[i])):
                    keep[order[i]] = False  # seen before: a duplicate
            new = first & (ids > last)
            prev_id, prev_ts = last, self._last_ts[code]
            for i in np.flatnonzero(new):
                tid, t = int(ids[i]), int(ts[i])
                if tid > prev_id + 1:
                    self._gaps.append(Gap(code, prev_id + 1, tid - 1, prev_ts, t))
                prev_id, prev_ts = tid, t
            self._last_id[code], self._last_ts[code] = prev_id, prev_ts
        self.duplicates += int((~keep).sum())
        return batch.take(keep) if not keep.all() else batch

    def _fill(self, code: int, tid: int) -> bool:
        """A late trade: True (and the gap shrinks) if ``tid`` was missing."""
        for g in self._gaps:
            if g.code == code and g.lo <= tid <= g.hi:
                self._gaps.remove(g)
                if g.lo < tid:
                    self._gaps.append(Gap(g.code, g.lo, tid - 1, g.lo_ts, g.hi_ts, g.seen_at, g.next_try))
                if tid < g.hi:
                    self._gaps.append(Gap(g.code, tid + 1, g.hi, g.lo_ts, g.hi_ts, g.seen_at, g.next_try))
                return True
        return False

    async def _backfill(self, rest: RestClient) -> TickBatch:
        """Fetch gaps older than the grace period from REST; returns the recovered trades."""
        now = time.monotonic()
        due = [g for g in self._gaps if now - g.seen_at >= self.config.gap_grace_s and now >= g.next_try]
        out = []
        for g in due:
            symbol = self.symbols[g.code]
            if g.next_try == 0.0:
                self.status.gaps_found += 1
            try:
                rows = await rest.agg_trades(symbol, g.lo_ts, g.hi_ts)
            except RestError as exc:
                g.next_try = time.monotonic() + self.config.backoff_max_s / 4
                self.status.last_error = f"backfill of {symbol} {g.lo}..{g.hi} failed, will retry: {exc}"
                log.warning(self.status.last_error)
                continue
            got = expand_agg_trades(rows, g.code, g.lo, g.hi, now_ms())
            self._gaps.remove(g)
            for lo, hi in _holes(np.unique(got.trade_id), g.lo, g.hi):
                self.exchange_gaps.append((symbol, lo, hi))
                log.warning("exchange gap: %s trades %d..%d are not in Binance's records", symbol, lo, hi)
            if len(got):
                self.status.gaps_filled += 1
                out.append(got)
        return TickBatch.concat(out)

    async def _catch_up(self, rest: RestClient) -> TickBatch:
        """After a reconnect: every trade since each symbol's last seen one, from REST."""
        out = []
        for code in sorted(self._resync):
            last = self._last_id[code]
            if last is None:
                self._resync.discard(code)
                continue
            try:
                rows = await rest.agg_trades(self.symbols[code], self._last_ts[code], now_ms())
            except RestError as exc:
                self.status.last_error = f"catch-up of {self.symbols[code]} failed, will retry: {exc}"
                return TickBatch.concat(out)
            self._resync.discard(code)
            hi = max((int(r["l"]) for r in rows), default=last)
            got = expand_agg_trades(rows, code, last + 1, hi, now_ms())
            if len(got):
                self.status.gaps_found += 1
                self.status.gaps_filled += 1
                out.append(self._sequence(got))
        return TickBatch.concat(out)

    async def _watch_symbols(self) -> None:
        silence = self.config.symbol_silence_s
        while True:
            await asyncio.sleep(min(silence / 4, 5.0))
            now = time.monotonic()
            for code, symbol in enumerate(self.symbols):
                quiet = now - self._last_seen[code]
                if quiet >= silence:
                    self.notes[symbol] = f"no trade for {symbol} in {quiet:.0f} s"
                    self.status.last_error = self.notes[symbol]

    @property
    def pending_gaps(self) -> int:
        return len(self._gaps) + len(self._resync)


def _streams_of(url: str) -> list[str]:
    """The stream names in a connection URL (combined or raw form)."""
    tail = url.split("?streams=", 1)[1] if "?streams=" in url else url.rsplit("/ws/", 1)[-1]
    return tail.split("/")


def _holes(have: np.ndarray, lo: int, hi: int) -> list[tuple[int, int]]:
    """Ranges of [lo, hi] not in the sorted unique ids ``have``."""
    edges = np.concatenate(([lo - 1], have, [hi + 1]))
    gaps = np.flatnonzero(np.diff(edges) > 1)
    return [(int(edges[i]) + 1, int(edges[i + 1]) - 1) for i in gaps]
