"""The keyless Binance USD-M REST calls the live source needs, within the request-weight limit,
and exact gap fills built from them.

Which endpoint fills a gap of trade ids [lo, hi]:
- ``GET /fapi/v1/trades?limit=1000`` (weight 5, no key): the newest 1,000 trades, exact (id,
  price, qty, time, side). Used whenever the gap lies within them: the usual case after a
  reconnect, a stall or at a stop.
- ``GET /fapi/v1/historicalTrades`` (weight 20): any trades from an id, exact, but only with an API
  key (``BinanceConfig.api_key``; sent as the ``X-MBX-APIKEY`` header, never logged).
- ``GET /fapi/v1/aggTrades`` (weight 20, no key): beyond the recent trades without a key (a long
  outage, a resume from an old file). The trades of an aggregate already known exactly (received
  beside the gap, or among the recent trades) keep their sizes; the rest of its quantity is split
  evenly over its other trades (via ``agg_split``): per aggregate the stored sizes sum to its
  quantity, so bar volume and VWAP stay exact; single sizes are averages where more than one
  trade of an aggregate was missing (``Fill.averaged`` counts those aggregates).

Funding history: ``GET /fapi/v1/fundingRate`` (no key; at most 1,000 settlements per call, paged
by time; Binance shares 500 calls per 5 minutes per IP between it and fundingInfo).

Binance allows 2,400 weight per minute per IP; ``WeightBudget`` keeps this client under its own
budget (``rest_weight_per_min``) and the client honours 429/418 Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from ...errors import InvalidParameter, StatarbError
from ...funding import FundingRates
from ...sources.base import SourceStatus
from ...ticks import TickBatch, now_ms
from .frames import expand_agg_trades, rest_trades_batch

log = logging.getLogger(__name__)

#: Request weight of each endpoint (Binance USD-M, IP limit 2,400 per minute).
WEIGHTS = {"/fapi/v1/trades": 5, "/fapi/v1/historicalTrades": 20, "/fapi/v1/aggTrades": 20,
           "/fapi/v1/exchangeInfo": 1}
FUNDING_LIMIT = 1_000  # most settlements /fapi/v1/fundingRate returns per call
RECENT_LIMIT = 1_000  # most trades /fapi/v1/trades and historicalTrades return per call
AGG_WINDOW_MS = 3_600_000  # aggTrades: startTime..endTime at most one hour per call
AGG_LIMIT = 1_000
KLINE_LIMIT = 1_500  # most klines /fapi/v1/klines returns per call
INVALID_SYMBOL = -1121  # Binance's error code for a symbol it does not list


def kline_weight(limit: int) -> int:
    """Request weight of /fapi/v1/klines by ``limit``: [1,100) 1, [100,500) 2, [500,1000] 5, above 10."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


