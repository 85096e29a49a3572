"""A live watchlist table: one row per pair (z with its sign, correlation, beta, half-life,
warm-up, last event and time since), ordered by |z| or any column, redrawn at most every
``refresh_s``; only rows whose text changed are sent. Each row widget belongs to one pair and never
moves in the widget tree: the order is each row's CSS flex ``order``, sent only for rows whose
rank changed (moving the widgets made the browser rebuild their views on every reorder, and the
page's memory grew by a GB in minutes). So a row's "open" always opens the pair it shows, even
when a click crosses a reorder, and shows that pair's dashboard (the existing components) in place."""

from __future__ import annotations

import html
import logging
import math

import ipywidgets as w

from ..api import SessionAPI
from ..ticks import now_ms
from ..watchlist import Watchlist
from .dashboard import Dashboard
from .panels import behind_text, css, set_value, source_note, utc_text

log = logging.getLogger(__name__)

#: Sort choices: label -> (column, descending).
SORTS = {"|z|": ("abs_z", True), "corr": ("corr", True), "beta": ("beta", True),
         "half-life": ("half_life_bars", False), "last event": ("last_event_ms", True), "pair": ("pair", False)}

_CSS = """<style>
.sak-wl-row { display: grid; grid-template-columns: 210px 70px 60px 80px 90px 90px 230px 170px; font-size: 12px;
  line-height: 22px; border-bottom: 1px solid #eee; font-family: monospace; width: 1000px; }
.sak-wl-head { font-weight: 600; color: #555; font-family: sans-serif; }
.sak-wl-cold { color: #999; }
</style>"""


