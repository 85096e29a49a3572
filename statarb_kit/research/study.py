"""The walk-forward universe study: which selection method predicts the next period, by how much,
and after costs, measured on the user's own data.

For each period (``periods``): the point-in-time universe is the symbols with a traded bar in the
formation window (a bar without trades is no price, so a settled contract's flat tail is not
there: no survivorship, no dead markets); each method (``methods``) selects on the formation only;
the trading window right after it judges the selections:

- a **hit**: the spread built with the formation weights is stationary in the trading window
  (ADF with a constant and AIC lags, p < ``HIT_LEVEL``, on the bars where both legs trade; fewer
  than ``MIN_TRADING_BARS`` of them: not judged, e.g. a leg that ended);
- the **base rate**: the same test on every pair the method tested; **lift** = hit rate / base
  rate, with a confidence interval from a bootstrap over periods;
- the selections are traded on the trading window with the one ``Rule`` (the formation hedge held
  fixed, the z-score warmed up on the formation's last bars, fills on the next bar, fees and
  slippage per leg): the share that made money after costs, and an equal-weight portfolio of each
  period's selections; the periods' portfolios stitched into one out-of-sample PnL curve.

Periods are independent: on a ``distributed.Client`` they run on its workers with results
identical to in-process.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ..analytics.signals import REL_STD_FLOOR, log_returns, rolling_corr, rolling_zscore
from ..backtest.basket import basket_backtest
from ..backtest.costs import COST_MODELS, LegSpreads
from ..backtest.engine import pnl_figures
from ..errors import InvalidParameter
from ..render import curves_svg
from ..rule import Rule
from ..scan.engle_granger import default_maxlag
from ..scan.scan import adf_batches
from .methods import METHODS, Candidates, Formation, MethodParams, method_names
from .pca import rolling_s_score
from .periods import PRESETS, Period, rolling_periods

#: ADF p below which a trading-window spread counts as stationary (a hit).
HIT_LEVEL = 0.05
#: Fewest trading-window bars (both legs trading) on which a pair is judged.
MIN_TRADING_BARS = 50
#: Bootstrap draws over periods for the lift's interval, and its seed.
BOOTSTRAP = 2_000
SEED = 7


def spread_of(levels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``levels`` (bars x legs) @ ``weights``; a pair's written out, w0 x + w1 y, as the scan and
    the pair engine compute it (a product's summation order may differ in the last bit)."""
    if levels.shape[1] == 2:
        return weights[0] * levels[:, 0] + weights[1] * levels[:, 1]
    return levels @ weights


def stationary(panel: pd.DataFrame, c: Candidates, max_stale: int) -> np.ndarray:
    """Per candidate: 1.0 when its spread (``c``'s weights) is stationary in ``panel`` (ADF, a
    constant, AIC lags up to Schwert's maximum, p < HIT_LEVEL), 0.0 when not, NaN when it has
    fewer than MIN_TRADING_BARS bars where every leg trades."""
    out = np.full(len(c), np.nan)
    if not len(c):
        return out
    filled = panel.ffill(limit=max_stale)
    values = np.log(filled) if c.prices == "log" else filled
    col = {s: k for k, s in enumerate(values.columns)}
    arr = values.to_numpy(dtype=float)
    items: list[tuple[object, np.ndarray, int]] = []
    for i, (legs, w) in enumerate(zip(c.legs, c.weights)):
        if any(leg not in col for leg in legs) or not np.isfinite(w).all():
            continue
        x = arr[:, [col[leg] for leg in legs]]
        every = np.isfinite(x).all(axis=1)
        n = int(every.sum())
        if n >= MIN_TRADING_BARS:
            items.append((i, spread_of(x[every], w), default_maxlag(n, "c")))
    for idx, _, _, p, bad in adf_batches(items):
        out[idx] = np.where(bad | ~np.isfinite(p), 0.0, (p < HIT_LEVEL).astype(float))
    return out


