"""The dashboard: charts and panels composed around one live PairView.

It observes the view and the session's alerts, and redraws at most every ``refresh_s``
seconds (a task the session owns), sending only what changed: new chart points, changed
panels. Until the z window is full the charts say 'warming up: n of N bars'.
"""

from __future__ import annotations

import asyncio
import logging
import time

import ipywidgets as w
import numpy as np

from ..alerts import Alert
from ..errors import StatarbError
from ..export import alerts_csv, bars_csv, frame_csv
from ..pair import PairView
from ..paper import PaperBook, PaperDesk
from ..rule import Rule
from ..view_options import ViewOptions
from ..api import SessionAPI
from ..exchange.binance.mark_price import net_funding_per_day
from ..ticks import now_ms
from .backtest_view import BacktestPanel
from .charts import BetaChart, CorrChart, DistributionChart, PriceChart, QuotedSpreadChart, SpreadChart, ZChart
from .panels import (AlertLog, Controls, ExportPanel, FundingPanel, HedgePanel, StatusBar, TestsPanel, behind_text, css,
                     source_note)
from .paper_view import PaperPanel

log = logging.getLogger(__name__)

_PARAM_CONTROLS = ("hedge_mode", "hedge_window", "z_window", "corr_window")
#: Seconds between redraws of the spread's histogram (it counts every row the view holds).
DISTRIBUTION_EVERY_S = 2.0


