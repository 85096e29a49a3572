"""Kline bars of a DuckDB store brought up to date from Binance: its dump files for whole days,
REST ``/fapi/v1/klines`` for what the dumps do not have yet (today, yesterday before it is
published, the head of a partly covered day), and funding rates of perpetuals along.

Each bar keeps where it came from (``kline_dump`` or ``kline_rest``; recorded bars stay as they
are). The store remembers what Binance was asked (``kline_coverage``), so a second update asks
only for what is new, and a bar missing inside the asked span is one Binance does not have: a gap,
reported per symbol, never invented.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...errors import InvalidParameter
from ...funding import FundingRates
from ...sources.base import SourceStatus
from ...store import TickStore
from ...ticks import normalize_symbol, now_ms
from .endpoints import REST_URL
from .funding_files import read_funding_files
from .history import (
    DATA_URL,
    DownloadReport,
    HistoryFileError,
    fetch_all,
    monthly_funding_names,
    network_error,
)
from .klines import INTERVAL_MS, KlineFile, KlineJob, check_interval, daily_jobs, kline_jobs, read_klines
from .rest import INVALID_SYMBOL, RestClient, RestError, WeightBudget

DAY_MS = 86_400_000
CONCURRENT_SYMBOLS = 8  # symbols whose files are fetched at the same time


@dataclass
class SymbolUpdate:
    """What an update did for one (symbol, timeframe). Times are ms UTC."""

    symbol: str
    timeframe: str
    asked: tuple[int, int]  # Binance was asked for bars opening in [asked[0], asked[1])
    files: int = 0  # dump files downloaded
    files_present: int = 0  # already in the download folder with the published checksum
    rest_calls: int = 0
    dump_bars: int = 0  # new bars stored from dump files
    rest_bars: int = 0  # new bars stored from REST
    corrupt: list[str] = field(default_factory=list)  # files that failed their checksum or could not be read
    note: str = ""
    gaps: int = 0  # stretches without a bar between the symbol's first and last stored bar
    missing_bars: int = 0  # bars in those stretches
    last_bar: int | None = None  # open time of the newest stored bar after the update (None: none stored)

    def missing_at_end(self) -> int:
        """Whole bars of the range asked after the newest stored one, that Binance did not give
        (delisted, halted, not yet published): an update that adds nothing for months says so."""
        step = INTERVAL_MS[self.timeframe]
        after = self.asked[0] if self.last_bar is None else max(self.asked[0], self.last_bar + step)
        return max(0, (self.asked[1] - after) // step)


@dataclass
class UpdateReport:
    """An update of a store: one row per (symbol, timeframe), and new funding settlements per symbol."""

    rows: list[SymbolUpdate]
    funding: dict[str, int] = field(default_factory=dict)
    funding_notes: dict[str, str] = field(default_factory=dict)

    @property
    def fetched(self) -> int:
        """Files downloaded plus REST calls: zero when the store was already up to date."""
        return sum(r.files + r.rest_calls for r in self.rows)

    @property
    def corrupt(self) -> list[str]:
        return [c for r in self.rows for c in r.corrupt]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{k: v for k, v in vars(r).items() if k not in ("corrupt", "asked")}
                             | {"from": _utc(r.asked[0]), "to": _utc(r.asked[1]), "corrupt": len(r.corrupt)}
                             for r in self.rows])


def _utc(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _day_of(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def is_perpetual(symbol: str) -> bool:
    """USD-M delivery contracts carry their expiry in the name (BTCUSDT_250328); perpetuals do not."""
    return "_" not in symbol


async def update_klines(store: TickStore, targets: dict[tuple[str, str], tuple[int, int]], *,
                        dest: str | Path | None = None, market: str = "um", base_url: str = DATA_URL,
                        rest_url: str = REST_URL, now: int | None = None, funding: bool = True,
                        skip_bad: bool = False, progress: bool = True, weight_per_min: int = 1_200) -> UpdateReport:
    """Fetch and store every ``(symbol, timeframe)`` bar opening in its ``[lo_ms, hi_ms)`` of
    ``targets`` (``hi_ms`` clipped to the last bar closed by ``now``). Whole UTC days before today
    come from dump files (kept in ``dest``, or a temporary folder), the rest from REST. A corrupt
    file is named in its row and its days are left unasked, so the next update tries again."""
    now = now_ms() if now is None else now
    for _, tf in targets:
        check_interval(tf, market)
    with tempfile.TemporaryDirectory(prefix="statarb-klines-") as tmp:
        folder = Path(dest) if dest is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        limits = httpx.Limits(max_connections=2 * CONCURRENT_SYMBOLS)
        async with (httpx.AsyncClient(base_url=base_url, timeout=60.0, follow_redirects=True, limits=limits) as site,
                    httpx.AsyncClient(base_url=rest_url, timeout=30.0) as api):
            rest = RestClient(api, SourceStatus(name="klines"), WeightBudget(weight_per_min))
            gate = asyncio.Semaphore(CONCURRENT_SYMBOLS)
            bar = tqdm(total=len(targets), desc="update", unit="series", disable=not progress)

            async def one(key: tuple[str, str]) -> SymbolUpdate:
                async with gate:
                    try:
                        return await _update_one(store, key, targets[key], now, folder, market, site, rest, skip_bad)
                    finally:
                        bar.update()

            try:
                rows = list(await asyncio.gather(*(one(k) for k in targets)))
            except httpx.HTTPError as exc:
                raise network_error(exc, base_url) from None
            finally:
                bar.close()
            report = UpdateReport(rows)
            if funding and market == "um":
                await _update_funding(rest, site, folder, store, report)
    last = {tf: store.last_bar_starts(tf) for tf in {r.timeframe for r in report.rows}}
    for r in report.rows:
        gaps = store.bar_gaps(r.timeframe, r.symbol)
        r.gaps, r.missing_bars = len(gaps), int(gaps["missing"].sum()) if len(gaps) else 0
        r.last_bar = last[r.timeframe].get(r.symbol)
    return report


async def _update_one(store: TickStore, key: tuple[str, str], span: tuple[int, int], now: int, folder: Path,
                      market: str, site: httpx.AsyncClient, rest: RestClient, skip_bad: bool) -> SymbolUpdate:
    symbol, tf = key
    step = check_interval(tf, market)
    lo = -(-span[0] // step) * step
    hi = min(span[1], (now + 1) // step * step)  # bars opening before hi have closed by now
    row = SymbolUpdate(symbol, tf, (lo, max(lo, hi)))
    if hi <= lo:
        return row
    today = _day_of(now)
    first_day = _day_of(lo) if lo % DAY_MS == 0 else _day_of(lo) + dt.timedelta(days=1)
    last_day = _day_of(hi) - dt.timedelta(days=1)  # the last day wholly before hi
    jobs = kline_jobs(symbol, tf, first_day, last_day, today, market) if first_day <= last_day else []
    covered, bad_from = await _dumps(store, row, jobs, folder, market, site, today, skip_bad)
    # REST for whatever the present files do not cover, below the first bad file
    stop = min(hi, bad_from)
    holes, at = [], lo
    for a, b in sorted(covered):
        if a > at:
            holes.append((at, min(a, stop)))
        at = max(at, b)
    holes.append((at, stop))
    if market != "um":
        row.note = "spot: dump files only (REST klines are fetched for USD-M)"
    for a, b in holes:
        if b - a < step or row.note:
            continue
        try:
            bars, calls = await rest.klines(symbol, tf, a, b - 1)
            row.rest_calls += calls
        except RestError as exc:
            if exc.code != INVALID_SYMBOL:
                raise
            row.rest_calls += 1
            row.note = "not listed on Binance's REST API now (delisted?): the dumps are all it publishes"
            continue
        row.rest_bars += store.insert_kline_bars(tf, symbol, bars, "kline_rest")
    store.add_coverage(symbol, tf, market, lo, stop, now)
    return row


async def _dumps(store: TickStore, row: SymbolUpdate, jobs: list[KlineJob], folder: Path, market: str,
                 site: httpx.AsyncClient, today: dt.date, skip_bad: bool) -> tuple[list[tuple[int, int]], int]:
    """Fetch and store the dump files of ``jobs``; a monthly file not published yet is replaced by
    that month's daily files. Returns the [ms, ms) spans present files cover and the start of
    the first corrupt file's span (or no limit)."""
    report = DownloadReport([], [], [])
    await fetch_all(site, [(j.path, j.name) for j in jobs], folder, report, progress=False)
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    late = [j for j in jobs if j.name in report.missing and j.first == last_month and j.first != j.last]
    for j in late:  # the month just ended: its monthly file may not be out yet
        extra = daily_jobs(j, row.symbol, row.timeframe, market)
        await fetch_all(site, [(d.path, d.name) for d in extra], folder, report, progress=False)
        jobs = jobs + extra
    by_name = {j.name: j for j in jobs}
    row.files, row.files_present = len(report.downloaded), len(report.skipped)
    bad_from = 2**62
    for message in report.corrupt:
        job = by_name[message.split(":", 1)[0]]
        bad_from = min(bad_from, _day_ms(job.first))
        row.corrupt.append(message)
    covered = []
    for path in sorted(report.downloaded + report.skipped):
        job = by_name[path.name]
        lo, hi = _day_ms(job.first), _day_ms(job.last) + DAY_MS
        try:
            got = read_klines(KlineFile.of(path), skip_bad=skip_bad)
        except HistoryFileError as exc:
            row.corrupt.append(str(exc))
            bad_from = min(bad_from, lo)
            continue
        outside = got.bars[(got.bars["start"] < lo) | (got.bars["start"] >= hi)]
        if len(outside):
            row.corrupt.append(f"{path.name}: a bar opens at {_utc(int(outside['start'].iloc[0]))}, outside the "
                               "days its name says")
            bad_from = min(bad_from, lo)
            continue
        row.dump_bars += store.insert_kline_bars(row.timeframe, row.symbol, got.bars, "kline_dump")
        covered.append((lo, hi))
    return covered, bad_from


