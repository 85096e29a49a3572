"""What crossing the spread costs each fill: half the bid-ask spread of each leg at its fill bar.

Three models, named in every result:

- ``touch``: recorded quotes (``statarb_kit.quotes.quote_bars``): a buy fills at the ask and a
  sell at the bid in force at the fill bar's close, i.e. at the mid plus or minus half the quoted
  spread; the legs' reference prices are then the quote mids.
- ``abdi_ranaldo`` / ``corwin_schultz``: where no quote exists, half the spread estimated from
  the bars' high, low and close (``analytics.spread_estimators``) over the trailing window,
  around the bar's close (no look-ahead).
- ``flat``: no spread term; the Rule's ``slippage_bps`` per leg stands in for it (the kit's
  default before quotes, and what a user asks for with flat bps).

Fees (``fee_bps``) and ``slippage_bps`` always come on top: with a spread model, set slippage to
0 unless a further cost (impact, latency) is meant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analytics.spread_estimators import ESTIMATORS, rolling_spread
from ..errors import InvalidParameter
from ..quotes import QuoteBars, Quotes

#: The cost models by name ("flat": no spread term).
COST_MODELS = ("flat", "touch", *ESTIMATORS)


@dataclass(frozen=True, eq=False)
class LegSpreads:
    """Half spreads (fraction of the price) of each leg at each bar (bars x legs; NaN: none
    known there, charged as ``fallback``) and the model that gave them."""

    model: str
    half: np.ndarray
    fallback: float = 0.0

    def __post_init__(self) -> None:
        if self.model not in COST_MODELS or self.model == "flat":
            raise InvalidParameter(f"a spread model is one of {', '.join(COST_MODELS[1:])}, got {self.model!r}")
        if np.asarray(self.half).ndim != 2:
            raise InvalidParameter("half spreads are bars x legs")

    def at(self, bars: np.ndarray) -> np.ndarray:
        """Half spreads at bar positions ``bars`` (trades x legs), NaN as the fallback."""
        h = self.half[bars]
        return np.where(np.isfinite(h), h, self.fallback)

    @property
    def unquoted(self) -> int:
        """Bar-legs without a known spread (charged ``fallback``)."""
        return int((~np.isfinite(self.half)).sum())

    def describe(self) -> str:
        h = self.half[np.isfinite(self.half)]
        mean = f", mean half spread {h.mean() * 1e4:.3g} bps" if len(h) else ""
        what = "fills at the touch (quotes)" if self.model == "touch" else f"spread estimated ({self.model})"
        return f"{what}{mean}"


def touch_spreads(bars: list[QuoteBars], close_ms: np.ndarray) -> tuple[LegSpreads, np.ndarray]:
    """(half spreads, mids) of each leg at bars closing at ``close_ms`` (ms UTC): the quote bar
    that ends there (its bid and ask at the close). NaN where a leg has no quote bar."""
    close_ms = np.asarray(close_ms, dtype=np.int64)
    half = np.full((len(close_ms), len(bars)), np.nan)
    mid = np.full((len(close_ms), len(bars)), np.nan)
    for j, qb in enumerate(bars):
        at = np.searchsorted(qb.start + qb.tf_ms, close_ms)
        ok = (at < len(qb)) & ((qb.start + qb.tf_ms)[np.minimum(at, len(qb) - 1)] == close_ms) if len(qb) else \
            np.zeros(len(close_ms), dtype=bool)
        m = qb.mid[at[ok]]
        mid[ok, j] = m
        half[ok, j] = (qb.ask[at[ok]] - qb.bid[at[ok]]) / 2.0 / m
    return LegSpreads("touch", half), mid


def estimated_spreads(legs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]], method: str,
                      window: int) -> LegSpreads:
    """Half the ``method`` estimate of each leg ((high, low, close, traded) per leg, bars aligned)
    over the trailing ``window`` bars."""
    if method not in ESTIMATORS:
        raise InvalidParameter(f"unknown spread estimator {method!r}: {', '.join(ESTIMATORS)}")
    half = np.column_stack([rolling_spread(h, lo, c, method, window, traded=tr) / 2.0 for h, lo, c, tr in legs])
    return LegSpreads(method, half)


def crossing(spreads: LegSpreads | None, units: np.ndarray, prices: np.ndarray, bars: np.ndarray,
             opening: bool) -> tuple[np.ndarray, np.ndarray]:
    """(fill prices, spread cost per trade) of one fill of each trade: a leg bought (units > 0
    when ``opening``, < 0 when closing) pays price * (1 + h), one sold gets price * (1 - h), h its
    half spread at the fill bar; the cost is the sum over legs of |units| * price * h
    (``units``, ``prices``: trades x legs). Without a spread model: the prices, zeros."""
    if spreads is None:
        return prices, np.zeros(len(units))
    h = spreads.at(bars)
    buy = np.sign(units) if opening else -np.sign(units)
    return prices * (1.0 + buy * h), (np.abs(units) * prices * h).sum(axis=1)


def quote_at(q: Quotes, time_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bid, ask) in force at each of ``time_ms``: the last quote at or before it (NaN before the
    first)."""
    at = np.searchsorted(q.time_ms, np.asarray(time_ms, dtype=np.int64), side="right") - 1
    ok = at >= 0
    bid, ask = np.full(len(at), np.nan), np.full(len(at), np.nan)
    bid[ok], ask[ok] = q.bid[at[ok]], q.ask[at[ok]]
    return bid, ask


def legging(trades: pd.DataFrame, second: Quotes, latency_ms: int, leg: str = "y") -> pd.DataFrame:
    """What legging in costs each trade of a backtest (``BacktestResult.trades``): both orders go
    out at each fill time, the first leg fills at once, the ``leg`` one ``latency_ms`` later at
    the touch then in force (``second``: that leg's raw quotes). Per fill: the move of the touch
    that leg crosses (buying: the ask, selling: the bid) from the fill time to ``latency_ms`` after,
    times the units, signed so that > 0 is a loss; NaN where no quote was in force. Columns
    ``entry_legging``, ``exit_legging``, ``legging`` (their sum), in the trades' currency."""
    if not isinstance(latency_ms, (int, np.integer)) or latency_ms < 0:
        raise InvalidParameter(f"latency_ms must be an integer >= 0, got {latency_ms!r}")
    if leg not in ("x", "y"):
        raise InvalidParameter(f"leg must be 'x' or 'y', got {leg!r}")
    units = trades[f"units_{leg}"].to_numpy(dtype=np.float64)
    out = {}
    for fill, buying in (("entry", units > 0), ("exit", units < 0)):
        t = trades[f"{fill}_time"].dt.as_unit("ms").astype("int64").to_numpy()
        b0, a0 = quote_at(second, t)
        b1, a1 = quote_at(second, t + int(latency_ms))
        move = np.where(buying, a1 - a0, b0 - b1)  # > 0: the price this leg pays moved against it
        out[f"{fill}_legging"] = np.abs(units) * move
    frame = pd.DataFrame(out, index=trades.index)
    frame["legging"] = frame["entry_legging"] + frame["exit_legging"]
    return frame