def trade(formation: pd.DataFrame, trading: pd.DataFrame, legs: tuple[str, ...], weights: np.ndarray, prices: str,
          signal: str, rule: Rule, p: MethodParams, bar_ms: int, spreads: tuple[str, pd.DataFrame] | None = None
          ) -> tuple[pd.Series, dict[str, float]] | None:
    """One selection traded on the trading window with its formation weights fixed
    (``backtest.basket``, which for two legs is the pair engine with a fixed hedge): signal "z" is
    the Rule's rolling z-score of the spread (and, for a pair, the legs' rolling correlation)
    warmed up on the formation's last bars; "s" the s-score over a window as long as the
    formation, traded at ``p``'s s thresholds with the Rule's costs, lag and holds; ``spreads``:
    (model, half spreads per bar and symbol) each fill also crosses (``backtest.costs``). Returns
    the PnL per trading bar (bar close times) and the backtest's figures; None when a leg has no
    bar there."""
    cols = list(legs)
    if any(leg not in trading.columns for leg in cols):
        return None
    window = len(formation)
    warm = window if signal == "s" else max(rule.z_window, rule.corr_window) + 1
    tail = (formation[cols].ffill(limit=p.max_stale).dropna().iloc[-warm:] if all(c in formation for c in cols)
            else trading[cols].iloc[:0])
    now = trading[cols].ffill(limit=p.max_stale).dropna()
    if len(now) < 2:
        return None
    px = pd.concat([tail, now]).to_numpy(dtype=float)
    log = prices == "log"
    levels = np.log(px) if log else px
    spread = spread_of(levels, weights)
    k = len(tail)
    exits = None
    if signal == "s":
        z = rolling_s_score(spread, window)
        corr = None
        stop = rule.z_stop if rule.z_stop is not None and rule.z_stop > p.s_entry else None
        rule = replace(rule, z_entry=p.s_entry, z_exit=p.s_exit_long, z_stop=stop)
        exits = (p.s_exit_long, p.s_exit_short)
    else:
        z = rolling_zscore(spread, rule.z_window, False, REL_STD_FLOOR * np.abs(levels[:, 0]))
        corr = rolling_corr(log_returns(px[:, 0]), log_returns(px[:, 1]), rule.corr_window)[k:] \
            if len(cols) == 2 else None
    t = now.index.as_unit("ms").asi8 + bar_ms  # fills at bar close times (ms UTC)
    crossing = None
    if spreads is not None:
        model, halves = spreads
        crossing = LegSpreads(model, halves.reindex(now.index)[cols].to_numpy(dtype=np.float64))
    result = basket_backtest(t, px[k:], weights, z[k:], replace(rule, log_prices=log), bar_ms / 1000, legs,
                             corr, exits, crossing)
    pnl = result.equity.diff().fillna(result.equity.iloc[0] - 1.0)  # indexed by bar close times
    m = result.metrics
    return pnl, {"net": m.total_return, "trades": m.trades, "costs": m.costs, "spread": m.spread,
                 "turnover": m.turnover}


def select(formation: pd.DataFrame, validation: pd.DataFrame, method: str, p: MethodParams) -> pd.DataFrame:
    """One method's selections on ``formation`` (closes, as ``study`` takes them), best first, each
    judged on ``validation`` as the study judges a hit: legs, weights, prices, score (lower is
    better) and ``holds`` (True / False; None: too few validation bars)."""
    c = METHODS[method_names([method])[0]](Formation.of(formation.loc[:, formation.notna().any()], p), p)
    held = stationary(validation, c, p.max_stale)
    return pd.DataFrame({"legs": ["/".join(c.legs[i]) for i in c.selected],
                         "weights": [np.round(c.weights[i], 6).tolist() for i in c.selected],
                         "prices": c.prices, "score": c.score[c.selected],
                         "holds": [None if np.isnan(held[i]) else bool(held[i]) for i in c.selected]})


