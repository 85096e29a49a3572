"""bqplot charts of a pair view's rows: prices, spread, z-score with bands, correlation.

Each chart is built once; ``reset(cols)`` redraws from a full snapshot and ``extend(cols)``
appends new rows only. ``cols`` are PairView.arrays() dicts (``time`` in ms UTC).
Horizontal threshold lines live on a fixed 0..1 x scale, so they never move with the data.
"""

from __future__ import annotations

import bqplot as bq
import numpy as np

from .segments import SegmentedLine

X_COLOR, Y_COLOR, SPREAD_COLOR, Z_COLOR, CORR_COLOR = "#1f77b4", "#ff7f0e", "#6a3d9a", "#2b2b2b", "#2ca02c"
BETA_COLOR = "#8c564b"
BAND_COLOR, LONG_COLOR, SHORT_COLOR = "#d62728", "#2ca02c", "#d62728"


#: Time axis labels by the span shown: seconds within an hour, minutes within a day, dates beyond.
_DAY = np.timedelta64(1, "D")


def time_format(first: np.datetime64, last: np.datetime64) -> str:
    """The tick format of a time axis from ``first`` to ``last``: a span that crosses a UTC day
    shows the date, as any multi-day chart must."""
    if first.astype("datetime64[D]") != last.astype("datetime64[D]") or last - first >= _DAY:
        return "%m-%d %H:%M"
    return "%H:%M:%S" if last - first <= np.timedelta64(1, "h") else "%H:%M"


#: Tick steps of a time axis (ms): round seconds, minutes, hours and days.
_STEPS_MS = tuple(k * 1000 for k in (1, 2, 5, 10, 15, 30)) + tuple(k * 60_000 for k in (1, 2, 5, 10, 15, 30)) \
    + tuple(k * 3_600_000 for k in (1, 2, 3, 6, 12)) + tuple(k * 86_400_000 for k in (1, 2, 7, 14, 30, 61, 91, 182, 365))
#: The share of a time axis at each end left without a tick: a date label centred on the origin
#: ran under the lowest value label ("59,720" over "12-05 23:54"), one at the end was cut.
TICK_INSET = 0.1


def time_ticks(first_ms: int, last_ms: int, n: int = 5, dated: bool = False) -> tuple[np.ndarray, str]:
    """At most ``n`` ticks (datetime64[ms]) at round UTC times inside [first, last], none in the
    outer ``TICK_INSET`` of the span at either end, and their d3 format (dates alone for ticks at
    midnight: "%m-%d", "%Y-%m-%d" beyond ~10 months; ``dated``: the date with the time of day
    even within one day, as a report's charts show it). A span too short for a round tick gets
    one tick in its middle."""
    first, last = int(first_ms), int(max(last_ms, first_ms))
    lo, hi = first + TICK_INSET * (last - first), last - TICK_INSET * (last - first)
    for step in _STEPS_MS:
        ticks = np.arange(np.ceil(lo / step) * step, hi + 1, step, dtype=np.float64)
        if 0 < len(ticks) <= n:
            break
    else:
        ticks = np.array([(first + last) / 2.0])
        step = 0
    span = (np.datetime64(first, "ms"), np.datetime64(last, "ms"))
    if step >= 86_400_000:
        fmt = "%Y-%m-%d" if last - first > 300 * 86_400_000 else "%m-%d"
    else:
        fmt = "%m-%d %H:%M" if dated and step >= 60_000 else time_format(*span)
    return ticks.astype(np.int64).astype("datetime64[ms]"), fmt


def value_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """At most ``n`` round ticks (1, 2 or 5 x 10^k apart) inside [lo, hi], none in the outer
    ``TICK_INSET`` at either end (a tick on the origin ran under the value axis's lowest label);
    the middle alone when the span is empty."""
    inset = TICK_INSET * (hi - lo)
    a, b = lo + inset, hi - inset
    if not (np.isfinite(a) and np.isfinite(b)) or b <= a:
        return np.array([(lo + hi) / 2.0])
    mag = 10.0 ** np.floor(np.log10((b - a) / max(n, 1)))
    for step in (k * mag for k in (1, 2, 5, 10, 20, 50, 100)):
        ticks = np.arange(np.ceil(a / step), np.floor(b / step) + 1) * step
        if len(ticks) <= n:
            return ticks if len(ticks) else np.array([(lo + hi) / 2.0])
    return np.array([(lo + hi) / 2.0])


