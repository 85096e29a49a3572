"""Portfolios of pairs: each pair traded by its rule as in a single backtest, capital split by a
stated scheme, one combined equity curve and its metrics, the correlation of the pairs' PnLs
and each pair's contribution.

Weights (fractions of capital 1, summing to 1): "equal", or "inverse_vol": proportional to
1 / the volatility of the pair's spread per bar per unit of gross notional, estimated on the
pair's first ``hedge_window`` bars, which no trade can use (the hedge needs them first), so the
weights know nothing of the bars traded. A pair's PnL on capital w is w times its PnL on
capital 1 (the engine's sizing is linear). Bars are aligned on the union of the pairs' bar close
times; a pair without a bar at a time adds 0 there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analytics.hedge import ols_hedge
from ..errors import InvalidParameter
from ..funding import FundingRates, PairFunding
from ..render import curves_svg, figures_html, figures_text
from .data import PairBars, backtest_bars
from .engine import MIN_ANNUALISE_DAYS, YEAR_S, BacktestResult, annual_note, pnl_figures
from .params import BacktestParams

WEIGHTINGS = ("equal", "inverse_vol")


@dataclass(frozen=True, eq=False)
class PortfolioResult:
    """``pairs`` (x/y names); ``weights`` per pair; ``results`` the pairs' own backtests (capital
    1 each); ``pnl`` per bar and pair, weighted (UTC index of close times); ``equity`` of the
    whole (capital 1); ``metrics`` of the whole: total_return, annual_return, sharpe,
    max_drawdown, trades, costs, funding_pnl (NaN unless every pair had funding data);
    ``contribution`` per pair (its annual Sharpe NaN below MIN_ANNUALISE_DAYS of data, the one rule
    of ``engine.annual_note``); ``correlation`` of the pairs' PnL summed per
    ``correlation_period`` ("1D", or "1h" when there are fewer than MIN_CORR_POINTS days), over
    ``correlation_points`` periods; all NaN and period "" when even the hours are too few."""

    pairs: list[str]
    weights: pd.Series
    results: list[BacktestResult]
    pnl: pd.DataFrame
    equity: pd.Series
    metrics: dict[str, float]
    contribution: pd.DataFrame
    correlation: pd.DataFrame
    correlation_period: str
    correlation_points: int

    def _rows(self) -> list[tuple[str, str]]:
        m = self.metrics
        idx = self.equity.index
        years = (idx[-1] - idx[0]).total_seconds() / YEAR_S if len(idx) > 1 else 0.0
        pct = lambda v: f"{v + 0.0:+.3%}" if math.isfinite(v) else "n/a"  # noqa: E731
        return [("pairs", f"{len(self.pairs)} ({', '.join(self.pairs[:4])}{' ...' if len(self.pairs) > 4 else ''})"),
                ("trades", f"{int(m['trades'])}"), ("total return", pct(m["total_return"])),
                ("annual return", annual_note(m["annual_return"], years, "return", "{:+.2%}")),
                ("Sharpe", annual_note(m["sharpe"], years)), ("max drawdown", f"{m['max_drawdown']:.2%}"),
                ("costs", pct(-m["costs"])),
                ("funding", pct(m["funding_pnl"]) if math.isfinite(m["funding_pnl"]) else "not included")]

    def summary(self) -> str:
        return figures_text("Portfolio of pairs", self._rows())

    def _repr_html_(self) -> str:
        weights = self.weights.to_frame("weight").T.to_html(float_format="{:.3f}".format)
        return (figures_html("Portfolio of pairs", self._rows()) + weights
                + curves_svg(self.equity, "Equity of the whole (capital 1):", "{:.4f}"))

    @property
    def why_no_trades(self) -> dict[str, str]:
        """Pair -> why it made no trade (``BacktestResult.why_no_trades``), for the pairs that made none."""
        return {name: r.why_no_trades for name, r in zip(self.pairs, self.results) if not r.metrics.trades}


#: Fewest PnL sums (days, else hours) a correlation of the pairs is computed from.
MIN_CORR_POINTS = 20


def pnl_correlation(pnl: pd.DataFrame) -> tuple[pd.DataFrame, str, int]:
    """(correlation, period, points) of the columns' PnL summed per day, else per hour, on at
    least MIN_CORR_POINTS periods; NaN, "" and the hours' count when there are fewer."""
    points = 0
    for period in ("1D", "1h"):
        sums = pnl.resample(period).sum() if len(pnl) else pnl
        points = len(sums)
        if points >= MIN_CORR_POINTS:
            return sums.corr(), period, points
    return pd.DataFrame(math.nan, index=pnl.columns, columns=pnl.columns), "", points


