"""Small ipywidgets panels: controls, hedge summary, stationarity tests, alert log, CSV export
and the status bar. Each builds its widgets once and updates only what changed."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable

import ipywidgets as w
import pandas as pd

from ..alerts import Alert
from ..rule import Rule
from ..analytics.hedge import HEDGE_MODES
from ..pair import PairSummary, StationarityReport
from ..exchange.binance.mark_price import FundingNow
from ..sources.base import SourceInfo
from ..status import SessionStatus

_CSS = """
<style>
.sak-table { border-collapse: collapse; font-size: 12px; width: 100%; }
.sak-table td, .sak-table th { padding: 1px 6px; text-align: right; border-bottom: 1px solid #eee;
  line-height: 18px; }
.sak-table th { color: #555; font-weight: 600; }
.sak-table td:first-child, .sak-table th:first-child { text-align: left; }
.sak-long { color: #2ca02c; font-weight: 600; } .sak-short { color: #d62728; font-weight: 600; }
.sak-status { font-size: 12px; color: #333; } .sak-err { color: #d62728; }
.sak-muted { color: #777; font-size: 12px; }
.sak-synthetic { font-size: 12px; background: #fff8e1; border-left: 3px solid #f0b400; padding: 3px 8px; margin: 2px 0; }
.sak-catching-up { color: #b26a00; }
</style>"""


def _fmt(v: float, spec: str = ".6g") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def utc_text(ms: int) -> str:
    return "-" if not ms else pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='sak-table'>{body}</table>"


def set_value(widget: w.HTML, value: str) -> None:
    """Assign only when different (no message to the browser otherwise)."""
    if widget.value != value:
        widget.value = value


#: Window lengths in bars offered by the sliders: roughly log-spaced, so that 10 and 1,000 bars are
#: both a short drag away (a linear 5..1,000 slider crams the usual 20..300 into its first tenth).
WINDOW_LADDER = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 120, 150, 180, 200, 240, 300, 360,
                 480, 600, 720, 900, 1_200, 1_440, 1_800, 2_400, 3_600)


def window_slider(value: int, least: int, description: str, **kw: object) -> w.SelectionSlider:
    """A slider over WINDOW_LADDER from ``least`` bars; ``value`` is offered even off the ladder."""
    options = sorted({v for v in WINDOW_LADDER if v >= least} | {int(value)})
    return w.SelectionSlider(options=options, value=int(value), description=description, **kw)


class Controls:
    """Pair, timeframe, windows, thresholds and hedge mode. ``on_change(name, value)``."""

    def __init__(self, symbols: tuple[str, ...], timeframes: tuple[str, ...], x: str, y: str, timeframe: str,
                 rule: Rule, on_change: Callable[[str, object], None]) -> None:
        box = {"style": {"description_width": "100px"}, "layout": w.Layout(width="320px")}
        slider = {**box, "continuous_update": False}
        self.x = w.Dropdown(options=symbols, value=x, description="x (long)", **box)
        self.y = w.Dropdown(options=symbols, value=y, description="y (hedge)", **box)
        self.timeframe = w.ToggleButtons(options=timeframes, value=timeframe, description="timeframe",
                                         style={"description_width": "100px", "button_width": "60px"})
        self.hedge_mode = w.Dropdown(options=HEDGE_MODES, value=rule.hedge_mode, description="hedge", **box)
        self.hedge_window = window_slider(rule.hedge_window, 10, "hedge window", **slider)
        self.z_window = window_slider(rule.z_window, 5, "z window", **slider)
        self.corr_window = window_slider(rule.corr_window, 5, "corr window", **slider)
        self.z_entry = w.FloatSlider(value=rule.z_entry, min=0.0, max=5.0, step=0.1, description="z entry",
                                         readout_format=".1f", **slider)
        self.corr_min = w.FloatSlider(value=rule.corr_min, min=-1.0, max=1.0, step=0.05,
                                            description="corr min", readout_format=".2f", **slider)
        self.error = w.HTML()
        names = ("x", "y", "timeframe", "hedge_mode", "hedge_window", "z_window", "corr_window", "z_entry",
                 "corr_min")
        for name in names:
            getattr(self, name).observe(lambda ch, name=name: on_change(name, ch["new"]), names="value")
        self.widget = w.VBox([getattr(self, n) for n in names] + [self.error])

    def show_error(self, text: str) -> None:
        set_value(self.error, f"<span class='sak-err'>{html.escape(text)}</span>" if text else "")


class HedgePanel:
    """Alpha, beta, R², n, half-life, hedge mode and last update time."""

    def __init__(self) -> None:
        self.widget = w.HTML()

    def update(self, s: PairSummary, timeframe: str, rows: int,
               planted: tuple[float, float] | None = None, bar_s: float = 1.0, window: int | None = None) -> None:
        """``planted``: (beta, half-life in seconds) of generated prices, shown beside the
        estimates with why a hedge ``window`` (bars; default: the rows fitted) too short for the
        planted half-life cannot recover them."""
        f = s.fit
        if s.rows < s.warmup_needed:
            wait = _duration((s.warmup_needed - s.rows) * bar_s)
            head = (f"<div class='sak-muted' id='sak-warmup'>warming up: {s.rows} of {s.warmup_needed} bars; the "
                    f"windows fill in about {wait} of {timeframe} bars (shorter windows fill sooner)</div>")
        else:
            head = ""
        hl = s.half_life
        hl_text = (f"{_fmt(hl.bars, '.1f')} bars ({_fmt(s.half_life_s / 60, '.1f')} min)"
                   if hl.ok and math.isfinite(hl.bars) else html.escape(hl.note or "n/a"))
        cells = [("alpha", _fmt(f.alpha)), ("beta", _fmt(f.beta)), ("se(beta)", _fmt(f.se_beta, ".3g")),
                 ("R²", _fmt(f.r2, ".4f")), ("n", str(f.n)), ("mode", s.hedge_mode)]
        pairs = "".join(f"<tr><th>{a}</th><td>{b}</td><th>{c}</th><td>{d}</td></tr>"
                        for (a, b), (c, d) in zip(cells[::2], cells[1::2]))
        set_value(self.widget, (
            f"<b>Hedge ratio</b> <span class='sak-muted'>OLS, last {f.n} bars</span>{head}"
            f"<table class='sak-table' id='sak-hedge'>{pairs}"
            f"<tr><th>half-life</th><td colspan='3'>{hl_text}</td></tr>"
            f"<tr><th>last bar</th><td colspan='3'>{utc_text(s.last_time_ms)}</td></tr>"
            f"<tr><th>rows</th><td colspan='3' id='sak-rows'>{rows:,} {timeframe} bars</td></tr>"
            f"</table>{planted_note(planted, window or f.n, bar_s, s.hedge_mode) if planted else ''}"))


def _duration(seconds: float) -> str:
    """A wait in the unit that reads best: s, min, h or days."""
    for unit, size in (("days", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


#: Half-lives of the spread a hedge window must span for OLS to tell the hedge from the spread.
HEDGE_HALF_LIVES = 10


def planted_note(planted: tuple[float, float], window: int, bar_s: float, mode: str) -> str:
    """The planted truth beside the estimates, and whether the hedge window can recover it."""
    beta, half_life_s = planted
    spans = window * bar_s / half_life_s
    need = int(math.ceil(HEDGE_HALF_LIVES * half_life_s / bar_s))
    why = ("" if mode != "rolling" or spans >= HEDGE_HALF_LIVES else
           f": this {window}-bar window spans {spans:.1f} half-lives of the planted spread, too few for OLS to tell "
           f"the hedge from the spread (its beta and half-life wander): it takes a window of {need:,} bars or more "
           f"({need * bar_s / 60:,.0f} min of {bar_s:g} s bars)")
    return (f"<div class='sak-muted' id='sak-planted'>planted: beta {beta:g}, half-life {half_life_s:g} s"
            f"{html.escape(why)}</div>")


class FundingPanel:
    """Each leg's funding now (rate per settlement, interval, next settlement) and what a position
    of the pair receives per day at these rates (negative: pays)."""

    def __init__(self) -> None:
        self.widget = w.HTML()

    def update(self, x: FundingNow | None, y: FundingNow | None, long_per_day: float | None) -> None:
        if x is None or y is None:
            set_value(self.widget, "<div class='sak-muted' id='sak-funding'>Funding: waiting for the rates</div>")
            return
        rows = "".join(
            f"<tr><th>{html.escape(f.symbol)}</th><td>{f.rate * 100:+.4f}%</td>"
            f"<td>/{f.interval_h:g} h{'' if f.interval_seen else '?'}</td>"
            f"<td>next {pd.Timestamp(f.next_ms, unit='ms', tz='UTC'):%H:%M}</td></tr>" for f in (x, y))
        per_day = ("" if long_per_day is None else
                   f"<tr><th>long spread</th><td colspan='3'>{long_per_day * 100:+.4f}% a day</td></tr>"
                   f"<tr><th>short spread</th><td colspan='3'>{-long_per_day * 100:+.4f}% a day</td></tr>")
        set_value(self.widget, f"<b>Funding</b> <span class='sak-muted'>{html.escape(x.origin)}, per unit of gross "
                               f"notional</span><table class='sak-table' id='sak-funding'>{rows}{per_day}</table>")


class TestsPanel:
    """Button that runs ADF and Engle-Granger in the background, and their results."""

    def __init__(self, on_run: Callable[[], None]) -> None:
        self.button = w.Button(description="Run ADF / Engle-Granger", icon="flask", layout=w.Layout(width="320px"))
        self.button.on_click(lambda _: on_run())
        self.result = w.HTML(self.IDLE)
        self.widget = w.VBox([self.button, self.result])

    IDLE = "<span class='sak-muted'>Tests run on demand over the rows shown.</span>"

    def clear(self) -> None:
        """Forget the results shown: they were of another pair, timeframe or window."""
        self.result.value = self.IDLE

    def running(self) -> None:
        self.button.disabled = True
        self.button.description = "running..."

    def show(self, r: StationarityReport) -> None:
        self.button.disabled = False
        self.button.description = "Run ADF / Engle-Granger"
        a, e = r.adf, r.engle_granger
        crit = lambda d: ", ".join(f"{k} {v:.3f}" for k, v in d.items()) or "n/a"  # noqa: E731
        self.result.value = (
            f"<div id='sak-adf-result'><b>ADF</b> on the spread: {html.escape(a.verdict())}"
            + _table([("statistic", _fmt(a.stat, ".4f")), ("p-value", _fmt(a.pvalue, ".4g")), ("lags", str(a.lags)),
                      ("n", str(a.n)), ("critical (ADF)", crit(a.critical))])
            + f"<b>Engle-Granger</b> on x, y: {html.escape(e.verdict())}"
            + _table([("statistic", _fmt(e.stat, ".4f")), ("p-value", _fmt(e.pvalue, ".4g")), ("lags", str(e.lags)),
                      ("n", str(e.n)), ("critical (MacKinnon, applies)", crit(e.critical)),
                      ("critical (plain ADF, for comparison)", crit(e.adf_critical))])
            + "<div class='sak-muted'>beta is estimated on these rows, so Engle-Granger's critical values "
              "apply; plain ADF ones would overstate mean reversion.</div></div>"
        )

    def failed(self, text: str) -> None:
        self.button.disabled = False
        self.button.description = "Run ADF / Engle-Granger"
        self.result.value = f"<span class='sak-err'>{html.escape(text)}</span>"


class AlertLog:
    """One line's alerts, newest first, with its counts over the window drawn and the owner's
    totals (every pair of the session or monitor)."""

    def __init__(self, max_rows: int = 100) -> None:
        self.max_rows = max_rows
        self.count = w.HTML()
        self.table = w.HTML(layout=w.Layout(max_height="190px", overflow="auto"))
        self.widget = w.VBox([self.count, self.table])
        self._shown: tuple = ()

    def update(self, alerts: list[Alert], events: int, scope: str, totals: tuple[int, int]) -> None:
        """``alerts`` (oldest first) and ``events`` of the line ``scope`` names (e.g. "BTCUSDT/ETHUSDT
        1s over the 1,226 bars drawn"); ``totals``: (alerts, events) of every pair."""
        key = (len(alerts), alerts[-1].time_ms if alerts else 0, events, scope, totals)
        if key == self._shown:
            return
        self._shown = key
        set_value(self.count, f"<b>Alerts</b> of {html.escape(scope)}: <span id='sak-alert-count'>{len(alerts):,}</span> "
                              f"bars met the rule; <b>events</b> (entering it): "
                              f"<span id='sak-event-count'>{events:,}</span>. "
                              f"<span class='sak-muted' id='sak-all-alerts'>Every pair: {totals[0]:,} alerts, "
                              f"{totals[1]:,} events.</span>")
        rows = "".join(
            f"<tr><td>{a.time:%Y-%m-%d %H:%M:%S}Z</td><td>{a.pair}</td><td>{a.timeframe}</td>"
            f"<td class='{'sak-short' if a.direction == 'SHORT_SPREAD' else 'sak-long'}'>{a.direction}</td>"
            f"<td>{a.z:+.2f}</td><td>{a.corr:.2f}</td><td>{a.beta:.4g}</td></tr>"
            for a in reversed(alerts[-self.max_rows:])
        )
        head = "<tr><th>time (UTC)</th><th>pair</th><th>tf</th><th>direction</th><th>z</th><th>corr</th><th>beta</th></tr>"
        set_value(self.table, f"<table class='sak-table' id='sak-alerts'>{head}{rows}</table>")


class ExportPanel:
    """Button that prepares CSV downloads (data links: they work in Voila and JupyterLab)."""

    def __init__(self, make_files: Callable[[], dict[str, str]]) -> None:
        self.make_files = make_files
        self.button = w.Button(description="Export CSV", icon="download", layout=w.Layout(width="320px"))
        self.button.on_click(lambda _: self.prepare())
        self.links = w.HTML()
        self.widget = w.VBox([self.button, self.links])

    def prepare(self) -> None:
        links = []
        for name, text in self.make_files().items():
            data = base64.b64encode(text.encode()).decode()
            rows = max(0, text.count("\n") - 1)
            links.append(f"<a class='sak-download' download='{html.escape(name)}' "
                         f"href='data:text/csv;base64,{data}'>{html.escape(name)}</a> ({rows:,} rows)")
        self.links.value = "<br>".join(links)


class StatusBar:
    """Source, connection state, rates, ages, gaps, malformed and dropped counts, rows stored."""

    def __init__(self) -> None:
        self.widget = w.HTML()

    def update(self, st: SessionStatus, extra: str = "") -> None:
        age = "-" if st.last_tick_age_s is None else f"{st.last_tick_age_s:.1f} s"
        err = f" | <span class='sak-err'>error: {html.escape(st.last_error)}</span>" if st.last_error else ""
        set_value(self.widget, (
            f"<div class='sak-status' id='sak-status'><b>{html.escape(st.source)}</b> {html.escape(st.source_state)}"
            f" | {st.ticks_per_s:,.0f} ticks/s | last tick {age} | gaps filled {st.gaps_filled}/{st.gaps_found}"
            f" | malformed {st.malformed} | dropped {st.overwritten} | duplicates {st.duplicates}"
            f" | rows stored {st.rows_in_store:,}{_via(st.stored_via)}{st.averaged_note()} | reconnects {st.reconnects}"
            f"{extra}{err}</div>"
        ))


def behind_text(last_ms: int, tf_ms: int, now: int) -> str:
    """A word when the newest bar is well behind a real-time source's clock (history replaying,
    a backlog being written): more than 3 bars and 10 s. "" otherwise."""
    lag = now - (last_ms + tf_ms) if last_ms else 0
    if lag <= max(3 * tf_ms, 10_000):
        return ""
    amount = f"{lag / 60_000:.0f} min" if lag >= 120_000 else f"{lag / 1000:.0f} s"
    return (f" | <span class='sak-catching-up' id='sak-catching-up'><b>catching up</b>: the newest bar is "
            f"{amount} behind the clock (history is being replayed)</span>")


def source_note(info: SourceInfo) -> w.HTML:
    """A banner naming generated data and its planted truth (empty for market data)."""
    text = (f"<div class='sak-synthetic' id='sak-synthetic'><b>Synthetic data</b>: {html.escape(info.truth)}</div>"
            if info.truth else "")
    return w.HTML(text)


def _via(counts: dict[str, int]) -> str:
    """How the stored ticks were obtained, when not all from the stream (e.g. REST fills)."""
    if set(counts) <= {"stream", "synthetic"}:
        return ""
    return " (" + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items()) + ")"


def css() -> w.HTML:
    return w.HTML(_CSS)