def integer_ticks(top: float, n: int = 5) -> np.ndarray:
    """Ticks of a count axis from 0 to ``top``: whole numbers, each once (a ",d" format on the
    scale's own ticks printed 0, 1, 1, 2 for a few counts)."""
    raw = max(top / max(n, 1), 1.0)
    mag = 10 ** int(np.floor(np.log10(raw)))
    step = next(int(k * mag) for k in (1, 2, 5, 10) if k * mag >= raw)  # 1, 2, 5 x 10^k: 0, 20, 40...
    return np.arange(0, int(np.ceil(top)) + step, step)


def percent_format(lo: float, hi: float, n: int = 6) -> str:
    """A d3 percent format with as many decimals as ``n`` ticks over [lo, hi] need to differ
    (".2%" printed -0.07% twice on a narrow histogram)."""
    step = abs(hi - lo) / max(n, 1) * 100.0
    digits = 0 if step <= 0 else max(0, -int(np.floor(np.log10(step))))
    return f".{min(digits, 6)}%"


def datetimes(ms: np.ndarray) -> np.ndarray:
    """Epoch milliseconds (UTC) as datetime64[ms], what a bqplot DateScale takes."""
    return np.asarray(ms, dtype="int64").astype("datetime64[ms]")


class Chart:
    """A figure with a UTC date axis and one SegmentedLine per (column, scale, colour)."""

    def __init__(self, title: str, lines: list[tuple[str, str, str]], height: str = "240px",
                 max_points: int = 4_000) -> None:
        self.base_title = title
        self.x = bq.DateScale(allow_padding=False)  # markers must not widen it: time axes line up
        self.y = {name: bq.LinearScale() for _, name, _ in lines}
        self.lines = [
            (col, SegmentedLine({"x": self.x, "y": self.y[scale]}, [color], max_points=max_points, stroke_width=1.5))
            for col, scale, color in lines
        ]
        self.x_axis = bq.Axis(scale=self.x, num_ticks=5, tick_format="%H:%M:%S")
        axes = [self.x_axis]
        for i, (name, scale) in enumerate(self.y.items()):
            color = next(c for _, s, c in lines if s == name)
            axes.append(bq.Axis(scale=scale, side="left" if i == 0 else "right",
                                color=color if len(self.y) > 1 else None, tick_format=",.6~g",
                                grid_lines="solid" if i == 0 else "none"))
        self.static: list[bq.Mark] = []
        self._vline: bq.Lines | None = None  # mark_time's line
        self.fixed: set[str] = set()  # y scales with a fixed domain
        self._span: tuple[np.datetime64, np.datetime64] | None = None  # times of the rows shown
        self._ticks = np.empty(0, dtype="datetime64[ms]")  # the time axis's tick values
        self.figure = bq.Figure(
            marks=[], axes=axes, title=title, animation_duration=0,
            fig_margin={"top": 32, "bottom": 28, "left": 62, "right": 62 if len(self.y) > 1 else 60},
            layout={"height": height, "width": "100%", "min_width": "360px"},
            title_style={"font-size": "13px"},
        )
        self._remark()

    def _remark(self) -> None:
        self.figure.marks = [*self.static, *(m for _, seg in self.lines for m in seg.marks)]

    def _domains(self) -> None:
        """A y scale without finite data has no domain (its axis would not render): give it
        a placeholder until data comes; the fixed scales (correlation) are left alone."""
        empty_chart = not any(seg.has_data for _, seg in self.lines)
        span = self._span if empty_chart and self._span else (None, None)
        if (self.x.min, self.x.max) != span:
            with self.x.hold_sync():
                self.x.min, self.x.max = span
        for name, scale in self.y.items():
            if name in self.fixed:
                continue
            empty = not any(seg.has_data for _, seg in self.lines if seg.scales["y"] is scale)
            want = (0.0, 1.0) if empty else (None, None)
            if (scale.min, scale.max) != want:
                with scale.hold_sync():
                    scale.min, scale.max = want

    def _note_span(self, t: np.ndarray) -> None:
        if len(t):
            first = self._span[0] if self._span else t[0]
            self._span = (first, t[-1]) if t[-1] > first else (first, first + np.timedelta64(1, "s"))
            ticks, fmt = time_ticks(*(int(v) for v in np.array(self._span).astype(np.int64)))
            if len(ticks) != len(self._ticks) or (ticks != self._ticks).any():
                self._ticks = ticks
                with self.x_axis.hold_sync():
                    self.x_axis.tick_values, self.x_axis.tick_format = ticks, fmt

    def reset(self, cols: dict[str, np.ndarray]) -> None:
        t = datetimes(cols["time"])
        self._span = None
        self._note_span(t)
        for col, seg in self.lines:
            seg.reset(t, cols[col])
        self._domains()

    def extend(self, cols: dict[str, np.ndarray]) -> None:
        t = datetimes(cols["time"])
        self._note_span(t)
        for col, seg in self.lines:
            seg.extend(t, cols[col])
        self._domains()

    def set_title(self, title: str) -> None:
        if self.figure.title != title:
            self.figure.title = title

    def mark_time(self, time_ms: int | None, label: str) -> None:
        """A vertical dashed line at ``time_ms`` across the plot (e.g. where a scan's validation
        starts), named in the legend; None removes it."""
        if self._vline is not None:
            self.static.remove(self._vline)
            self._vline.close()
            self._vline = None
        if time_ms is not None:
            t = datetimes(np.array([time_ms, time_ms]))
            line = bq.Lines(x=t, y=[0.0, 1.0], colors=["#555555"], line_style="dashed", stroke_width=1.5,
                            scales={"x": self.x, "y": bq.LinearScale(min=0.0, max=1.0)}, labels=[label],
                            display_legend=True)
            self._vline = line
            self.static.append(line)
            self.figure.legend_location = "top-left"
            self.figure.legend_text = {"font-size": "10px"}
        self._remark()

    @property
    def points(self) -> int:
        return sum(seg.points for _, seg in self.lines)

    def close(self) -> None:
        for _, seg in self.lines:
            seg.close()
        for m in self.static:
            m.close()
        self.figure.close()


