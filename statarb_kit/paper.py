"""Paper trading: a live view's rule followed forward on paper, by the backtest engine itself.

A ``PaperBook`` holds one pair's trades under one ``Rule``: on each update of its view it runs
``backtest.engine.find_trades`` and ``book_trades`` on the view's rows since its resume point, so
its fills, fees, slippage, funding and PnL have the backtest's semantics exactly (orders fill at
the close of the bar ``lag`` bars after the signal, ``max_hold``, costs per leg and fill). Its
trades equal ``run_backtest`` on the same rows from the book's start, to rounding. A trade is
*closed* once its exit has filled; the position still open (if any) is the engine's last trade
("end"), marked at the newest row with its exit costs as if it closed there.

The resume point moves past each closed trade (and past bars where no entry can come any more),
so an update costs O(bars since the last closed trade), not O(history). Rows are bar *open* times
(the view's), trade times bar *close* times (the fills, as in backtests).

``PaperDesk`` keeps a session's books in its store: tables ``paper_books`` (the rule, start,
resume point) and ``paper_trades`` (closed trades and the open one), written every ``flush_s``.
Started again on the same file, a book continues from its resume point on the view's rows
(recomputed from the stored bars): the open position and every closed trade come out the same.
A correction of rows already traded does not rewrite closed trades (they were booked).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .backtest.engine import EXIT_REASONS, SignalIndex, book_trades, find_trades, trades_frame
from .backtest.frame import SignalFrame, at_the_touch
from .backtest.funding import FundingIndex
from .errors import InvalidParameter, StatarbError
from .funding import PairFunding
from .quotes import QuoteBars
from .rule import Rule
from .ticks import now_ms

if TYPE_CHECKING:
    from .pair import PairView
    from .session import Session
    from .store import TickStore

log = logging.getLogger(__name__)

#: Columns of table ``paper_trades`` (times in ms UTC: the fills' bar close times).
TRADE_COLUMNS = ("book", "seq", "status", "pair", "timeframe", "entry_ms", "exit_ms", "direction", "entry_z",
                 "exit_z", "reason", "beta", "units_x", "units_y", "entry_x", "entry_y", "exit_x", "exit_y",
                 "hold_bars", "gross_pnl", "fees", "slippage", "costs", "funding", "pnl")


#: Both legs' settlements over a span (start_ms, end_ms), or None when not known.
FundingSource = Callable[[int, int], PairFunding | None]


@dataclass
class PaperState:
    """Where a book stands: ``start_ms`` (first row, bar open time, whose signal counts),
    ``resume_ms`` (the row from which trades are looked for again), ``after_stop`` (that row
    follows a stop: no entry before |z| < z_entry) and ``closed`` (trades closed so far)."""

    start_ms: int
    resume_ms: int
    after_stop: bool = False
    closed: int = 0


@dataclass(frozen=True)
class PaperPosition:
    """The book at its newest row: ``side`` (+1 long spread, -1 short, 0 flat), the open trade's
    entry (ms UTC, bar close) and its PnL marked at the newest close (``open_pnl``: price PnL
    less the entry costs plus funding; the exit costs are not yet paid), the realised PnL of the
    closed trades, their count, and the newest row's time (bar open, ms; -1 before any).

    Two legs are two orders: with a legging delay, the newest fill (``pending_fill``: "entry" or
    "exit") has one leg filled and ``pending_leg`` ("x" or "y") not yet, until ``pending_until``
    (ms UTC); ``exposure`` is the unhedged leg's signed notional at the newest close (the filled
    first leg of an entry, the second leg still held at an exit), as a fraction of capital."""

    side: int
    entry_ms: int
    open_pnl: float
    realised_pnl: float
    trades: int
    row_ms: int
    pending_fill: str = ""
    pending_leg: str = ""
    pending_until: int = -1
    exposure: float = 0.0

    @property
    def direction(self) -> str:
        return {1: "LONG_SPREAD", -1: "SHORT_SPREAD"}.get(self.side, "FLAT")


def book_key(pair: str, timeframe: str, rule: Rule) -> str:
    """A book's name: the pair, timeframe and rule (two books of one pair under two rules differ)."""
    return f"{pair}|{timeframe}|{json.dumps(asdict(rule), sort_keys=True)}"


