"""PairView: live pair analytics over a session's final bars, updated bar by bar.

A row for bar time t is added once both symbols have a final bar at or after t (so each
price at t is known: its own bar, or a carried-forward close within ``max_stale`` bars). Each
new row costs O(window): the hedge ratio is fitted on the previous ``hedge_window`` rows (rolling),
taken from the formation fit (fixed) or from one Kalman step; z and correlation are computed on
the window tails with the same functions as the full frame. A parameter change, or a late
correction of a bar already in the frame, recomputes the frame once.
"""

from __future__ import annotations

import asyncio
import math
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .alerts import Alert, EventState, alert_rows, direction_of, event_rows, window_marks
from .analytics import (
    ADFResult,
    EngleGrangerResult,
    HalfLife,
    HedgeFit,
    adf,
    align_pair,
    engle_granger,
    half_life,
    ols_hedge,
    pair_frame,
)
from .analytics.hedge import KalmanState
from .analytics.incremental import next_row
from .analytics.signals import (
    FLAG_FILLED_X,
    FLAG_FILLED_Y,
    PairFrame,
)
from .bars import timeframe_ms
from .render import figures_html, figures_text
from .errors import InvalidParameter
from .feed import BarFeed
from .rule import Rule
from .view_options import ViewOptions

log = logging.getLogger(__name__)

_COLS = ("time", *PairFrame.COLUMNS)
_DTYPES = {"time": np.int64, "flags": np.int64}

#: Called with (view, number of new rows) after rows are added or the frame recomputed.
ViewListener = Callable[["PairView", int], None]


@dataclass(frozen=True)
class ViewSignals:
    """What one update of a view found: the rows that alert (every qualifying bar) and the
    events (entering the condition), oldest first. The view's owner publishes them."""

    alerts: tuple[Alert, ...] = ()
    events: tuple[Alert, ...] = ()


NO_SIGNALS = ViewSignals()


@dataclass(frozen=True)
class StationarityReport:
    """On-demand tests of the pair over a window of rows."""

    adf: ADFResult
    engle_granger: EngleGrangerResult
    half_life: HalfLife
    rows: int

    def figures(self) -> list[tuple[str, str]]:
        """(name, text) of each test: statistic, p-value, lags and verdict."""
        a, eg = self.adf, self.engle_granger
        test = lambda r: f"stat {r.stat:.3f}, p {r.pvalue:.4f}, {r.lags} lags" if r.ok else r.note  # noqa: E731
        hl = self.half_life
        return [("rows", f"{self.rows:,}"), ("ADF of the spread", test(a)), ("", a.verdict()),
                ("Engle-Granger", test(eg)), ("", eg.verdict()),
                ("half-life", (f"{hl.bars:.1f} bars" if math.isfinite(hl.bars) else "none (no mean reversion)")
                 if hl.ok else hl.note)]

    def summary(self) -> str:
        return figures_text("Stationarity of the spread", self.figures())

    def _repr_html_(self) -> str:
        return figures_html("Stationarity of the spread", self.figures())


@dataclass(frozen=True)
class PairSummary:
    """Hedge summary of the newest ``hedge_window`` rows: the fit, the spread's half-life
    (in bars and seconds) over them, the mode, and the last bar time (ms UTC, 0 if none)."""

    fit: HedgeFit
    half_life: HalfLife
    half_life_s: float
    hedge_mode: str
    last_time_ms: int
    rows: int
    warmup_needed: int


