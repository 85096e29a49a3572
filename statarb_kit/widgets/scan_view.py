"""Explore a scan: a sortable, filterable results grid (ipydatagrid), a heatmap of the symbols'
pairwise evidence, and the chosen pair's prices, spread and z with the dashboard's charts."""

from __future__ import annotations

import html
import math
from urllib.parse import urlencode

import bqplot as bq
import ipywidgets as w
import numpy as np
import pandas as pd
from ipydatagrid import DataGrid, TextRenderer

from ..analytics import pair_frame
from ..rule import DEFAULT, LIVE_FIELDS, Rule
from .backtest_view import BacktestPanel
from .charts import PriceChart, SpreadChart, ZChart

#: Columns the grid shows, in order (the full rows stay in ``ScanExplorer.results``).
GRID_COLUMNS = ("x", "y", "q_value", "eg_stat", "eg_lags", "beta", "r2", "half_life_bars", "corr", "spread_std",
                "crossings", "val_adf_pvalue", "val_half_life_bars", "survives")
#: Probabilities span many orders of magnitude: one scientific format (the rest: fixed decimals).
PROBABILITY_COLUMNS = ("q_value", "pvalue", "val_adf_pvalue")


def evidence_matrix(results: pd.DataFrame, symbols: list[str]) -> np.ndarray:
    """-log10(q) of each pair of ``symbols`` (symmetric; 0 on the diagonal and for untested pairs),
    capped at 16 (q = 0)."""
    pos = {s: i for i, s in enumerate(symbols)}
    m = np.zeros((len(symbols), len(symbols)))
    rows = results[results["x"].isin(pos) & results["y"].isin(pos)]
    i, j = rows["x"].map(pos).to_numpy(), rows["y"].map(pos).to_numpy()
    with np.errstate(divide="ignore"):
        v = np.minimum(-np.log10(rows["q_value"].to_numpy()), 16.0)
    m[i, j] = m[j, i] = v
    return m