class PaperBook:
    """One pair's paper trades under ``rule`` (see the module doc). ``view``: the live view whose
    rows it trades (its analytics parameters must be the rule's); ``state``/``closed``: a stored
    book to continue (None: a new one starting at the view's next row, or at ``start_ms``);
    ``funding``: both legs' rates, or a callable (start_ms, end_ms) -> those rates or None, asked
    at each update (a live source's settlements so far); None: not included (NaN, as in backtests).
    ``touch``: asked at each update for both legs' quote bars (None: no quotes): fills are then at
    the touch of each fill bar's close, as a backtest of the same quotes (``backtest.costs``).
    ``legging_ms`` > 0: the ``first_leg``'s order fills at once, the other's that long after each
    fill (its cost is ``backtest.costs.legging``); ``clock(leg)`` says how far that leg's market
    has come (ms UTC: its newest quote, or now on a real-time source), so ``position()`` shows a
    fill with one leg done and the other pending until the clock passes it."""

    def __init__(self, view: PairView, rule: Rule, state: PaperState | None = None,
                 closed: pd.DataFrame | None = None, funding: PairFunding | FundingSource | None = None,
                 start_ms: int | None = None,
                 touch: Callable[[], tuple[QuoteBars, QuoteBars] | None] | None = None,
                 legging_ms: int = 0, first_leg: str = "x", clock: Callable[[str], int] | None = None) -> None:
        if not rule.same_signals(view.rule):
            raise InvalidParameter(f"{view.name}: the view's rule is not the book's ({rule})")
        if not isinstance(legging_ms, (int, np.integer)) or legging_ms < 0 or first_leg not in ("x", "y"):
            raise InvalidParameter(f"need legging_ms an integer >= 0 and first_leg 'x' or 'y', got {legging_ms!r}, "
                                   f"{first_leg!r}")
        if legging_ms and clock is None:
            raise InvalidParameter("legging_ms needs a clock (each leg's newest quote time)")
        self.view, self.rule, self.funding, self.touch = view, rule, funding, touch
        self.legging_ms, self.first_leg, self.clock = int(legging_ms), first_leg, clock
        self.key = book_key(view.name, view.timeframe, rule)
        if state is None:
            newest = int(view.tail("time", 1)[0]) + 1 if len(view) else 0
            first = newest if start_ms is None else start_ms
            state = PaperState(first, first)
        self.state = state
        self.closed = closed if closed is not None else _empty_trades()
        self.open = _empty_trades()
        self.saved = len(self.closed)  # closed trades already in the store
        self.dirty = True
        self.truncated = False  # the view no longer holds the rows from the resume point on
        self.funding_note = ""  # why funding was left out of an update ("" while included or never given)
        self.paused = ""  # why the book does not follow its view any more ("" while it does)

    # ---- following the view --------------------------------------------------------------

    def update(self) -> None:
        """Find the trades on the view's rows since the resume point; book what closed."""
        if self.paused:
            return
        v = self.view
        if not self.rule.same_signals(v.rule):
            self.paused = "the view's rule changed: this book keeps its own rule (start a new one to trade the new)"
            self.dirty = True
            return
        time = v.tail("time", len(v))
        lo = int(np.searchsorted(time, self.state.resume_ms, side="left"))
        if lo == 0 and len(time) and time[0] > self.state.resume_ms and self.state.closed + len(self.open):
            if not self.truncated:
                log.warning("%s: paper book resumes at %d but the view holds rows from %d only", v.name,
                            self.state.resume_ms, int(time[0]))
            self.truncated = True
        n = len(time) - lo
        if n < 2:
            return
        f = self._frame(lo)
        index = SignalIndex(f)
        t = find_trades(f, self.rule, index, self.state.after_stop)
        fi = self._funding_index(f)
        trades = trades_frame(f, t, book_trades(f, self.rule, t, index, fi))
        done = (t.reason != EXIT_REASONS.index("end"))
        if done.any():
            last = int(np.flatnonzero(done)[-1])
            new = self._rows(trades[done], "closed", self.state.closed)
            self.closed = pd.concat([self.closed, new], ignore_index=True) if len(self.closed) else new
            self.state.closed += int(done.sum())
            self.state.resume_ms = int(time[lo + int(t.exit_fill[last])])
            self.state.after_stop = int(t.reason[last]) == EXIT_REASONS.index("stop")
        elif not len(t.side):
            self._skip_flat(index, time, lo, n)
        self.open = self._rows(trades[~done], "open", self.state.closed)
        self.dirty = True

    def _funding_index(self, f: SignalFrame) -> FundingIndex | None:
        """Both legs' settlements over the frame (None: funding not included). A provider that
        missed a settlement (a gap of more than 8 h) leaves funding out and says so."""
        funding = self.funding(int(f.time[0]), int(f.time[-1])) if callable(self.funding) else self.funding
        if funding is None:
            return None
        try:
            return FundingIndex.build(f.time, f.price_x, f.price_y, funding)
        except InvalidParameter as exc:
            self.funding_note = str(exc)
            return None

    def _skip_flat(self, index: SignalIndex, time: np.ndarray, lo: int, n: int) -> None:
        """No trade since the resume point: move it to the first row an entry can still come from."""
        first = n - 1 - self.rule.lag  # entries before it were judged (find_trades: e <= n - 2 - lag)
        if self.state.after_stop:
            calm = int(index.get("calm", self.rule.z_entry)[0])
            if calm >= n:  # still waiting for |z| < z_entry: from the next row
                self.state.resume_ms = int(time[-1]) + 1
                return
            self.state.after_stop = False
            first = max(first, calm)
        if first > 0:
            self.state.resume_ms = int(time[lo + first])

    def _frame(self, lo: int) -> SignalFrame:
        v, m = self.view, len(self.view) - lo
        col = {c: v.tail(c, m) for c in ("time", "price_x", "price_y", "alpha", "beta", "z", "corr")}
        f = SignalFrame(col["time"] + v.tf_ms, col["price_x"], col["price_y"], col["alpha"], col["beta"],
                        col["z"], col["corr"])
        quotes = self.touch() if self.touch is not None else None
        return at_the_touch(f, quotes) if quotes is not None else f

    def _rows(self, trades: pd.DataFrame, status: str, first_seq: int) -> pd.DataFrame:
        out = trades.reset_index(drop=True)
        out.insert(0, "book", self.key)
        out.insert(1, "seq", np.arange(first_seq, first_seq + len(out), dtype=np.int64))
        out.insert(2, "status", status)
        out.insert(3, "pair", self.view.name)
        out.insert(4, "timeframe", self.view.timeframe)
        for c in ("entry", "exit"):
            out[f"{c}_ms"] = _ms(out.pop(f"{c}_time"))
        return out[list(TRADE_COLUMNS)]

    # ---- reading -------------------------------------------------------------------------

    def trades(self) -> pd.DataFrame:
        """Closed trades then the open one (status "open"), TRADE_COLUMNS."""
        parts = [p for p in (self.closed, self.open) if len(p)]
        return pd.concat(parts, ignore_index=True) if parts else _empty_trades()

    def position(self) -> PaperPosition:
        """The book now (see PaperPosition)."""
        realised = float(self.closed["pnl"].sum()) if len(self.closed) else 0.0
        row = int(self.view.tail("time", 1)[0]) if len(self.view) else -1
        legs = self._legging()
        if not len(self.open):
            return PaperPosition(0, -1, 0.0, realised, self.state.closed, row, *legs)
        o = self.open.iloc[0]
        funding = 0.0 if pd.isna(o["funding"]) else float(o["funding"])
        entry_cost = self.rule.cost_rate * (abs(o["units_x"]) * o["entry_x"] + abs(o["units_y"]) * o["entry_y"])
        side = 1 if o["direction"] == "LONG_SPREAD" else -1
        return PaperPosition(side, int(o["entry_ms"]), float(o["gross_pnl"]) - entry_cost + funding, realised,
                             self.state.closed, row, *legs)

    def _legging(self) -> tuple[str, str, int, float]:
        """(pending fill, pending leg, until ms, exposure) of the newest fill ("", "", -1, 0.0):
        nothing pending)."""
        if not self.legging_ms:
            return "", "", -1, 0.0
        if len(self.open):
            fill, t = "entry", self.open.iloc[0]
            at = int(t["entry_ms"])
        elif len(self.closed):
            fill, t = "exit", self.closed.iloc[-1]
            at = int(t["exit_ms"])
        else:
            return "", "", -1, 0.0
        second = "y" if self.first_leg == "x" else "x"
        until = at + self.legging_ms
        if self.clock(second) >= until:
            return "", "", -1, 0.0
        unhedged = self.first_leg if fill == "entry" else second  # an entry holds the first leg, an exit the second
        price = float(self.view.tail(f"price_{unhedged}", 1)[0])
        return fill, second, until, float(t[f"units_{unhedged}"]) * price


