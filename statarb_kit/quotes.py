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
    from .exchange.binance.dumps import dump_bytes
    from .exchange.binance.history import HistoryFileError

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

    def last(self, n: int) -> QuoteBars:
        """The newest ``n`` bars."""
        return QuoteBars(self.symbol, self.tf_ms, *(getattr(self, f)[-n:] for f in _BAR_FIELDS))

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
        return _no_bars(q.symbol, tf_ms)
    t = q.time_ms
    end = int(t[-1] if until_ms is None else max(until_ms, t[-1]))
    return _bars(q.symbol, t, q.bid, q.ask, int(t[0] // tf_ms * tf_ms), end, tf_ms, int(latency_ms))


def _no_bars(symbol: str, tf_ms: int) -> QuoteBars:
    empty = np.empty(0)
    return QuoteBars(symbol, tf_ms, np.empty(0, dtype=np.int64), empty, empty, empty, empty, np.empty(0, dtype=np.int64))


def _bars(symbol: str, t: np.ndarray, bid: np.ndarray, ask: np.ndarray, first_bar: int, end: int, tf_ms: int,
          latency_ms: int = 0) -> QuoteBars:
    """The bars from ``first_bar`` (a bar start) to ``end`` of quotes ``t`` (sorted; the first may
    be before ``first_bar``: the quote carried in, which counts from ``first_bar``). Each figure is
    computed as over the whole history: a history cut at a bar start, with the quote in force
    there, gives its later bars to the bit (``LiveQuotes``)."""
    rel = (ask - bid) / ((ask + bid) / 2.0)
    starts = np.arange(first_bar, max(end, first_bar + 1), tf_ms, dtype=np.int64)  # bars that start before the end
    # breakpoints: every quote and every bar start after the first quote; the quote in force at each
    points = np.union1d(t[t >= first_bar], starts[starts > t[0]])
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
    mine = t >= first_bar
    updates = np.bincount((t[mine] - first_bar) // tf_ms, minlength=n).astype(np.int64)
    mean = np.where(weight > 0, mean, rel[at_end])  # a bar of no duration (one quote, at the end): that quote
    return QuoteBars(symbol, tf_ms, starts, bid[at_end], ask[at_end], mean, largest, updates[:n])


#: Columns of the DuckDB ``quote_bars`` table (spreads relative, not bps).
QUOTE_BAR_COLUMNS = ("symbol", "timeframe", "start", "bid", "ask", "mean_spread", "max_spread", "updates")


def quote_bar_rows(qb: QuoteBars, timeframe: str) -> pd.DataFrame:
    """``qb`` as rows of table ``quote_bars`` (QUOTE_BAR_COLUMNS)."""
    return quote_bar_frame([(timeframe, qb)])


def quote_bar_frame(parts: list[tuple[str, QuoteBars]]) -> pd.DataFrame:
    """Rows of table ``quote_bars`` (QUOTE_BAR_COLUMNS) of several (timeframe, bars), in order,
    built as one frame."""
    return pd.DataFrame({"symbol": np.concatenate([np.full(len(b), b.symbol, dtype=object) for _, b in parts]),
                         "timeframe": np.concatenate([np.full(len(b), tf, dtype=object) for tf, b in parts]),
                         **{f: np.concatenate([getattr(b, f) for _, b in parts]) for f in _BAR_FIELDS}},
                        columns=list(QUOTE_BAR_COLUMNS))


def stored_quote_bars(symbol: str, tf_ms: int, rows: pd.DataFrame, until_ms: int | None = None) -> QuoteBars:
    """One symbol's rows of table ``quote_bars`` (one timeframe, ``tf_ms``) as QuoteBars on every
    bar from the first stored one to the bar holding ``until_ms`` - 1 (default: the last stored):
    a bar with no row (the recorder was off, or a stop cut it) carries the close before it, with
    that quote's spread and no update, as ``quote_bars`` carries a quote over bars without one."""
    if not len(rows):
        return _no_bars(symbol, tf_ms)
    rows = rows.sort_values("start")
    have = rows["start"].to_numpy(np.int64)
    last = int(have[-1]) if until_ms is None else max(int(have[-1]), (int(until_ms) - 1) // tf_ms * tf_ms)
    starts = np.arange(int(have[0]), last + 1, tf_ms, dtype=np.int64)
    row = np.searchsorted(have, starts, side="right") - 1  # the stored bar at or before each
    own = have[row] == starts
    bid, ask = rows["bid"].to_numpy(np.float64)[row], rows["ask"].to_numpy(np.float64)[row]
    close = (ask - bid) / ((ask + bid) / 2.0)
    mean = np.where(own, rows["mean_spread"].to_numpy(np.float64)[row], close)
    largest = np.where(own, rows["max_spread"].to_numpy(np.float64)[row], close)
    updates = np.where(own, rows["updates"].to_numpy(np.int64)[row], 0)
    return QuoteBars(symbol, tf_ms, starts, bid, ask, mean, largest, updates)


class _ClosedBars:
    """One symbol's closed quote bars on one timeframe, in growable arrays (the newest ``keep``
    kept once twice as many were added)."""

    def __init__(self, keep: int) -> None:
        self.keep, self.n = keep, 0
        self.cols = {f: np.empty(64, dtype=np.int64 if f in ("start", "updates") else np.float64) for f in _BAR_FIELDS}

    def append(self, bars: QuoteBars) -> None:
        if len(bars) > self.keep:
            bars = bars.last(self.keep)
        k = len(bars)
        if self.n + k > 2 * self.keep:  # drop the oldest: ``keep`` remain with the new ones
            drop = self.n + k - self.keep
            for c in self.cols.values():
                c[: self.n - drop] = c[drop : self.n]
            self.n -= drop
        if self.n + k > len(self.cols["start"]):
            for f, c in self.cols.items():
                grown = np.empty(max(64, 2 * (self.n + k)), dtype=c.dtype)
                grown[: self.n] = c[: self.n]
                self.cols[f] = grown
        for f in _BAR_FIELDS:
            self.cols[f][self.n : self.n + k] = getattr(bars, f)
        self.n += k

    def view(self, symbol: str, tf_ms: int) -> QuoteBars:
        return QuoteBars(symbol, tf_ms, *(self.cols[f][: self.n] for f in _BAR_FIELDS))


class LiveQuotes:
    """Quote bars per symbol and timeframe, kept up to date from quote batches as they come (loop
    thread), equal to ``quote_bars`` of the same quotes to the bit. A bar closes when a quote of a
    later bar arrives; the newest bar is provisional (as of the last quote). Each (symbol,
    timeframe) holds the quotes of its open bar (and the one carried into it) in arrival chunks,
    joined once when the bar closes, so a batch costs O(its size). ``keep``: closed bars kept per
    symbol and timeframe. ``take_closed()`` hands the bars closed since its last call to the store;
    ``late`` counts quotes older than their symbol's open bar of the shortest timeframe (skipped)."""

    def __init__(self, symbols: tuple[str, ...], tf_ms: tuple[int, ...], keep: int = 100_000,
                 timeframes: tuple[str, ...] | None = None) -> None:
        self.symbols, self.tf_ms, self.keep = symbols, tuple(tf_ms), keep
        self.timeframes = timeframes or tuple(f"{tf}ms" for tf in self.tf_ms)
        self._names = dict(zip(self.tf_ms, self.timeframes))  # tf ms -> the timeframe's name
        self._chunks: dict[tuple[int, int], list[tuple[np.ndarray, ...]]] = {}  # (t, u, bid, ask) since the open bar
        self._open: dict[tuple[int, int], int] = {}  # (code, tf) -> the open bar's start
        self._newest: dict[int, tuple[int, int]] = {}  # code -> (T, u) of its newest quote
        self._closed: dict[tuple[int, int], _ClosedBars] = {}
        self._unstored: list[tuple[str, QuoteBars]] = []  # (timeframe, bars) closed, not handed over yet
        self.late = 0

    def add(self, batch: QuoteBatch) -> None:
        for code in np.unique(batch.sym).tolist():
            mine = batch.sym == code
            t, u, bid, ask = batch.time_ms[mine], batch.update_id[mine], batch.bid[mine], batch.ask[mine]
            newest_open = max((self._open[(code, tf)] for tf in self.tf_ms if (code, tf) in self._open), default=None)
            if newest_open is not None:
                keep = t >= newest_open
                self.late += int((~keep).sum())
                t, u, bid, ask = t[keep], u[keep], bid[keep], ask[keep]
            if not len(t):
                continue
            if np.any((np.diff(t) < 0) | ((np.diff(t) == 0) & (np.diff(u) < 0))):
                order = np.lexsort((u, t))
                t, u, bid, ask = t[order], u[order], bid[order], ask[order]
            before = self._newest.get(code)
            in_order = before is None or (int(t[0]), int(u[0])) >= before
            self._newest[code] = max((int(t[-1]), int(u[-1])), before or (int(t[-1]), int(u[-1])))
            for tf in self.tf_ms:
                chunks = self._chunks.setdefault((code, tf), [])
                chunks.append((t, u, bid, ask))
                if not in_order:  # an older quote than one held: merge it into place
                    joined = self._joined(code, tf)
                    order = np.lexsort((joined[1], joined[0]))
                    chunks[:] = [tuple(a[order] for a in joined)]
                self._close(code, tf)

    def _joined(self, code: int, tf: int) -> tuple[np.ndarray, ...]:
        """The held quotes of ``code`` on ``tf`` as one set of arrays (kept joined)."""
        chunks = self._chunks[(code, tf)]
        if len(chunks) > 1:
            chunks[:] = [tuple(np.concatenate(c) for c in zip(*chunks))]
        return chunks[0]

    def _close(self, code: int, tf: int) -> None:
        """Close the bars of ``code`` on ``tf`` before the bar of its newest quote."""
        chunks = self._chunks[(code, tf)]
        newest = int(chunks[-1][0][-1] // tf * tf)
        first = self._open.get((code, tf), int(chunks[0][0][0] // tf * tf))
        self._open[(code, tf)] = newest
        if newest <= first:
            return
        t, u, bid, ask = self._joined(code, tf)
        upto = int(np.searchsorted(t, newest, side="left"))  # the quotes before the newest bar
        lo = max(int(np.searchsorted(t, first, side="left")) - 1, 0)  # from the quote carried in
        closed = _bars(self.symbols[code], t[lo:upto], bid[lo:upto], ask[lo:upto], first, newest, tf)
        self._closed.setdefault((code, tf), _ClosedBars(self.keep)).append(closed)
        self._unstored.append((self._names[tf], closed))
        carried = max(upto - 1, 0)  # the newest bar's quotes and the one carried into it
        chunks[:] = [(t[carried:], u[carried:], bid[carried:], ask[carried:])]

    def _open_bar(self, code: int, tf: int) -> QuoteBars:
        """The open bar of ``code`` on ``tf`` as of its newest quote."""
        t, _, bid, ask = self._joined(code, tf)
        first = self._open[(code, tf)]
        lo = max(int(np.searchsorted(t, first, side="left")) - 1, 0)  # from the quote carried in
        return _bars(self.symbols[code], t[lo:], bid[lo:], ask[lo:], first, int(t[-1]), tf)

    def bars(self, symbol: str, tf_ms: int) -> QuoteBars | None:
        """The closed bars and the open one (provisional) of ``symbol``; None before its first quote."""
        code = self.symbols.index(symbol)
        if (code, tf_ms) not in self._open:
            return None
        closed = self._closed.get((code, tf_ms))
        open_bar = self._open_bar(code, tf_ms)
        return open_bar if closed is None else _concat_bars([closed.view(symbol, tf_ms), open_bar])

    def mids_at_close(self, code: int, tf_ms: int, starts: np.ndarray) -> np.ndarray:
        """The quote mid in force at the close of each bar starting at ``starts`` (ms UTC): a
        closed quote bar's close, or for the open bar the newest quote before its end (final once
        no quote of the bar can still come: the caller's bars are final). NaN where none is held
        (before the first quote, or older than the ``keep`` bars kept)."""
        starts = np.asarray(starts, dtype=np.int64)
        out = np.full(len(starts), np.nan)
        if (code, tf_ms) not in self._open:
            return out
        closed = self._closed.get((code, tf_ms))
        if closed is not None and closed.n:
            have = closed.cols["start"][: closed.n]
            at = np.minimum(np.searchsorted(have, starts), closed.n - 1)
            hit = have[at] == starts
            out[hit] = (closed.cols["bid"][at[hit]] + closed.cols["ask"][at[hit]]) / 2.0
        t, _, bid, ask = self._joined(code, tf_ms)
        now = starts >= self._open[(code, tf_ms)]
        if now.any():
            k = np.searchsorted(t, starts[now] + tf_ms, side="left") - 1  # the newest quote before the close
            out[np.flatnonzero(now)[k >= 0]] = (bid[k[k >= 0]] + ask[k[k >= 0]]) / 2.0
        return out

    def newest_ms(self, symbol: str) -> int | None:
        """The time of ``symbol``'s newest quote (ms UTC), None before its first."""
        newest = self._newest.get(self.symbols.index(symbol))
        return None if newest is None else newest[0]

    def take_closed(self, with_open: bool = False) -> pd.DataFrame | None:
        """Rows of table ``quote_bars`` closed since the last call, None if none (``with_open``:
        and each open bar as of its newest quote, for a stop: stored again, replaced, if a later
        call closes it)."""
        parts = self._unstored
        if with_open:
            parts = [*parts, *((self._names[tf], self._open_bar(code, tf)) for code, tf in self._open)]
        self._unstored = []
        parts = [(tf, b) for tf, b in parts if len(b)]
        return quote_bar_frame(parts) if parts else None


_BAR_FIELDS = ("start", "bid", "ask", "mean_spread", "max_spread", "updates")


def _concat_bars(parts: list[QuoteBars]) -> QuoteBars:
    return QuoteBars(parts[0].symbol, parts[0].tf_ms, *(np.concatenate([getattr(p, f) for p in parts])
                                                        for f in _BAR_FIELDS))