async def _update_funding(rest: RestClient, site: httpx.AsyncClient, folder: Path, store: TickStore,
                          report: UpdateReport) -> None:
    """Settlements of each perpetual within the span this update asked its klines for (spans of
    successive updates follow each other, so each settlement is asked for once): from REST, or,
    for a symbol REST no longer lists (delisted), from the data site's monthly funding dumps."""
    spans: dict[str, tuple[int, int]] = {}
    for r in report.rows:
        if r.asked[1] > r.asked[0]:
            lo, hi = spans.get(r.symbol, r.asked)
            spans[r.symbol] = (min(lo, r.asked[0]), max(hi, r.asked[1]))
    for symbol, (lo, hi) in spans.items():
        if not is_perpetual(symbol):
            continue
        try:
            rates = await rest.funding_rates(symbol, lo, hi - 1)
        except RestError as exc:
            if exc.code != INVALID_SYMBOL:
                raise
            rates = await _funding_dumps(site, folder, symbol, lo, hi)
            report.funding_notes[symbol] = (f"not listed on REST now: {len(rates)} settlements from the monthly "
                                            "funding dumps")
        report.funding[symbol] = store.insert_funding(rates) if len(rates) else 0


async def _funding_dumps(site: httpx.AsyncClient, folder: Path, symbol: str, lo: int, hi: int) -> FundingRates:
    """A symbol's settlements in [lo, hi) from the monthly funding dumps the data site has."""
    got = DownloadReport([], [], [])
    jobs = monthly_funding_names(symbol, "fundingRate", _day_of(lo), _day_of(hi - 1))
    await fetch_all(site, jobs, folder, got, progress=False)
    files = sorted(got.downloaded + got.skipped)
    if not files:
        return FundingRates(symbol, np.empty(0, dtype=np.int64), np.empty(0), "dump")
    rates = read_funding_files(files)[symbol]
    keep = (rates.time >= lo) & (rates.time < hi)
    return FundingRates(symbol, rates.time[keep], rates.rate[keep], "dump")


