"""The aligned bars a backtest trades: from a DuckDB store, from replay files or synthetic.

Files and the synthetic pair go through the same pipeline as live data (Session -> ticks ->
bars in a temporary DuckDB file), so a backtest sees exactly the bars a recording would store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analytics import align_pair
from ..archive import is_archive, read_bars, read_funding
from ..bars import check_timeframe, timeframe_ms, traded
from ..errors import InvalidParameter
from ..exchange.binance.funding_files import read_funding_files
from ..funding import PairFunding, synthetic_funding
from ..recording import recorded
from ..sources import Replay, SyntheticPair
from ..exchange.binance.history import dump_files
from ..sources.synthetic import PairModel
from ..store import TickStore
from ..quotes import QuoteBars, quote_bars, quotes_of_frame, stored_quote_bars
from ..ticks import normalize_symbol
from .engine import BacktestResult, run_backtest
from .costs import touch_spreads
from .frame import SignalFrame, at_the_touch, signal_frame
from .params import BacktestParams


#: Bars a price may be carried forward when its symbol did not trade (as in the live view).
MAX_STALE = 3
#: Default first bar of synthetic data (UTC): fixed, so a seed always gives the same bars.
SYNTHETIC_START = "2026-01-01"


@dataclass(frozen=True, eq=False)
class PairBars:
    """Closes of a pair on common bar open times (ms UTC, ascending), where they came from, both
    legs' funding rates when known (None: backtests say funding was not included) and their quote
    bars when quotes were recorded (backtests then fill at the touch)."""

    symbols: tuple[str, str]
    timeframe: str
    time: np.ndarray
    price_x: np.ndarray
    price_y: np.ndarray
    origin: str
    funding: PairFunding | None = None
    quotes: tuple[QuoteBars, QuoteBars] | None = None  # recorded quotes of both legs: fills at the touch
    mids: tuple[QuoteBars, QuoteBars] | None = None  # the same at each close (``quotes`` may be later: latency)

    def without_funding(self) -> PairBars:
        return replace(self, funding=None)

    def __len__(self) -> int:
        return len(self.time)

    @property
    def bar_s(self) -> float:
        """The bar length in seconds, from the timeframe (never guessed from the gaps)."""
        return timeframe_ms(self.timeframe) / 1000.0

    @property
    def close_time(self) -> np.ndarray:
        """Bar close times (ms UTC): when a bar's close is known and an order on it fills."""
        return self.time + timeframe_ms(self.timeframe)

    def between(self, start: str | pd.Timestamp | None, end: str | pd.Timestamp | None) -> PairBars:
        """The bars from UTC ``start`` (inclusive) to ``end`` (exclusive); None: unbounded."""
        keep = np.ones(len(self), dtype=bool)
        if start is not None:
            keep &= self.time >= utc_ms(start)
        if end is not None:
            keep &= self.time < utc_ms(end)
        if keep.all():
            return self
        return replace(self, time=self.time[keep], price_x=self.price_x[keep], price_y=self.price_y[keep])

    def frame(self) -> pd.DataFrame:
        """The closes as a DataFrame with a UTC DatetimeIndex, one column per symbol."""
        index = pd.to_datetime(self.time, unit="ms", utc=True).rename("time")
        return pd.DataFrame({self.symbols[0]: self.price_x, self.symbols[1]: self.price_y}, index=index)


@dataclass(frozen=True)
class DataSpec:
    """Where a backtest's bars come from, as plain values a notebook parameter cell can take:
    ``db`` (a DuckDB file of recorded bars), else ``files`` (Binance dump files), else the
    synthetic pair (``hours`` from ``start``, ``seed``). ``start``/``end`` (UTC) bound the bars
    of a store or files; for the synthetic pair ``start`` is its first bar. Funding: the store's
    ``funding`` table, ``funding_files`` (Binance funding dumps) or, for the synthetic pair, its
    seeded rates; ``funding=False`` leaves it out (the results then say so)."""

    symbols: str = "BTCUSDT,ETHUSDT"
    timeframe: str = "1m"
    db: str | None = None
    files: tuple[str, ...] | None = None
    hours: float = 24.0
    seed: int = 7
    start: str | None = None
    end: str | None = None
    funding: bool = True
    funding_files: tuple[str, ...] | None = None
    latency_ms: int = 0  # a store with quotes: fills at the touch this long after the close

    def __post_init__(self) -> None:
        _pair(self.symbols)
        check_timeframe(self.timeframe)

    def load(self) -> PairBars:
        if self.db:
            bars = bars_from_store(self.db, self.symbols, self.timeframe, self.start, self.end,
                                   latency_ms=self.latency_ms)
        elif self.files:
            bars = bars_from_files(list(self.files), self.symbols, self.timeframe).between(self.start, self.end)
        else:
            bars = bars_synthetic(self.symbols, self.timeframe, self.hours, self.seed, self.start or SYNTHETIC_START)
        if self.funding_files:
            bars = with_funding_files(bars, list(self.funding_files))
        return bars if self.funding else bars.without_funding()

    def as_dict(self) -> dict[str, Any]:
        """The fields as notebook parameters (files as a list)."""
        d = asdict(self)
        d["files"] = list(self.files) if self.files else None
        d["funding_files"] = list(self.funding_files) if self.funding_files else None
        return d