class Dashboard:
    """Live dashboard of ``x`` against ``y`` on ``timeframe``; display ``dashboard.widget``. On
    generated data a banner says so (``source_note_shown=False``: a page that shows it already)."""

    def __init__(self, session: SessionAPI, x: str | None = None, y: str | None = None, timeframe: str = "1m",
                 rule: Rule | None = None, options: ViewOptions | None = None, refresh_s: float = 0.5,
                 max_points: int = 4_000, title: str = "statarb_kit", source_note_shown: bool = True,
                 paper: bool = False) -> None:
        """``rule``: the page's rule (None: the defaults): its analytics, its alerts' entry levels
        and how the page's backtest and paper trading trade it; ``options``: the view's own
        settings; ``paper``: start paper trading at once."""
        self.session = session
        self.max_points = max_points
        x, y = x or session.symbols[0], y or session.symbols[1]
        self.view: PairView = session.pair(x, y, timeframe, rule, options)
        self.controls = Controls(session.symbols, session.timeframes, self.view.symbols[0],
                                 self.view.symbols[1], timeframe, self.view.rule,
                                 self._on_control)
        self.status = StatusBar()
        self.hedge = HedgePanel()
        self.funding = FundingPanel()
        self.tests = TestsPanel(self.run_tests)
        self.alert_log = AlertLog()
        self.export = ExportPanel(self.export_files)
        self.backtest = BacktestPanel(self.run_backtest, self.view.rule)
        self.paper = PaperPanel(self.start_paper, self.view.rule)
        self.desk: PaperDesk | None = None  # made when paper trading starts (a viewer has none)
        self.book: PaperBook | None = None
        self.title = w.HTML()
        self._title_text = title
        self._build_charts()
        self._unsub_alerts = session.subscribe_alerts(self._on_alert)
        self._unsub_events = session.subscribe_events(self._on_alert)
        self._bind(self.view)
        self._top_row = w.HBox([self.price.figure, self.spread.figure], layout=w.Layout(width="100%"))
        # always laid out (a figure hidden or added later drew negative widths and undefined
        # transforms in the browser): empty, and saying so, while there are no quotes
        charts = w.VBox([self._top_row, w.HBox([self.z.figure, self.corr.figure], layout=w.Layout(width="100%")),
                         w.HBox([self.beta.figure, self.distribution.figure], layout=w.Layout(width="100%")),
                         w.HBox([self.quoted.figure], layout=w.Layout(width="100%")),
                         self.alert_log.widget, self.backtest.result], layout=w.Layout(flex="1 1 auto", min_width="0"))
        side = w.VBox([self.controls.widget, self.hedge.widget, self.funding.widget, self.tests.widget,
                       self.backtest.widget, self.paper.widget, self.export.widget],
                      layout=w.Layout(width="340px", flex="0 0 340px", padding="0 8px 0 0"))
        self.note = source_note(session.source_info()) if source_note_shown else w.HTML()  # a watchlist shows it once
        self.widget = w.VBox([css(), self.title, self.note, self.status.widget, w.HBox([side, charts])],
                             layout=w.Layout(width="100%"))
        self.refresh()
        self._task = session.every(refresh_s, self.refresh, "dashboard refresh")
        if paper:
            self.start_paper()

    # ---- wiring ------------------------------------------------------------------------

    def _build_charts(self) -> None:
        v, m = self.view, self.max_points
        self.price = PriceChart(*v.symbols, max_points=m, mid=v.params.price == "mid")
        self.spread = SpreadChart(max_points=m)
        self.z = ZChart(v.rule.z_entry, max_points=m)
        of = "log returns" if v.params.corr_of == "returns" else "price levels"
        self.corr = CorrChart(v.rule.corr_min, of, max_points=m)
        self.beta = BetaChart(max_points=m)
        self.distribution = DistributionChart("distribution of the spread")
        self._distribution_at = 0.0
        self.quoted = QuotedSpreadChart(*v.symbols, max_points=m)
        self._quoted_at = 0.0

    @property
    def charts(self) -> tuple:
        return self.price, self.spread, self.z, self.corr, self.beta

    def _bind(self, view: PairView) -> None:
        self.view = view
        self._unsub_view = view.subscribe(self._on_view)
        self._reset = True
        self._new_rows = 0
        self._dirty = True
        self._alerts_dirty = True

    def _on_view(self, view: PairView, added: int) -> None:
        if added == 0:
            self._reset = True
        self._new_rows += added
        self._dirty = self._alerts_dirty = True

    def _on_alert(self, alert: Alert) -> None:
        """A new alert or event of the owner's (any pair: the totals change)."""
        self._alerts_dirty = True

    def _on_control(self, name: str, value: object) -> None:
        try:
            if name in ("x", "y", "timeframe"):
                x, y, tf = self.controls.x.value, self.controls.y.value, self.controls.timeframe.value
                if x == y:
                    raise StatarbError("x and y must be different symbols")
                old = self.view
                new = self.session.pair(x, y, tf, old.rule, old.options)
                self._unsub_view()
                old.close()
                self.price.close()
                self.price = PriceChart(*new.symbols, max_points=self.max_points, mid=new.params.price == "mid")
                self._bind(new)
                self._top_row.children = [self.price.figure, self.spread.figure]
                self.tests.clear()  # the results were of the old pair or timeframe
                self._distribution_at = self._quoted_at = 0.0  # the new view's histogram and spreads at the next refresh
                self.book = None  # a book trades one pair: the page starts a new one on request
                self._rule_shown()
            elif name in _PARAM_CONTROLS:
                self.view.set_rule(**{name: value})
                self.tests.clear()
                self._distribution_at = 0.0
                self._rule_shown()
            elif name == "z_entry":
                self.view.set_rule(z_entry=float(value))
                self.z.set_threshold(float(value))
                self._alerts_dirty = True
                self._rule_shown()
            elif name == "corr_min":
                self.view.set_rule(corr_min=float(value))
                self.corr.set_threshold(float(value))
                self._alerts_dirty = True
                self._rule_shown()
            self.controls.show_error("")
        except StatarbError as exc:
            self.controls.show_error(str(exc))
        self.refresh()

    def _rule_shown(self) -> None:
        """The page's rule or pair changed: a backtest of the old one is no longer shown, and the
        buttons say what they now trade (the exit follows a default exit's entry level). A running
        paper book keeps its own rule (it pauses, see ``PaperBook.update``) and its panel."""
        self.backtest.clear(self.view.rule)
        if self.book is None:
            self.paper.clear(self.view.rule)

    # ---- drawing -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Apply what changed since the last refresh (called by the session's timer)."""
        v = self.view
        last = int(v.tail("time", 1)[0]) if len(v) else 0
        behind = behind_text(last, v.tf_ms, now_ms()) if self.session.source_info().realtime else ""
        self.status.update(self.session.status(), behind)
        if self._reset:
            cols = v.arrays()
            for chart in self.charts:
                chart.reset(cols)
            self._reset, self._new_rows = False, 0
        elif self._new_rows:
            cols = v.arrays(last=self._new_rows)
            for chart in self.charts:
                chart.extend(cols)
            self._new_rows = 0
        if self._dirty:
            self._dirty = False
            self._titles()
            self.hedge.update(v.summary(), v.timeframe, len(v), self._planted(), v.tf_ms / 1000,
                              v.params.hedge_window)
        if time.monotonic() - self._distribution_at >= DISTRIBUTION_EVERY_S:  # a histogram of every row: not at 2 Hz
            self._distribution_at = time.monotonic()
            self.distribution.update(v.tail("spread", len(v)), f"distribution of the spread, {v.params.hedge_mode} hedge")
        if time.monotonic() - self._quoted_at >= DISTRIBUTION_EVERY_S:
            self._quoted_at = time.monotonic()
            self._show_quotes()
        self._show_funding()
        if self.book is not None:
            self.paper.show(self.book)
        if self._alerts_dirty:
            self._show_alerts()

    def _show_alerts(self) -> None:
        """Markers and the log of the line drawn, over its window: every bar that meets the rule,
        and the events its owner fired on it (a monitor's, on an attached page) or found in it."""
        self._alerts_dirty = False
        v, s = self.view, self.session
        alerts, events = v.marks(s.held_events(v.name, v.timeframe))
        self.z.set_alerts(np.array([a.time_ms for a in alerts], dtype=np.int64), np.array([a.z for a in alerts]))
        self.z.set_events(np.array([e.time_ms for e in events], dtype=np.int64), np.array([e.z for e in events]))
        scope = f"{v.name} {v.timeframe} over the {len(v):,} bars drawn"
        self.alert_log.update(alerts, len(events), scope, (s.alerts_fired, s.events_fired))

    def _show_quotes(self) -> None:
        """Each leg's quoted spread over the bars drawn, when the session has quotes of both."""
        v = self.view
        bars = [self.session.quote_bars(s, v.timeframe) for s in v.symbols]
        if any(b is None for b in bars) or not len(v):
            self.quoted.set_title("quoted spread at each bar's close: no quotes here (live: record --quotes; "
                                  "a page attached to a monitor has none)")
            if self.quoted.points:
                self.quoted.reset({"time": np.empty(0, dtype=np.int64), "spread_x": np.empty(0),
                                   "spread_y": np.empty(0)})
            return
        first = int(v.tail("time", len(v))[0])
        closed = [b.start[:-1] for b in bars]  # the newest bar's close is provisional: drawn once closed
        start = np.intersect1d(*closed)
        start = start[start >= first]
        if not len(start):
            return
        cols = {"time": start}
        for name, b in zip(("spread_x", "spread_y"), bars):
            cols[name] = b.mean_spread[np.searchsorted(b.start, start)] * 1e4
        self.quoted.set_title(f"quoted spread at each bar's close, bps: {v.symbols[0]} (blue), {v.symbols[1]} (orange)")
        self.quoted.reset(cols)

    def _planted(self) -> tuple[float, float] | None:
        """(beta, half-life s) planted in generated prices of this pair, None for market data."""
        planted = self.session.source_info().planted_hedge
        if planted is None:
            return None
        x, y, beta, half_life_s = planted
        return (beta, half_life_s) if (x, y) == tuple(self.view.symbols) else None

    def _show_funding(self) -> None:
        """Each leg's rate now and a position's funding per day at the newest beta and prices."""
        provider = self.session.funding
        if provider is None:
            self.funding.widget.layout.display = "none"
            return
        v = self.view
        at = int(v.tail("time", 1)[0]) if len(v) else None
        x, y = (provider.current(s, at) for s in v.symbols)
        per_day = None
        if x is not None and y is not None and len(v) and np.isfinite(v.tail("beta", 1)[0]):
            per_day = net_funding_per_day(x, y, float(v.tail("beta", 1)[0]), float(v.tail("price_x", 1)[0]),
                                          float(v.tail("price_y", 1)[0]), v.params.log_prices)
        self.funding.update(x, y, per_day)

    def _titles(self) -> None:
        v = self.view
        n, p = len(v), v.params

        def warming(need: int) -> str:
            return f" - warming up: {n} of {need} bars" if n < need else ""

        mid = ", on quote mids" if p.price == "mid" else ""
        self.z.set_title(f"z-score (window {p.z_window}, bands +/-{v.rule.z_entry:g}{mid}){warming(p.rows_for_z)}")
        self.spread.set_title(f"spread = x - (alpha + beta * y), {p.hedge_mode} hedge{warming(p.rows_for_spread)}")
        of = "log returns" if p.corr_of == "returns" else "price levels"
        self.corr.set_title(f"rolling correlation of {of} (window {p.corr_window}, min "
                            f"{v.rule.corr_min:g}){warming(p.rows_for_corr)}")
        self.beta.set_title(f"hedge ratio beta ({p.hedge_mode}, window {p.hedge_window}){warming(p.rows_for_spread)}")
        text = (f"<h3 style='margin:4px 0'>{self._title_text}: <span id='sak-pair'>{v.name}</span> "
                f"<small>{v.timeframe} bars, UTC{'; prices: the quote mid at each close' if p.price == 'mid' else ''}"
                f"</small></h3>")
        if self.title.value != text:
            self.title.value = text

    # ---- actions -----------------------------------------------------------------------

    def run_tests(self) -> None:
        """Run ADF and Engle-Granger on a worker thread; live updates keep flowing."""
        self.tests.running()
        self.session.spawn(self._tests(), "stationarity tests")

    async def _tests(self) -> None:
        try:
            self.tests.show(await self.view.stationarity_async())
        except Exception as exc:
            self.tests.failed(f"tests failed: {exc}")
            raise

    def run_backtest(self) -> None:
        """Backtest the rule shown (windows, hedge, z entry, correlation minimum) on the view's
        bars, on a worker thread; the figures appear below the alert log."""
        self.backtest.running()
        self.session.spawn(self._backtest(), "dashboard backtest")

    async def _backtest(self) -> None:
        from ..backtest.data import PairBars, backtest_bars
        v, rule = self.view, self.view.rule
        cols = v.arrays()
        try:
            bars = PairBars(v.symbols, v.timeframe, cols["time"], cols["price_x"], cols["price_y"], "the view's bars")
            result = await asyncio.to_thread(backtest_bars, bars, rule)
        except StatarbError as exc:
            self.backtest.failed(str(exc))
            return
        if self.view is not v or v.rule != rule:  # the page changed while it ran: not the rule shown now
            self.backtest.clear(self.view.rule)
            return
        self.backtest.show(result, f"{v.name}, {len(bars):,} {v.timeframe} bars shown")

    def start_paper(self) -> None:
        """Follow the page's rule on paper from the next bar (a book stored for this rule on the
        session's file is continued instead)."""
        self.paper.starting()
        self.session.spawn(self._start_paper(), "dashboard paper trading")

    async def _start_paper(self) -> None:
        try:
            self.desk = self.desk or PaperDesk(self.session)
            self.book = await self.desk.follow(self.view)
        except StatarbError as exc:
            self.paper.failed(str(exc))
            return
        self.paper.show(self.book)

    def export_files(self) -> dict[str, str]:
        v = self.view
        stem = f"{v.symbols[0]}_{v.symbols[1]}_{v.timeframe}"
        return {
            f"bars_{stem}.csv": bars_csv(self.session, v.symbols, v.timeframe),
            f"analytics_{stem}.csv": frame_csv(v),
            f"alerts_{stem}.csv": alerts_csv(self.session),
        }

    def close(self) -> None:
        self._task.cancel()
        if self.desk is not None:
            self.desk.stop()
        self._unsub_view()
        self._unsub_alerts()
        self._unsub_events()
        self.widget.close()