def _num(v: float, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def row_html(r: dict, need: int) -> str:
    """One pair's row (see the module doc); ``need``: rows for the first z."""
    z = r["z"]
    cls = "sak-short" if z > 0 else "sak-long" if z < 0 else ""
    warm = f"{int(r['rows']):,}" if r["warm"] else f"<span class='sak-wl-cold'>{int(r['rows'])} of {need}</span>"
    event = ""
    if r["last_event"]:
        mark = "&#9660;" if r["last_event"] == "SHORT_SPREAD" else "&#9650;"
        event = (f"<span class='sak-wl-event {'sak-short' if r['last_event'] == 'SHORT_SPREAD' else 'sak-long'}'>"
                 f"{mark} {r['last_event']}</span> {_num(r['since_s'], '.0f')} s ago")
    paper = ""
    if r["paper"]:
        side = {"LONG_SPREAD": "long", "SHORT_SPREAD": "short"}.get(r["paper"], "flat")
        paper = f"{side} {_num(r['paper_pnl'], '+.3%')}"
    return (f"<div class='sak-wl-row' data-pair='{html.escape(r['pair'])}' data-t='{int(r['time_ms'])}'><span>{html.escape(r['pair'])}</span>"
            f"<span class='sak-wl-z {cls}'>{_num(z, '+.2f')}</span><span>{_num(r['corr'], '.2f')}</span>"
            f"<span>{_num(r['beta'], '.4g')}</span><span>{_num(r['half_life_bars'], '.1f')}</span>"
            f"<span>{warm}</span><span>{event}</span><span class='sak-wl-paper'>{paper}</span></div>")


class WatchlistView:
    """Display ``view.widget``; it refreshes itself (a task the session owns) until ``close()``."""

    def __init__(self, session: SessionAPI, watchlist: Watchlist, refresh_s: float = 0.5, sort: str = "|z|") -> None:
        """Paper trading (``start_paper``) and an opened pair's page trade the watchlist's rule."""
        self.session, self.watchlist = session, watchlist
        k = len(watchlist)
        self.rows = [w.HTML(layout=w.Layout(width="1010px", flex="0 0 1010px")) for _ in range(k)]
        self.opens = [w.Button(description="open", layout=w.Layout(width="60px", height="22px"),
                               tooltip=f"show {v.name} below") for v in watchlist.views]
        for i, b in enumerate(self.opens):
            b.on_click(lambda _, i=i: self.open(i))
        self.lines = [w.HBox([self.rows[i], self.opens[i]], layout=w.Layout(height="26px", min_height="26px",
                                                                              flex="0 0 26px", overflow="hidden",
                                                                              order=str(i)))
                      for i in range(k)]
        self.sort = w.ToggleButtons(options=list(SORTS), value=sort, description="order by",
                                    style={"button_width": "80px"})
        self.sort.observe(lambda _: self.refresh(), names="value")
        self.paper = w.Button(description="Paper trade every pair", icon="file-text-o", layout=w.Layout(width="220px"))
        self.paper.on_click(lambda _: self.start_paper())
        head = ("<div class='sak-wl-row sak-wl-head'><span>pair (x/y)</span><span>z</span><span>corr</span>"
                "<span>beta</span><span>half-life</span><span>rows</span><span>last event</span><span>paper (PnL)</span></div>")
        self.status = w.HTML()
        self.body = w.VBox(self.lines, layout=w.Layout(max_height="520px", overflow="auto", display="flex",
                                                      flex_flow="column nowrap"))
        self.detail = w.VBox()
        self.dashboard: Dashboard | None = None
        self.widget = w.VBox([css(), w.HTML(_CSS), source_note(session.source_info()), self.status,
                              w.HBox([self.sort, self.paper]), w.HTML(head),
                              self.body, self.detail])
        self._shown: list[str] = [""] * k
        self._order: list[int] = list(range(k))  # row i's rank
        self.refresh()
        self._task = session.every(refresh_s, self.refresh, "watchlist refresh")

    def refresh(self) -> None:
        """Apply what changed since the last refresh: changed rows, then the ranks that changed."""
        table = self.watchlist.table(now_ms())
        need = self.watchlist.params.rows_for_z
        columns = list(table.columns)
        for i, values in enumerate(zip(*(table[c].tolist() for c in columns))):
            text = row_html(dict(zip(columns, values)), need)
            if text != self._shown[i]:
                self._shown[i] = text
                self.rows[i].value = text
        column, descending = SORTS[self.sort.value]
        order = table.sort_values(column, ascending=not descending, na_position="last", kind="stable").index.tolist()
        for rank, i in enumerate(order):
            if self._order[i] != rank:
                self._order[i] = rank
                self.lines[i].layout.order = str(rank)
        st = self.session.status()
        warm = int(table["warm"].sum())
        last = max((int(v.tail("time", 1)[0]) for v in self.watchlist.views if len(v)), default=0)
        tf_ms = self.watchlist.views[0].tf_ms if self.watchlist.views else 1_000
        behind = behind_text(last, tf_ms, now_ms()) if self.session.source_info().realtime else ""
        set_value(self.status, f"<div class='sak-status' id='sak-wl-status'><b>{len(table)}</b> pairs, {warm} warm "
                               f"| <span id='sak-wl-events'>{st.events}</span> events, {st.alerts} alert bars | "
                               f"{st.ticks_per_s:,.0f} ticks/s | {self.watchlist.timeframe} bars, last "
                               f"<span id='sak-wl-last'>{utc_text(last)}</span>{behind} | "
                               f"{html.escape(st.source)} {html.escape(st.source_state)}</div>")

    def start_paper(self) -> None:
        """Follow every pair's rule on paper (the table's "paper" column)."""
        self.paper.disabled, self.paper.description = True, "paper trading"
        self.session.spawn(self.watchlist.trade_on_paper(), "watchlist paper trading")

    def ranked(self) -> list[str]:
        """The pairs' names in the order shown."""
        return [v.name for _, v in sorted(zip(self._order, self.watchlist.views), key=lambda t: t[0])]

    def open(self, i: int) -> None:
        """Show pair ``i``'s dashboard below the table (replacing the one shown)."""
        v = self.watchlist.views[i]
        if self.dashboard is not None:
            self.dashboard.close()
        self.dashboard = Dashboard(self.session, *v.symbols, timeframe=self.watchlist.timeframe,
                                   rule=self.watchlist.rule, options=self.watchlist.options, title="watchlist",
                                   source_note_shown=False)
        self.detail.children = [self.dashboard.widget]

    def close(self) -> None:
        self._task.cancel()
        if self.dashboard is not None:
            self.dashboard.close()
        self.widget.close()
