"""Binance klines: the dump files' names and layout, reading them, and REST pages, all into one
frame of bars.

Dump files (``data/{futures/um,spot}/{monthly,daily}/klines/SYMBOL/INTERVAL/``):
``SYMBOL-INTERVAL-YYYY-MM.zip`` (a whole month, published early the next month) and
``SYMBOL-INTERVAL-YYYY-MM-DD.zip`` (a day, published the next day), each with a ``.CHECKSUM``.
Columns: open_time, open, high, low, close, volume, close_time, quote_volume, count,
taker_buy_volume, taker_buy_quote_volume, ignore. Layouts differ by date (USD-M files before
2022-05 have no header; spot times are microseconds from 2025-01-01), so both are detected per
file, from its own first lines, never from its date.

The frame of bars (``KLINE_BAR_COLUMNS``): start (open time, ms UTC), OHLC, volume, quote_volume,
trades, taker_buy_volume; one row per bar Binance has. A bar Binance does not have is absent.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import InvalidParameter
from .history import HistoryFileError, zip_text

FILE_COLUMNS = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
                "taker_buy_volume", "taker_buy_quote_volume", "ignore"]
KLINE_BAR_COLUMNS = ["start", "open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume"]
#: The intervals Binance publishes klines for, per market, and their length in ms.
INTERVAL_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000}
MARKET_INTERVALS = {"um": tuple(i for i in INTERVAL_MS if i != "1s"), "spot": tuple(INTERVAL_MS)}
MARKET_PATHS = {"um": "/data/futures/um", "spot": "/data/spot"}
_US_THRESHOLD = 10**14  # ms open times are ~1.7e12, microsecond ones ~1.7e15
_NAME = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<interval>\d+[A-Za-z])-(?P<date>\d{4}-\d{2}(-\d{2})?)\.(zip|csv)$")


def check_interval(interval: str, market: str = "um") -> int:
    """The interval's length in ms; InvalidParameter for one Binance does not publish on ``market``."""
    if market not in MARKET_INTERVALS:
        raise InvalidParameter(f"market must be one of {', '.join(MARKET_INTERVALS)}, got {market!r}")
    if interval not in MARKET_INTERVALS[market]:
        raise InvalidParameter(f"interval {interval!r}: Binance publishes {market} klines for "
                               f"{', '.join(MARKET_INTERVALS[market])}")
    return INTERVAL_MS[interval]


@dataclass(frozen=True)
class KlineJob:
    """One dump file to fetch: its URL path, file name, and the UTC days [first, last] it covers."""

    path: str
    name: str
    first: dt.date
    last: dt.date


def kline_jobs(symbol: str, interval: str, start: dt.date, end: dt.date, today: dt.date,
               market: str = "um") -> list[KlineJob]:
    """The dump files covering UTC days ``start``..``end`` (inclusive) that can be published by
    ``today``: a monthly file for each whole month that ended before today's month, daily files
    for the other days before today (today's own bars come from REST)."""
    check_interval(interval, market)
    end = min(end, today - dt.timedelta(days=1))
    jobs: list[KlineJob] = []
    day = start
    base = MARKET_PATHS[market]
    while day <= end:
        month_end = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        if day.day == 1 and month_end <= end and month_end < today.replace(day=1):
            name = f"{symbol}-{interval}-{day:%Y-%m}.zip"
            jobs.append(KlineJob(f"{base}/monthly/klines/{symbol}/{interval}/{name}", name, day, month_end))
            day = month_end + dt.timedelta(days=1)
            continue
        jobs.append(_daily(symbol, interval, day, market))
        day += dt.timedelta(days=1)
    return jobs


def _daily(symbol: str, interval: str, day: dt.date, market: str) -> KlineJob:
    name = f"{symbol}-{interval}-{day:%Y-%m-%d}.zip"
    return KlineJob(f"{MARKET_PATHS[market]}/daily/klines/{symbol}/{interval}/{name}", name, day, day)


def daily_jobs(job: KlineJob, symbol: str, interval: str, market: str = "um") -> list[KlineJob]:
    """The daily files of a monthly job's days (for a month whose file is not published yet)."""
    days = (job.last - job.first).days + 1
    return [_daily(symbol, interval, job.first + dt.timedelta(days=k), market) for k in range(days)]