def utc_ms(when: str | pd.Timestamp) -> int:
    """Milliseconds since the epoch of a time; a time without a zone is taken as UTC."""
    ts = pd.Timestamp(when)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _pair(symbols: tuple[str, str] | list[str] | str) -> tuple[str, str]:
    if isinstance(symbols, str):
        symbols = symbols.split(",")
    pair = tuple(normalize_symbol(s) for s in symbols)
    if len(pair) != 2 or pair[0] == pair[1]:
        raise InvalidParameter(f"a pair needs two different symbols x,y, got {symbols!r}")
    return pair  # type: ignore[return-value]


def bars_from_store(db: str | Path, symbols: tuple[str, str] | str, timeframe: str = "1m",
                    start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                    max_stale: int = MAX_STALE, latency_ms: int = 0) -> PairBars:
    """The stored final bars of a pair in DuckDB file ``db`` (opened read-only), aligned; optional
    UTC ``start`` (inclusive) and ``end`` (exclusive) bounds. ``db`` may be an archive folder. Bars
    in which nothing traded are missing (``bars.traded``). With both legs' quotes stored, fills
    are at the touch in force ``latency_ms`` after each fill bar's close."""
    x, y = _pair(symbols)
    if is_archive(db):
        bx, by = read_bars(db, timeframe, x), read_bars(db, timeframe, y)
        fx, fy = read_funding(db, x), read_funding(db, y)
    else:
        store = TickStore(db, read_only=True)  # names a file that does not exist
        try:
            bx, by = store.bars(timeframe, x), store.bars(timeframe, y)
            fx, fy = store.funding(x), store.funding(y)
        finally:
            store.close()
    for sym, b in ((x, bx), (y, by)):
        if not len(b):
            raise InvalidParameter(f"{db} has no {timeframe} bars of {sym}")
    quotes, mids = (None, None) if is_archive(db) else _quote_bars(db, (x, y), timeframe, bx, by, latency_ms)
    # a bar in which nothing traded (a settled contract's flat klines) is no price: missing
    bx, by = (b[traded(b["volume"].to_numpy(), b["trades"].to_numpy())] for b in (bx, by))
    aligned = align_pair(bx["start"].to_numpy(np.int64), bx["close"].to_numpy(), by["start"].to_numpy(np.int64),
                         by["close"].to_numpy(), timeframe_ms(timeframe), max_stale)
    funding = PairFunding(fx, fy) if len(fx) and len(fy) else None
    origin = f"store {db}" + (f", fills at the touch of its recorded quotes{f' {latency_ms} ms after the close' if latency_ms else ''}"
                              if quotes else "")
    return PairBars((x, y), timeframe, aligned.time, aligned.x, aligned.y, origin, funding, quotes,
                    mids).between(start, end)


def _quote_bars(db: str | Path, pair: tuple[str, str], timeframe: str, bx: pd.DataFrame,
                by: pd.DataFrame, latency_ms: int = 0) -> tuple[tuple[QuoteBars, QuoteBars] | None, ...]:
    """Both legs' quote bars over their bars' span (for fills ``latency_ms`` after each close, at
    each close), when the file holds quotes of both: from its raw quotes (table ``quotes``, read
    once) where it has them, else its stored quote bars of ``timeframe`` (at the close only: a
    latency needs the raw quotes). (None, None) without quotes of both legs."""
    tf = timeframe_ms(timeframe)
    until = int(max(bx["start"].max(), by["start"].max())) + tf
    store = TickStore(db, read_only=True)
    try:
        rows = [store.quotes(s) for s in pair]
        stored = [store.quote_bars(s, timeframe) for s in pair] if not all(len(r) for r in rows) else None
    finally:
        store.close()
    if stored is not None:
        if not all(len(r) for r in stored):
            return None, None
        if latency_ms:
            raise InvalidParameter(f"{db} holds quote bars, not every quote: fills {latency_ms} ms after the close "
                                   "need the quotes (record --raw-quotes); latency_ms=0 fills at the close")
        at_close = tuple(stored_quote_bars(s, tf, r, until) for s, r in zip(pair, stored))
        return at_close, at_close
    quotes = [(quotes_of_frame(s, r), max(until, int(r["time_ms"].max()) + 1)) for s, r in zip(pair, rows)]
    at_close = tuple(quote_bars(q, tf, end) for q, end in quotes)
    return (tuple(quote_bars(q, tf, end, latency_ms) for q, end in quotes) if latency_ms else at_close), at_close


