"""Vectorized backtest of a pair alert rule: trades, equity curve and metrics.

Accounting (capital 1, not compounded): each trade opens legs worth 1 unit of gross notional at
its entry fill. In price space (spread = x - alpha - beta*y) it holds q_x = s*k units of x and
q_y = -s*beta*k of y, k = 1 / (P_x + |beta| P_y); on log prices the dollar amounts are
s/(1+|beta|) of x and -s*beta/(1+|beta|) of y (s = +1 LONG_SPREAD, -1 SHORT_SPREAD; beta is the
hedge at the signal bar). The legs are in the hedge ratio, so the position's PnL is the change of
the spread z is computed on; the net dollar exposure is s*k*(alpha + spread) in price space and
s*(1-beta)/(1+|beta|) on logs, near 0 for a pair whose fit has alpha ~ 0 (resp. beta ~ 1), never
forced to 0 at the cost of the hedge. The units stay fixed until the exit fill. Each fill pays
``fee_bps`` (fees) and ``slippage_bps`` (slippage) on each leg's notional. With funding data each
leg pays or receives funding at each settlement the position is held over (see
``backtest.funding``); without it the figures say funding was not included (NaN), never 0.
Positions are marked to market at every bar's close; a position still open at the end is closed
at the last bar (exit reason "end").

Only the state machine's jumps (entry -> exit -> next entry) run in Python, once per trade, on
"next bar where ..." index arrays built with numpy; everything per bar is array arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from ..funding import PairFunding
from ..render import curves_svg, figures_html, figures_text
from .costs import crossing
from .frame import SignalFrame, signal_frame
from .funding import FundingIndex, trade_funding
from .overfitting import block_sums_of
from ..rule import OPTIONAL_DTYPES, PARAM_NAMES, calm_mask, direction_name, entry_mask, exit_mask, side_of, stop_mask
from .params import BacktestParams

#: How each cost model reads in a result.
COST_NOTES = {"flat": "flat: the rule's fee and slippage bps per leg",
              "touch": "at the touch: recorded quotes (buy at the ask, sell at the bid), fees on top",
              "abdi_ranaldo": "half the Abdi-Ranaldo spread estimate per leg and fill, fees on top",
              "corwin_schultz": "half the Corwin-Schultz spread estimate per leg and fill, fees on top"}
YEAR_S = 365.0 * 86_400.0  # crypto futures trade around the clock
#: Shortest span (days) whose return is annualised: a day's return raised to 365 days says nothing.
MIN_ANNUALISE_DAYS = 30.0
EXIT_REASONS = ("exit", "stop", "max_hold", "end")


@dataclass(frozen=True)
class TradeIndex:
    """Trades as bar positions: signal and fill bars of entry and exit, side (+1 long spread,
    -1 short spread) and exit reason code (index into EXIT_REASONS)."""

    entry_signal: np.ndarray
    entry_fill: np.ndarray
    exit_signal: np.ndarray
    exit_fill: np.ndarray
    side: np.ndarray
    reason: np.ndarray


@dataclass(frozen=True)
class Metrics:
    """Figures of one backtest. Returns are in units of capital (1 = 100%), not compounded.

    Time is calendar time, not a count of rows: bars are missing where neither symbol traded
    or a stale row was dropped, and counting rows would shorten the year and overstate both
    figures. ``years`` = elapsed time from the first bar's open to the last bar's close;
    ``annual_return`` = (1 + total) ** (1 / years) - 1, compounded (never below -100%), NaN for
    less than MIN_ANNUALISE_DAYS of data (too short to annualise); ``sharpe`` = mean / std of the PnL per bar period over
    the ``periods`` elapsed (elapsed / bar length: a period without a row has PnL 0, a row after
    a gap carries the PnL of the whole gap), times sqrt(periods per year). ``max_drawdown`` as a
    fraction of the running equity peak; ``turnover`` = filled notional / capital;
    ``time_in_market`` = time holding a position / elapsed time; ``avg_hold_s`` from fill
    times. ``gross_pnl``: the legs' price PnL; ``costs`` = ``fees`` + ``slippage`` + ``spread``
    (paid, >= 0; ``spread``: crossing the bid-ask spread under the frame's cost model, 0 for flat);
    ``funding_pnl`` what funding added (negative: paid), NaN when the data had no funding (it was
    not included). total_return = gross_pnl - costs + funding_pnl (0 when not included).
    NaN where undefined (no trades, flat equity)."""

    total_return: float
    annual_return: float
    sharpe: float
    max_drawdown: float
    trades: int
    long_trades: int
    short_trades: int
    hit_rate: float
    avg_hold_bars: float
    avg_hold_s: float
    turnover: float
    time_in_market: float
    gross_pnl: float
    costs: float
    fees: float
    slippage: float
    spread: float
    funding_pnl: float
    bars: int
    periods: float
    years: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRIC_NAMES}

    def rows(self, cost_model: str = "flat") -> list[tuple[str, str]]:
        """The figures a reader looks at first, as (name, text): trades, returns (annualised by
        the one rule of ``annual_note``), drawdown, and the PnL split into the legs' price PnL,
        fees, slippage, spread and funding (capital 1)."""
        pct = lambda v: f"{v + 0.0:+.3%}" if math.isfinite(v) else "n/a"  # noqa: E731 (+ 0.0: no "-0.000%")
        return [("trades (long / short)", f"{self.trades} ({self.long_trades} / {self.short_trades})"),
                ("total return", pct(self.total_return)),
                ("annual return", annual_note(self.annual_return, self.years, "return", "{:+.2%}")),
                ("Sharpe", annual_note(self.sharpe, self.years)),
                ("max drawdown", f"{self.max_drawdown:.2%}"),
                ("hit rate", f"{self.hit_rate:.1%}" if math.isfinite(self.hit_rate) else "n/a"),
                ("price PnL of the legs", pct(self.gross_pnl)), ("fees", pct(-self.fees)),
                ("slippage", pct(-self.slippage)), ("spread crossed", pct(-self.spread)),
                ("funding", pct(self.funding_pnl) if math.isfinite(self.funding_pnl) else "not included"),
                ("cost model", COST_NOTES.get(cost_model, cost_model))]


METRIC_NAMES = tuple(f.name for f in fields(Metrics))


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """``trades``: one row per trade (UTC fill times, fill prices, units, price PnL, fees,
    slippage, funding and net PnL); ``equity``: capital after each bar (UTC index); ``metrics``;
    the ``params`` used; the signal ``frame`` traded; ``funding_included``: whether funding was
    charged (without data its figures are NaN)."""

    params: BacktestParams
    trades: pd.DataFrame
    equity: pd.Series
    metrics: Metrics
    frame: SignalFrame
    funding_included: bool = False

    def row(self) -> pd.DataFrame:
        """Parameters then metrics in one row: the columns of a sweep's results."""
        return result_rows([self.params], [self.metrics])

    @property
    def why_no_trades(self) -> str:
        """Why the backtest made no trade ("" when it made some): see ``no_trade_reason``."""
        return "" if self.metrics.trades else no_trade_reason(self.frame, self.params)

    def _title(self) -> str:
        return f"Backtest: {len(self.frame):,} bars, {self.params.fee_bps:g} bps fees per leg and fill"

    def summary(self) -> str:
        """The headline figures as text (``Metrics.rows``), and why there was no trade if none."""
        text = figures_text(self._title(), self.metrics.rows(self.frame.cost_model))
        return text + (f"\n  no trades: {self.why_no_trades}" if self.why_no_trades else "")

    def _repr_html_(self) -> str:
        return (figures_html(self._title(), self.metrics.rows(self.frame.cost_model), self.why_no_trades)
                + curves_svg(self.equity, "Equity (capital 1):", "{:.4f}"))


def no_trade_reason(f: SignalFrame, p: BacktestParams) -> str:
    """In one line, why rule ``p`` enters no trade on frame ``f``: no bars (a leg has none in the
    range: it ended, or was not listed yet), no z-score yet (too few bars for the windows), z never
    reached the entry, or it did only where the correlation was below its floor."""
    n = len(f)
    if n < 2:
        return f"no bars to trade ({n}): a leg has none in the range (it ended, or was not listed yet)"
    z_ok = np.isfinite(f.z) & np.isfinite(f.beta)
    if not z_ok.any():
        return (f"no z-score on any of the {n} bars: the windows (hedge {p.hedge_window}, z {p.z_window} bars) "
                "need more bars than there are")
    big = z_ok & (np.abs(np.where(z_ok, f.z, 0.0)) >= p.z_entry)
    if not big.any():
        return (f"no entry signal: |z| peaked at {np.nanmax(np.abs(f.z[z_ok])):.2f} over {int(z_ok.sum())} bars, "
                f"below z_entry {p.z_entry:g}")
    if not entry_mask(f.z, f.corr, p.z_entry, p.corr_min, f.beta)[:-p.lag or None].any():
        return (f"no entry signal: |z| reached {p.z_entry:g} on {int(big.sum())} bars, where the correlation was "
                f"below corr_min {p.corr_min:g}" if (np.nan_to_num(f.corr[big], nan=-2) < p.corr_min).all()
                else f"no entry signal a bar before the end ({int(big.sum())} bars reached z_entry {p.z_entry:g})")
    return "no trade: every entry signal fell on the last bar (its fill would be after the data)"


def result_rows(params: list[BacktestParams], metrics: list[Metrics]) -> pd.DataFrame:
    """One row per combination: its parameters, then its metrics."""
    rows = pd.DataFrame([{**p.as_dict(), **m.as_dict()} for p, m in zip(params, metrics, strict=True)],
                        columns=[*PARAM_NAMES, *METRIC_NAMES])
    return rows.astype(OPTIONAL_DTYPES)  # None -> NaN / <NA>, whatever the rows hold


def _next_true(cond: np.ndarray) -> np.ndarray:
    """nxt[i] = smallest j >= i with cond[j], else n; length n + 1 (nxt[n] = n)."""
    n = len(cond)
    idx = np.where(cond, np.arange(n), n)
    out = np.empty(n + 1, dtype=np.int64)
    out[n] = n
    out[:n] = np.minimum.accumulate(idx[::-1])[::-1]
    return out


class SignalIndex:
    """"Next bar where ..." arrays of one frame, memoised by level: the combinations of a sweep
    that share a frame (and, say, a z_exit) build each array once, and levels whose conditions
    hold on the very same bars (a correlation floor that never binds) share one array: the same
    object, so ``trades_key`` can tell that two combinations make the same trades."""

    def __init__(self, f: SignalFrame) -> None:
        self.f = f
        self._cache: dict[tuple, np.ndarray] = {}
        self._by_condition: dict[bytes, np.ndarray] = {}  # packed condition bits -> its array
        self.dpx, self.dpy = np.diff(f.price_x), np.diff(f.price_y)  # price changes into each bar
        self.z = memoryview(np.ascontiguousarray(f.z, dtype=np.float64))  # z of a bar as a Python float

    def get(self, kind: str, level: float, corr_min: float = 0.0) -> np.ndarray:
        """kind: "enter" (|z| >= level and corr >= corr_min, hedge known), "out_long" (z >= -level),
        "out_short" (z <= level), "stop_long" (z <= -level), "stop_short" (z >= level),
        "calm" (|z| < level). NaN z never qualifies."""
        key = (kind, level, corr_min if kind == "enter" else None)
        hit = self._cache.get(key)
        if hit is None:
            cond = self._condition(kind, level, corr_min)
            bits = np.packbits(cond).tobytes()
            hit = self._by_condition.get(bits)
            if hit is None:
                hit = self._by_condition[bits] = _next_true(cond)
            self._cache[key] = hit
        return hit

    def trades_key(self, p: BacktestParams) -> tuple:
        """What ``find_trades(f, p, self)`` depends on besides the frame: equal keys, equal trades."""
        stops = () if p.z_stop is None else (id(self.get("stop_long", p.z_stop)), id(self.get("stop_short", p.z_stop)),
                                             id(self.get("calm", p.z_entry)))
        return (id(self.get("enter", p.z_entry, p.corr_min)), id(self.get("out_long", p.z_exit)),
                id(self.get("out_short", p.z_exit)), stops, p.max_hold, p.lag)

    def _condition(self, kind: str, level: float, corr_min: float) -> np.ndarray:
        f = self.f
        if kind == "enter":
            return entry_mask(f.z, f.corr, level, corr_min, f.beta)
        if kind in ("out_long", "out_short"):
            return exit_mask(f.z, 1 if kind == "out_long" else -1, level)
        if kind in ("stop_long", "stop_short"):
            return stop_mask(f.z, 1 if kind == "stop_long" else -1, level)
        if kind == "calm":
            return calm_mask(f.z, level)
        raise ValueError(f"unknown signal kind {kind!r}")


def find_trades(f: SignalFrame, p: BacktestParams, index: SignalIndex | None = None,
                after_stop: bool = False, exits: tuple[float, float] | None = None) -> TradeIndex:
    """The trades ``p`` makes on frame ``f`` (see ``statarb_kit.rule`` for the rule). ``index``: a
    SignalIndex of ``f`` to share between calls; ``after_stop``: the frame starts right after a
    stop (no entry before |z| < z_entry); ``exits``: (long, short) exit levels when they differ
    (a long exits once z >= -long, a short once z <= short; default both ``p.z_exit``). A trade
    that has not exited by the last bar is closed there (reason "end"); every other trade is the
    same on any longer frame (what paper trading relies on), and an entry signal within ``lag`` + 1
    bars of the end is not taken."""
    index = index or SignalIndex(f)
    n = len(f)
    # memoryviews: indexing one gives a Python int or float, ~3x faster than a numpy scalar
    z = index.z
    enter = memoryview(index.get("enter", p.z_entry, p.corr_min))
    out_long, out_short = exits or (p.z_exit, p.z_exit)
    outs = {1: memoryview(index.get("out_long", out_long)), -1: memoryview(index.get("out_short", out_short))}
    stops = None if p.z_stop is None else {1: index.get("stop_long", p.z_stop), -1: index.get("stop_short", p.z_stop)}
    last_entry = n - 2 - p.lag  # the position must be held at least one bar
    rows: list[tuple[int, int, int, int]] = []
    i = int(index.get("calm", p.z_entry)[0]) if after_stop else 0
    while i <= n:
        e = enter[i]
        if e > last_entry:
            break
        side = side_of(z[e])
        held = e + p.lag  # exits are judged from the close of the entry fill bar
        out = outs[side][held]
        stop = int(stops[side][held]) if stops else n
        hold = max(e + p.max_hold, held) if p.max_hold is not None else n
        x, reason = min((stop, 1), (out, 0), (hold, 2))
        if x + p.lag > n - 1:
            rows.append((e, min(x, n - 1), side, 3))
            break
        rows.append((e, x, side, reason))
        i = x + p.lag  # flat again from the exit fill bar
        if reason == 1:  # after a stop, wait for |z| < z_entry before a new entry
            i = int(index.get("calm", p.z_entry)[i])
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    entry_signal, exit_signal = a[:, 0], a[:, 1]
    return TradeIndex(entry_signal, entry_signal + p.lag, exit_signal, np.minimum(exit_signal + p.lag, n - 1),
                      a[:, 2], a[:, 3])


@dataclass(frozen=True, eq=False)
class BookedPnl:
    """What a booking of trades holds, a pair's (``Book``) or a basket's (``basket.BasketBook``):
    each trade's PnL parts (price PnL, fees, slippage, funding, ``spread``: what crossing the
    bid-ask spread cost, ``backtest.costs``; ``funded``: whether funding data was applied), the
    filled notional and the PnL of the bars where the equity can move
    (``active``: each trade's entry fill bar through its exit fill bar; trades never overlap, so
    these are ascending and unique). Every other bar's PnL is 0."""

    gross: np.ndarray
    fees: np.ndarray
    slippage: np.ndarray
    funding: np.ndarray
    funded: bool
    active: np.ndarray
    active_pnl: np.ndarray
    notional: float
    bars: int
    spread: np.ndarray = field(default=None, kw_only=True)  # None: no spread model (zeros)

    def __post_init__(self) -> None:
        if self.spread is None:
            object.__setattr__(self, "spread", np.zeros(len(self.gross)))

    @property
    def costs(self) -> np.ndarray:
        return self.fees + self.slippage + self.spread

    @property
    def net(self) -> np.ndarray:
        return self.gross - self.costs + self.funding

    def bar_pnl(self) -> np.ndarray:
        """PnL of every bar."""
        out = np.zeros(self.bars)
        out[self.active] = self.active_pnl
        return out


@dataclass(frozen=True, eq=False)
class Book(BookedPnl):
    """A pair's booking: the units of x and y of each trade and the hedge it was opened at."""

    units_x: np.ndarray
    units_y: np.ndarray
    beta: np.ndarray
    fill_prices: np.ndarray  # trades x (entry x, entry y, exit x, exit y): what each fill paid or got


def book_trades(f: SignalFrame, p: BacktestParams, t: TradeIndex, index: SignalIndex,
                funding: FundingIndex | None = None) -> Book:
    """Units, PnL parts and the per-bar PnL of trades ``t`` on frame ``f`` (see the module doc)."""
    px, py = f.price_x, f.price_y
    beta = f.beta[t.entry_signal]
    ex, ey = px[t.entry_fill], py[t.entry_fill]
    xx, xy = px[t.exit_fill], py[t.exit_fill]
    if p.log_prices:
        gross_w = 1.0 + np.abs(beta)
        qx, qy = t.side / gross_w / ex, -t.side * beta / gross_w / ey
    else:
        k = 1.0 / (ex + np.abs(beta) * ey)
        qx, qy = t.side * k, -t.side * beta * k
    gross = qx * (xx - ex) + qy * (xy - ey)
    units = np.column_stack([qx, qy])
    entry_fill, entry_spread = crossing(f.spreads, units, np.column_stack([ex, ey]), t.entry_fill, True)
    exit_fill, exit_spread = crossing(f.spreads, units, np.column_stack([xx, xy]), t.exit_fill, False)
    entry_notional, exit_notional = (np.abs(units) * entry_fill).sum(axis=1), (np.abs(units) * exit_fill).sum(axis=1)
    entry_cost = p.cost_rate * entry_notional + entry_spread
    exit_cost = p.cost_rate * exit_notional + exit_spread
    active, first, last, trade = held_bars(t)
    moves = np.maximum(active - 1, 0)
    pnl = qx[trade] * index.dpx[moves] + qy[trade] * index.dpy[moves] if len(index.dpx) else np.zeros(len(trade))
    pnl[first] = -entry_cost
    pnl[last] -= exit_cost
    lengths = last - first + 1
    paid = np.zeros(len(lengths))
    if funding is not None and len(lengths):
        m, bar, amount = trade_funding(funding, t.entry_fill, t.exit_fill, qx, qy)
        np.add.at(pnl, first[m] + bar - t.entry_fill[m], amount)
        paid = np.bincount(m, weights=amount, minlength=len(lengths)).astype(np.float64)
    notional = entry_notional + exit_notional
    return Book(gross, p.fee_bps / 1e4 * notional, p.slippage_bps / 1e4 * notional, paid, funding is not None,
                active, pnl, float(notional.sum()), len(f), units_x=qx, units_y=qy, beta=beta,
                fill_prices=np.column_stack([entry_fill, exit_fill]), spread=entry_spread + exit_spread)


def held_bars(t: TradeIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bars each trade can move the equity on (its entry fill bar through its exit fill bar,
    the position held into the bars after the entry), concatenated: (bar of each, position of
    each trade's first and last in that array, trade of each)."""
    lengths = t.exit_fill - t.entry_fill + 1
    last = np.cumsum(lengths) - 1
    first = last - lengths + 1
    trade = np.repeat(np.arange(len(lengths)), lengths)
    active = np.arange(len(trade)) - np.repeat(first, lengths) + np.repeat(t.entry_fill, lengths)
    return active, first, last, trade


def pnl_figures(pnl: np.ndarray, periods: float, bar_s: float) -> tuple[float, float, float, float]:
    """(total, annual return, Sharpe, max drawdown) of PnL on capital 1 (see Metrics): ``pnl`` of
    the bars where the equity can move, in time order; every other of the ``periods`` bar
    periods elapsed has PnL 0, so sums need only these."""
    years = periods * bar_s / YEAR_S
    total = float(pnl.sum())
    mean = total / periods if periods else math.nan
    var = (float(np.dot(pnl, pnl)) - periods * mean * mean) / (periods - 1) if periods > 1 else math.nan
    sharpe = mean / math.sqrt(var) * math.sqrt(YEAR_S / bar_s) if var > 0 else math.nan
    equity = 1.0 + np.cumsum(pnl)  # the equity where it can move; flat in between
    peak = np.maximum(np.maximum.accumulate(equity), 1.0)  # the start (capital 1) counts as a peak
    drawdown = float(np.max((peak - equity) / peak)) if len(pnl) else 0.0
    return total, annualised(total, years), sharpe, drawdown


def annual_note(value: float, years: float, name: str = "Sharpe", fmt: str = "{:.2f}") -> str:
    """How every page and report shows an annualised figure (Sharpe, annual return): the value "a
    year" from MIN_ANNUALISE_DAYS of data on; before, that it is withheld, with the span there is
    and the span it needs (minutes of bars raised to a year give Sharpe ratios in the thousands)."""
    days = years * 365.0
    if days >= MIN_ANNUALISE_DAYS:
        return f"{name} {fmt.format(value)} a year" if math.isfinite(value) else f"{name} n/a (no trades or flat)"
    span = f"{days:.1f} days" if days >= 1 else f"{days * 1_440:.0f} min"
    return f"no annual {name} from {span} of data (needs {MIN_ANNUALISE_DAYS:g} days)"


def annualised(total: float, years: float) -> float:
    """The yearly rate that compounds to ``total`` (a return on capital 1) over ``years``: -1 once
    the capital is lost; NaN for less than MIN_ANNUALISE_DAYS."""
    if not years * 365.0 >= MIN_ANNUALISE_DAYS:
        return math.nan
    return -1.0 if total <= -1.0 else (1.0 + total) ** (1.0 / years) - 1.0


def metrics_of(t: TradeIndex, b: BookedPnl, time: np.ndarray, bar_s: float) -> Metrics:
    """The Metrics of booked trades (a pair's or a basket's) over bars of ``bar_s`` seconds
    closing at ``time`` (ms)."""
    n = b.bars
    elapsed_s = float(time[-1] - time[0]) / 1000.0 + bar_s if n else 0.0
    periods = elapsed_s / bar_s
    total, annual, sharpe, drawdown = pnl_figures(b.active_pnl, periods, bar_s)
    net = b.net
    k = len(net)
    hold = (t.exit_fill - t.entry_fill).astype(np.float64)
    hold_s = (time[t.exit_fill] - time[t.entry_fill]).astype(np.float64) / 1000.0
    return Metrics(
        total_return=total,
        annual_return=annual,
        sharpe=sharpe,
        max_drawdown=drawdown,
        trades=k,
        long_trades=int((t.side == 1).sum()),
        short_trades=int((t.side == -1).sum()),
        hit_rate=float((net > 0).mean()) if k else math.nan,
        avg_hold_bars=float(hold.mean()) if k else math.nan,
        avg_hold_s=float(hold_s.mean()) if k else math.nan,
        turnover=b.notional,
        time_in_market=float(hold_s.sum()) / elapsed_s if elapsed_s > 0 else 0.0,  # trades never overlap
        gross_pnl=float(b.gross.sum()),
        costs=float(b.costs.sum()),
        fees=float(b.fees.sum()),
        slippage=float(b.slippage.sum()),
        spread=float(b.spread.sum()),
        funding_pnl=float(b.funding.sum()) if b.funded else math.nan,
        bars=n,
        periods=periods,
        years=elapsed_s / YEAR_S,
    )


def bar_seconds(time: np.ndarray) -> float:
    """The bar length in seconds guessed from bar times (ms): their most common step. Only for
    arrays of unknown timeframe: with bars missing it can be a multiple of the true length, so
    callers that know the timeframe pass it (``PairBars.bar_s``)."""
    steps = np.diff(np.asarray(time, dtype=np.int64))
    if not len(steps):
        return 1.0
    values, counts = np.unique(steps, return_counts=True)
    return float(values[np.argmax(counts)]) / 1000.0


def evaluate(f: SignalFrame, p: BacktestParams, bar_s: float | None = None,
             index: SignalIndex | None = None, funding: FundingIndex | None = None) -> Metrics:
    """Only the metrics of ``p`` on frame ``f`` (the sweep's inner call; ``index`` and
    ``funding`` share the frame's signal arrays and settlements between calls)."""
    index = index or SignalIndex(f)
    t = find_trades(f, p, index)
    return metrics_of(t, book_trades(f, p, t, index, funding), f.time, bar_s or bar_seconds(f.time))


def block_of_bars(time: np.ndarray, bar_s: float, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """(block of each bar, periods per block): ``blocks`` spans of equal elapsed time from the
    first bar's open to the last bar's close (bar ``time`` = close times, ms). A bar belongs to
    the block its period ends in: a close exactly on a boundary closes the earlier block."""
    time = np.asarray(time, dtype=np.int64)
    start = int(time[0]) - int(round(bar_s * 1000.0))
    elapsed = int(time[-1]) - start
    block = np.clip(((time - start) * blocks - 1) // elapsed, 0, blocks - 1)
    return block, np.full(blocks, elapsed / 1000.0 / bar_s / blocks)


def evaluate_blocks(f: SignalFrame, p: BacktestParams, bar_s: float, index: SignalIndex,
                    funding: FundingIndex | None, block_of_bar: np.ndarray, blocks: int,
                    memo: dict | None = None) -> tuple[Metrics, np.ndarray]:
    """``evaluate`` plus the sums of the per-bar PnL to the powers 1..4 per block, shape (4, blocks)
    (see overfitting.BlockSums). ``memo`` (one dict per frame, index and funding): combinations
    whose signal arrays are the same (SignalIndex.trades_key) share one trade search, and those
    that make the very same trades with the same sizing and costs share one booking (in a grid,
    thresholds that never bind often do: 255 distinct trade lists in the benchmark's 1,000)."""
    if memo is None:
        t, key = find_trades(f, p, index), None
    else:
        search = ("trades", *index.trades_key(p))
        if (t := memo.get(search)) is None:
            t = memo[search] = find_trades(f, p, index)
        key = ("booking", p.log_prices, p.fee_bps, p.slippage_bps,  # the frame (and its spreads) is the memo's
               np.stack([t.entry_signal, t.entry_fill, t.exit_signal, t.exit_fill, t.side, t.reason]).tobytes())
        if (hit := memo.get(key)) is not None:
            return hit
    b = book_trades(f, p, t, index, funding)
    out = metrics_of(t, b, f.time, bar_s), block_sums_of(b.active, b.active_pnl, block_of_bar, blocks)
    if key is not None:
        memo[key] = out
    return out


def run_backtest(f: SignalFrame, p: BacktestParams, bar_s: float | None = None,
                 funding: PairFunding | None = None) -> BacktestResult:
    """Trades, equity curve and metrics of ``p`` on frame ``f``. Times are those of the frame's
    rows: pass bar close times, the moments the fills happen. ``funding``: both legs' rates over
    the frame's span (None: funding not included)."""
    bar_s = bar_s or bar_seconds(f.time)
    index = SignalIndex(f)
    t = find_trades(f, p, index)
    fi = FundingIndex.build(f.time, f.price_x, f.price_y, funding) if funding is not None else None
    b = book_trades(f, p, t, index, fi)
    trades = trades_frame(f, t, b)
    ts = pd.to_datetime(f.time, unit="ms", utc=True)
    equity = pd.Series(1.0 + np.cumsum(b.bar_pnl()), index=ts, name="equity")
    return BacktestResult(p, trades, equity, metrics_of(t, b, f.time, bar_s), f, b.funded)


def trades_frame(f: SignalFrame, t: TradeIndex, b: Book) -> pd.DataFrame:
    """One row per trade (see BacktestResult.trades): UTC fill times, direction, signal z, exit
    reason, hedge, units, fill prices, bars held and the PnL parts."""
    ts = pd.to_datetime(f.time, unit="ms", utc=True)
    return pd.DataFrame({
        "entry_time": ts[t.entry_fill], "exit_time": ts[t.exit_fill],
        "direction": [direction_name(side) for side in t.side.tolist()],
        "entry_z": f.z[t.entry_signal], "exit_z": f.z[t.exit_signal],
        "reason": np.array(EXIT_REASONS, dtype=object)[t.reason],
        "beta": b.beta, "units_x": b.units_x, "units_y": b.units_y,
        "entry_x": b.fill_prices[:, 0], "entry_y": b.fill_prices[:, 1],
        "exit_x": b.fill_prices[:, 2], "exit_y": b.fill_prices[:, 3],
        "hold_bars": t.exit_fill - t.entry_fill,
        "gross_pnl": b.gross, "fees": b.fees, "slippage": b.slippage, "spread": b.spread, "costs": b.costs,
        "funding": b.funding if b.funded else np.full(len(b.gross), np.nan),
        "pnl": b.net,
    })


def backtest(time: np.ndarray, price_x: np.ndarray, price_y: np.ndarray, p: BacktestParams,
             bar_s: float | None = None, funding: PairFunding | None = None) -> BacktestResult:
    """Backtest ``p`` on an aligned pair: bar close times (ms UTC) and closes of x and y, and
    optionally both legs' funding rates."""
    return run_backtest(signal_frame(time, price_x, price_y, p), p, bar_s, funding)