def store_targets(store: TickStore, market: str = "um", timeframes: list[str] | None = None,
                  symbols: list[str] | None = None, start: dt.date | None = None,
                  end: dt.date | None = None) -> dict[tuple[str, str], tuple[int, int]]:
    """What ``statarb update`` brings up to date: each (symbol, timeframe) the store was asked
    for before (from where it stopped) or holds bars of (from its last bar), or, for given
    ``symbols`` and ``timeframes``, from ``start``; up to ``end`` (exclusive of the day after)
    or now."""
    hi = _day_ms(end) + DAY_MS if end else 2**62
    out: dict[tuple[str, str], tuple[int, int]] = {}
    if symbols:
        if not timeframes or start is None:
            raise InvalidParameter("give the timeframes (--interval) and --start for new symbols")
        for s in symbols:
            for tf in timeframes:
                out[(normalize_symbol(s), tf)] = (_day_ms(start), hi)
        return out
    cov = store.coverage()
    for r in cov[cov["market"] == market].itertuples():
        if timeframes is None or r.timeframe in timeframes:
            out[(r.symbol, r.timeframe)] = (int(r.end_ms), hi)
    for tf in store.bar_timeframes():
        if (timeframes is not None and tf not in timeframes) or tf == "1s" and market == "um":
            continue
        for symbol, mx in store.last_bar_starts(tf).items():
            out.setdefault((symbol, tf), (int(mx) + 1, hi))
    if not out:
        raise InvalidParameter(f"{store.path} has no kline bars or coverage to update: download some first "
                               "(statarb download --kind klines SYMBOL ... --db FILE)")
    return out

