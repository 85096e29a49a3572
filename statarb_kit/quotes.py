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

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from .errors import InvalidParameter
from .ticks import normalize_symbol


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


#: The columns of a QuoteBatch, in order.
QUOTE_FIELDS = ("sym", "time_ms", "update_id", "bid", "bid_qty", "ask", "ask_qty")


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
        return cls(*(np.concatenate([getattr(b, f) for b in batches]) for f in QUOTE_FIELDS))

    def frame(self, symbols: tuple[str, ...]) -> pd.DataFrame:
        """The rows of table ``quotes`` (QUOTE_COLUMNS)."""
        return pd.DataFrame({"symbol": np.asarray(symbols, dtype=object)[self.sym], "time_ms": self.time_ms,
                             "update_id": self.update_id, "bid": self.bid, "bid_qty": self.bid_qty, "ask": self.ask,
                             "ask_qty": self.ask_qty}, columns=list(QUOTE_COLUMNS))


class HeldQuotes:
    """Quotes a source received or made and the session has not taken yet (``Source.take_quotes``)."""

    def __init__(self) -> None:
        self._held: list[QuoteBatch] = []
        self.count = 0  # quotes ever held

    def hold(self, batch: QuoteBatch) -> None:
        if len(batch):
            self._held.append(batch)
            self.count += len(batch)

    def take(self) -> QuoteBatch | None:
        """Everything held since the last call, in order (None: nothing)."""
        if not self._held:
            return None
        held, self._held = self._held, []
        return QuoteBatch.concat(held)


def quotes_of_frame(symbol: str, frame: pd.DataFrame) -> Quotes:
    """One symbol's rows of table ``quotes`` (sorted by time then update id) as Quotes."""
    f = frame[frame["symbol"] == symbol].sort_values(["time_ms", "update_id"], kind="stable")
    return Quotes(symbol, f["time_ms"].to_numpy(np.int64), f["bid"].to_numpy(np.float64), f["ask"].to_numpy(np.float64),
                  f["bid_qty"].to_numpy(np.float64), f["ask_qty"].to_numpy(np.float64), f["update_id"].to_numpy(np.int64))


#: Columns of Binance's USD-M bookTicker dumps (``SYMBOL-bookTicker-YYYY-MM-DD.zip``).
DUMP_COLUMNS = ("update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty", "transaction_time",
                "event_time")


def read_book_ticker_dump(path: str | Path, symbol: str | None = None) -> Quotes:
    """A bookTicker dump (zipped or not; header optional) as Quotes (symbol from the file name
    unless given); a file that is not one raises HistoryFileError naming it, rows with a crossed
    or non-positive quote are counted in ``malformed`` and skipped."""
    from .dumps import dump_bytes
    from .sources.history import HistoryFileError

    p = Path(path)
    symbol = normalize_symbol(symbol or p.name.split("-")[0])
    text = dump_bytes(p, HistoryFileError)
    try:
        has_header = text[:9] == b"update_id"
        frame = pd.read_csv(io.BytesIO(text), header=0 if has_header else None, names=list(DUMP_COLUMNS),
                            dtype={"update_id": np.int64, "transaction_time": np.int64, "event_time": np.int64})
    except (ValueError, pd.errors.ParserError) as exc:
        raise HistoryFileError(f"{p}: not a Binance bookTicker dump ({type(exc).__name__}: {exc}); columns "
                               f"{', '.join(DUMP_COLUMNS)}") from None
    bid, ask = frame["best_bid_price"].to_numpy(np.float64), frame["best_ask_price"].to_numpy(np.float64)
    ok = (bid > 0) & (bid <= ask)
    frame = frame[ok].sort_values(["transaction_time", "update_id"], kind="stable")
    return Quotes(symbol, frame["transaction_time"].to_numpy(np.int64), frame["best_bid_price"].to_numpy(np.float64),
                  frame["best_ask_price"].to_numpy(np.float64), frame["best_bid_qty"].to_numpy(np.float64),
                  frame["best_ask_qty"].to_numpy(np.float64), frame["update_id"].to_numpy(np.int64),
                  int((~ok).sum()))


def quotes_frame(q: Quotes) -> pd.DataFrame:
    """Quotes as rows of table ``quotes`` (QUOTE_COLUMNS)."""
    return pd.DataFrame({"symbol": q.symbol, "time_ms": q.time_ms, "update_id": q.update_id, "bid": q.bid,
                         "bid_qty": q.bid_qty, "ask": q.ask, "ask_qty": q.ask_qty}, columns=list(QUOTE_COLUMNS))


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