class ScanExplorer:
    """Display ``explorer.widget``. ``closes``: the closes scanned (UTC index, one column per
    symbol); ``results``: ``scan_pairs`` rows; ``dashboard_url``: where ``statarb dashboard``
    serves, for the link that opens a pair there on live market data; None when the closes are
    not market data (a synthetic universe): the pair then exists only here, and the page says so."""

    def __init__(self, closes: pd.DataFrame, results: pd.DataFrame, rule: Rule | None = None,
                 dashboard_url: str | None = "http://127.0.0.1:8866/", timeframe: str = "1m", heatmap_symbols: int = 24) -> None:
        scanned = results.attrs.get("params", {}).get("log_prices", DEFAULT.log_prices)
        #: the rule the pair is shown, backtested and opened with: on the prices the scan tested
        self.rule = rule or Rule(log_prices=scanned)
        self.closes, self.results = closes, results
        self.dashboard_url, self.timeframe = dashboard_url, timeframe
        shown = results.loc[:, list(GRID_COLUMNS)].copy()
        shown["survives"] = shown["survives"].astype("object").where(shown["survives"].notna(), None)
        numbers, probabilities = TextRenderer(format=",.4~f"), TextRenderer(format=".2e")
        renderers = {c: (probabilities if c in PROBABILITY_COLUMNS else numbers)
                     for c in shown.columns if shown[c].dtype.kind == "f"}
        self.grid = DataGrid(shown, selection_mode="row", base_column_size=92, base_row_size=22,
                             column_widths={c: max(80, 8 * len(c) + 30) for c in shown.columns},
                             layout={"height": "320px", "width": "100%"}, editable=False, renderers=renderers)
        self.grid.observe(self._on_grid, names="selections")
        chosen = results[results["selected"]]
        options = [(f"{r.x} / {r.y}  q={r.q_value:.2g}", (r.x, r.y)) for r in chosen.itertuples()]
        self.pick = w.Dropdown(options=options or [("no pair selected at this q level", None)],
                               description="pair", layout={"width": "420px"})
        self.pick.observe(lambda ch: self.show(*ch["new"]) if ch["new"] else None, names="value")
        self.title = w.HTML()
        self.price, self.spread, self.z = PriceChart("x", "y"), SpreadChart(), ZChart(2.0)
        self.heatmap = self._heatmap(heatmap_symbols)
        self.backtest = BacktestPanel(self.run_backtest, self.rule, "Backtest this pair on the validation bars")
        self._pair: tuple[str, str] | None = None
        validation = results.attrs.get("validation")  # (first, last, bars) of the bars after the formation
        self._validation_ms = int(pd.Timestamp(validation[0]).value // 1_000_000) if validation else None
        self._charts = w.HBox([self.price.figure, self.spread.figure], layout={"width": "100%"})
        self.widget = w.VBox([
            w.HTML(self._summary()), self.grid,
            w.HBox([self.heatmap, w.VBox([self.pick, self.title, self.backtest.widget], layout={"width": "440px"})]),
            self._charts, self.z.figure, self.backtest.result,
        ], layout={"width": "100%"})
        if options:
            self.show(*options[0][1])

    def _summary(self) -> str:
        a, r = self.results.attrs, self.results
        chosen = r[r["selected"]]
        left = f"; left out: {', '.join(a['left_out'])}" if a.get("left_out") else ""
        return (f"<div id='sak-scan-summary'><b>{a.get('pairs_tested', len(r)):,}</b> pairs of "
                f"{len(a.get('symbols', []))} symbols tested; <b>{len(chosen)}</b> selected at q &le; "
                f"{a.get('params', {}).get('q_level', 0.05):g} (Benjamini-Hochberg), "
                f"{int(chosen['survives'].sum())} survive validation; by raw p &lt; 0.05: "
                f"{int((r['pvalue'] < 0.05).sum()):,}{html.escape(left)}</div>")

    def _heatmap(self, k: int) -> bq.Figure:
        """Evidence among the ``k`` symbols of the strongest pairs."""
        top = pd.unique(self.results[["x", "y"]].head(4 * k).to_numpy().ravel())[:k].tolist()
        m = evidence_matrix(self.results, top)
        scales = {"row": bq.OrdinalScale(reverse=True), "column": bq.OrdinalScale(),
                  "color": bq.ColorScale(scheme="Blues", min=0.0, max=6.0)}  # q = 1e-6 and below: darkest
        short = [t.removesuffix("USDT") for t in top]  # full names do not fit under a column
        grid = bq.GridHeatMap(color=np.minimum(m, 6.0), row=short, column=short, scales=scales, stroke="#ddd")
        axes = [bq.Axis(scale=scales["column"], tick_rotate=-90, tick_style={"font-size": "11px"}),
                bq.Axis(scale=scales["row"], orientation="vertical", tick_style={"font-size": "11px"}),
                bq.ColorAxis(scale=scales["color"], label="-log10 q (6+)", side="right")]
        return bq.Figure(marks=[grid], axes=axes, title=f"pairwise evidence: -log10(q) of the {len(top)} strongest symbols (USDT quoted)",
                         layout={"width": "620px", "height": "620px"}, title_style={"font-size": "13px"},
                         fig_margin={"top": 40, "bottom": 100, "left": 100, "right": 90})

    def _on_grid(self, change: dict) -> None:
        sel = change["new"]
        if not sel:
            return
        row = self.grid.get_visible_data().iloc[int(sel[0]["r1"])]
        self.show(str(row["x"]), str(row["y"]))

    def run_backtest(self) -> None:
        """Backtest the shown pair by the explorer's rule on the bars after the formation: data
        the selection never saw."""
        from ..backtest.data import PairBars, backtest_bars
        from ..errors import StatarbError

        if self._pair is None:
            return
        x, y = self._pair
        pair = self.closes[[x, y]].dropna()
        if self._validation_ms is not None:
            pair = pair[pair.index.as_unit("ms").asi8 >= self._validation_ms]
        try:
            bars = PairBars((x, y), self.timeframe, pair.index.as_unit("ms").asi8, pair[x].to_numpy(),
                            pair[y].to_numpy(), "scanned closes")
            self.backtest.show(backtest_bars(bars, self.rule), f"{x} / {y} on the {len(pair):,} validation bars")
        except StatarbError as exc:
            self.backtest.failed(str(exc))

    def show(self, x: str, y: str) -> None:
        """The pair's prices, spread and z (the live analytics under the explorer's rule) over the scanned closes."""
        self._pair = (x, y)
        self.backtest.clear(self.rule)
        pair = self.closes[[x, y]].dropna()
        t = pair.index.as_unit("ms").asi8
        f = pair_frame(t, pair[x].to_numpy(), pair[y].to_numpy(), self.rule.pair_params())
        cols = {"time": t, **{c: getattr(f, c) for c in f.COLUMNS}}
        self.price.close()
        self.price = PriceChart(x, y)
        self._charts.children = [self.price.figure, self.spread.figure]
        for chart in (self.price, self.spread, self.z):
            chart.reset(cols)
            chart.mark_time(self._validation_ms, "validation starts")
        row = self.results[(self.results["x"] == x) & (self.results["y"] == y)].iloc[0]
        if self.dashboard_url:
            query = urlencode({"source": "live", "symbols": f"{x},{y}", "timeframe": self.timeframe,
                               **{k: getattr(self.rule, k) for k in LIVE_FIELDS}})
            where = (f"<a id='sak-open-dashboard' href='{html.escape(f'{self.dashboard_url}?{query}')}' "
                     "target='_blank'>open in the pair dashboard</a> (live Binance trades of these symbols)")
        else:
            where = ("<span id='sak-no-dashboard'>this pair exists only in the synthetic universe scanned here: "
                     "the live pair dashboard cannot show it (its charts are below)</span>")
        surv = "n/a" if pd.isna(row["survives"]) else ("yes" if row["survives"] else "no")
        hl = row["half_life_bars"]
        self.title.value = (
            f"<div id='sak-scan-pair'><b>{x} / {y}</b>: beta {row['beta']:.4g} ({'log prices' if self.rule.log_prices else 'prices'}), EG {row['eg_stat']:.2f}"
            f" (q {row['q_value']:.2g}), half-life {hl:.1f} bars, corr {row['corr']:.2f}; survives validation: "
            f"{surv}<br>{where}</div>" if math.isfinite(hl) else f"<div id='sak-scan-pair'><b>{x} / {y}</b></div>")