@dataclass(frozen=True)
class KlineFile:
    """What a kline dump's name says: symbol, interval and date (``YYYY-MM-DD`` or ``YYYY-MM``)."""

    path: Path
    symbol: str
    interval: str
    date: str

    @classmethod
    def of(cls, path: str | Path) -> KlineFile:
        p = Path(path)
        m = _NAME.match(p.name)
        if m is None or m["interval"] not in INTERVAL_MS:
            raise InvalidParameter(f"{p.name}: not a Binance kline dump name (SYMBOL-1m-YYYY-MM.zip or "
                                   "SYMBOL-1m-YYYY-MM-DD.zip)")
        return cls(p, m["symbol"], m["interval"], m["date"])


@dataclass(frozen=True)
class KlineRead:
    """The bars of one file (KLINE_BAR_COLUMNS, sorted by start) and how its layout was found."""

    bars: pd.DataFrame
    header: bool
    microseconds: bool
    skipped: int


def read_klines(f: KlineFile, skip_bad: bool = False) -> KlineRead:
    """Read one kline dump. The header row and microsecond times are detected from the file
    itself. A corrupt line raises HistoryFileError naming the file and line, or with ``skip_bad``
    is skipped and counted. A bar whose close time does not match the file's interval is
    refused: the file is not what its name says."""
    try:
        text = zip_text(f.path)
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryFileError(f"{f.path}: cannot read: {exc}") from None
    first = text.split("\n", 1)[0].strip()
    header = bool(first) and not first[:1].isdigit()
    if header and not first.startswith("open_time"):
        raise HistoryFileError(f"{f.path}: first line {first[:80]!r} is neither a kline row nor Binance's kline header")
    try:
        raw = pd.read_csv(io.StringIO(text), header=None, skiprows=int(header), names=FILE_COLUMNS, dtype=str,
                          on_bad_lines="skip" if skip_bad else "error", engine="c")
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f", line {int(m[1]) + int(header)}" if m else ""
        raise HistoryFileError(f"{f.path}{where}: not a kline row ({exc}); use --skip-bad to skip and count "
                               "such lines") from None
    lines = len([ln for ln in text.splitlines()[int(header):] if ln.strip()])
    num = {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(np.float64) for c in FILE_COLUMNS[:11]}
    bad = np.zeros(len(raw), dtype=bool)
    for v in num.values():
        bad |= ~np.isfinite(v)
    if bad.any() and not skip_bad:
        row = int(np.flatnonzero(bad)[0])
        raise HistoryFileError(f"{f.path}, line {row + int(header) + 1}: not a valid kline row "
                               f"{raw.iloc[row].tolist()[:11]!r}; use --skip-bad to skip and count such lines")
    num = {c: v[~bad] for c, v in num.items()}
    open_t, close_t = num["open_time"].astype(np.int64), num["close_time"].astype(np.int64)
    micro = bool(len(open_t)) and int(open_t.max()) > _US_THRESHOLD
    if micro:
        open_t, close_t = open_t // 1000, close_t // 1000
    step = INTERVAL_MS[f.interval]
    wrong = (close_t - open_t != step - 1) | (open_t % step != 0)
    if f.interval != "1d" and wrong.any():  # daily bars of old files can start at a local midnight
        i = int(np.flatnonzero(wrong)[0])
        raise HistoryFileError(f"{f.path}: bar opening at {open_t[i]} closes at {close_t[i]}, not a {f.interval} "
                               "bar: the file is not what its name says")
    return KlineRead(_bars(open_t, num), header, micro, max(0, lines - len(raw)) + int(bad.sum()))


def bars_of_rest(rows: list[list]) -> pd.DataFrame:
    """The bars of a ``/fapi/v1/klines`` page (arrays of 12 values, numbers as strings)."""
    if not rows:
        return pd.DataFrame({c: np.empty(0, np.int64 if c in ("start", "trades") else np.float64)
                             for c in KLINE_BAR_COLUMNS})
    a = np.array([r[:11] for r in rows], dtype=np.float64)
    num = {c: a[:, i] for i, c in enumerate(FILE_COLUMNS[:11])}
    return _bars(a[:, 0].astype(np.int64), num)


def _bars(open_t: np.ndarray, num: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame({"start": open_t, "open": num["open"], "high": num["high"], "low": num["low"],
                          "close": num["close"], "volume": num["volume"], "quote_volume": num["quote_volume"],
                          "trades": num["count"].astype(np.int64), "taker_buy_volume": num["taker_buy_volume"]})
    return frame.sort_values("start", kind="stable").drop_duplicates("start", keep="last", ignore_index=True)