def _ms(times: pd.Series) -> np.ndarray:
    return ((times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)


def _empty_trades() -> pd.DataFrame:
    text = {"book", "status", "pair", "timeframe", "direction", "reason"}
    ints = {"seq", "entry_ms", "exit_ms", "hold_bars"}
    return pd.DataFrame({c: pd.Series(dtype=object if c in text else "int64" if c in ints else "float64")
                         for c in TRADE_COLUMNS})


class PaperDesk:
    """A session's paper books, stored in its store every ``flush_s`` seconds (see the module
    doc). ``follow(view, **trading)`` starts or continues a book of a view's rule."""

    def __init__(self, session: Session, flush_s: float = 1.0) -> None:
        if not session.owns_store:
            raise StatarbError("paper trading runs where the store is: this page views a monitor, which holds "
                               "its file (statarb monitor --paper trades every pair on paper there)")
        self.session, self.flush_s = session, flush_s
        self.books: list[PaperBook] = []
        self._unsubscribe: list[Any] = []
        self._task = None

    async def follow(self, view: PairView, funding: PairFunding | FundingSource | None = None,
                     start_ms: int | None = None, legging_ms: int = 0, first_leg: str = "x",
                     **trading: Any) -> PaperBook:
        """The book of ``view``'s rule traded with ``trading`` (z_exit, z_stop, fee_bps,
        slippage_bps, max_hold, lag): continued when the store holds it, else new from
        ``start_ms`` (None: the view's next row; on a realtime source, not before the bar forming
        now, since older rows are history). ``funding`` None: the session's funding provider's
        settlements, when it has one. ``legging_ms``/``first_leg``: see PaperBook (the clock is
        the leg's newest quote, or now on a real-time source)."""
        rule = view.rule.with_(**trading)
        key = book_key(view.name, view.timeframe, rule)
        state, closed = await self.session.with_store(_load, key)
        realtime = self.session.source_info().realtime
        if start_ms is None and realtime:  # rows before the bar forming now are history
            start_ms = max(now_ms() // view.tf_ms * view.tf_ms, int(view.tail("time", 1)[0]) + 1 if len(view) else 0)
        provider = self.session.funding
        if funding is None and provider is not None:
            x, y = view.symbols

            def funding(lo: int, hi: int) -> PairFunding | None:
                legs = provider.settled(x, lo, hi), provider.settled(y, lo, hi)
                return PairFunding(*legs) if None not in legs else None

        x, y, tf = *view.symbols, view.timeframe

        def touch() -> tuple[QuoteBars, QuoteBars] | None:
            legs = self.session.quote_bars(x, tf), self.session.quote_bars(y, tf)
            return None if None in legs else legs

        def clock(leg: str) -> int:
            newest = self.session.live_quotes.newest_ms(view.symbols[0 if leg == "x" else 1])
            return max(-1 if newest is None else newest, now_ms() if realtime else -1)

        book = PaperBook(view, rule, state, closed, funding, start_ms, touch, legging_ms, first_leg, clock)
        book.update()
        self.books.append(book)
        self._unsubscribe.append(view.subscribe(lambda v, added: book.update()))
        if self._task is None:
            self._task = self.session.every(self.flush_s, self.flush, "statarb-paper-ledger")
        return book

    async def flush(self) -> None:
        """Store the books that changed since the last flush (one transaction)."""
        dirty = [b for b in self.books if b.dirty]
        if not dirty:
            return
        rows = [(b.key, b.view.name, b.view.timeframe, json.dumps(asdict(b.rule), sort_keys=True), b.state.start_ms,
                 b.state.resume_ms, b.state.after_stop, b.state.closed, b.paused) for b in dirty]
        parts = [p for b in dirty for p in (b.closed.iloc[b.saved:], b.open) if len(p)]
        trades = pd.concat(parts, ignore_index=True) if parts else _empty_trades()
        for b in dirty:
            b.dirty, b.saved = False, len(b.closed)
        await self.session.with_store(_save, rows, trades, now_ms())

    def stop(self) -> None:
        """Stop following the views and flushing; the books stay readable (what the last flush
        did not store, a restart recomputes from the stored bars)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        """A last flush, then ``stop``."""
        if self.session.running:
            await self.flush()
        self.stop()


def _load(store: TickStore, key: str) -> tuple[PaperState | None, pd.DataFrame | None]:
    row = store.paper_book(key)
    if row is None:
        return None, None
    state = PaperState(int(row["start_ms"]), int(row["resume_ms"]), bool(row["after_stop"]), int(row["closed"]))
    closed = store.paper_trades(key, status="closed")
    return state, closed if len(closed) else None


def _save(store: TickStore, books: list[tuple], trades: pd.DataFrame, now: int) -> None:
    with store.transaction():
        store.save_paper(books, trades, now)