def spread_volatility(bars: PairBars, p: BacktestParams) -> float:
    """Std of the spread's change per bar per unit of gross notional, on the first
    ``p.hedge_window`` bars under their own OLS fit (prices or logs as ``p.log_prices``)."""
    k = p.hedge_window
    if len(bars) < k + 2:
        raise InvalidParameter(f"{'/'.join(bars.symbols)}: {len(bars)} bars, fewer than hedge_window + 2 = {k + 2}")
    px, py = bars.price_x[:k], bars.price_y[:k]
    x, y = (np.log(px), np.log(py)) if p.log_prices else (px, py)
    fit = ols_hedge(x, y)
    spread = x - fit.alpha - fit.beta * y
    gross = np.full(k, 1.0 + abs(fit.beta)) if p.log_prices else px + abs(fit.beta) * py
    return float(np.std(np.diff(spread) / gross[1:], ddof=1))


def weights_for(bars: list[PairBars], params: list[BacktestParams], weighting: str) -> np.ndarray:
    """Capital fractions per pair under ``weighting`` (see the module doc)."""
    if weighting not in WEIGHTINGS:
        raise InvalidParameter(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "equal":
        return np.full(len(bars), 1.0 / len(bars))
    vol = np.array([spread_volatility(b, p) for b, p in zip(bars, params)])
    if not np.all(np.isfinite(vol) & (vol > 0)):
        bad = [f"{'/'.join(b.symbols)}" for b, v in zip(bars, vol) if not (np.isfinite(v) and v > 0)]
        raise InvalidParameter(f"inverse_vol: the spread of {', '.join(bad)} does not move in its first bars")
    inv = 1.0 / vol
    return inv / inv.sum()


def _one(bars: PairBars, p: BacktestParams) -> BacktestResult:
    return backtest_bars(bars, p)


def run_portfolio(bars: list[PairBars], params: BacktestParams | list[BacktestParams], weighting: str = "equal",
                  client: object | None = None) -> PortfolioResult:
    """Backtest each pair of ``bars`` with its rule (one ``params`` for all, or one per pair) and
    combine them (see the module doc). ``client``: a ``distributed.Client`` that runs the pairs'
    backtests on its workers (identical results)."""
    if not bars:
        raise InvalidParameter("a portfolio needs at least one pair")
    rules = list(params) if isinstance(params, list) else [params] * len(bars)
    if len(rules) != len(bars):
        raise InvalidParameter(f"{len(rules)} rules for {len(bars)} pairs")
    names = ["/".join(b.symbols) for b in bars]
    if len(set(names)) != len(names):
        raise InvalidParameter("a pair is listed twice")
    steps = {b.bar_s for b in bars}
    if len(steps) != 1:
        raise InvalidParameter(f"the pairs have different bar lengths {sorted(steps)} s: use one timeframe")
    bar_s = steps.pop()
    weights = weights_for(bars, rules, weighting)
    if client is not None:
        results = client.gather(client.map(_one, bars, rules, pure=False))
    else:
        results = [_one(b, p) for b, p in zip(bars, rules)]
    own = pd.concat({n: r.equity.diff().fillna(r.equity.iloc[0] - 1.0) for n, r in zip(names, results)},
                    axis=1).fillna(0.0)
    pnl = own * weights
    total_pnl = pnl.sum(axis=1).to_numpy()
    t = own.index.as_unit("ms").asi8
    periods = (float(t[-1] - t[0]) / 1000.0 + bar_s) / bar_s
    total, annual, sharpe, drawdown = pnl_figures(total_pnl, periods, bar_s)
    funded = all(r.funding_included for r in results)
    m = [r.metrics for r in results]
    metrics = {"total_return": total, "annual_return": annual, "sharpe": sharpe, "max_drawdown": drawdown,
               "trades": int(sum(x.trades for x in m)), "costs": float(sum(w * x.costs for w, x in zip(weights, m))),
               "funding_pnl": float(sum(w * x.funding_pnl for w, x in zip(weights, m))) if funded else math.nan,
               "pairs": len(bars), "periods": periods, "years": periods * bar_s / YEAR_S}
    contribution = pd.DataFrame({
        "weight": weights, "total_return": [x.total_return for x in m],
        "sharpe": [x.sharpe if x.years * 365.0 >= MIN_ANNUALISE_DAYS else math.nan for x in m],
        "trades": [x.trades for x in m], "funding_pnl": [x.funding_pnl for x in m],
        "contribution": pnl.sum(axis=0).to_numpy(),
    }, index=pd.Index(names, name="pair"))
    contribution["share"] = contribution["contribution"] / total if total else math.nan
    correlation, period, points = pnl_correlation(pnl)
    equity = pd.Series(1.0 + np.cumsum(total_pnl), index=own.index, name="equity")
    return PortfolioResult(names, pd.Series(weights, index=names, name="weight"), results, pnl, equity, metrics,
                           contribution, correlation, period, points)


def pair_bars_from_closes(closes: pd.DataFrame, x: str, y: str, timeframe: str, origin: str,
                          funding: PairFunding | None = None) -> PairBars:
    """A pair's bars from a frame of closes (UTC index of bar open times, a column per symbol, NaN
    where a symbol has no bar), on the rows where both have one; ``funding`` a PairFunding or None."""
    both = closes[[x, y]].dropna()
    return PairBars((x, y), timeframe, both.index.as_unit("ms").asi8, both[x].to_numpy(np.float64),
                    both[y].to_numpy(np.float64), origin, funding)


def selection_bars(closes: pd.DataFrame, scan: pd.DataFrame, timeframe: str, origin: str,
                   max_pairs: int | None = None, funding: Callable[[str, int, int], FundingRates] | None = None) -> list[PairBars]:
    """The bars to trade the pairs a scan selected (``selected``: its formation-only q-values;
    the best ``max_pairs`` by p-value), from the first bar after the scan's formation range: the
    selection never saw them. ``funding(symbol, start_ms, end_ms)`` gives each leg's rates."""
    if "selected" not in scan or "formation" not in scan.attrs:
        raise InvalidParameter("pass the results of scan_pairs (with their attrs)")
    chosen = scan[scan["selected"]].sort_values("pvalue", kind="stable").head(max_pairs)
    after = closes[closes.index > pd.Timestamp(scan.attrs["formation"][1])]
    if not len(chosen) or len(after) < 3:
        raise InvalidParameter(f"nothing to trade: {len(chosen)} pairs selected, {len(after)} bars after the formation")
    out = []
    for x, y in zip(chosen["x"], chosen["y"]):
        bars = pair_bars_from_closes(after, x, y, timeframe, origin)
        if funding is not None:
            lo, hi = int(bars.time[0]), int(bars.close_time[-1])
            bars = PairBars(bars.symbols, timeframe, bars.time, bars.price_x, bars.price_y, origin,
                            PairFunding(funding(x, lo, hi), funding(y, lo, hi)))
        out.append(bars)
    return out