def run_period(period: Period, formation: pd.DataFrame, trading: pd.DataFrame, methods: tuple[str, ...],
               p: MethodParams, rule: Rule, bar_ms: int, spreads: tuple[str, pd.DataFrame] | None = None
               ) -> list[dict[str, Any]]:
    """Every method on one period (a pure function of its two panels): per method the tested pairs'
    hits, the selections with their weights, hits and traded figures, and the portfolio's PnL. Runs
    on one BLAS thread, as Dask's workers do (OPENBLAS_NUM_THREADS=1): a matrix product's rounding
    depends on the threads that sum it, and a ranking of near-equal p-values on that rounding."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _run_period(period, formation, trading, methods, p, rule, bar_ms, spreads)


def _run_period(period: Period, formation: pd.DataFrame, trading: pd.DataFrame, methods: tuple[str, ...],
                p: MethodParams, rule: Rule, bar_ms: int, spreads: tuple[str, pd.DataFrame] | None = None
                ) -> list[dict[str, Any]]:
    form = formation.loc[:, formation.notna().any()]  # the point-in-time universe: traded in the window
    out: list[dict[str, Any]] = []
    try:
        f = Formation.of(form, p)
    except InvalidParameter as exc:  # too few symbols or bars in this window
        return [{"method": m, "period": period, "skipped": str(exc)} for m in methods]
    judged: dict[tuple, np.ndarray] = {}  # methods that share their spreads share the test
    for name in methods:
        c = METHODS[name](f, p)
        key = c.key()
        if key not in judged:
            judged[key] = stationary(trading, c, p.max_stale)
        hits = judged[key]
        chosen = []
        pnl_parts = []
        for i in c.selected.tolist():
            traded = trade(form, trading, c.legs[i], c.weights[i], c.prices, c.signal, rule, p, bar_ms, spreads)
            chosen.append({"legs": list(c.legs[i]), "weights": [float(w) for w in c.weights[i]],
                           "prices": c.prices, "hit": None if np.isnan(hits[i]) else bool(hits[i]),
                           **(traded[1] if traded else {"net": math.nan, "trades": 0, "costs": 0.0, "spread": 0.0,
                                                        "turnover": 0.0})})
            if traded:
                pnl_parts.append(traded[0])
        pnl = (pd.concat(pnl_parts, axis=1).fillna(0.0).sum(axis=1) / len(pnl_parts)) if pnl_parts else pd.Series(
            dtype=float)
        out.append({"method": name, "period": period, "tested": int(np.isfinite(hits).sum()),
                    "tested_all": len(c), "base_hits": int(np.nansum(hits)), "selections": chosen,
                    "notes": {"/".join(legs): why for legs, why in c.notes.items()}, "pnl": pnl})
    return out


@dataclass(frozen=True)
class StudyResult:
    """A study's results. ``methods``: one row per method over all periods (pairs tested and
    judged, selected, hit rate, base rate, lift and its interval, profitable share, the stitched
    portfolio's net return, Sharpe, drawdown, trades, costs); ``periods``: one row per method and
    period; ``selections``: each period's selections (legs, weights, prices, hit); ``equity``:
    the stitched out-of-sample PnL of each method (cumulative, capital 1); ``settings``."""

    methods: pd.DataFrame
    periods: pd.DataFrame
    selections: list[dict[str, Any]]
    equity: pd.DataFrame
    settings: dict[str, Any]

    def summary(self) -> str:
        cols = ["method", "periods", "tested", "selected", "hit_rate", "base_rate", "lift", "lift_lo", "lift_hi",
                "profitable_rate", "net_return", "net_sharpe", "trades"]
        with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
            table = self.methods[cols].to_string(index=False)
        s = self.settings
        return (f"walk-forward study: {s['periods']} periods of {s['formation']} formation / {s['trading']} trading "
                f"(step {s['step']}), {s['symbols']} symbols, top {s['top']} per method; a hit: the formation "
                f"spread stationary in the trading window (ADF p < {HIT_LEVEL}); costs: "
                f"{s.get('costs', 'flat')}\n{table}")

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        s = self.settings
        head = (f"<b>Walk-forward study</b>: {s['periods']} periods, {html.escape(s['formation'])} formation / "
                f"{html.escape(s['trading'])} trading (step {html.escape(s['step'])}), {s['symbols']} symbols. "
                "Lift = hit rate of the selections / hit rate of every pair tested (1: no better than chance). "
                f"Costs: {html.escape(s.get('costs', 'flat'))}.")
        return (f"<div class='statarb-study'><p>{head}</p>{self.methods.to_html(index=False, float_format='{:.4g}'.format)}"
                f"{curves_svg(self.equity, 'Out-of-sample PnL (trading windows stitched, net of costs, capital 1):')}"
                "</div>")

    def as_json(self) -> dict[str, Any]:
        """The JSON layout of ``statarb study --json`` (anyone can recount it: spread = sum of
        weights x prices of the legs, log prices where ``prices`` is "log")."""
        keys = ["method", "periods", "tested", "selected", "hit_rate", "base_rate", "lift", "lift_ci",
                "profitable_rate", "net_return", "net_sharpe", "trades"]
        rows = []
        for r in self.methods.to_dict("records"):
            r["lift_ci"] = [r["lift_lo"], r["lift_hi"]]
            rows.append({k: _plain(r[k]) for k in keys})
        return {"methods": rows, "periods": self.selections, "settings": self.settings}

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(orjson.dumps(self.as_json(), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2))
        return path

    def to_html(self, path: str | Path) -> Path:
        """A self-contained report: the table of methods, the stitched equity, each period's row."""
        path = Path(path)
        periods = self.periods.to_html(index=False, float_format="{:.4g}".format)
        path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>statarb_kit study</title>"
                        f"<style>body{{font-family:sans-serif;margin:24px}}table{{border-collapse:collapse;"
                        f"font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}</style>"
                        f"</head><body>{self._repr_html_()}<h3>Per period</h3>{periods}</body></html>")
        return path


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _bar_ms(index: pd.DatetimeIndex) -> int:
    steps = np.diff(index.as_unit("ms").asi8)
    if not len(steps):
        raise InvalidParameter("need at least two bar times")
    return int(np.min(steps[steps > 0]))


