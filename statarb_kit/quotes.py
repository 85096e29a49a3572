"""Quotes (best bid and ask, Binance's ``@bookTicker``) and the quote bars a backtest fills at.

A ``@bookTicker`` frame's data is ``{"e": "bookTicker", "u": update id, "s": symbol, "b": bid,
"B": bid qty, "a": ask, "A": ask qty, "T": transaction time ms, "E": event time ms}``; a quote
is in force from its ``T`` until the next one.

Quote bars (per timeframe, bars of [start, start + tf) in ms UTC): the bid and ask in force at
the bar's close, the time-weighted mean relative spread over the bar ((ask - bid) / mid, each
quote weighted by how long it was in force within the bar, the one carried in from before the
bar included), the largest relative spread in force during the bar, and the number of updates
that arrived in it. A bar exists from the first quote on; the last one ends at ``until_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd

from .errors import InvalidParameter


@dataclass(frozen=True, eq=False)
class Quotes:
    """One symbol's quotes in time order: ``time_ms`` (the frames' ``T``), bid, ask, their sizes
    and Binance's update ids; ``malformed``: frames that were skipped."""

    symbol: str
    time_ms: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    update_id: np.ndarray
    malformed: int = 0

    def __len__(self) -> int:
        return len(self.time_ms)

    @property
    def relative_spread(self) -> np.ndarray:
        """(ask - bid) / mid of each quote."""
        return (self.ask - self.bid) / ((self.ask + self.bid) / 2.0)


#: Columns of the DuckDB ``quotes`` table and of a QuoteBatch's frame.
QUOTE_COLUMNS = ("symbol", "time_ms", "update_id", "bid", "bid_qty", "ask", "ask_qty")


@dataclass(frozen=True, eq=False)
class QuoteBatch:
    """Quotes of several symbols as a live source received them (``sym``: codes into the
    source's symbols), in arrival order."""

    sym: np.ndarray
    time_ms: np.ndarray
    update_id: np.ndarray
    bid: np.ndarray
    bid_qty: np.ndarray
    ask: np.ndarray
    ask_qty: np.ndarray

    def __len__(self) -> int:
        return len(self.sym)

    @classmethod
    def of_rows(cls, rows: list[tuple[int, int, int, float, float, float, float]]) -> QuoteBatch:
        """From (sym, T, u, bid, bid qty, ask, ask qty) tuples."""
        cols = list(zip(*rows)) if rows else [()] * 7
        ints = [np.array(c, dtype=np.int64) for c in cols[:3]]
        return cls(*ints, *(np.array(c, dtype=np.float64) for c in cols[3:]))

    @classmethod
    def concat(cls, batches: list[QuoteBatch]) -> QuoteBatch:
        return cls(*(np.concatenate([getattr(b, f) for b in batches]) for f in
                     ("sym", "time_ms", "update_id", "bid", "bid_qty", "ask", "ask_qty")))

    def frame(self, symbols: tuple[str, ...]) -> pd.DataFrame:
        """The rows of table ``quotes`` (QUOTE_COLUMNS)."""
        return pd.DataFrame({"symbol": np.asarray(symbols, dtype=object)[self.sym], "time_ms": self.time_ms,
                             "update_id": self.update_id, "bid": self.bid, "bid_qty": self.bid_qty, "ask": self.ask,
                             "ask_qty": self.ask_qty}, columns=list(QUOTE_COLUMNS))


def quotes_of_frame(symbol: str, frame: pd.DataFrame) -> Quotes:
    """One symbol's rows of table ``quotes`` (sorted by time then update id) as Quotes."""
    f = frame[frame["symbol"] == symbol].sort_values(["time_ms", "update_id"], kind="stable")
    return Quotes(symbol, f["time_ms"].to_numpy(np.int64), f["bid"].to_numpy(np.float64), f["ask"].to_numpy(np.float64),
                  f["bid_qty"].to_numpy(np.float64), f["ask_qty"].to_numpy(np.float64), f["update_id"].to_numpy(np.int64))