class PairView:
    """Live analytics of ``x`` against ``y`` on one timeframe of a session (see module doc).

    Use ``session.pair(...)`` to create one (any BarFeed will do: a view reads only through it);
    its owner hands it each batch of bars (``update``) and publishes the alerts and events that
    returns. ``frame()`` is a DataFrame indexed by bar time
    (UTC) with price_x, price_y, alpha, beta, spread, z, corr and flags (see
    ``analytics.signals``); ``set_rule`` changes it while it runs.

    It carries one ``rule`` (``rule.Rule``: windows, hedge, prices, entry levels, and how paper
    trading and the page's backtest trade it) and its ``options`` (``ViewOptions``); ``params``
    (the analytics') and ``alert`` (the alert rule) are derived from the two.
    """

    def __init__(self, feed: BarFeed, x: str, y: str, timeframe: str, rule: Rule,
                 options: ViewOptions | None = None, on_close: Callable[[PairView], None] | None = None) -> None:
        self._feed = feed
        self._on_close = on_close
        self.x, self.y = feed.code(x), feed.code(y)
        if self.x == self.y:
            raise InvalidParameter("a pair needs two different symbols")
        if timeframe not in feed.timeframes:
            raise InvalidParameter(f"timeframe {timeframe!r} is not built by this session: {feed.timeframes}")
        max_rows = feed.retained_bars(timeframe)
        self.symbols = (feed.symbols[self.x], feed.symbols[self.y])
        self.name = f"{self.symbols[0]}/{self.symbols[1]}"
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self._use(rule, options or ViewOptions())
        self.max_rows = max(max_rows, self.params.history + 1)
        self._listeners: list[ViewListener] = []
        self._event_state = EventState()  # kept across recomputes: past rows never fire again
        self._fired: list[int] = []  # bar times of this view's events, oldest first (the newest kept)
        self._closed = False
        self.recomputes = 0
        self.unquoted = 0  # bars left out for want of a quote (price "mid")
        self.dropped = 0
        self._recompute()
        # the rows already held (history) are not tested for events: the test starts after them
        self._event_base = (EventState(), int(self._cols["time"][self._n - 1]) if self._n else -1)

    # ---- state -------------------------------------------------------------------------

    def _use(self, rule: Rule, options: ViewOptions) -> None:
        self.rule, self.options = rule, options
        self.params = options.params(rule)
        self.alert = options.alert(rule)

    def _recompute(self) -> None:
        """Rebuild every row from the session's final bars (parameter change, correction)."""
        self.recomputes += 1
        self.unquoted = 0
        bars = [self._feed.final_bars(code, self.timeframe) for code in (self.x, self.y)]
        aligned = align_pair(bars[0]["start"], bars[0]["close"], bars[1]["start"], bars[1]["close"],
                             self.tf_ms, self.params.max_stale)
        self.dropped = aligned.dropped
        px, py = self._priced(aligned.time, aligned.x, aligned.y)
        pf = pair_frame(aligned.time, px, py, self.params, aligned.flags)
        self._cols = {c: getattr(pf, c).copy() for c in _COLS}
        self._n = len(pf)
        self._count = len(pf)  # rows ever added, for warm-up flags after old rows are dropped
        self._kalman: KalmanState | None = pf.kalman_state
        self._fixed = self._fixed_fit() if self.params.hedge_mode == "fixed" else None
        self._last = [(int(b["start"][-1]), float(b["close"][-1])) if len(b) else None for b in bars]
        self._pending: list[dict[int, float]] = [{}, {}]
        self._bars_since_alert: int | None = None
        self._trim()

    def _priced(self, time: np.ndarray, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows' prices: the legs' trade prices, or with ``price`` "mid" the quote mid in force
        at each row's close where the feed holds one (a leg without keeps its trade price, as a
        backtest's ``bars_frame`` does; such rows are counted in ``unquoted``)."""
        if self.params.price == "last" or not len(time):
            return px, py
        out = []
        missing = np.zeros(len(time), dtype=bool)
        for code, trade in ((self.x, px), (self.y, py)):
            mids = self._feed.mids_at_close(code, self.timeframe, time)
            if mids is None:
                raise InvalidParameter("price 'mid' needs the quotes where the bars are built: this feed holds "
                                       "none (a viewer of a monitor: set it on the monitor's side)")
            ok = np.isfinite(mids)
            missing |= ~ok
            out.append(np.where(ok, mids, trade))
        self.unquoted += int(missing.sum())
        return out[0], out[1]

    def _fixed_fit(self) -> tuple[float, float] | None:
        beta = self._cols["beta"][: self._n]
        ok = np.flatnonzero(~np.isnan(beta))
        return (float(self._cols["alpha"][ok[0]]), float(beta[ok[0]])) if len(ok) else None

    def _trim(self) -> None:
        """Keep at most ``max_rows`` rows (older ones are thinned away), with room to grow."""
        if self._n > self.max_rows:
            drop = self._n - self.max_rows
            for c in _COLS:
                self._cols[c][: self.max_rows] = self._cols[c][drop : self._n]
            self._n = self.max_rows
        cap = len(self._cols["time"])
        if cap < self._n + 1 or cap < 64:
            new_cap = max(64, 2 * (self._n + 1))
            for c in _COLS:
                grown = np.empty(new_cap, dtype=_DTYPES.get(c, np.float64))
                grown[: self._n] = self._cols[c][: self._n]
                self._cols[c] = grown

    def _col(self, name: str) -> np.ndarray:
        return self._cols[name][: self._n]

    # ---- live updates ------------------------------------------------------------------

    def update(self, tf: str, final: np.ndarray, corrected: np.ndarray) -> ViewSignals:
        """Take newly final and corrected bars (BAR_DTYPE, any symbols and timeframe): add the rows
        they complete, or recompute after a correction; the alerts and events found."""
        if tf != self.timeframe or self._closed:
            return NO_SIGNALS
        if self._n:  # a late tick changed a bar in the frame, or a filled gap added one before its end
            last = self._col("time")[-1]
            starts = [b["start"][((b["sym"] == self.x) | (b["sym"] == self.y)) & (b["start"] <= last)]
                      for b in (corrected, final)]
            if len(starts[0]) or len(starts[1]):
                self._recompute()
                late = self._retest_events(int(min(int(s.min()) for s in starts if len(s))))
                self._notify(0)
                return ViewSignals((), tuple(late))
        for side, code in enumerate((self.x, self.y)):
            rows = final[final["sym"] == code]
            self._pending[side].update(zip(rows["start"].tolist(), rows["close"].tolist()))
        added, signals = self._drain_pending()
        if added:
            self._notify(added)
        return signals

    def _drain_pending(self) -> tuple[int, ViewSignals]:
        marks = [max([*self._pending[s].keys(), *( [self._last[s][0]] if self._last[s] else [])], default=None)
                 for s in (0, 1)]
        if None in marks:
            return 0, NO_SIGNALS
        ready = sorted(t for t in set(self._pending[0]) | set(self._pending[1]) if t <= min(marks))
        last_time = int(self._col("time")[-1]) if self._n else None
        new: list[tuple[int, float, float, int]] = []
        for t in ready:
            prices, flags = [], 0
            for side, bit in ((0, FLAG_FILLED_X), (1, FLAG_FILLED_Y)):
                p = self._pending[side].pop(t, None)
                if p is not None:
                    self._last[side] = (t, p)
                elif self._last[side] and (t - self._last[side][0]) // self.tf_ms <= self.params.max_stale:
                    p, flags = self._last[side][1], flags | bit
                prices.append(p)
            if None in prices or (last_time is not None and t <= last_time):
                self.dropped += 1
                continue
            new.append((t, prices[0], prices[1], flags))
            last_time = t
        if new and self.params.price == "mid":
            time = np.array([r[0] for r in new], dtype=np.int64)
            px, py = self._priced(time, np.array([r[1] for r in new]), np.array([r[2] for r in new]))
            new = [(t, float(a), float(b), f) for (t, _, _, f), a, b in zip(new, px, py)]
        alerts: list[Alert] = []
        events: list[Alert] = []
        if len(new) > 1 and self._count < self.params.history:
            # warming up with a batch (history, a backlog): one full computation for all its rows
            for row in new:
                self._place(*row)
            self._compute_all()
            rows = range(max(0, self._n - len(new)), self._n)
        else:
            rows = []
            for row in new:
                self._append(*row)
                rows.append(self._n - 1)
        for n in rows:
            alert, event = self._check_alert(n), self._check_event(n)
            if alert is not None:
                alerts.append(alert)
            if event is not None:
                events.append(event)
        return len(new), ViewSignals(tuple(alerts), tuple(events))

    def _place(self, t: int, px: float, py: float, filled: int) -> None:
        """Add one row's time, prices and fill bits (its analytics come after)."""
        self._trim()
        n = self._n
        cols = self._cols
        cols["time"][n], cols["price_x"][n], cols["price_y"][n] = t, px, py
        cols["flags"][n] = filled
        self._n, self._count = n + 1, self._count + 1

    def _compute_all(self) -> None:
        """Analytics of every held row from scratch (the few rows of a warm-up)."""
        p, cols = self.params, self._cols
        pf = pair_frame(self._col("time"), self._col("price_x"), self._col("price_y"), p,
                        self._col("flags") & (FLAG_FILLED_X | FLAG_FILLED_Y))
        for c in PairFrame.COLUMNS:
            cols[c][: self._n] = getattr(pf, c)
        self._kalman = pf.kalman_state
        if p.hedge_mode == "fixed":
            self._fixed = self._fixed_fit()

    def _append(self, t: int, px: float, py: float, filled: int) -> None:
        """Add one row; O(window) once warm, a small full recompute while warming up."""
        p = self.params
        self._place(t, px, py, filled)
        if self._count <= p.history:  # warming up: recompute the few rows there are
            self._compute_all()
            return
        n, cols = self._n - 1, self._cols
        row = next_row(cols["price_x"][: n + 1], cols["price_y"][: n + 1], cols["spread"][n - p.z_window : n],
                       self._count - 1, int(cols["flags"][n]), p, self._fixed, self._kalman)
        cols["alpha"][n], cols["beta"][n], cols["spread"][n] = row.alpha, row.beta, row.spread
        cols["z"][n], cols["corr"][n], cols["flags"][n] = row.z, row.corr, row.flags

    def _row_alert(self, n: int) -> Alert:
        c = {k: float(self._cols[k][n]) for k in ("z", "corr", "alpha", "beta", "price_x", "price_y")}
        return Alert(int(self._cols["time"][n]), self.name, self.timeframe, direction_of(c["z"]), c["z"],
                     c["corr"], c["alpha"], c["beta"], c["price_x"], c["price_y"], self.alert.describe())

    def _check_event(self, n: int) -> Alert | None:
        """Row ``n`` (the next in order) as an event (entering the condition; see
        ``alerts.event_rows``), or None."""
        one = slice(n, n + 1)
        fired, self._event_state = event_rows(self._cols["time"][one], self._cols["z"][one], self._cols["corr"][one],
                                              self.alert, self._event_state)
        if not len(fired):
            return None
        self._fired.append(int(self._cols["time"][n]))
        del self._fired[:-256]
        return self._row_alert(n)

    def _retest_events(self, since_ms: int) -> list[Alert]:
        """After a correction from bar ``since_ms`` on: test the corrected rows again for events,
        from the state right after the last event before them (armed False at its time: known
        exactly); the events the corrected rows hold that were not found before. An event found
        on rows since corrected stays published (it cannot be unsent)."""
        prior = [t for t in self._fired if t < since_ms]
        state, after = (EventState(False, prior[-1]), prior[-1]) if prior else self._event_base
        time_ms = self._col("time")
        lo = int(np.searchsorted(time_ms, after, side="right"))
        fired, self._event_state = event_rows(time_ms[lo:], self._col("z")[lo:], self._col("corr")[lo:],
                                              self.alert, EventState(state.armed, state.last_ms))
        known = set(self._fired)
        rows = (lo + fired).tolist()
        self._fired = prior + [int(time_ms[n]) for n in rows]
        late = [self._row_alert(n) for n in rows if int(time_ms[n]) not in known]
        if late:
            log.info("%s: %d events found on corrected bars", self.name, len(late))
        return late

    def _check_alert(self, n: int) -> Alert | None:
        z, corr = self._cols["z"][n : n + 1], self._cols["corr"][n : n + 1]
        if self._bars_since_alert is not None:
            self._bars_since_alert += 1  # distance from the last alert to this row
        fired = len(alert_rows(z, corr, self.alert, self._bars_since_alert))
        if not fired:
            return None
        self._bars_since_alert = 0
        return self._row_alert(n)

    def _notify(self, added: int) -> None:
        for listener in list(self._listeners):
            try:
                listener(self, added)
            except Exception as exc:
                self._feed.report_error("pair view listener", exc)

    # ---- public API --------------------------------------------------------------------

    def subscribe(self, listener: ViewListener) -> Callable[[], None]:
        """Call ``listener(view, n_new_rows)`` after each update (0 rows: recomputed); returns
        its unsubscribe (idempotent: a closed view has already let its listeners go)."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def set_rule(self, **changes: object) -> None:
        """Change the rule's parameters or the view's options (validated, see
        ``ViewOptions.apply``): a change of the analytics recomputes the frame once; one of the
        entry levels or the alerts' options applies from the next bar."""
        self._change(*self.options.apply(self.rule, changes))

    def _change(self, rule: Rule, options: ViewOptions) -> None:
        """Use ``rule`` and ``options`` (validated) from now on; recompute if the analytics changed."""
        before = self.params
        self._use(rule, options)
        if self.params != before:
            self.max_rows = max(self.max_rows, self.params.history + 1)
            self.reload()

    def reload(self) -> None:
        """Recompute every row from the feed's bars (e.g. once a remote feed has fetched them)."""
        self._recompute()
        self._notify(0)

    def __len__(self) -> int:
        return self._n

    def tail(self, name: str, n: int) -> np.ndarray:
        """The newest ``n`` values of column ``name`` (read-only view: no copy; valid until the
        next update)."""
        out = self._cols[name][max(0, self._n - n) : self._n]
        out.flags.writeable = False
        return out

    def arrays(self, last: int | None = None) -> dict[str, np.ndarray]:
        """Copies of the newest ``last`` rows' columns (time in ms UTC)."""
        lo = 0 if last is None else max(0, self._n - last)
        return {c: self._cols[c][lo : self._n].copy() for c in _COLS}

    def marks(self, published: Iterable[Alert] = ()) -> tuple[list[Alert], list[Alert]]:
        """(alerts, events) over the rows held, oldest first (``alerts.window_marks``): every bar
        that meets the rule, and the events of ``published`` (its owner's, any pair) that are
        this line's, with those found in the window after a calm bar."""
        c = self.arrays()
        mine = [(a.time_ms, a.z) for a in published if a.pair == self.name and a.timeframe == self.timeframe]
        alerts, events = window_marks(c["time"], c["z"], c["corr"], self.alert, mine)
        return [self._row_alert(int(n)) for n in alerts], [self._row_alert(int(n)) for n in events]

    def frame(self, last: int | None = None) -> pd.DataFrame:
        """Newest ``last`` rows as a DataFrame indexed by bar time (UTC)."""
        cols = self.arrays(last)
        index = pd.DatetimeIndex(pd.to_datetime(cols.pop("time"), unit="ms", utc=True), name="time")
        return pd.DataFrame(cols, index=index)

    @property
    def rows_added(self) -> int:
        """Rows the view ever added (more than it holds once old rows are dropped)."""
        return self._count

    @property
    def warming_up(self) -> bool:
        """True until the view has a z-score (``params.rows_for_z`` rows)."""
        return self._count < self.params.rows_for_z

    def summary(self) -> PairSummary:
        """Hedge fit and half-life over the newest ``hedge_window`` rows."""
        p = self.params
        cols = self.arrays(p.hedge_window)
        fit = ols_hedge(cols["price_x"], cols["price_y"], log_prices=p.log_prices)
        hl = half_life(cols["spread"])
        return PairSummary(fit, hl, hl.bars * self.tf_ms / 1000, p.hedge_mode,
                           int(cols["time"][-1]) if len(cols["time"]) else 0, self._n, p.rows_for_z)

    def stationarity(self, last: int | None = None, lags: int | None = None) -> StationarityReport:
        """ADF on the spread, Engle-Granger on the prices and the half-life, over the newest
        ``last`` rows (all by default). Runs in the caller: see ``stationarity_async``."""
        return _stationarity(self.arrays(last), self.params.log_prices, lags)

    async def stationarity_async(self, last: int | None = None, lags: int | None = None) -> StationarityReport:
        """``stationarity`` on a worker thread (on a snapshot), so live updates keep flowing."""
        return await asyncio.to_thread(_stationarity, self.arrays(last), self.params.log_prices, lags)

    @property
    def event_state(self) -> EventState:
        """A copy of where the pair stands for its next event (see ``alerts.EventState``)."""
        return EventState(self._event_state.armed, self._event_state.last_ms)

    def resume_events(self, state: EventState, after_ms: int) -> list[Alert]:
        """Continue the event test from ``state`` (as it stood after bar time ``after_ms``, e.g.
        stored by a monitor before a restart) over the held rows after ``after_ms``; the events
        they fire are returned (not published) and the view goes on from the resulting state."""
        time_ms = self._col("time")
        lo = int(np.searchsorted(time_ms, after_ms, side="right"))
        fired, self._event_state = event_rows(time_ms[lo:], self._col("z")[lo:], self._col("corr")[lo:],
                                              self.alert, state)
        self._event_base = (EventState(state.armed, state.last_ms), after_ms)
        self._fired = [int(time_ms[lo + int(i)]) for i in fired]
        return [self._row_alert(lo + int(i)) for i in fired]

    def close(self) -> None:
        """Stop following the session (idempotent); the rows stay readable."""
        if self._closed:
            return
        self._closed = True
        self._listeners.clear()
        if self._on_close is not None:
            self._on_close(self)


def _stationarity(cols: dict[str, np.ndarray], log_prices: bool, lags: int | None) -> StationarityReport:
    x, y = cols["price_x"], cols["price_y"]
    if log_prices:
        x, y = np.log(x), np.log(y)
    return StationarityReport(adf(cols["spread"], lags), engle_granger(x, y, lags), half_life(cols["spread"]), len(x))


class MirrorView(PairView):
    """A view whose rows another process computes (a monitor's view of the same pair, parameters
    and rule): they arrive through ``load_rows`` (all of them) and ``add_rows`` (the new ones),
    as ROW arrays (``monitor.wire.ROW_DTYPE``: time and ``PairFrame.COLUMNS``) with ``count``, the
    rows that view ever added. Its bars feed is used only once ``set_rule`` asks for other
    analytics: from then on it computes locally, as a PairView (``mirrored`` False)."""

    def __init__(self, feed: BarFeed, x: str, y: str, timeframe: str, rule: Rule, options: ViewOptions,
                 rows: np.ndarray, count: int, max_rows: int,
                 on_close: Callable[[PairView], None] | None = None) -> None:
        self.mirrored = True
        self._first = (rows, count)
        self._max_mirror = max_rows
        super().__init__(feed, x, y, timeframe, rule, options, on_close)
        self.max_rows = max_rows

    def _recompute(self) -> None:
        if not self.mirrored:
            super()._recompute()
            return
        self.recomputes += 1
        rows, count = self._first
        self._cols = {c: np.asarray(rows[c], dtype=_DTYPES.get(c, np.float64)).copy() for c in _COLS}
        self._n, self._count = len(rows), count
        self.max_rows = self._max_mirror
        self._trim()

    def update(self, tf: str, final: np.ndarray, corrected: np.ndarray) -> ViewSignals:
        return super().update(tf, final, corrected) if not self.mirrored else NO_SIGNALS

    def load_rows(self, rows: np.ndarray, count: int) -> None:
        """Replace every row (the monitor recomputed the frame, or a resynchronisation)."""
        if self.mirrored:
            self._first = (rows, count)
            self._recompute()
            self._notify(0)

    def add_rows(self, rows: np.ndarray, count: int) -> None:
        """Append the monitor's new rows (those at or before the newest held row are skipped)."""
        if not self.mirrored:
            return
        newest = int(self._cols["time"][self._n - 1]) if self._n else None
        added = 0
        for row in rows if newest is None else rows[rows["time"] > newest]:
            self._trim()
            for c in _COLS:
                self._cols[c][self._n] = row[c]
            self._n += 1
            added += 1
        self._count = count
        self._trim()
        if added:
            self._notify(added)

    def _change(self, rule: Rule, options: ViewOptions) -> None:
        """Other analytics than the monitor's: computed here from the monitor's bars from now on."""
        if self.mirrored and options.params(rule) != self.params:
            self.mirrored = False
        super()._change(rule, options)
