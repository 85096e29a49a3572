"""Backtest of a basket: fixed weights on k legs, traded with a pair's semantics.

The spread is ``sum_i w_i X_i`` (X: log prices, or prices with ``log_prices`` False) and a
signal on it (the Rule's z-score, or any other such as an s-score) enters and exits by the Rule
(``engine.find_trades``: fills on the bar after the signal, the same exits, stops and holds). A
trade opens legs worth 1 unit of gross notional at its entry fill: on log prices leg i gets the
dollar amount ``s * w_i / sum|w|`` (``q_i = s w_i / sum|w| / P_i`` units); on prices ``q_i = s
w_i k`` with ``k = 1 / sum |w_i| P_i`` (s = +1 long the spread, -1 short). The units stay fixed
until the exit fill; each fill pays ``fee_bps`` and ``slippage_bps`` on each leg's notional. A
basket of two legs with weights (1, -beta) is the pair engine's trade with a fixed hedge beta,
to the last bit of its arithmetic. Funding is not charged here (figures say so: NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InvalidParameter
from ..render import curves_svg, figures_html, figures_text
from .engine import EXIT_REASONS, BookedPnl, Metrics, SignalIndex, TradeIndex, find_trades, held_bars, metrics_of
from .costs import LegSpreads, crossing
from .frame import SignalFrame
from .params import BacktestParams


@dataclass(frozen=True, eq=False)
class BasketBook(BookedPnl):
    """A basket's booking: the units of each leg per trade (trades x legs); no funding."""

    units: np.ndarray


@dataclass(frozen=True, eq=False)
class BasketResult:
    """``trades``: one row per trade (UTC fill times, direction, signal at entry and exit, exit
    reason, bars held, PnL parts); ``units``: the units of each leg per trade; ``equity``: capital
    after each bar (UTC index of bar close times); ``metrics`` as a pair backtest's."""

    legs: tuple[str, ...]
    weights: np.ndarray
    trades: pd.DataFrame
    units: np.ndarray
    equity: pd.Series
    metrics: Metrics
    cost_model: str = "flat"

    def _title(self) -> str:
        legs = " ".join(f"{w:+.4g} {leg}" for w, leg in zip(self.weights, self.legs or range(len(self.weights))))
        return f"Basket backtest: {legs}"

    def summary(self) -> str:
        return figures_text(self._title(), self.metrics.rows(self.cost_model))

    def _repr_html_(self) -> str:
        return figures_html(self._title(), self.metrics.rows(self.cost_model)) + curves_svg(
            self.equity, "Equity (capital 1):", "{:.4f}")


def book_basket(prices: np.ndarray, weights: np.ndarray, t: TradeIndex, p: BacktestParams,
                spreads: LegSpreads | None = None) -> BasketBook:
    """Units, PnL parts and per-bar PnL of trades ``t`` of the basket (see the module doc);
    ``spreads``: each fill also crosses half the leg's spread (``backtest.costs``)."""
    entry, exit_ = prices[t.entry_fill], prices[t.exit_fill]  # trades x legs
    side = t.side.astype(np.float64)[:, None]
    gross_w = np.abs(weights).sum()
    if p.log_prices:
        units = side * weights / gross_w / entry
    else:
        units = side * weights / (np.abs(weights) * entry).sum(axis=1, keepdims=True)
    gross = (units * (exit_ - entry)).sum(axis=1)
    entry_fill, entry_spread = crossing(spreads, units, entry, t.entry_fill, True)
    exit_fill, exit_spread = crossing(spreads, units, exit_, t.exit_fill, False)
    entry_notional, exit_notional = (np.abs(units) * entry_fill).sum(axis=1), (np.abs(units) * exit_fill).sum(axis=1)
    active, first, last, trade = held_bars(t)
    moves = np.diff(prices, axis=0)
    pnl = ((units[trade] * moves[np.maximum(active - 1, 0)]).sum(axis=1) if len(moves)
           else np.zeros(len(trade)))
    pnl[first] = -p.cost_rate * entry_notional - entry_spread
    pnl[last] -= p.cost_rate * exit_notional + exit_spread
    notional = entry_notional + exit_notional
    return BasketBook(gross, p.fee_bps / 1e4 * notional, p.slippage_bps / 1e4 * notional, np.zeros(len(gross)),
                      False, active, pnl, float(notional.sum()), len(prices), units=units,
                      spread=entry_spread + exit_spread)


def basket_backtest(time: np.ndarray, prices: np.ndarray, weights: np.ndarray, signal: np.ndarray, p: BacktestParams,
                    bar_s: float, legs: tuple[str, ...] = (), corr: np.ndarray | None = None,
                    exits: tuple[float, float] | None = None, spreads: LegSpreads | None = None) -> BasketResult:
    """Trade rule ``p`` on a basket: bar close times (ms UTC, ascending), ``prices`` (bars x legs,
    finite and > 0), fixed ``weights`` (one per leg, spread on log prices when ``p.log_prices``),
    the ``signal`` per bar (NaN: none yet). ``corr``: the correlation the entry needs to reach
    ``p.corr_min`` (None: the floor does not apply, a basket has no one correlation); ``exits``:
    (long, short) exit levels when they differ (``find_trades``); ``spreads``: each leg's half
    spread per bar that fills cross (None: the flat model)."""
    time = np.asarray(time, dtype=np.int64)
    prices = np.asarray(prices, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n = len(time)
    if prices.ndim != 2 or prices.shape != (n, len(weights)) or len(signal) != n:
        raise InvalidParameter("need prices of shape (bars, legs), a weight per leg and a signal per bar")
    if not (np.isfinite(weights).all() and np.abs(weights).sum() > 0):
        raise InvalidParameter("basket weights must be finite and not all 0")
    if n and not (np.isfinite(prices).all() and prices.min() > 0):
        raise InvalidParameter("prices must be finite and > 0")
    ones = np.ones(n)
    corr = np.ones(n) if corr is None else np.asarray(corr, dtype=np.float64)
    # find_trades reads only the signal, the correlation and whether a hedge is known
    frame = SignalFrame(time, prices[:, 0], prices[:, 0], np.zeros(n), ones, np.asarray(signal, dtype=float), corr)
    t = find_trades(frame, p, SignalIndex(frame), exits=exits)
    if spreads is not None and spreads.half.shape != prices.shape:
        raise InvalidParameter("spreads need a half spread per bar and leg, as prices")
    b = book_basket(prices, weights, t, p, spreads)
    ts = pd.to_datetime(time, unit="ms", utc=True)
    trades = pd.DataFrame({
        "entry_time": ts[t.entry_fill], "exit_time": ts[t.exit_fill],
        "direction": np.where(t.side == 1, "long", "short"),
        "entry_signal": frame.z[t.entry_signal], "exit_signal": frame.z[t.exit_signal],
        "reason": np.array(EXIT_REASONS, dtype=object)[t.reason], "hold_bars": t.exit_fill - t.entry_fill,
        "gross_pnl": b.gross, "fees": b.fees, "slippage": b.slippage, "spread": b.spread, "costs": b.costs,
        "pnl": b.net})
    equity = pd.Series(1.0 + np.cumsum(b.bar_pnl()), index=ts, name="equity")
    return BasketResult(tuple(legs), weights, trades, b.units, equity, metrics_of(t, b, time, bar_s),
                        "flat" if spreads is None else spreads.model)