def parse_book_tickers(symbol: str, frames: list[bytes | str | dict]) -> Quotes:
    """The ``@bookTicker`` data of ``symbol`` among ``frames`` (raw combined-stream or bare
    frames, or their parsed dicts), sorted by time then update id; a frame that is not a
    well-formed book ticker (bad JSON, a missing field, bid > ask, a price <= 0) is counted in
    ``malformed`` and skipped; other streams' frames are ignored."""
    rows: list[tuple[int, int, float, float, float, float]] = []
    bad = 0
    for raw in frames:
        try:
            msg = raw if isinstance(raw, dict) else orjson.loads(raw)
            d = msg.get("data", msg)
            if d.get("e") != "bookTicker" or d.get("s") != symbol:
                continue
            b, a = float(d["b"]), float(d["a"])
            if not (0 < b <= a and np.isfinite(a)):
                raise ValueError("crossed or non-positive quote")
            rows.append((int(d["T"]), int(d["u"]), b, a, float(d["B"]), float(d["A"])))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            bad += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    cols = list(zip(*rows)) if rows else [[]] * 6
    return Quotes(symbol, np.array(cols[0], dtype=np.int64), np.array(cols[2], dtype=np.float64),
                  np.array(cols[3], dtype=np.float64), np.array(cols[4], dtype=np.float64),
                  np.array(cols[5], dtype=np.float64), np.array(cols[1], dtype=np.int64), bad)


@dataclass(frozen=True, eq=False)
class QuoteBars:
    """Quote bars of one symbol (see the module doc): ``start`` (ms UTC), ``bid``/``ask`` at the
    close, ``mean_spread`` (time-weighted, relative), ``max_spread`` (relative), ``updates``."""

    symbol: str
    tf_ms: int
    start: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    mean_spread: np.ndarray
    max_spread: np.ndarray
    updates: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @property
    def mid(self) -> np.ndarray:
        return (self.bid + self.ask) / 2.0

    def frame(self) -> pd.DataFrame:
        """The bars as a DataFrame indexed by bar open time (UTC); spreads in bps."""
        return pd.DataFrame({"bid": self.bid, "ask": self.ask, "mean_spread_bps": self.mean_spread * 1e4,
                             "max_spread_bps": self.max_spread * 1e4, "updates": self.updates},
                            index=pd.DatetimeIndex(pd.to_datetime(self.start, unit="ms", utc=True), name="time"))


def quote_bars(q: Quotes, tf_ms: int, until_ms: int | None = None) -> QuoteBars:
    """Quote bars of ``q`` on bars of ``tf_ms`` from the bar of its first quote to ``until_ms``
    (default: its last quote's time; the quote then in force holds until it)."""
    if not isinstance(tf_ms, int) or tf_ms <= 0:
        raise InvalidParameter(f"tf_ms must be a positive integer of ms, got {tf_ms!r}")
    if not len(q):
        empty = np.empty(0)
        return QuoteBars(q.symbol, tf_ms, np.empty(0, dtype=np.int64), empty, empty, empty, empty,
                         np.empty(0, dtype=np.int64))
    t, rel = q.time_ms, q.relative_spread
    end = int(t[-1] if until_ms is None else max(until_ms, t[-1]))
    first_bar = int(t[0] // tf_ms * tf_ms)
    starts = np.arange(first_bar, max(end, first_bar + 1), tf_ms, dtype=np.int64)  # bars that start before the end
    # breakpoints: every quote and every bar start after the first quote; the quote in force at each
    points = np.union1d(t, starts[starts > t[0]])
    live = np.searchsorted(t, points, side="right") - 1  # the last quote at or before the point
    dur = np.diff(np.append(points, end)).astype(np.float64)
    bar = (points - first_bar) // tf_ms
    n = len(starts)
    weight = np.bincount(bar, weights=dur, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(bar, weights=rel[live] * dur, minlength=n) / weight
    at_end = np.searchsorted(t, starts + tf_ms, side="left") - 1  # in force at the close (before the next bar)
    at_end = np.minimum(at_end, np.searchsorted(t, end, side="right") - 1)
    largest = np.full(n, -np.inf)
    np.maximum.at(largest, bar, rel[live])
    updates = np.bincount((t - first_bar) // tf_ms, minlength=n).astype(np.int64)
    mean = np.where(weight > 0, mean, rel[at_end])  # a bar of no duration (one quote, at the end): that quote
    return QuoteBars(q.symbol, tf_ms, starts, q.bid[at_end], q.ask[at_end], mean, largest, updates[:n])