def _hline(y_scale: bq.LinearScale, value: float, color: str) -> bq.Lines:
    """A horizontal line across the whole plot (x on its own fixed 0..1 scale)."""
    return bq.Lines(x=[0.0, 1.0], y=[value, value], colors=[color], line_style="dashed", stroke_width=1,
                    scales={"x": bq.LinearScale(min=0.0, max=1.0), "y": y_scale})


class PriceChart(Chart):
    """Both legs' prices on two axes: each bar's close, or ``mid`` the quote mid at each close."""

    def __init__(self, x_name: str, y_name: str, max_points: int = 4_000, mid: bool = False) -> None:
        super().__init__(f"{x_name} (left) and {y_name} (right), {'quote mid at each close' if mid else 'close'}",
                         [("price_x", "x", X_COLOR), ("price_y", "y", Y_COLOR)], max_points=max_points)


class SpreadChart(Chart):
    def __init__(self, max_points: int = 4_000) -> None:
        super().__init__("spread = x - (alpha + beta * y)", [("spread", "s", SPREAD_COLOR)], max_points=max_points)


#: Share of a chart's y range kept free above the data for its legend (which bqplot draws inside
#: the plot: without the room it covered the line and the markers).
LEGEND_ROOM = 0.45


def with_room(lo: float, hi: float) -> tuple[float, float]:
    """A y domain holding [lo, hi] with LEGEND_ROOM of it free at the top (and a little at the
    bottom)."""
    span = (hi - lo) or 1.0
    return lo - 0.05 * span, hi + LEGEND_ROOM / (1.0 - LEGEND_ROOM) * span


