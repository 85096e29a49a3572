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

from ..analytics.spread_estimators import ESTIMATORS, rolling_spread
from ..errors import InvalidParameter
from ..quotes import QuoteBars

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