def quote_bars(q: Quotes, tf_ms: int, until_ms: int | None = None, latency_ms: int = 0) -> QuoteBars:
    """Quote bars of ``q`` on bars of ``tf_ms`` from the bar of its first quote to ``until_ms``
    (default: its last quote's time; the quote then in force holds until it). ``latency_ms`` > 0:
    the bid and ask are those in force that long after each close (what an order sent at the
    close meets on arrival); the spreads and updates stay the bar's."""
    if not isinstance(tf_ms, int) or tf_ms <= 0:
        raise InvalidParameter(f"tf_ms must be a positive integer of ms, got {tf_ms!r}")
    if not isinstance(latency_ms, (int, np.integer)) or latency_ms < 0:
        raise InvalidParameter(f"latency_ms must be an integer >= 0, got {latency_ms!r}")
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
    at_end = np.searchsorted(t, starts + tf_ms + latency_ms, side="left") - 1  # in force at the close (+ latency)
    if not latency_ms:
        at_end = np.minimum(at_end, np.searchsorted(t, end, side="right") - 1)
    largest = np.full(n, -np.inf)
    np.maximum.at(largest, bar, rel[live])
    updates = np.bincount((t - first_bar) // tf_ms, minlength=n).astype(np.int64)
    mean = np.where(weight > 0, mean, rel[at_end])  # a bar of no duration (one quote, at the end): that quote
    return QuoteBars(q.symbol, tf_ms, starts, q.bid[at_end], q.ask[at_end], mean, largest, updates[:n])


class LiveQuotes:
    """The bid and ask at each bar's close, per symbol and timeframe, kept up to date from quote
    batches as they come (loop thread). A bar's close is the last quote before its end (as
    ``quote_bars``); a bar without a quote carries the one before; the newest bar's close is
    provisional until a quote of a later bar arrives. Keeps the newest ``keep`` bars of each."""

    def __init__(self, symbols: tuple[str, ...], tf_ms: tuple[int, ...], keep: int = 100_000) -> None:
        self.symbols, self.tf_ms, self.keep = symbols, tuple(tf_ms), keep
        # (code, tf) -> [starts, bids, asks, updates] of closed bars, and the open bar
        self._closed: dict[tuple[int, int], list[list]] = {}
        self._open: dict[tuple[int, int], list] = {}  # [start, bid, ask, updates]
        self.late = 0  # quotes older than their symbol's open bar (skipped)

    def add(self, batch: QuoteBatch) -> None:
        for code in np.unique(batch.sym).tolist():
            mine = batch.sym == code
            order = np.lexsort((batch.update_id[mine], batch.time_ms[mine]))
            t, bid, ask = batch.time_ms[mine][order], batch.bid[mine][order], batch.ask[mine][order]
            for tf in self.tf_ms:
                self._add(code, tf, t, bid, ask)

    def _add(self, code: int, tf: int, t: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> None:
        starts = t // tf * tf
        cur = self._open.get((code, tf))
        if cur is not None:
            keep = starts >= cur[0]
            self.late += int((~keep).sum())
            t, bid, ask, starts = t[keep], bid[keep], ask[keep], starts[keep]
        groups, first = np.unique(starts, return_index=True)
        ends = np.append(first[1:], len(starts))
        closed = self._closed.setdefault((code, tf), [[], [], [], []])
        for g, lo, hi in zip(groups.tolist(), first.tolist(), ends.tolist()):
            if cur is None:
                cur = [g, 0.0, 0.0, 0]
            elif g > cur[0]:
                carried = range(cur[0], g, tf)  # the open bar, then bars without a quote
                for k, start in enumerate(carried):
                    for col, value in zip(closed, (start, cur[1], cur[2], cur[3] if k == 0 else 0)):
                        col.append(value)
                cur = [g, cur[1], cur[2], 0]
            cur[1], cur[2], cur[3] = float(bid[hi - 1]), float(ask[hi - 1]), cur[3] + hi - lo
        if cur is not None:
            self._open[(code, tf)] = cur
        if len(closed[0]) > 2 * self.keep:
            for col in closed:
                del col[: len(col) - self.keep]

    def bars(self, symbol: str, tf_ms: int) -> QuoteBars | None:
        """The closed bars and the open one (provisional) of ``symbol``; None before its first quote."""
        code = self.symbols.index(symbol)
        cur = self._open.get((code, tf_ms))
        if cur is None:
            return None
        starts, bids, asks, updates = self._closed.get((code, tf_ms), [[], [], [], []])
        bid, ask = np.array([*bids, cur[1]]), np.array([*asks, cur[2]])
        rel = (ask - bid) / ((ask + bid) / 2.0)
        return QuoteBars(symbol, tf_ms, np.array([*starts, cur[0]], dtype=np.int64), bid, ask, rel, rel,
                         np.array([*updates, cur[3]], dtype=np.int64))