class ZChart(Chart):
    """z-score with the +/- threshold bands, alert markers (every bar that met the rule) and event
    markers (where the pair entered the condition: a large ring). The legend names only the marks
    drawn, in room kept free above the data (``with_room``)."""

    def __init__(self, threshold: float, max_points: int = 4_000) -> None:
        super().__init__("z-score", [("z", "z", Z_COLOR)], max_points=max_points)
        self.threshold = threshold
        self._z_range: tuple[float, float] | None = None  # of the rows shown (widened as rows come)
        scale = self.y["z"]
        self.upper, self.lower = _hline(scale, threshold, BAND_COLOR), _hline(scale, -threshold, BAND_COLOR)
        self.long = self._markers(scale, "triangle-up", LONG_COLOR, "LONG_SPREAD bar (z < -entry)")
        self.short = self._markers(scale, "triangle-down", SHORT_COLOR, "SHORT_SPREAD bar (z > entry)")
        self.events = bq.Scatter(x=np.empty(0, dtype="datetime64[ms]"), y=np.empty(0), colors=["#222222"],
                                 default_size=180, marker="circle", fill=False, stroke_width=2,
                                 scales={"x": self.x, "y": scale}, labels=["event: entered the condition"],
                                 display_legend=True)
        self.figure.legend_location = "top-left"
        self.figure.legend_style = {"fill": "none", "stroke-width": 0}  # a filled box greyed the line below it
        self.figure.legend_text = {"font-size": "10px"}
        self.static = [self.upper, self.lower, self.long, self.short, self.events]
        self.events.display_legend = False
        self.fixed = {"z"}  # its domain: the bands and the data, with room for the legend
        self._fit()
        self._remark()

    def _markers(self, scale: bq.LinearScale, marker: str, color: str, label: str) -> bq.Scatter:
        return bq.Scatter(x=np.empty(0, dtype="datetime64[ms]"), y=np.empty(0), colors=[color], default_size=40,
                          marker=marker, scales={"x": self.x, "y": scale}, labels=[label], display_legend=False)

    def _fit(self) -> None:
        lo, hi = self._z_range or (0.0, 0.0)
        want = with_room(min(lo, -self.threshold), max(hi, self.threshold))
        scale = self.y["z"]
        if (scale.min, scale.max) != want:
            with scale.hold_sync():
                scale.min, scale.max = want

    def _note_z(self, z: np.ndarray, fresh: bool) -> None:
        z = np.asarray(z, dtype=float)
        z = z[np.isfinite(z)]
        if fresh:
            self._z_range = None
        if len(z):
            lo, hi = float(z.min()), float(z.max())
            self._z_range = (lo, hi) if self._z_range is None else (min(lo, self._z_range[0]),
                                                                      max(hi, self._z_range[1]))
        self._fit()

    def reset(self, cols: dict[str, np.ndarray]) -> None:
        super().reset(cols)
        self._note_z(cols["z"], fresh=True)

    def extend(self, cols: dict[str, np.ndarray]) -> None:
        super().extend(cols)
        self._note_z(cols["z"], fresh=False)

    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold
        if self.upper.y[0] != threshold:
            self.upper.y, self.lower.y = [threshold, threshold], [-threshold, -threshold]
        self._fit()

    def set_alerts(self, time_ms: np.ndarray, z: np.ndarray) -> None:
        """Markers at alert bars: LONG_SPREAD (z < 0) up in green, SHORT_SPREAD (z > 0) down in red."""
        z = np.asarray(z, dtype=float)
        for mark, side in ((self.long, z < 0), (self.short, z > 0)):
            with mark.hold_sync():
                mark.x, mark.y = datetimes(np.asarray(time_ms)[side]), z[side]
                mark.display_legend = bool(side.any())  # the legend names what is drawn

    def set_events(self, time_ms: np.ndarray, z: np.ndarray) -> None:
        """A ring at each event (the bar where the pair entered the condition)."""
        with self.events.hold_sync():
            self.events.x, self.events.y = datetimes(np.asarray(time_ms)), np.asarray(z, dtype=float)
            self.events.display_legend = len(time_ms) > 0


class CorrChart(Chart):
    """Rolling correlation with the alert rule's minimum."""

    def __init__(self, threshold: float, of: str, max_points: int = 4_000) -> None:
        super().__init__(f"rolling correlation of {of}", [("corr", "c", CORR_COLOR)], max_points=max_points)
        self.y["c"].min, self.y["c"].max = -1.0, 1.0
        self.fixed = {"c"}
        self.line = _hline(self.y["c"], threshold, BAND_COLOR)
        self.static = [self.line]
        self._remark()

    def set_threshold(self, threshold: float) -> None:
        if self.line.y[0] != threshold:
            self.line.y = [threshold, threshold]


class BetaChart(Chart):
    """The hedge ratio the spread of each bar used (rolling, walk-forward or Kalman): how stable
    the relation is."""

    def __init__(self, max_points: int = 4_000) -> None:
        super().__init__("hedge ratio beta", [("beta", "b", BETA_COLOR)], max_points=max_points)