class RestError(StatarbError):
    """A Binance REST call failed after its retries; ``code`` is Binance's error code when it
    answered one (e.g. -1121 "Invalid symbol" for a symbol it no longer lists)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


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


class WeightBudget:
    """Request weight spent over the last minute; ``spend`` waits until a call fits the budget."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._calls: deque[tuple[float, int]] = deque()

    def used(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        while self._calls and now - self._calls[0][0] >= 60.0:
            self._calls.popleft()
        return sum(w for _, w in self._calls)

    async def spend(self, weight: int) -> None:
        while True:
            now = time.monotonic()
            if not self._calls or self.used(now) + weight <= self.per_minute:
                self._calls.append((now, weight))
                return
            wait = self._calls[0][0] + 60.0 - now
            log.info("REST weight budget of %d per minute reached: waiting %.1f s", self.per_minute, wait)
            await asyncio.sleep(wait)


@dataclass
class Fill:
    """Trades REST returned for a range of ids, and the ids it confirms Binance never printed."""

    batch: TickBatch
    holes: list[tuple[int, int]] = field(default_factory=list)
    last_id: int | None = None  # newest id the fill reached (catch-ups: where the stream takes over)
    last_ts: int = 0
    averaged: int = 0  # aggregates whose missing trades got an average size (more than one was missing)


class RestClient:
    """REST calls over one httpx client: retries, Retry-After, the weight budget."""

    def __init__(self, http: httpx.AsyncClient, status: SourceStatus, budget: WeightBudget, *,
                 retries: int = 5, backoff_initial_s: float = 0.5, max_wait_s: float = 60.0,
                 api_key: str | None = None) -> None:
        self.http, self.status, self.budget = http, status, budget
        self.retries, self.backoff_initial_s, self.max_wait_s = retries, backoff_initial_s, max_wait_s
        self._api_key = api_key

    async def get(self, path: str, params: dict | None = None, headers: dict | None = None,
                  weight: int | None = None) -> object:
        """The JSON answer of GET ``path``; ``weight`` (default: WEIGHTS) is spent from the budget first."""
        backoff = Backoff(self.backoff_initial_s, self.max_wait_s)
        for attempt in range(self.retries + 1):
            await self.budget.spend(weight if weight is not None else WEIGHTS.get(path, 1))
            try:
                r = await self.http.get(path, params=params, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == self.retries:
                    raise RestError(f"GET {path} failed: {exc}") from exc
                await asyncio.sleep(backoff.next())
                continue
            if r.status_code in (418, 429) or r.status_code >= 500:
                wait = _retry_after(r) or backoff.next()
                self.status.last_error = f"REST {path}: HTTP {r.status_code}, retrying in {wait:.1f} s"
                log.warning(self.status.last_error)
                if attempt == self.retries:
                    break
                await asyncio.sleep(min(wait, self.max_wait_s))
                continue
            if r.status_code >= 400:
                try:
                    code = int(r.json().get("code"))
                except (ValueError, TypeError, AttributeError):
                    code = None
                raise RestError(f"GET {path} {params}: HTTP {r.status_code}: {r.text[:200]}", code)
            return r.json()
        raise RestError(f"GET {path}: still failing after {self.retries} retries")

    async def listed(self) -> dict[str, str]:
        """Every symbol exchangeInfo lists, with its status (TRADING, SETTLING...)."""
        return listed_of(await self.get("/fapi/v1/exchangeInfo"))

    async def recent_trades(self, symbol: str, limit: int = RECENT_LIMIT) -> list[dict]:
        """The newest ``limit`` (<= 1,000) trades, oldest first, exact."""
        return await self.get("/fapi/v1/trades", {"symbol": symbol, "limit": limit})

    async def latest_trade(self, symbol: str) -> tuple[int, int] | None:
        """(id, time ms) of the newest trade Binance has printed for ``symbol`` (None: none yet)."""
        rows = await self.recent_trades(symbol, 1)
        return (int(rows[-1]["id"]), int(rows[-1]["time"])) if rows else None

    async def historical_trades(self, symbol: str, from_id: int, to_id: int) -> list[dict]:
        """Exact trades with ids from ``from_id`` to ``to_id`` (needs the API key), paged."""
        rows: list[dict] = []
        nxt = from_id
        while nxt <= to_id:
            page = await self.get("/fapi/v1/historicalTrades",
                                  {"symbol": symbol, "fromId": nxt, "limit": RECENT_LIMIT},
                                  headers={"X-MBX-APIKEY": self._api_key or ""})
            rows.extend(r for r in page if int(r["id"]) <= to_id)
            if len(page) < RECENT_LIMIT:
                break
            nxt = int(page[-1]["id"]) + 1
        return rows

    async def funding_rates(self, symbol: str, start_ms: int, end_ms: int) -> FundingRates:
        """Every settlement of ``symbol`` in [start_ms, end_ms], paged by time."""
        times: list[int] = []
        rates: list[float] = []
        lo = start_ms
        while lo <= end_ms:
            page = await self.get("/fapi/v1/fundingRate",
                                  {"symbol": symbol, "startTime": lo, "endTime": end_ms, "limit": FUNDING_LIMIT})
            for row in page:
                t = int(row["fundingTime"])
                if not times or t > times[-1]:
                    times.append(t)
                    rates.append(float(row["fundingRate"]))
            if len(page) < FUNDING_LIMIT:
                break
            lo = int(page[-1]["fundingTime"]) + 1
        return FundingRates(symbol, np.array(times, dtype=np.int64), np.array(rates), "rest")

    async def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> tuple[pd.DataFrame, int]:
        """The bars (``klines.KLINE_BAR_COLUMNS``) of ``symbol`` opening in [start_ms, end_ms] that
        have closed by ``end_ms``, paged by open time, KLINE_LIMIT a call; and the number of calls."""
        from .klines import INTERVAL_MS, bars_of_rest

        step = INTERVAL_MS[interval]
        pages = []
        lo = start_ms
        while lo + step - 1 <= end_ms:
            limit = min(KLINE_LIMIT, (end_ms - lo) // step + 1)
            page = await self.get("/fapi/v1/klines", {"symbol": symbol, "interval": interval, "startTime": lo,
                                                      "endTime": end_ms, "limit": limit}, weight=kline_weight(limit))
            bars = bars_of_rest(page)
            pages.append(bars[bars["start"] + step - 1 <= end_ms])
            if len(page) < limit:
                break
            lo = int(bars["start"].iloc[-1]) + step
        return (pd.concat(pages, ignore_index=True) if pages else bars_of_rest([])), len(pages)

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

    async def fill(self, symbol: str, code: int, lo: int | None, hi: int | None, lo_ts: int,
                   until_ms: int | None = None, known: Mapping[int, float] | None = None) -> Fill:
        """Trades of ``symbol`` with ids ``lo``..``hi`` (None: up to the newest, or the newest at
        or before ``until_ms``), ``lo_ts`` being a time at or before trade ``lo`` (``lo`` None:
        every trade from time ``lo_ts`` on). Exact from the recent trades when they reach back to
        ``lo``; else the older part from historicalTrades (with a key) or split from aggTrades,
        where ``known`` (trade id -> exact quantity of trades received beside the range) and the
        recent trades keep an aggregate's total exact. A backlog batch, each row marked with its
        ``via``."""
        newest = await self.recent_trades(symbol)
        if lo is None:  # from a time: the first id at or after it
            lo = await self._first_id_since(symbol, lo_ts, newest)
            if lo is None:
                return Fill(TickBatch.empty().as_backlog())
        recent = [r for r in newest if until_ms is None or int(r["time"]) <= until_ms]
        if hi is not None:
            top = hi
        elif recent:
            top = int(recent[-1]["id"])
        else:  # nothing recent at or before until_ms: what there is lies before the recent trades
            top = int(newest[0]["id"]) - 1 if newest else lo - 1
        parts: list[TickBatch] = []
        averaged = 0
        first_recent = int(recent[0]["id"]) if recent else top + 1
        if lo < first_recent and lo <= top:  # older than the recent trades reach
            older_hi = min(top, first_recent - 1)
            if self._api_key:
                rows = await self.historical_trades(symbol, lo, older_hi)
                parts.append(rest_trades_batch(rows, code, lo, older_hi, "historical_trades", now_ms()))
            else:
                end_ms = int(recent[0]["time"]) if recent else (until_ms or now_ms())
                rows = await self.agg_trades(symbol, lo_ts, end_ms)
                exact = {**(known or {}), **{int(r["id"]): float(r["qty"]) for r in newest}}
                split, averaged = expand_agg_trades(rows, code, lo, older_hi, now_ms(), exact)
                parts.append(split)
        parts.append(rest_trades_batch(recent, code, max(lo, first_recent), top, "recent_trades", now_ms()))
        batch = TickBatch.concat([p for p in parts if len(p)]).as_backlog()
        last = int(batch.trade_id.max()) if len(batch) else None
        reach = top if hi is not None else (last if last is not None else lo - 1)  # open ranges end at the last got
        holes = _holes(np.unique(batch.trade_id), lo, reach) if reach >= lo else []
        last_ts = int(batch.ts[batch.trade_id == last][0]) if last is not None else 0
        return Fill(batch, holes, last, last_ts, averaged)

    async def _first_id_since(self, symbol: str, since_ms: int, newest: list[dict]) -> int | None:
        """Id of the first trade at or after ``since_ms`` (None: none yet): from the recent trades
        if they reach back before it, else from the aggregates."""
        after = [int(r["id"]) for r in newest if int(r["time"]) >= since_ms]
        if not after:
            return None
        if int(newest[0]["time"]) < since_ms or len(newest) < RECENT_LIMIT:  # reaches back, or is all there is
            return after[0]
        aggs = await self.agg_trades(symbol, since_ms, int(newest[0]["time"]))
        return min([after[0], *(int(a["f"]) for a in aggs)])


def listed_of(info: dict) -> dict[str, str]:
    """Symbol -> status of an exchangeInfo answer."""
    return {s["symbol"]: s.get("status", "TRADING") for s in info["symbols"]}


def refuse_unlisted(symbols: tuple[str, ...], rest_url: str, timeout_s: float = 10.0) -> None:
    """Up front, before anything connects or records (a blocking call): ``check_listed`` on
    ``/fapi/v1/exchangeInfo``. When the API cannot be reached, nothing is refused here (the
    stream checks again when it starts)."""
    try:
        info = httpx.get(f"{rest_url.rstrip('/')}/fapi/v1/exchangeInfo", timeout=timeout_s)
        info.raise_for_status()
        listed = listed_of(info.json())
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("exchangeInfo unreachable (%s): symbols not checked up front", exc)
        return
    check_listed(symbols, listed)


def check_listed(symbols: tuple[str, ...], listed: dict[str, str]) -> None:
    """InvalidParameter naming the ``symbols`` that ``listed`` (exchangeInfo's symbol -> status)
    does not have, or has but not TRADING."""
    unknown = [s for s in symbols if s not in listed]
    halted = [f"{s} ({listed[s]})" for s in symbols if s in listed and listed[s] != "TRADING"]
    if unknown or halted:
        raise InvalidParameter(
            "Binance USD-M Futures " + "; ".join(
                ([f"lists no symbol {', '.join(unknown)}"] if unknown else [])
                + ([f"does not trade {', '.join(halted)}"] if halted else []))
            + " (exchangeInfo): check the spelling, e.g. BTCUSDT")


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return float(r.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _holes(have: np.ndarray, lo: int, hi: int) -> list[tuple[int, int]]:
    """Ranges of [lo, hi] not in the sorted unique ids ``have``."""
    edges = np.concatenate(([lo - 1], have, [hi + 1]))
    gaps = np.flatnonzero(np.diff(edges) > 1)
    return [(int(edges[i]) + 1, int(edges[i + 1]) - 1) for i in gaps]


async def fetch_funding(symbols: list[str], start_ms: int, end_ms: int, rest_url: str,
                        weight_per_min: int = 1_200) -> dict[str, FundingRates]:
    """Each symbol's settlements in [start_ms, end_ms] from ``rest_url``'s /fapi/v1/fundingRate."""
    status = SourceStatus(name="funding")
    async with httpx.AsyncClient(base_url=rest_url, timeout=30.0) as http:
        rest = RestClient(http, status, WeightBudget(weight_per_min))
        return {s: await rest.funding_rates(s, start_ms, end_ms) for s in symbols}