def with_funding_files(bars: PairBars, files: list[str | Path]) -> PairBars:
    """``bars`` with both legs' funding read from Binance funding dumps (see statarb_kit.funding)."""
    rates = read_funding_files(files)
    missing = [s for s in bars.symbols if s not in rates]
    if missing:
        raise InvalidParameter(f"no funding file of {missing} among the {len(files)} given (found {sorted(rates)})")
    return replace(bars, funding=PairFunding(rates[bars.symbols[0]], rates[bars.symbols[1]]))


def bars_from_files(files: list[str | Path], symbols: tuple[str, str] | str, timeframe: str = "1m",
                    skip_bad: bool = False, max_stale: int = MAX_STALE) -> PairBars:
    """Bars of a pair from Binance dump files (trades or aggTrades, zipped or not), built by the
    pipeline in a temporary DuckDB file."""
    pair = _pair(symbols)
    found = {f.symbol for f in dump_files(files)}
    missing = [s for s in pair if s not in found]
    if missing:
        raise InvalidParameter(f"no file of {missing} among the {len(files)} given (found {sorted(found)})")
    bars = _through_pipeline(lambda: Replay(files, skip_bad=skip_bad, progress=False), pair, timeframe, max_stale)
    return replace(bars, origin=f"{len(files)} replay file(s)")


def bars_synthetic(symbols: tuple[str, str] | str = ("BTCUSDT", "ETHUSDT"), timeframe: str = "1m",
                   hours: float = 24.0, seed: int = 7, start: str | pd.Timestamp = SYNTHETIC_START,
                   model: PairModel | None = None, max_stale: int = MAX_STALE) -> PairBars:
    """``hours`` of the seeded synthetic cointegrated pair from UTC ``start``, as bars, with
    seeded synthetic funding of both legs (8-hourly; see ``statarb_kit.funding.synthetic_funding``)."""
    pair = _pair(symbols)
    if not hours > 0:
        raise InvalidParameter(f"hours must be > 0, got {hours!r}")
    model = model or PairModel()
    start_ms = utc_ms(start)
    end_ms = start_ms + int(hours * 3_600_000)
    ticks = int(2 * model.rate * hours * 3600)  # expected count; the bars are cut at end_ms below

    def source() -> SyntheticPair:
        return SyntheticPair(pair, model, seed=seed, realtime=False, start_ms=start_ms, max_ticks=int(ticks * 1.1) + 100)

    bars = _through_pipeline(source, pair, timeframe, max_stale)
    keep = bars.time + timeframe_ms(timeframe) <= end_ms
    funding = PairFunding(*(synthetic_funding(s, start_ms, end_ms, seed) for s in pair))
    return PairBars(pair, timeframe, bars.time[keep], bars.price_x[keep], bars.price_y[keep],
                    f"synthetic seed {seed}, {hours:g} h (generated prices, not market data; planted: x = "
                    f"{model.alpha:g} + {model.beta:g} * y + s, s mean-reverting with a half-life of {model.half_life_s:g} s)",
                    funding)


def _through_pipeline(make_source: Callable[[], Any], pair: tuple[str, str], timeframe: str, max_stale: int) -> PairBars:
    with recorded(make_source, timeframe) as db:
        return bars_from_store(db, pair, timeframe, max_stale=max_stale)


def bars_frame(bars: PairBars, params: BacktestParams) -> SignalFrame:
    """The signal frame of ``params`` on ``bars`` at bar close times, filled at the touch when the
    bars have quotes (``at_the_touch``): what backtests, sweeps and walk-forward runs trade.
    ``params.price`` "mid": the signals are computed on the mid of the quote in force at each
    close (a bar without one keeps its last trade)."""
    px, py = bars.price_x, bars.price_y
    if params.price == "mid":
        if bars.mids is None:
            raise InvalidParameter("price 'mid' needs both legs' recorded quotes (a store with table quotes: "
                                   "record --quotes, download --kind bookTicker)")
        _, mid = touch_spreads(list(bars.mids), bars.close_time)
        px = np.where(np.isfinite(mid[:, 0]), mid[:, 0], px)
        py = np.where(np.isfinite(mid[:, 1]), mid[:, 1], py)
    f = signal_frame(bars.close_time, px, py, params)
    return f if bars.quotes is None else at_the_touch(f, bars.quotes)


def backtest_bars(bars: PairBars, params: BacktestParams) -> BacktestResult:
    """Backtest ``params`` on ``bars``, fills at bar close times (as a sweep does), with the
    bars' funding when they have it, at the touch when they have quotes."""
    return run_backtest(bars_frame(bars, params), params, bars.bar_s, bars.funding)