def study(closes: pd.DataFrame, *, formation: str = "60d", trading: str = "30d", step: str | None = None,
          preset: str | None = None, methods: str | tuple[str, ...] = "all", rule: Rule | None = None,
          params: MethodParams | None = None, client: object | None = None, progress: bool = False,
          spreads: tuple[str, pd.DataFrame] | None = None, **changes: Any) -> StudyResult:
    """Run the study (see the module doc) on ``closes`` (UTC index of bar open times, a column of
    closes per symbol, NaN where a symbol has no traded bar: ``scan.data.closes_from_*``).
    ``preset`` "ggr" sets 12m / 6m / 6m; ``step`` defaults to ``trading``; ``rule`` the one Rule
    that trades (default: the kit's, z_entry 2); ``params`` or keyword ``changes`` set the methods'
    settings (top, q_level, min_obs...); ``client``: a ``distributed.Client`` to run periods on;
    ``spreads``: (model, half spreads as ``closes``: ``scan.data.half_spreads_from_klines``) each
    fill crosses on top of the Rule's fees and slippage (None: the flat model, the Rule's bps)."""
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidParameter(f"unknown preset {preset!r}: {', '.join(PRESETS)}")
        formation, trading, step = PRESETS[preset]
    step = step or trading
    names = method_names(methods)
    p = replace(params or MethodParams(), **changes)
    rule = rule or Rule()
    if not isinstance(closes.index, pd.DatetimeIndex) or closes.shape[1] < 2:
        raise InvalidParameter("closes must have a UTC DatetimeIndex and at least two symbols")
    closes = closes.sort_index()
    bar_ms = _bar_ms(closes.index)
    end = closes.index[-1] + pd.Timedelta(milliseconds=bar_ms)
    periods = rolling_periods(closes.index[0], end, formation, trading, step)
    if not periods:
        raise InvalidParameter(f"the data ({closes.index[0]:%Y-%m-%d} to {end:%Y-%m-%d}) is shorter than one "
                               f"formation ({formation}) and trading ({trading}) window")
    if spreads is not None and (spreads[0] not in COST_MODELS[1:] or not isinstance(spreads[1], pd.DataFrame)):
        raise InvalidParameter(f"spreads are (model, half spreads per bar and symbol), model one of "
                               f"{', '.join(COST_MODELS[1:])}")
    window = lambda lo, hi: (closes.index >= lo) & (closes.index < hi)  # noqa: E731
    jobs = [(q, closes[window(*q.formation)], closes[window(*q.trading)],
             None if spreads is None else (spreads[0], spreads[1][(spreads[1].index >= q.trading[0])
                                                                  & (spreads[1].index < q.trading[1])]))
            for q in periods]
    results = _run(jobs, names, p, rule, bar_ms, client, progress)
    costs = "flat: the rule's fee and slippage bps per leg" if spreads is None else \
        f"{spreads[0]}: half the estimated spread per leg and fill, plus the rule's fee and slippage bps"
    return _assemble(results, periods, names, p, {"formation": formation, "trading": trading, "step": step,
                                                  "periods": len(periods), "symbols": closes.shape[1], "top": p.top,
                                                  "methods": list(names), "rule": rule.as_dict(), "costs": costs},
                     bar_ms)


def _run(jobs: list[tuple[Period, pd.DataFrame, pd.DataFrame, Any]], names: tuple[str, ...], p: MethodParams,
         rule: Rule, bar_ms: int, client: object | None, progress: bool) -> list[list[dict[str, Any]]]:
    from tqdm.auto import tqdm

    if client is None:
        return [run_period(q, f, t, names, p, rule, bar_ms, s) for q, f, t, s in tqdm(jobs, disable=not progress,
                                                                                       desc="periods", unit="period")]
    from distributed import as_completed

    futures = [client.submit(run_period, q, f, t, names, p, rule, bar_ms, s, pure=False) for q, f, t, s in jobs]
    done = {}
    for fut in tqdm(as_completed(futures), total=len(futures), disable=not progress, desc="periods", unit="period"):
        done[futures.index(fut)] = fut.result()
    return [done[i] for i in range(len(futures))]