class QuotedSpreadChart(Chart):
    """Each leg's quoted spread at each bar's close, in bps (``Session.quote_bars``): what a fill
    at the touch crosses."""

    def __init__(self, x_name: str, y_name: str, max_points: int = 4_000) -> None:
        super().__init__(f"quoted spread at each bar's close, bps: {x_name} (blue), {y_name} (orange)",
                         [("spread_x", "q", X_COLOR), ("spread_y", "q", Y_COLOR)], max_points=max_points)


class DistributionChart:
    """A histogram of a column's finite values (``bins`` bins), with the newest value marked by
    a vertical line. ``update(values)`` redraws; nothing is sent when nothing changed."""

    def __init__(self, title: str, bins: int = 40, height: str = "240px", color: str = SPREAD_COLOR) -> None:
        self.base_title, self.bins = title, bins
        self.x, self.y = bq.LinearScale(), bq.LinearScale(min=0.0)
        # a filled step line, not bq.Bars: Bars on a linear scale drew every bin at one place on a
        # domain of +/-5,000 in the browser whatever the scale's min and max said
        self.bars = bq.Lines(x=np.zeros(2), y=np.zeros(2), scales={"x": self.x, "y": self.y}, colors=[color],
                             fill="bottom", fill_colors=[color], fill_opacities=[0.6], stroke_width=1)
        self.now = bq.Lines(x=[0.0, 0.0], y=[0.0, 1.0], colors=[BAND_COLOR], stroke_width=2,
                            scales={"x": self.x, "y": bq.LinearScale(min=0.0, max=1.0)},
                            labels=["newest"], display_legend=True)
        self.count_axis = bq.Axis(scale=self.y, orientation="vertical", tick_format=",d", label="bars")
        self.value_axis = bq.Axis(scale=self.x, num_ticks=5, tick_format=",.4~g")
        self.figure = bq.Figure(
            marks=[self.bars, self.now], title=title, animation_duration=0, legend_location="top-right",
            legend_style={"fill": "none", "stroke-width": 0},
            axes=[self.value_axis, self.count_axis],
            fig_margin={"top": 32, "bottom": 28, "left": 62, "right": 28}, legend_text={"font-size": "10px"},
            layout={"height": height, "width": "100%", "min_width": "360px"}, title_style={"font-size": "13px"})
        self._shown: tuple | None = None
        self.counts, self.edges = np.zeros(0, dtype=np.int64), np.zeros(0)  # the histogram drawn

    def update(self, values: np.ndarray, label: str | None = None) -> None:
        """Redraw from ``values``; ``label`` titles the chart, followed by the count of values drawn."""
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        title = self.figure.title if label is None else f"{label} ({len(v):,} bars)"
        if self.figure.title != title:
            self.figure.title = title
        if len(v) < 2 or v.min() == v.max():  # nothing to draw: no stale bars of another view under this title
            if self._shown is not None:
                self._shown = None
                with self.bars.hold_sync():
                    self.bars.x, self.bars.y = np.zeros(2), np.zeros(2)
                self.now.visible = self.now.display_legend = False  # NaN x made the browser log errors
                self.count_axis.tick_values = integer_ticks(1.0)
                self.counts, self.edges = np.zeros(0, dtype=np.int64), np.zeros(0)
            return
        counts, edges = np.histogram(v, bins=self.bins)
        key = (len(v), float(v[-1]), float(edges[0]), float(edges[-1]))
        if key == self._shown:
            return
        self._shown = key
        with self.x.hold_sync():
            self.x.min, self.x.max = float(edges[0]), float(edges[-1])
        self.value_axis.tick_values = value_ticks(float(edges[0]), float(edges[-1]))
        with self.bars.hold_sync():  # each bin a flat step from its left edge to its right edge
            self.bars.x, self.bars.y = np.repeat(edges, 2)[1:-1], np.repeat(counts, 2)
        self.y.max = with_room(0.0, float(counts.max()))[1]  # the legend above the tallest bar
        self.count_axis.tick_values = integer_ticks(float(counts.max()))
        self.now.x = [float(v[-1]), float(v[-1])]
        self.now.visible = self.now.display_legend = True
        self.counts, self.edges = counts, edges

    def close(self) -> None:
        for m in (self.bars, self.now):
            m.close()
        self.figure.close()
