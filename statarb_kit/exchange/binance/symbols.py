"""Every symbol Binance ever listed, point in time: the data site's bucket listing (which keeps
delisted symbols) joined with ``/fapi/v1/exchangeInfo`` (live symbols only, with contractType,
status, onboardDate, deliveryDate, underlyingType).

First and last day per symbol come from the kline files the site holds for it (monthly and
daily, of one interval; a monthly file says only its month, so exchangeInfo's onboardDate, when
later, gives the first day), so a delisted symbol has a last day and a scan of a past range can
include it (no survivorship bias) while leaving out what was listed later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import xml.etree.ElementTree as ET

import httpx
import pandas as pd
from tqdm.auto import tqdm

from ...errors import InvalidParameter
from .endpoints import LISTING_URL, REST_URL
from .klines import MARKET_PATHS, check_interval

_S3 = "{http://s3.amazonaws.com/doc/2006-03-01/}"
#: Base assets pegged to a fiat currency: a pair of two is not a statistical arbitrage.
STABLECOINS = frozenset({"USDC", "FDUSD", "TUSD", "BUSD", "USDP", "DAI", "USDE", "PYUSD", "USD1", "RLUSD", "BFUSD",
                         "USDS", "XUSD"})
QUOTES = ("USDT", "USDC", "BUSD")
#: What ``exclude`` can leave out, and how each is told.
EXCLUSIONS = {"delivery": "delivery contract (expires)", "stablecoin": "stablecoin base asset",
              "stock": "tokenised stock or equity index (underlyingType)"}
_STOCK_TYPES = frozenset({"EQUITY", "STOCK", "TRADFI"})
_FILE_DATE = re.compile(r"-(\d{4}-\d{2}(-\d{2})?)\.zip$")
CONCURRENT = 8


async def list_bucket(http: httpx.AsyncClient, prefix: str) -> tuple[list[str], list[str]]:
    """Common prefixes (one level, delimiter "/") and keys under ``prefix``, following NextMarker."""
    prefixes: list[str] = []
    keys: list[str] = []
    marker = ""
    while True:
        r = await http.get("/", params={"delimiter": "/", "prefix": prefix, "marker": marker})
        r.raise_for_status()
        try:
            root = ET.fromstring(r.content)
        except ET.ParseError as exc:
            raise InvalidParameter(f"the bucket listing of {prefix} is not S3 XML ({exc}): is the listing URL right?")
        prefixes += [e.text for e in root.iter(f"{_S3}Prefix") if e.text and e.text != prefix]
        keys += [e.text for e in root.iter(f"{_S3}Key") if e.text]
        if (root.findtext(f"{_S3}IsTruncated") or "false") != "true":
            return prefixes, keys
        nxt = root.findtext(f"{_S3}NextMarker") or (keys[-1] if keys else prefixes[-1])
        if nxt <= marker:
            raise InvalidParameter(f"the bucket listing of {prefix} does not advance past {marker!r}")
        marker = nxt


def _span(keys: list[str]) -> tuple[dt.date | None, dt.date | None]:
    """First and last day the kline files of ``keys`` cover."""
    days = []
    for k in keys:
        m = _FILE_DATE.search(k)
        if m is None:
            continue
        if m[2]:
            d = dt.date.fromisoformat(m[1])
            days += [d, d]
        else:
            first = dt.date.fromisoformat(m[1] + "-01")
            days += [first, (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)]
    return (min(days), max(days)) if days else (None, None)


async def fetch_universe(market: str = "um", interval: str = "1m", listing_url: str = LISTING_URL,
                         rest_url: str = REST_URL, progress: bool = True) -> pd.DataFrame:
    """One row per symbol ever listed on ``market`` (the site's kline folders and exchangeInfo):
    symbol, contract_type, status (DELISTED when exchangeInfo no longer has it), underlying_type,
    onboard, delivery (exchangeInfo's, UTC), first and last (days the site's ``interval`` kline
    files cover), on_exchange_info. Sorted by symbol."""
    check_interval(interval, market)
    base = MARKET_PATHS[market].lstrip("/")
    async with (httpx.AsyncClient(base_url=listing_url, timeout=60.0, follow_redirects=True) as site,
                httpx.AsyncClient(base_url=rest_url, timeout=30.0) as api):
        folders = set()
        for period in ("monthly", "daily"):
            got, _ = await list_bucket(site, f"{base}/{period}/klines/")
            folders |= {p.rstrip("/").rsplit("/", 1)[1] for p in got}
        info: dict[str, dict] = {}
        if market == "um":
            r = await api.get("/fapi/v1/exchangeInfo")
            r.raise_for_status()
            info = {s["symbol"]: s for s in r.json()["symbols"]}
        symbols = sorted(folders | set(info))
        gate = asyncio.Semaphore(CONCURRENT)
        bar = tqdm(total=len(symbols), desc="universe", unit="symbol", disable=not progress)

        async def span(symbol: str) -> tuple[dt.date | None, dt.date | None]:
            if symbol not in folders:
                return None, None
            async with gate:
                keys = []
                for period in ("monthly", "daily"):
                    keys += (await list_bucket(site, f"{base}/{period}/klines/{symbol}/{interval}/"))[1]
                bar.update()
                return _span(keys)

        try:
            spans = await asyncio.gather(*(span(s) for s in symbols))
        finally:
            bar.close()
    return universe_frame(symbols, info, spans)


def _utc_day(ms: object) -> pd.Timestamp | None:
    try:
        t = pd.Timestamp(int(ms), unit="ms", tz="UTC")
    except (TypeError, ValueError):
        return None
    return t if t.year < 2100 else None  # perpetuals carry deliveryDate 2100-12-25


def universe_frame(symbols: list[str], info: dict[str, dict],
                   spans: list[tuple[dt.date | None, dt.date | None]]) -> pd.DataFrame:
    """The universe table of ``fetch_universe`` from its parts (exchangeInfo rows by symbol)."""
    rows = []
    for s, (first, last) in zip(symbols, spans):
        i = info.get(s)
        rows.append({"symbol": s,
                     "contract_type": (i.get("contractType") or "") if i else ("DELIVERY" if "_" in s else "PERPETUAL"),
                     "status": i.get("status", "TRADING") if i else "DELISTED",
                     "underlying_type": (i.get("underlyingType") or "") if i else "",
                     "onboard": _utc_day(i.get("onboardDate")) if i else None,
                     "delivery": _utc_day(i.get("deliveryDate")) if i else None,
                     "first": pd.Timestamp(first, tz="UTC") if first else None,
                     "last": pd.Timestamp(last, tz="UTC") if last else None,
                     "on_exchange_info": i is not None})
    u = pd.DataFrame(rows, columns=["symbol", "contract_type", "status", "underlying_type", "onboard", "delivery",
                                    "first", "last", "on_exchange_info"])
    for c in ("onboard", "delivery", "first", "last"):
        u[c] = pd.to_datetime(u[c], utc=True)
    onboard = u["onboard"].dt.floor("D")
    # a monthly file says only the month: exchangeInfo's onboardDate, when later, is the first day
    u["first"] = u["first"].where(u["first"].notna() & ~(onboard > u["first"]), onboard)
    return u


def base_asset(symbol: str) -> str:
    s = symbol.split("_", 1)[0]
    for q in QUOTES:
        if s.endswith(q) and len(s) > len(q):
            return s[: -len(q)]
    return s


def exclusions(u: pd.DataFrame, exclude: tuple[str, ...] = tuple(EXCLUSIONS)) -> pd.Series:
    """Why each row of a universe is left out ("" if it is kept), by the ``exclude`` rules."""
    unknown = set(exclude) - set(EXCLUSIONS)
    if unknown:
        raise InvalidParameter(f"unknown exclusion {', '.join(sorted(unknown))}: use {', '.join(EXCLUSIONS)}")
    why = pd.Series("", index=u.index, dtype=object)
    rules = {"delivery": (u["contract_type"] != "PERPETUAL") & (u["contract_type"] != ""),
             "stablecoin": u["symbol"].map(base_asset).isin(STABLECOINS),
             "stock": u["underlying_type"].str.upper().isin(_STOCK_TYPES)}
    for name in exclude:
        why = why.where((why != "") | ~rules[name], EXCLUSIONS[name])
    return why


def point_in_time(u: pd.DataFrame, start: dt.date, end: dt.date, exclude: tuple[str, ...] = tuple(EXCLUSIONS)
                  ) -> tuple[list[str], pd.DataFrame]:
    """The symbols that traded at some time in UTC days ``start``..``end`` (inclusive) and are not
    excluded; and the excluded ones among those that traded, with the reason (symbol, why)."""
    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    last = u["last"].where(u["status"] != "TRADING", pd.Timestamp.max.tz_localize("UTC"))
    traded = u[(u["first"].notna()) & (u["first"] <= hi) & (last.fillna(u["first"]) >= lo)]
    why = exclusions(traded, exclude)
    out = traded[why != ""].assign(why=why[why != ""])[["symbol", "why"]].reset_index(drop=True)
    return traded.loc[why == "", "symbol"].tolist(), out