def _lift(sel_hits: np.ndarray, sel_n: np.ndarray, base_hits: np.ndarray, base_n: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        hit, base = sel_hits.sum() / sel_n.sum(), base_hits.sum() / base_n.sum()
        return float(hit / base) if base > 0 and sel_n.sum() > 0 else math.nan


def _assemble(results: list[list[dict[str, Any]]], periods: list[Period], names: tuple[str, ...], p: MethodParams,
              settings: dict[str, Any], bar_ms: int) -> StudyResult:
    rows, selections, curves = [], [], {}
    rng = np.random.default_rng(SEED)
    draws = rng.integers(0, len(periods), size=(BOOTSTRAP, len(periods)))
    summary = []
    for name in names:
        per = [r for period in results for r in period if r["method"] == name]
        judged_sel = np.array([sum(s["hit"] is not None for s in r.get("selections", [])) for r in per], dtype=float)
        hits_sel = np.array([sum(bool(s["hit"]) for s in r.get("selections", [])) for r in per], dtype=float)
        base_n = np.array([r.get("tested", 0) for r in per], dtype=float)
        base_h = np.array([r.get("base_hits", 0) for r in per], dtype=float)
        boot = np.array([_lift(hits_sel[d], judged_sel[d], base_h[d], base_n[d]) for d in draws])
        traded = [s for r in per for s in r.get("selections", []) if s["trades"] > 0 or np.isfinite(s["net"])]
        pnl = [r["pnl"] for r in per if len(r.get("pnl", []))]
        stitched = (pd.concat(pnl, axis=1).mean(axis=1).sort_index() if pnl else pd.Series(dtype=float))
        curves[name] = stitched.cumsum()
        # the engine's figures of PnL on capital 1 (as a portfolio's), over the trading bars stitched;
        # no annual Sharpe from less than MIN_ANNUALISE_DAYS of them, as for an annual return
        total, annual, sharpe, drawdown = pnl_figures(stitched.to_numpy(), float(len(stitched)), bar_ms / 1000)
        sharpe = sharpe if np.isfinite(annual) else math.nan
        n_sel = int(sum(len(r.get("selections", [])) for r in per))
        summary.append({
            "method": name, "periods": len(per), "tested": int(base_n.sum()), "selected": n_sel,
            "judged": int(judged_sel.sum()),
            "hit_rate": hits_sel.sum() / judged_sel.sum() if judged_sel.sum() else math.nan,
            "base_rate": base_h.sum() / base_n.sum() if base_n.sum() else math.nan,
            "lift": _lift(hits_sel, judged_sel, base_h, base_n),
            "lift_lo": float(np.nanpercentile(boot, 2.5)) if np.isfinite(boot).any() else math.nan,
            "lift_hi": float(np.nanpercentile(boot, 97.5)) if np.isfinite(boot).any() else math.nan,
            "profitable_rate": (np.mean([s["net"] > 0 for s in traded]) if traded else math.nan),
            "net_return": total if len(stitched) else math.nan, "net_sharpe": sharpe,
            "max_drawdown": drawdown if len(stitched) else math.nan, "trades": int(sum(s["trades"] for s in traded)),
            "costs": float(np.mean([s["costs"] for s in traded])) if traded else math.nan,
            "spread": float(np.mean([s.get("spread", 0.0) for s in traded])) if traded else math.nan})
        for r in per:
            q = r["period"]
            sel = r.get("selections", [])
            judged = sum(s["hit"] is not None for s in sel)
            hit_rate = sum(bool(s["hit"]) for s in sel) / judged if judged else math.nan
            base = r["base_hits"] / r["tested"] if r.get("tested") else math.nan
            rows.append({"method": name, "formation_start": q.formation[0], "trading_start": q.trading[0],
                         "trading_end": q.trading[1], "tested": r.get("tested", 0), "selected": len(sel),
                         "hit_rate": hit_rate, "base_rate": base,
                         "lift": hit_rate / base if base and np.isfinite(hit_rate) else math.nan,
                         "net_return": float(r["pnl"].sum()) if len(r.get("pnl", [])) else math.nan,
                         "trades": int(sum(s["trades"] for s in sel)), "skipped": r.get("skipped", "")})
            selections.append({"method": name, "formation": [q.formation[0].isoformat(), q.formation[1].isoformat()],
                               "trading": [q.trading[0].isoformat(), q.trading[1].isoformat()],
                               "selected": [{k: s[k] for k in ("legs", "weights", "prices")} for s in sel],
                               "hits": [s["hit"] for s in sel], "net": [_plain(s["net"]) for s in sel],
                               "left_out": r.get("notes", {})})
    equity = pd.DataFrame(curves).sort_index().ffill().fillna(0.0) if curves else pd.DataFrame()
    return StudyResult(pd.DataFrame(summary), pd.DataFrame(rows), selections, equity, settings)
