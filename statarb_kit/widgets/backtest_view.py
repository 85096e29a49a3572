"""bqplot figures of backtests: a result's equity curve, drawdown, z-score with its trades and the
distribution of trade PnL; a sweep's heatmap; the backtest button of a pair's page."""

from __future__ import annotations

import html
from collections.abc import Callable

import bqplot as bq
import ipywidgets as w
import numpy as np
import pandas as pd

from ..backtest.engine import BacktestResult, annual_note
from ..backtest.params import BacktestParams
from .charts import BAND_COLOR, LONG_COLOR, SHORT_COLOR, Z_COLOR, datetimes, integer_ticks, percent_format, time_ticks, value_ticks
from .segments import thin

EQUITY_COLOR = "#1f77b4"


def _thinned(t: np.ndarray, v: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """The finite points of (t ms, v), thinned to about ``max_points`` keeping each bucket's
    extremes (peaks and drawdowns survive), times as datetime64."""
    keep = ~np.isnan(v)
    t, v = thin(t[keep], v[keep], max_points)
    return datetimes(t), v


def _figure(title: str, marks: list[bq.Mark], axes: list[bq.Axis], height: str,
            margin: dict | None = None, **figure_kw: object) -> bq.Figure:
    return bq.Figure(marks=marks, axes=axes, title=title, animation_duration=0,  # room for a date tick's half
                     fig_margin=margin or {"top": 32, "bottom": 28, "left": 62, "right": 60},
                     layout={"height": height, "width": "100%", "min_width": "360px"},
                     title_style={"font-size": "13px"}, **figure_kw)


#: Colours of the extra curves of a figure (the first is EQUITY_COLOR).
CURVE_COLORS = ("#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def time_scale(time_ms: np.ndarray) -> bq.DateScale:
    """A date scale from the first to the last of ``time_ms``: the charts of one backtest share it,
    so they start and end together (a z line starts where its window fills, its chart must not)."""
    t = datetimes(np.asarray(time_ms)[[0, -1]]) if len(time_ms) else None
    return bq.DateScale(min=t[0], max=t[1]) if t is not None and t[1] > t[0] else bq.DateScale()


def time_axis(scale: bq.DateScale, time_ms: np.ndarray) -> bq.Axis:
    """The time axis of ``scale`` over ``time_ms``: round ticks clear of both ends (``time_ticks``)."""
    t = np.asarray(time_ms, dtype=np.int64)
    if not len(t):
        return bq.Axis(scale=scale, num_ticks=6, tick_format="%m-%d %H:%M")
    ticks, fmt = time_ticks(int(t[0]), int(t[-1]), n=6, dated=True)
    return bq.Axis(scale=scale, tick_values=ticks, tick_format=fmt)


def curves_figure(curves: dict[str, pd.Series], title: str, max_points: int = 4_000,
                  height: str = "260px", span: np.ndarray | None = None) -> bq.Figure:
    """Equity-like curves (UTC index) on one time axis (over ``span``, ms, when given),
    labelled in a legend (for more than one)."""
    x, y = (time_scale(span) if span is not None else bq.DateScale()), bq.LinearScale()
    marks = []
    for k, (label, series) in enumerate(curves.items()):
        t, v = _thinned(series.index.as_unit("ms").asi8, series.to_numpy(dtype=np.float64), max_points)
        color = EQUITY_COLOR if k == 0 else CURVE_COLORS[(k - 1) % len(CURVE_COLORS)]
        marks.append(bq.Lines(x=t, y=v, scales={"x": x, "y": y}, colors=[color], labels=[label],
                              display_legend=len(curves) > 1, stroke_width=2.0 if k == 0 else 1.0))
    ends = [s.index.as_unit("ms").asi8[[0, -1]] for s in curves.values() if len(s)]
    shown = span if span is not None else np.sort(np.concatenate(ends))[[0, -1]] if ends else np.empty(0)
    axes = [time_axis(x, shown),
            bq.Axis(scale=y, side="left", tick_format=",.4f", grid_lines="solid")]
    return _figure(title, marks, axes, height, legend_location="top-left")


def equity_figure(result: BacktestResult, max_points: int = 4_000, height: str = "260px") -> bq.Figure:
    """Equity (capital 1 at the start) over UTC time."""
    m = result.metrics
    title = (f"Equity: {m.total_return:+.2%} over {m.trades} trades, {annual_note(m.sharpe, m.years)}, "
             f"max drawdown {m.max_drawdown:.2%}")
    return curves_figure({"equity": result.equity}, title, max_points, height, span=result.frame.time)


def signal_figure(result: BacktestResult, max_points: int = 4_000, height: str = "260px") -> bq.Figure:
    """z-score with the entry and exit levels and a marker at each entry fill (green: long
    spread, red: short spread) and exit fill (grey)."""
    f, p, trades = result.frame, result.params, result.trades
    t, z = _thinned(f.time, f.z, max_points)
    x, y = time_scale(f.time), bq.LinearScale()
    marks: list[bq.Mark] = [bq.Lines(x=t, y=z, scales={"x": x, "y": y}, colors=[Z_COLOR],
                                     stroke_width=1)]
    if len(t):
        ends = np.array([t[0], t[-1]])
        for level, style in ((p.z_entry, "dashed"), (-p.z_entry, "dashed"), (p.z_exit, "dotted"), (-p.z_exit, "dotted")):
            marks.append(bq.Lines(x=ends, y=[level, level], scales={"x": x, "y": y}, colors=[BAND_COLOR],
                                  line_style=style, stroke_width=1))
    pos = np.searchsorted(f.time, trades["entry_time"].dt.as_unit("ms").astype(np.int64))  # fill bars
    out = np.searchsorted(f.time, trades["exit_time"].dt.as_unit("ms").astype(np.int64))
    long = (trades["direction"] == "LONG_SPREAD").to_numpy()
    for sel, color in ((pos[long], LONG_COLOR), (pos[~long], SHORT_COLOR), (out, "#888888")):
        marks.append(bq.Scatter(x=datetimes(f.time[sel]), y=f.z[sel], scales={"x": x, "y": y},
                                colors=[color], default_size=48, stroke="white"))
    axes = [time_axis(x, f.time), bq.Axis(scale=y, side="left", tick_format=".1f", grid_lines="solid")]
    title = (f"z-score: entries at |z| >= {p.z_entry:g} (dashed), exits at {-p.z_exit:+g} for a long and "
             f"{p.z_exit:+g} for a short (dotted)")
    return _figure(title, marks, axes, height)


def drawdown_figure(result: BacktestResult, max_points: int = 4_000, height: str = "200px") -> bq.Figure:
    """How far the equity is below its running peak (the start, capital 1, counts as a peak), as
    a fraction of that peak: the ``max_drawdown`` of the metrics is this curve's deepest point."""
    equity = result.equity.to_numpy(dtype=np.float64)
    peak = np.maximum(np.maximum.accumulate(np.where(np.isfinite(equity), equity, -np.inf)), 1.0)
    t, dd = _thinned(result.equity.index.as_unit("ms").asi8, -(peak - equity) / peak, max_points)
    x, y = time_scale(result.frame.time), bq.LinearScale(max=0.0)
    marks = [bq.Lines(x=t, y=dd, scales={"x": x, "y": y}, colors=[BAND_COLOR], fill="bottom",
                      fill_opacities=[0.25], stroke_width=1)]
    axes = [time_axis(x, result.frame.time),
            bq.Axis(scale=y, side="left", tick_format=".2%", grid_lines="solid", num_ticks=4)]
    return _figure(f"Drawdown from the running peak (deepest {result.metrics.max_drawdown:.2%})", marks, axes, height)


def trade_pnl_figure(result: BacktestResult, bins: int = 30, height: str = "220px") -> bq.Figure:
    """The distribution of the trades' net PnL (after costs and funding), losses red, gains green."""
    pnl = result.trades["pnl"].to_numpy(dtype=np.float64)
    pnl = pnl[np.isfinite(pnl)]
    x, y = bq.LinearScale(), bq.LinearScale(min=0.0)
    if len(pnl) >= 2 and pnl.min() < pnl.max():
        counts, edges = np.histogram(pnl, bins=min(bins, max(5, len(pnl) // 2)))
        centers = (edges[:-1] + edges[1:]) / 2
    else:
        counts, centers = np.array([len(pnl)]), (pnl[:1] if len(pnl) else np.zeros(1))
    marks = [bq.Bars(x=centers, y=counts, scales={"x": x, "y": y}, padding=0.05,
                     colors=[LONG_COLOR if c > 0 else SHORT_COLOR for c in centers])]
    lo, hi = (float(edges[0]), float(edges[-1])) if len(counts) > 1 else (float(centers[0]) - 1e-4,
                                                                           float(centers[0]) + 1e-4)
    axes = [bq.Axis(scale=x, tick_values=value_ticks(lo, hi, 6), tick_format=percent_format(lo, hi)),
            bq.Axis(scale=y, side="left", tick_format="d", label="trades", tick_values=integer_ticks(counts.max(), 4))]
    wins = int((pnl > 0).sum())
    title = (f"Net PnL per trade: {len(pnl)} trades, {wins} won, mean {pnl.mean():+.3%}" if len(pnl)
             else "Net PnL per trade: no trades")
    return _figure(title, marks, axes, height)


def backtest_figures(result: BacktestResult, max_points: int = 4_000) -> w.VBox:
    """The equity curve and its drawdown above the z-score with the trades and the distribution
    of the trades' PnL."""
    return w.VBox([equity_figure(result, max_points), drawdown_figure(result, max_points),
                   signal_figure(result, max_points), trade_pnl_figure(result)])


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def heatmap_figure(table: pd.DataFrame, title: str, height: str = "340px", fmt: str = ".3g") -> bq.Figure:
    """A sweep's metric over two parameters (``sweep.heatmap``: rows x columns), each cell
    coloured (red below 0, green above) and labelled with its value (d3 format ``fmt``); grey where
    no value. Long labels are turned (bqplot cuts a column label to its cell's width)."""
    values = table.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    span = float(np.max(np.abs(finite))) if len(finite) else 1.0
    rows, cols = bq.OrdinalScale(reverse=True), bq.OrdinalScale()
    color = bq.ColorScale(colors=["#e8705a", "#f7f7f7", "#6fbf73"], min=-span, max=span, mid=0.0)  # text stays legible
    grid = bq.GridHeatMap(color=values, row=[_label(v) for v in table.index], column=[_label(v) for v in table.columns],
                          scales={"row": rows, "column": cols, "color": color}, null_color="#dddddd",
                          stroke="white", display_format=fmt, font_style={"font-size": "12px", "fill": "#222"})
    longest = max((len(_label(v)) for v in [*table.index, *table.columns]), default=1)
    turn = longest * 7 * len(table.columns) > 900  # labels that would overlap side by side are turned
    axes = [bq.Axis(scale=cols, label="" if turn else str(table.columns.name), tick_rotate=-40 if turn else 0,
                    tick_style={"font-size": "11px"}),
            bq.Axis(scale=rows, side="left", label="" if turn else str(table.index.name),
                    tick_style={"font-size": "11px"})]  # values are on the cells
    margin = {"top": 36, "bottom": 48 + (int(longest * 5) if turn else 0), "left": max(70, 7 * longest + 16),
              "right": 28}
    return _figure(title, [grid], axes, height, margin=margin, padding_y=0.0)


class BacktestPanel:
    """A button that backtests the rule shown on the bars shown (``on_run`` starts it, off the
    event loop), then its figures: what a pair's page offers before a full backtest notebook.
    ``trading``: the rule it trades (its costs and fill lag are said under the button; ``clear``
    with the new one when the page's rule changes)."""

    def __init__(self, on_run: Callable[[], None], trading: BacktestParams,
                 label: str = "Backtest this rule on the bars shown") -> None:
        self.label = label
        self.button = w.Button(description=label, icon="line-chart", layout=w.Layout(width="320px"))
        self.button.on_click(lambda _: on_run())
        self.result = w.VBox()
        self.note = w.HTML()
        self.widget = w.VBox([self.button, self.note])
        self.clear(trading)

    def clear(self, trading: BacktestParams) -> None:
        """Forget the result shown (the page now shows another pair or rule); say the costs and
        fill lag of ``trading``, the rule the button now trades."""
        self.button.disabled, self.button.description = False, self.label
        for child in self.result.children:
            child.close()
        self.result.children = []
        p = trading
        self.note.value = (f"<span class='sak-muted'>Fees {p.fee_bps:g} bps and slippage {p.slippage_bps:g} bp per leg "
                           f"and fill; a signal fills {p.lag} bar after it, at that bar's close.</span>")

    def running(self) -> None:
        self.button.disabled, self.button.description = True, "backtesting..."

    def show(self, result: BacktestResult, what: str) -> None:
        self.button.disabled, self.button.description = False, self.label
        m = result.metrics
        sharpe = annual_note(m.sharpe, m.years)
        if not m.trades:  # say why, not a row of NaN
            self.note.value = (f"<div id='sak-backtest-result'><b>{html.escape(what)}</b>: 0 trades: "
                               f"{html.escape(result.why_no_trades)}</div>")
            return
        self.note.value = (f"<div id='sak-backtest-result'><b>{html.escape(what)}</b>: {m.trades} trades, total "
                           f"{m.total_return:+.3%}, {sharpe}, max drawdown {m.max_drawdown:.3%}, hit rate "
                           f"{m.hit_rate:.0%}{'' if result.funding_included else '; funding not included'}</div>")
        for child in self.result.children:
            child.close()
        self.result.children = [equity_figure(result), drawdown_figure(result), trade_pnl_figure(result)]

    def failed(self, text: str) -> None:
        self.button.disabled, self.button.description = False, self.label
        self.note.value = f"<span class='sak-err'>{html.escape(text)}</span>"
