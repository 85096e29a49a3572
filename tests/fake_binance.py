"""A local fake Binance USD-M Futures: WebSocket trade streams and the REST endpoints the client
uses, on one 127.0.0.1 port, speaking Binance's exact formats and misbehaving on command.

A pre-generated trade tape per symbol plays in real time (``rate`` trades/s per symbol); every
connected client subscribed to a symbol receives its trades as they print, like the exchange.

Routing as Binance does since 2026-04 ("Base URL Split"): ``/public``, ``/market`` and
``/private`` paths, each in ws mode (``/public/ws/<streams>``) or stream mode
(``/public/stream?streams=...``); ``@trade`` is a public-tier stream (``tiers``), and the retired
unrouted ``/ws`` and ``/stream`` still carry only the public tier. A stream on the wrong tier is
accepted and stays silent, as on the exchange.

REST: ``aggTrades`` serves the printed part of the tape aggregated the way Binance does
(consecutive trades with the same time, price and side form one aggregate); ``trades`` the newest
``limit`` (default 500, at most 1000) printed trades, exactly; ``historicalTrades`` from ``fromId``
with an ``X-MBX-APIKEY`` header only (else HTTP 401, code -2014); each reply carries
``X-MBX-USED-WEIGHT-1M``. ``recent_cap`` narrows what ``trades`` can reach back to (a busier
market, where 1,000 trades are a few seconds).

Misbehaviour on command: ``drop()`` (abrupt TCP abort, a 1006 for the client), ``close(code)``,
``withheld`` (id ranges per symbol that print but are never streamed),
``stall(seconds)`` (socket open, no data), ``inject(frame)`` (malformed JSON, unknown events,
subscription errors), ``duplicate_every`` / ``swap_every`` (duplicated, out-of-order trades),
``lifetime_s`` (the 24-hour close, shortened), ``rest_errors`` (HTTP 429/418 with Retry-After),
``holes`` (ids Binance itself never printed), server pings that need pongs (``ping_interval``).
``wait_for_client`` holds the tapes until every symbol is streamed to a client.

A recorded tape (``FakeBinance(recording=[files], speed=k)``, ``read_recording``): real frames of
Binance's combined streams (``<receive time ns> <frame>`` a line, as in
``../shared/data/usdm_tape_20240808``) are sent byte for byte, each at its own receive time played
``speed`` times faster, on the routed paths; REST answers from the same trades (recent trades,
aggregates, historicalTrades), which print as their frames are due.

The data site (data.binance.vision) on the same port: ``files`` (``publish`` adds a file and its
``.CHECKSUM``), and the S3 bucket listing at ``/?prefix=...&delimiter=/&marker=...`` built from
them (ListBucketResult XML, ``list_page`` keys a page, NextMarker). ``klines`` holds the bars
``/fapi/v1/klines`` serves; ``delisted`` symbols are gone from REST (code -1121) and exchangeInfo,
their files stay; ``info`` adds exchangeInfo fields (contractType, onboardDate, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import zipfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import orjson
import pandas as pd
import websockets
from websockets.datastructures import Headers
from websockets.http11 import Response

from statarb_kit.demo.formats import bucket_listing, checksum_file, kline_rows, kline_zip  # noqa: F401 (kline_zip: for tests)
from statarb_kit.funding import synthetic_funding
from statarb_kit.exchange.binance.frames import trade_frame


@dataclass
class Tape:
    """One symbol's trades; ``raw`` (a recording): each trade's frame exactly as received, sent
    when the tape clock reaches its ``due`` time (ms of the recording's receive clock)."""

    symbol: str
    trade_id: np.ndarray
    ts: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    buyer_maker: np.ndarray
    raw: list[bytes] | None = None
    due: np.ndarray | None = None


#: The shared real frames (read-only, beside the project).
RECORDED_TAPE = Path(__file__).resolve().parents[2] / "shared" / "data" / "usdm_tape_20240808"


def recorded_files() -> list[Path]:
    """The shared recording's files; the test is skipped with a clear reason when they are absent."""
    files = sorted(RECORDED_TAPE.glob("*usdt_*.gz"))
    if not files:
        import pytest

        pytest.skip(f"the shared real tape is not at {RECORDED_TAPE} (see shared/data/README.md)")
    return files


def read_recording(path: Path | str) -> Tape:
    """The @trade frames of one recorded file (``<receive ns> <frame>`` lines), byte for byte."""
    raw: list[bytes] = []
    due: list[int] = []
    rows: list[tuple[int, int, float, float, bool]] = []
    symbol = ""
    with gzip.open(path, "rb") as f:
        for line in f:
            recv, _, frame = line.rstrip(b"\n").partition(b" ")
            if b'@trade"' not in frame[:40]:
                continue
            d = orjson.loads(frame)["data"]
            symbol = d["s"]
            raw.append(frame)
            due.append(int(recv) // 1_000_000)
            rows.append((int(d["t"]), int(d["T"]), float(d["p"]), float(d["q"]), bool(d["m"])))
    ids, ts, price, qty, side = (np.array(c) for c in zip(*rows))
    return Tape(symbol, ids.astype(np.int64), ts.astype(np.int64), price, qty, side.astype(bool), raw,
                np.array(due, dtype=np.int64))


def make_tape(symbol: str, n: int, t0: int, rate: float, seed: int, first_id: int = 1_000_000,
              holes: dict[int, int] | None = None) -> Tape:
    """``n`` trades; 30% repeat the previous trade's time, price and side (one aggregate).
    ``holes`` maps a tape index to a number of ids skipped before it (an exchange gap)."""
    rng = np.random.default_rng(seed)
    steps = np.maximum(1, rng.exponential(1000.0 / rate, n)).astype(np.int64)
    same = rng.random(n) < 0.3
    same[0] = False
    steps[same] = 0
    ts = t0 + np.cumsum(steps)
    price = np.round(100.0 * (1 + seed) + np.cumsum(rng.normal(0, 0.05, n)), 2)
    side = rng.random(n) < 0.5
    for i in np.flatnonzero(same):
        price[i], side[i] = price[i - 1], side[i - 1]
    ids = first_id + np.arange(n, dtype=np.int64)
    for at, size in (holes or {}).items():
        ids[at:] += size
    qty = np.round(rng.uniform(0.001, 2.0, n), 3)
    return Tape(symbol, ids, ts, price, qty, side)


def aggregate(t: Tape, upto: int) -> list[dict]:
    """Binance-style aggregate trades of the first ``upto`` tape rows."""
    rows: list[dict] = []
    for i in range(upto):
        key = (int(t.ts[i]), float(t.price[i]), bool(t.buyer_maker[i]))
        if rows and (rows[-1]["T"], float(rows[-1]["p"]), rows[-1]["m"]) == key and rows[-1]["l"] + 1 == t.trade_id[i]:
            rows[-1]["l"] = int(t.trade_id[i])
            rows[-1]["_q"] += float(t.qty[i])
            continue
        rows.append({"a": len(rows) + 1, "p": f"{t.price[i]:.2f}", "_q": float(t.qty[i]), "f": int(t.trade_id[i]),
                     "l": int(t.trade_id[i]), "T": key[0], "m": key[2]})
    for r in rows:
        r["q"] = f"{r.pop('_q'):.3f}"
    return rows


@dataclass(eq=False)
class Client:
    ws: websockets.ServerConnection
    symbols: set[str]  # whose @trade it receives
    marks: set[str] = field(default_factory=set)  # whose @markPrice it receives
    quotes: set[str] = field(default_factory=set)  # whose @bookTicker it receives
    opened: float = field(default_factory=time.monotonic)


class FakeBinance:
    def __init__(self, symbols=("BTCUSDT", "ETHUSDT"), n: int = 2_000, rate: float = 200.0, seed: int = 0,
                 holes: dict[str, dict[int, int]] | None = None, ping_interval: float | None = None,
                 start_delay_s: float = 0.3, wait_for_client: bool = False,
                 recording: list[Path] | None = None, speed: float = 1.0, quotes: bool = False) -> None:
        self.t0 = int(time.time() * 1000) + int(start_delay_s * 1000)
        self.start_delay_s = start_delay_s
        self.wait_for_client = wait_for_client  # hold the tapes until a client streams every symbol
        # a recording's @bookTicker frames (quotes=True): symbol -> (receive-clock due ms, frames)
        self.quote_tapes: dict[str, tuple[np.ndarray, list[bytes]]] = {}
        if recording:
            self.tapes = {t.symbol: t for t in map(read_recording, recording)}
            if quotes:
                self.quote_tapes = dict(map(read_quote_frames, recording))
        else:
            self.tapes = {s: make_tape(s, n, self.t0, rate, seed + k, first_id=1_000_000 * (k + 1),
                                       holes=(holes or {}).get(s)) for k, s in enumerate(symbols)}
        self.speed = speed
        # a recording plays its receive clock from its first frame, start_delay_s from now
        self._tape_origin = min((int(t.due[0]) for t in self.tapes.values() if t.due is not None), default=0)
        self._wall0 = time.monotonic() + start_delay_s
        self.printed = {s: 0 for s in symbols}  # tape rows already printed
        self.quotes_printed = {s: 0 for s in self.quote_tapes}  # quote frames already due
        self.quotes_sent: dict[str, list[int]] = {s: [] for s in self.quote_tapes}  # sent to a client (indices)
        self.clients: set[Client] = set()
        self.stalled_until = 0.0
        self.duplicate_every = 0
        self.swap_every = 0
        self.lifetime_s: float | None = None
        self.rest_errors: list[tuple[int, float]] = []  # (status, Retry-After) for the next REST calls
        self.rest_calls: list[str] = []
        self.files: dict[str, bytes] = {}  # extra HTTP paths (history dumps for download tests)
        self.klines: dict[tuple[str, str], pd.DataFrame] = {}  # (symbol, interval) -> bars REST serves
        self.delisted: set[str] = set()
        self.info: dict[str, dict] = {}  # symbol -> extra exchangeInfo fields
        self.list_page = 1000
        self.funding_span: tuple[int, int] | None = None  # settlements served (default: the last 40 days)
        self.tiers = {"trade": "public", "bookTicker": "public", "aggTrade": "market",
                      "markPrice": "market"}  # stream kind -> tier
        self.recent_cap = 1000
        self.withheld: dict[str, list[tuple[int, int]]] = {}  # symbol -> id ranges never sent on a stream
        self.rest_down = False  # every REST call fails (HTTP 503)
        self.weights: list[tuple[float, int]] = []  # (time, weight) of each REST call
        self.api_keys_seen: list[str] = []
        self.connections = 0  # connections for trades (or silent ones)
        self.mark_connections = 0  # connections for @markPrice only
        self.silent_connections = 0  # accepted on a tier that does not carry their streams
        self.ping_interval = ping_interval
        self.funding_period_ms = 8 * 3_600_000  # settlements of the @markPrice stream
        self._next_mark_ms = 0
        self._server = None
        self._player: asyncio.Task | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeBinance:
        self._server = await websockets.serve(self._handler, "127.0.0.1", 0, process_request=self._http,
                                              ping_interval=self.ping_interval, ping_timeout=self.ping_interval)
        self.port = self._server.sockets[0].getsockname()[1]
        self._player = asyncio.create_task(self._play())
        return self

    async def __aexit__(self, *exc) -> None:
        self._player.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._player
        self._server.close()
        await self._server.wait_closed()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def done(self) -> bool:
        return all(self.printed[s] == len(t.trade_id) for s, t in self.tapes.items()) and \
            all(self.quotes_printed[s] == len(due) for s, (due, _) in self.quote_tapes.items())

    async def wait_done(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.done:
            if time.monotonic() > deadline:
                raise TimeoutError("the tape did not finish")
            await asyncio.sleep(0.02)

    def truth(self) -> pd.DataFrame:
        """Every printed trade: the ground truth a client must end up storing."""
        frames = [pd.DataFrame({"symbol": s, "trade_id": t.trade_id[: self.printed[s]], "ts": t.ts[: self.printed[s]],
                                "price": t.price[: self.printed[s]], "qty": t.qty[: self.printed[s]],
                                "is_buyer_maker": t.buyer_maker[: self.printed[s]]})
                  for s, t in self.tapes.items()]
        return pd.concat(frames, ignore_index=True).sort_values(["symbol", "trade_id"], ignore_index=True)

    # ---- misbehaviour --------------------------------------------------------------------

    def drop(self) -> None:
        """Abort every connection's TCP stream: no close frame (the client sees 1006)."""
        for c in list(self.clients):
            c.ws.transport.abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await asyncio.gather(*(c.ws.close(code, reason) for c in list(self.clients)), return_exceptions=True)

    def stall(self, seconds: float) -> None:
        """Keep sockets open but send nothing (trades still print: the client must backfill)."""
        self.stalled_until = time.monotonic() + seconds

    def pause(self, seconds: float) -> None:
        """A quiet market: nothing prints for ``seconds`` (the rest of each tape moves later)."""
        now = int(time.time() * 1000)
        for s, t in self.tapes.items():
            i = self.printed[s]
            if i < len(t.ts):
                t.ts[i:] += max(0, now + int(seconds * 1000) - int(t.ts[i]))

    async def inject(self, frame: bytes | str) -> None:
        await asyncio.gather(*(c.ws.send(frame) for c in list(self.clients)), return_exceptions=True)

    # ---- WebSocket -------------------------------------------------------------------------

    def routed_symbols(self, path: str, kind: str = "trade") -> set[str]:
        """Symbols whose ``kind`` stream (trade, markPrice) a connection to ``path`` receives: those
        whose stream's tier is the path's tier (legacy unrouted paths: the public tier only)."""
        url = urlparse(path)
        parts = url.path.strip("/").split("/")
        tier = parts[0] if parts and parts[0] in ("public", "market", "private") else "public"  # legacy
        rest = parts[1:] if parts and parts[0] in ("public", "market", "private") else parts
        if rest[:1] == ["ws"]:
            streams = rest[1:]
        else:
            streams = parse_qs(url.query).get("streams", [""])[0].split("/")
        return {s.split("@")[0].upper() for s in streams
                if "@" in s and s.split("@")[1] == kind and self.tiers.get(kind) == tier}

    async def _handler(self, ws: websockets.ServerConnection) -> None:
        symbols = self.routed_symbols(ws.request.path)
        marks = self.routed_symbols(ws.request.path, "markPrice")
        quotes = self.routed_symbols(ws.request.path, "bookTicker")
        self.silent_connections += not (symbols or marks or quotes)
        client = Client(ws, symbols, marks, quotes)
        self.clients.add(client)
        if marks and not symbols:
            self.mark_connections += 1
        else:
            self.connections += 1
        try:
            if self.lifetime_s is None:
                await ws.wait_closed()
            else:
                try:
                    await asyncio.wait_for(ws.wait_closed(), self.lifetime_s)
                except TimeoutError:
                    await ws.close(1001, "connection lifetime exceeded")
        finally:
            self.clients.discard(client)

    async def _hold_until_subscribed(self, timeout: float = 30.0) -> None:
        """Wait until connected clients stream every tape's symbol, or one connected on a tier
        that carries none of them (at most ``timeout`` s), then move the tapes so that they start
        printing ``start_delay_s`` later: a test of a clean run does not depend on how fast a
        loaded machine starts its client."""
        deadline = time.monotonic() + timeout
        while not (set(self.tapes) <= {s for c in self.clients for s in c.symbols} or self.silent_connections):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        self._wall0 = time.monotonic() + self.start_delay_s
        shift = int(time.time() * 1000) + int(self.start_delay_s * 1000) - self.t0
        if shift > 0 and self._tape_origin == 0:
            self.t0 += shift
            for t in self.tapes.values():
                t.ts += shift

    async def _play(self) -> None:
        """Print the tapes in real time, sending each trade to the subscribed clients."""
        if self.wait_for_client:
            await self._hold_until_subscribed()
        count = 0
        while not self.done:
            now_ms = int(time.time() * 1000)
            tape_ms = self._tape_origin + int((time.monotonic() - self._wall0) * 1000 * self.speed)
            out: dict[str, list[bytes]] = {}
            for s, t in self.tapes.items():
                i = self.printed[s]
                j = int(np.searchsorted(t.ts, now_ms, side="right") if t.due is None
                        else np.searchsorted(t.due, tape_ms, side="right"))
                frames = []
                runs = self.withheld.get(s, ())
                for k in range(i, j):
                    if runs and any(lo <= t.trade_id[k] <= hi for lo, hi in runs):
                        continue  # printed (REST has it), never streamed
                    frames.append(t.raw[k] if t.raw is not None else
                                  trade_frame(s, int(t.trade_id[k]), int(t.ts[k]), float(t.price[k]),
                                              float(t.qty[k]), bool(t.buyer_maker[k])))
                    count += 1
                    if self.duplicate_every and count % self.duplicate_every == 0:
                        frames.append(frames[-1])
                    if self.swap_every and count % self.swap_every == 0 and len(frames) >= 2:
                        frames[-1], frames[-2] = frames[-2], frames[-1]
                self.printed[s] = j
                out[s] = frames
            quoted: dict[str, range] = {}
            for s, (due, _) in self.quote_tapes.items():
                j = int(np.searchsorted(due, tape_ms, side="right"))
                quoted[s], self.quotes_printed[s] = range(self.quotes_printed[s], j), j
            if now_ms >= self._next_mark_ms:
                self._next_mark_ms = now_ms + 200
                await self._send_marks(now_ms)
            if time.monotonic() >= self.stalled_until:
                for c in list(self.clients):
                    for s in c.symbols:
                        for f in out.get(s, ()):
                            try:
                                await c.ws.send(f)
                            except websockets.ConnectionClosed:
                                break
                for s, due_now in quoted.items():
                    sent = False
                    for c in list(self.clients):
                        if s not in c.quotes:
                            continue
                        for k in due_now:
                            try:
                                await c.ws.send(self.quote_tapes[s][1][k])
                            except websockets.ConnectionClosed:
                                break
                        else:
                            sent = True
                    if sent:
                        self.quotes_sent[s].extend(due_now)
            await asyncio.sleep(0.005)

    def mark_rate(self, symbol: str, settlement: int) -> float:
        """The funding rate of ``symbol``'s settlement number ``settlement`` (time // period)."""
        base = 1e-4 if symbol == next(iter(self.tapes)) else -5e-5
        return round(base + ((settlement % 7) - 3) * 1e-5, 8)

    async def _send_marks(self, now_ms: int) -> None:
        """markPrice frames (every 200 ms here; Binance: every 1 s with @1s) to their subscribers;
        settlements every ``funding_period_ms``."""
        n = now_ms // self.funding_period_ms + 1
        for c in list(self.clients):
            for s in c.marks:
                data = {"e": "markPriceUpdate", "E": now_ms, "s": s, "p": "100.00000000", "ap": "100.00000000",
                        "P": "100.00000000", "i": "100.00000000", "r": f"{self.mark_rate(s, n):.8f}",
                        "T": n * self.funding_period_ms}
                with contextlib.suppress(websockets.ConnectionClosed):
                    await c.ws.send(orjson.dumps({"stream": f"{s.lower()}@markPrice@1s", "data": data}))

    # ---- REST ----------------------------------------------------------------------------

    def _http(self, ws: websockets.ServerConnection, request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlparse(request.path)
        self.rest_calls.append(request.path)
        if url.path in self.files:
            return self._reply(200, self.files[url.path], "application/octet-stream")
        if url.path == "/" and "prefix" in url.query:
            return self._listing({k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()})
        if self.rest_errors and url.path.startswith("/fapi/"):
            status, retry = self.rest_errors.pop(0)
            return self._reply(status, orjson.dumps({"code": -1003, "msg": "Too many requests"}),
                               extra={"Retry-After": f"{retry:g}"})
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if self.rest_down and url.path.startswith("/fapi/"):
            return self._reply(503, b'{"code": -1001, "msg": "Internal error"}')
        weight = {"/fapi/v1/trades": 5, "/fapi/v1/historicalTrades": 20, "/fapi/v1/aggTrades": 20}.get(url.path, 1)
        if url.path == "/fapi/v1/klines":
            limit = int(q.get("limit", 500))
            weight = 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
        self.weights.append((time.monotonic(), weight))
        known = (set(self.tapes) | {sym for sym, _ in self.klines} | set(self.info)) - self.delisted
        if url.path == "/fapi/v1/exchangeInfo":
            return self._json({"timezone": "UTC", "symbols": [{"symbol": s, "status": "TRADING", **self.info.get(s, {})}
                                                              for s in sorted(known)]})
        s = q.get("symbol", "")
        if url.path.startswith("/fapi/v1/") and s not in known:
            return self._reply(400, orjson.dumps({"code": -1121, "msg": "Invalid symbol."}))
        if url.path == "/fapi/v1/klines":
            if not 1 <= limit <= 1500:
                return self._reply(400, orjson.dumps({"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}))
            k = self.klines.get((s, q["interval"]))
            if k is None:
                return self._json([])
            lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
            k = k[(k["start"] >= lo) & (k["start"] <= hi)].head(limit)
            return self._json(kline_rows(k))
        if url.path == "/fapi/v1/aggTrades":
            rows = aggregate(self.tapes[s], self.printed[s])
            if "fromId" in q:
                rows = [r for r in rows if r["a"] >= int(q["fromId"])]
            if "startTime" in q:
                rows = [r for r in rows if int(q["startTime"]) <= r["T"] <= int(q["endTime"])]
            limit = int(q.get("limit", 500))
            if "fromId" not in q and "startTime" not in q:
                return self._json(rows[-limit:])  # Binance: neither given, the most recent ones
            return self._json(rows[:limit])
        if url.path == "/fapi/v1/fundingRate":  # 8-hourly settlements of the last 40 days, seeded per symbol
            f = synthetic_funding(s, *(self.funding_span or (self.t0 - 40 * 86_400_000, self.t0)), seed=11)
            lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", self.t0))
            keep = np.flatnonzero((f.time >= lo) & (f.time <= hi))[: int(q.get("limit", 100))]
            return self._json([{"symbol": s, "fundingTime": int(f.time[i]) + 3, "fundingRate": f"{f.rate[i]:.8f}",
                                "markPrice": "100.00000000"} for i in keep])
        if url.path in ("/fapi/v1/trades", "/fapi/v1/historicalTrades"):
            limit = int(q.get("limit", 500))
            if not 1 <= limit <= 1000:
                return self._reply(400, orjson.dumps({"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}))
            t, upto = self.tapes[s], self.printed[s]
            if url.path == "/fapi/v1/trades":
                lo = max(0, upto - min(limit, self.recent_cap))
                hi = upto
            else:
                key = request.headers.get("X-MBX-APIKEY")
                if not key:
                    return self._reply(401, orjson.dumps({"code": -2014, "msg": "API-key format invalid."}))
                self.api_keys_seen.append(key)
                lo = int(np.searchsorted(t.trade_id[:upto], int(q["fromId"]))) if "fromId" in q else max(0, upto - limit)
                hi = min(upto, lo + limit)
            return self._json([{"id": int(t.trade_id[i]), "price": f"{t.price[i]:.2f}", "qty": f"{t.qty[i]:.3f}",
                                "quoteQty": f"{t.price[i] * t.qty[i]:.5f}", "time": int(t.ts[i]),
                                "isBuyerMaker": bool(t.buyer_maker[i])} for i in range(lo, hi)])
        return self._reply(404, b"not found")

    def publish(self, path: str, data: bytes) -> None:
        """Serve ``data`` at ``path`` with its ``.CHECKSUM`` (as the data site does)."""
        self.files[path] = data
        self.files[path + ".CHECKSUM"] = checksum_file(path, data)

    def _listing(self, q: dict[str, str]) -> Response:
        """The S3 ListObjects (v1) answer over ``files``: keys and, with a delimiter, common prefixes."""
        return self._reply(200, bucket_listing(self.files, q.get("prefix", ""), q.get("delimiter", ""),
                                               q.get("marker", ""), self.list_page), "application/xml")

    def _json(self, obj) -> Response:
        return self._reply(200, orjson.dumps(obj), extra={"X-MBX-USED-WEIGHT-1M": str(self.weight_last_minute())})

    def weight_last_minute(self) -> int:
        now = time.monotonic()
        return sum(w for t, w in self.weights if now - t < 60)

    @staticmethod
    def _reply(status: int, body: bytes, ctype: str = "application/json", extra: dict | None = None) -> Response:
        headers = Headers({"Content-Type": ctype, "Content-Length": str(len(body)), "Connection": "close",
                           **(extra or {})})
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 418: "I'm a teapot",
                  429: "Too Many Requests", 503: "Service Unavailable"}
        return Response(status, reason.get(status, "Error"), headers, body)


FAULTS = ("drop", "close-1001", "stall", "withheld", "duplicates", "all")


async def misbehave(fake: FakeBinance, fault: str, started: Callable[[], bool]) -> None:
    """Script one of FAULTS (or "all" of them) once ``started()`` says the client has trades:
    withheld keeps the last quarter of each tape from the stream (set before it prints: a loaded
    machine that wakes this script late must not let it stream first)."""
    if fault in ("withheld", "all"):
        for s, tape in fake.tapes.items():
            ids = tape.trade_id[int(0.75 * len(tape.trade_id)):]
            fake.withheld[s] = [*fake.withheld.get(s, []), (int(ids[0]), int(ids[-1]))]
    while not started():
        await asyncio.sleep(0.01)
    if fault in ("duplicates", "all"):
        fake.duplicate_every, fake.swap_every = 7, 11
    if fault in ("drop", "all"):
        fake.drop()
        fake.stall(0.3)
    if fault in ("close-1001", "all"):
        await asyncio.sleep(0.3)
        await fake.close(1001, "going away")
    if fault in ("stall", "all"):
        await asyncio.sleep(0.2)
        fake.stall(0.5)




def make_klines(symbol: str, interval_ms: int, start_ms: int, end_ms: int, seed: int,
                holes: list[tuple[int, int]] = ()) -> pd.DataFrame:
    """Seeded klines opening in [start_ms, end_ms), none in the [a, b) ``holes`` (maintenance
    windows): start, OHLC, volume, close_time, quote_volume, trades, taker buy base and quote."""
    start = np.arange(start_ms, end_ms, interval_ms, dtype=np.int64)
    for a, b in holes:
        start = start[(start < a) | (start >= b)]
    rng = np.random.default_rng(seed)
    n = len(start)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 4)
    open_ = np.round(np.r_[close[0], close[:-1]], 4)
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 1e-3, n)), 4)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 1e-3, n)), 4)
    volume = np.round(rng.uniform(1, 50, n), 3)
    vwap = np.clip(np.round((high + low + close) / 3, 4), low, high)
    taker = np.round(volume * rng.uniform(0.2, 0.8, n), 3)
    return pd.DataFrame({"start": start, "open": open_, "high": high, "low": low, "close": close,
                         "volume": volume, "close_time": start + interval_ms - 1,
                         "quote_volume": np.round(volume * vwap, 5), "trades": rng.integers(1, 400, n),
                         "taker_buy_volume": taker, "taker_buy_quote_volume": np.round(taker * vwap, 5)})


def publish_funding_dumps(fake: FakeBinance, symbol: str, start_ms: int, end_ms: int, seed: int = 11) -> None:
    """Monthly funding dumps of ``symbol`` (calc_time, funding_interval_hours, last_funding_rate)
    with the same seeded settlements REST serves, for each month of [start_ms, end_ms)."""
    from statarb_kit.exchange.binance.funding_files import funding_dump_name

    f = synthetic_funding(symbol, *(fake.funding_span or (start_ms, end_ms)), seed=seed)
    months = pd.date_range(pd.Timestamp(start_ms, unit="ms", tz="UTC").floor("D").replace(day=1),
                           pd.Timestamp(end_ms, unit="ms", tz="UTC"), freq="MS")
    for m in months:
        lo = int(m.value // 1_000_000)
        hi = int((m + pd.offsets.MonthBegin(1)).value // 1_000_000)
        keep = (f.time >= max(lo, start_ms)) & (f.time < min(hi, end_ms))
        if not keep.any():
            continue
        path, name = funding_dump_name(symbol, m.year, m.month)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(name.replace(".zip", ".csv"), "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
                f"{int(t) + 3},8,{r:.8f}\n" for t, r in zip(f.time[keep], f.rate[keep])))
        fake.publish(path, buf.getvalue())


def read_quote_frames(path: Path | str) -> tuple[str, tuple[np.ndarray, list[bytes]]]:
    """(symbol, (receive-clock due ms, frames)) of a recorded file's @bookTicker frames, byte for byte."""
    due: list[int] = []
    raw: list[bytes] = []
    with gzip.open(path, "rb") as f:
        for line in f:
            recv, _, frame = line.rstrip(b"\n").partition(b" ")
            if b"@bookTicker" in frame[:40]:
                due.append(int(recv) // 1_000_000)
                raw.append(frame)
    return Path(path).name.split("_")[0].upper(), (np.array(due, dtype=np.int64), raw)


def read_tape_quotes(path: Path | str):
    """The @bookTicker quotes of one recorded file (``statarb_kit.quotes.Quotes``)."""
    from statarb_kit.quotes import parse_book_tickers

    frames = [line.split(b" ", 1)[1] for line in gzip.open(path) if b"@bookTicker" in line]
    symbol = Path(path).name.split("_")[0].upper()
    return parse_book_tickers(symbol, frames)


def write_tape_dumps(folder: Path) -> tuple[list[Path], dict]:
    """The shared tape written as Binance's trades and bookTicker dumps of its day (CSV with
    headers) in ``folder``: (the files, symbol -> its ``Quotes``)."""
    import pandas as pd

    files, tapes = [], {}
    for path in recorded_files():
        t, q = read_recording(path), read_tape_quotes(path)
        tapes[t.symbol] = q
        trades = folder / f"{t.symbol}-trades-2024-08-08.csv"
        pd.DataFrame({"id": t.trade_id, "price": t.price, "qty": t.qty, "quote_qty": t.price * t.qty, "time": t.ts,
                      "is_buyer_maker": t.buyer_maker}).to_csv(trades, index=False)
        book = folder / f"{t.symbol}-bookTicker-2024-08-08.csv"
        pd.DataFrame({"update_id": q.update_id, "best_bid_price": q.bid, "best_bid_qty": q.bid_qty,
                      "best_ask_price": q.ask, "best_ask_qty": q.ask_qty, "transaction_time": q.time_ms,
                      "event_time": q.time_ms}).to_csv(book, index=False)
        files += [trades, book]
    return files, tapes
