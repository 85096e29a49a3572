"""Walk-forward optimisation: choose the best rule on each in-sample window, trade it on the next
out-of-sample window, and stitch the out-of-sample results.

Windows are in bars: in-sample [s, s + in_sample), out of sample the next ``out_of_sample`` bars,
then s moves on by ``out_of_sample`` (the last window may be shorter). Signal frames are computed
once on all bars (every value at a bar uses earlier bars only) and cut per window, so a window's
indicators are warm from the bars before it and nothing of the future leaks in. Each window
starts flat and closes what it holds at its last bar; funding is charged as in the engine.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..errors import InvalidParameter
from ..render import curves_svg
from .data import PairBars, bars_frame
from .engine import (METRIC_NAMES, Book, Metrics, SignalIndex, TradeIndex, annual_note, book_trades, find_trades,
                     metrics_of)
from .frame import SignalFrame
from .funding import FundingIndex
from .params import BacktestParams


def cut(f: SignalFrame, lo: int, hi: int) -> SignalFrame:
    """Rows [lo, hi) of a frame (and of its spreads)."""
    spreads = None if f.spreads is None else replace(f.spreads, half=f.spreads.half[lo:hi])
    return SignalFrame(*(getattr(f, name)[lo:hi] for name in ("time", "price_x", "price_y", "alpha", "beta", "z", "corr")),
                       spreads=spreads)


@dataclass(frozen=True, eq=False)
class WalkForwardResult:
    """``windows``: one row per window (UTC bounds, the chosen combination's grid position and
    parameters, its in-sample figures ``is_*`` and out-of-sample ``oos_*``); ``oos``: metrics of
    the stitched out-of-sample trading; ``equity``: its equity after each out-of-sample bar;
    ``trials``: how many combinations were tried per window; ``metric`` the choice was made by."""

    windows: pd.DataFrame
    oos: Metrics
    equity: pd.Series
    trials: int
    metric: str

    def summary(self) -> pd.DataFrame:
        """In-sample (mean over windows of the chosen combination) against out-of-sample figures."""
        w = self.windows

        def col(name: str) -> pd.Series:  # absent when no window had a qualifying combination
            return w[name] if name in w else pd.Series(dtype=float)

        rows = {"sharpe": (col("is_sharpe").mean(), self.oos.sharpe),
                "annual_return": (col("is_annual_return").mean(), self.oos.annual_return),
                "max_drawdown": (col("is_max_drawdown").mean(), self.oos.max_drawdown),
                "trades per window": (col("is_trades").mean(), col("oos_trades").mean()),
                "funding_pnl": (col("is_funding_pnl").sum(), self.oos.funding_pnl)}
        return pd.DataFrame(rows, index=["in sample", "out of sample"]).T

    def _repr_html_(self) -> str:
        head = (f"<p><b>Walk-forward optimisation</b>: {len(self.windows)} windows, {self.trials} combinations "
                f"tried in each, chosen by in-sample {html.escape(self.metric)}; out of sample: "
                f"{html.escape(annual_note(self.oos.sharpe, self.oos.years))}.</p>")
        return (head + self.summary().to_html(float_format="{:.4g}".format)
                + curves_svg(self.equity, "Out-of-sample equity (windows stitched, capital 1):", "{:.4f}"))


def _stitch(parts: list[tuple[int, TradeIndex, Book]], bars: int, funded: bool) -> tuple[TradeIndex, Book]:
    """One TradeIndex and Book of the out-of-sample windows, positions offset to the stitched span."""
    def cat(get, offset: bool = False) -> np.ndarray:
        return np.concatenate([get(t, b) + (o if offset else 0) for o, t, b in parts]) if parts else np.empty(0)

    t = TradeIndex(*(cat(lambda t, b, n=name: getattr(t, n), off).astype(np.int64)
                     for name, off in (("entry_signal", True), ("entry_fill", True), ("exit_signal", True),
                                       ("exit_fill", True), ("side", False), ("reason", False))))
    b = Book(*(cat(lambda t, b, n=name: getattr(b, n)) for name in ("gross", "fees", "slippage", "funding")),
             funded, cat(lambda t, b: b.active, True).astype(np.int64), cat(lambda t, b: b.active_pnl),
             float(sum(b.notional for _, _, b in parts)), bars,
             **{name: cat(lambda t, b, n=name: getattr(b, n)) for name in ("units_x", "units_y", "beta", "fill_prices", "spread")})
    return t, b


def walk_forward_optimise(bars: PairBars, combos: list[BacktestParams], in_sample: int, out_of_sample: int,
                          metric: str = "sharpe", min_trades: int = 1) -> WalkForwardResult:
    """Walk-forward optimisation of ``combos`` on ``bars`` (see the module doc): the combination
    with the highest in-sample ``metric`` among those with >= ``min_trades`` trades is traded out
    of sample; a window where none qualifies stays flat."""
    if metric not in METRIC_NAMES:
        raise InvalidParameter(f"{metric!r} is not a metric; known: {', '.join(METRIC_NAMES)}")
    if not combos:
        raise InvalidParameter("the grid has no valid combination")
    if in_sample < 3 or out_of_sample < 2:
        raise InvalidParameter("need in_sample >= 3 and out_of_sample >= 2 bars")
    n = len(bars)
    if n < in_sample + out_of_sample:
        raise InvalidParameter(f"{n} bars: fewer than one window ({in_sample} in sample + {out_of_sample} out)")
    bar_s = bars.bar_s
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(combos):
        groups[p.frame_key()].append(i)
    frames = {key: bars_frame(bars, combos[idx[0]]) for key, idx in groups.items()}

    def funding_of(f: SignalFrame) -> FundingIndex | None:
        return FundingIndex.build(f.time, f.price_x, f.price_y, bars.funding) if bars.funding else None

    def run(f: SignalFrame, p: BacktestParams, index: SignalIndex,
            fi: FundingIndex | None) -> tuple[TradeIndex, Book, Metrics]:
        t = find_trades(f, p, index)
        b = book_trades(f, p, t, index, fi)
        return t, b, metrics_of(t, b, f.time, bar_s)

    rows, parts = [], []
    first_oos = stop = in_sample
    for s in range(0, n - in_sample - 1, out_of_sample):  # each out-of-sample window has >= 2 bars
        lo, mid, hi = s, s + in_sample, min(s + in_sample + out_of_sample, n)
        stop = hi
        scored: list[tuple[float, int, Metrics]] = []
        for key, idx in groups.items():
            f = cut(frames[key], lo, mid)
            index, fi = SignalIndex(f), funding_of(f)  # once per window and frame, not per combination
            for i in idx:
                m = run(f, combos[i], index, fi)[2]
                value = getattr(m, metric)
                if m.trades >= min_trades and value is not None and not math.isnan(value):
                    scored.append((value, -i, m))
        row = {"fold": len(rows), "is_start": bars.time[lo], "oos_start": bars.time[mid], "oos_end": bars.time[hi - 1]}
        if scored:
            value, neg_i, m_is = max(scored, key=lambda v: (v[0], v[1]))  # ties: the first in grid order
            chosen = combos[-neg_i]
            f = cut(frames[chosen.frame_key()], mid, hi)
            t, b, m_oos = run(f, chosen, SignalIndex(f), funding_of(f))
            parts.append((mid - first_oos, t, b))
            row |= {"combination": -neg_i, **chosen.as_dict(), **{f"is_{k}": v for k, v in m_is.as_dict().items()},
                    **{f"oos_{k}": v for k, v in m_oos.as_dict().items()}}
        else:
            row |= {"combination": -1}
        rows.append(row)
    f_oos = cut(frames[next(iter(frames))], first_oos, stop)
    t, b = _stitch(parts, stop - first_oos, bars.funding is not None)
    oos = metrics_of(t, b, f_oos.time, bar_s)
    windows = pd.DataFrame(rows)
    for col in ("is_start", "oos_start", "oos_end"):
        windows[col] = pd.to_datetime(windows[col], unit="ms", utc=True)
    equity = pd.Series(1.0 + np.cumsum(b.bar_pnl()), index=pd.to_datetime(f_oos.time, unit="ms", utc=True),
                       name="equity")
    return WalkForwardResult(windows, oos, equity, len(combos), metric)

