"""Funding rates as they are now: live from Binance's ``<symbol>@markPrice@1s`` stream (a
``/market``-tier stream), or from the seeded synthetic rates.

A markPrice frame carries the current funding rate ``r`` (the rate of the next settlement, as
estimated so far) and the next funding time ``T``. When ``T`` moves on, the settlement at the old
``T`` has happened at the last rate published before it: it is handed to ``on_settled`` (the
session stores it in table ``funding`` with origin "stream").
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import websockets

from ...funding import HOUR_MS, FundingRates, synthetic_funding
from ...ticks import now_ms
from .routes import stream_url

log = logging.getLogger(__name__)

#: Binance's default interval, assumed until a symbol's own is seen (two settlements).
DEFAULT_INTERVAL_H = 8.0


@dataclass(frozen=True)
class FundingNow:
    """A symbol's funding now: ``rate`` of the next settlement (fraction; > 0: longs pay),
    ``next_ms`` (UTC), ``interval_h`` between settlements and whether it was ``seen`` (False:
    assumed), ``time_ms`` of the update and ``origin`` (stream or synthetic)."""

    symbol: str
    rate: float
    next_ms: int
    interval_h: float
    interval_seen: bool
    time_ms: int
    origin: str


class FundingProvider:
    """What a dashboard asks: ``current(symbol)`` (None: not known yet). A ``live`` provider is
    run by its session (``run``), which hands each settlement it sees to ``on_settled``."""

    live = False
    on_settled: Callable[[FundingRates], None] | None = None

    async def run(self) -> None:  # pragma: no cover - only live providers are run
        """Follow the exchange until cancelled (live providers)."""
        raise NotImplementedError

    def current(self, symbol: str, at_ms: int | None = None) -> FundingNow | None:  # pragma: no cover
        """``at_ms``: the data's time (accelerated synthetic data runs ahead of the clock)."""
        raise NotImplementedError

    def settled(self, symbol: str, start_ms: int, end_ms: int) -> FundingRates | None:
        """The settlements of ``symbol`` with start_ms < time <= end_ms that this provider saw
        (None: it cannot say; paper trading then leaves funding out)."""
        return None


class SyntheticFundingNow(FundingProvider):
    """The synthetic source's rates (``statarb_kit.funding.synthetic_funding``, the same seed):
    the next settlement's rate, known in advance here."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self._cache: dict[tuple[str, int], FundingRates] = {}

    def current(self, symbol: str, at_ms: int | None = None) -> FundingNow:
        t = now_ms() if at_ms is None else at_ms
        day = t // (24 * HOUR_MS)
        key = (symbol, int(day))
        if key not in self._cache:  # one entry per symbol: a dashboard asks for both legs in turn
            start = day * 24 * HOUR_MS - 24 * HOUR_MS
            self._cache = {k: v for k, v in self._cache.items() if k[0] != symbol}
            self._cache[key] = synthetic_funding(symbol, start, start + 72 * HOUR_MS, self.seed)
        f = self._cache[key]
        k = int(np.searchsorted(f.time, t, side="right"))
        return FundingNow(symbol, float(f.rate[k]), int(f.time[k]), DEFAULT_INTERVAL_H, True, t, "synthetic")

    def settled(self, symbol: str, start_ms: int, end_ms: int) -> FundingRates:
        """Each settlement at the rate ``current`` announced for it just before."""
        step = int(DEFAULT_INTERVAL_H * HOUR_MS)
        times = np.arange((start_ms // step + 1) * step, end_ms + 1, step, dtype=np.int64)
        rates = np.array([self.current(symbol, int(t) - 1).rate for t in times])
        return FundingRates(symbol, times, rates, "synthetic")


class MarkPriceStream(FundingProvider):
    """Runs one connection to ``<symbol>@markPrice@1s`` of every symbol on ``path`` until cancelled
    (reconnecting with capped, jittered backoff). ``malformed`` counts frames it could not read."""

    live = True

    def __init__(self, symbols: tuple[str, ...], ws_url: str, path: str = "/market/stream",
                 on_settled: Callable[[FundingRates], None] | None = None, backoff_max_s: float = 30.0) -> None:
        self.symbols, self.ws_url, self.path = symbols, ws_url, path
        self.on_settled = on_settled
        self.backoff_max_s = backoff_max_s
        self.malformed = 0
        self.connections = 0
        self._now: dict[str, FundingNow] = {}
        self._interval: dict[str, float] = {}
        self._settled: dict[str, list[tuple[int, float]]] = {s: [] for s in symbols}

    @property
    def url(self) -> str:
        return stream_url(self.ws_url, self.path, [f"{s.lower()}@markPrice@1s" for s in self.symbols])

    def current(self, symbol: str, at_ms: int | None = None) -> FundingNow | None:
        return self._now.get(symbol)

    def settled(self, symbol: str, start_ms: int, end_ms: int) -> FundingRates:
        """The settlements this stream saw pass (none before it connected)."""
        seen = [(t, r) for t, r in self._settled.get(symbol, []) if start_ms < t <= end_ms]
        return FundingRates(symbol, np.array([t for t, _ in seen], dtype=np.int64),
                            np.array([r for _, r in seen], dtype=np.float64), "stream")

    def on_frame(self, raw: bytes | str) -> None:
        """Read one frame (combined or raw); a settlement that passed goes to ``on_settled``."""
        try:
            msg = orjson.loads(raw)
            d = msg.get("data", msg)
            if d.get("e") != "markPriceUpdate":
                return
            symbol, rate, nxt, at = d["s"], float(d["r"]), int(d["T"]), int(d["E"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            self.malformed += 1
            return
        if symbol not in self.symbols:
            return
        before = self._now.get(symbol)
        if before is not None and nxt > before.next_ms:  # the settlement at before.next_ms happened
            if before.next_ms > 0:
                self._interval[symbol] = (nxt - before.next_ms) / HOUR_MS
            self._settled[symbol].append((before.next_ms, before.rate))
            if self.on_settled is not None:
                self.on_settled(FundingRates(symbol, np.array([before.next_ms]), np.array([before.rate]), "stream"))
        seen = symbol in self._interval
        self._now[symbol] = FundingNow(symbol, rate, nxt, self._interval.get(symbol, DEFAULT_INTERVAL_H), seen, at,
                                       "stream")

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with websockets.connect(self.url, open_timeout=10, max_size=2**20) as ws:
                    self.connections += 1
                    delay = 0.5
                    async for raw in ws:
                        self.on_frame(raw)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.warning("markPrice stream: %s; reconnecting in %.1f s", exc, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self.backoff_max_s, delay * 2)


def net_funding_per_day(x: FundingNow, y: FundingNow, beta: float, price_x: float, price_y: float,
                        log_prices: bool = False) -> float:
    """What a LONG_SPREAD position of 1 unit of gross notional (the engine's sizing: long x, short
    beta of y) receives from funding per day at the current rates (a SHORT_SPREAD receives the
    negative); each leg at its own interval."""
    if log_prices:
        wx, wy = 1.0 / (1.0 + abs(beta)), beta / (1.0 + abs(beta))
    else:
        k = 1.0 / (price_x + abs(beta) * price_y)
        wx, wy = k * price_x, beta * k * price_y
    return -wx * x.rate * 24.0 / x.interval_h + wy * y.rate * 24.0 / y.interval_h
