"""bqplot figures of backtests: a result's equity curve and z-score with its trades; a sweep's heatmap."""

from __future__ import annotations

import bqplot as bq
import ipywidgets as w
import numpy as np
import pandas as pd

from ..backtest.engine import BacktestResult
from .charts import BAND_COLOR, LONG_COLOR, SHORT_COLOR, Z_COLOR, datetimes
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
    return bq.Figure(marks=marks, axes=axes, title=title, animation_duration=0,
                     fig_margin=margin or {"top": 32, "bottom": 28, "left": 62, "right": 28},
                     layout={"height": height, "width": "100%", "min_width": "360px"},
                     title_style={"font-size": "13px"}, **figure_kw)


#: Colours of the extra curves of a figure (the first is EQUITY_COLOR).
CURVE_COLORS = ("#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def curves_figure(curves: dict[str, pd.Series], title: str, max_points: int = 4_000,
                  height: str = "260px") -> bq.Figure:
    """Equity-like curves (UTC index) on one time axis, labelled in a legend (for more than one)."""
    x, y = bq.DateScale(), bq.LinearScale()
    marks = []
    for k, (label, series) in enumerate(curves.items()):
        t, v = _thinned(series.index.as_unit("ms").asi8, series.to_numpy(dtype=np.float64), max_points)
        color = EQUITY_COLOR if k == 0 else CURVE_COLORS[(k - 1) % len(CURVE_COLORS)]
        marks.append(bq.Lines(x=t, y=v, scales={"x": x, "y": y}, colors=[color], labels=[label],
                              display_legend=len(curves) > 1, stroke_width=2.0 if k == 0 else 1.0))
    axes = [bq.Axis(scale=x, num_ticks=6, tick_format="%m-%d %H:%M"),
            bq.Axis(scale=y, side="left", tick_format=",.4f", grid_lines="solid")]
    return _figure(title, marks, axes, height, legend_location="top-left")


def equity_figure(result: BacktestResult, max_points: int = 4_000, height: str = "260px") -> bq.Figure:
    """Equity (capital 1 at the start) over UTC time."""
    m = result.metrics
    title = (f"Equity: {m.total_return:+.2%} over {m.trades} trades, Sharpe {m.sharpe:.2f}, "
             f"max drawdown {m.max_drawdown:.2%}")
    return curves_figure({"equity": result.equity}, title, max_points, height)


def signal_figure(result: BacktestResult, max_points: int = 4_000, height: str = "260px") -> bq.Figure:
    """z-score with the entry and exit levels and a marker at each entry fill (green: long
    spread, red: short spread) and exit fill (grey)."""
    f, p, trades = result.frame, result.params, result.trades
    t, z = _thinned(f.time, f.z, max_points)
    x, y = bq.DateScale(), bq.LinearScale()
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
    axes = [bq.Axis(scale=x, num_ticks=6, tick_format="%m-%d %H:%M"),
            bq.Axis(scale=y, side="left", tick_format=".1f", grid_lines="solid")]
    title = (f"z-score: entries at |z| >= {p.z_entry:g} (dashed), exits at {-p.z_exit:+g} for a long and "
             f"{p.z_exit:+g} for a short (dotted)")
    return _figure(title, marks, axes, height)


def backtest_figures(result: BacktestResult, max_points: int = 4_000) -> w.VBox:
    """The equity curve above the z-score with the trades."""
    return w.VBox([equity_figure(result, max_points), signal_figure(result, max_points)])


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def heatmap_figure(table: pd.DataFrame, title: str, height: str = "340px") -> bq.Figure:
    """A sweep's metric over two parameters (``sweep.heatmap``: rows x columns), each cell
    coloured (red below 0, green above) and labelled with its value; grey where no value."""
    values = table.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    span = float(np.max(np.abs(finite))) if len(finite) else 1.0
    rows, cols = bq.OrdinalScale(reverse=True), bq.OrdinalScale()
    color = bq.ColorScale(colors=["#e8705a", "#f7f7f7", "#6fbf73"], min=-span, max=span, mid=0.0)  # text stays legible
    grid = bq.GridHeatMap(color=values, row=[_label(v) for v in table.index], column=[_label(v) for v in table.columns],
                          scales={"row": rows, "column": cols, "color": color}, null_color="#dddddd",
                          stroke="white", display_format=".3g", font_style={"font-size": "12px", "fill": "#222"})
    axes = [bq.Axis(scale=cols, label=str(table.columns.name)),
            bq.Axis(scale=rows, side="left", label=str(table.index.name))]  # values are on the cells
    return _figure(title, [grid], axes, height, margin={"top": 36, "bottom": 48, "left": 70, "right": 28},
                   padding_y=0.0)
