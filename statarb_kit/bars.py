"""Incremental OHLCV bars aligned to UTC epoch boundaries.

A bar covers ``[start, start + tf)`` in exchange time (int64 ms). Bars are mergeable
aggregates, so each new batch of ticks is reduced to partial bars of the smallest timeframe and
rolled up to the larger ones; only those partials touch the stored state, never the tick history.

Conventions (identical to the from-scratch reference ``resample_ticks``):
- open / close are the prices of the lowest / highest trade id in the bar (Binance ids are
  assigned in matching order);
- vwap = quote_volume / volume (NaN for a zero-volume bar); taker-buy volume sums the quantity
  of trades whose buyer was the taker (``is_buyer_maker`` False);
- a period without trades has no bar.

Finality: a bar is final once a later-bar tick of its symbol arrives, or once the clock passes
``start + tf + grace``. A late tick for a final bar corrects it (``late_ticks``, ``corrected``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InvalidParameter
from .ticks import TickBatch

BAR_DTYPE = np.dtype(
    [
        ("sym", "u2"),
        ("start", "i8"),  # bar open time, ms UTC, a multiple of the timeframe
        ("open", "f8"),
        ("high", "f8"),
        ("low", "f8"),
        ("close", "f8"),
        ("volume", "f8"),  # base-asset quantity
        ("quote_volume", "f8"),  # sum of price * qty
        ("trades", "i8"),
        ("taker_buy_volume", "f8"),
        ("first_trade_id", "i8"),
        ("last_trade_id", "i8"),
    ]
)
#: Columns of a bar as stored (``sym`` becomes ``symbol``; ``vwap`` is added).
BAR_FIELDS = BAR_DTYPE.names

_TF_RE = re.compile(r"^(\d+)([smhd])$")
_TF_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DEFAULT_TIMEFRAMES = ("1s", "1m", "5m")


#: SQL condition of a bar that is a price: something traded in it. Binance keeps printing klines
#: for a settled or halted contract (a flat close, volume 0); such a bar is stored as it is but is
#: missing for every statistic, like a period in which the pipeline saw no trade. Where the count
#: of trades is known (not NULL), 0 also means none; a volume not known (NULL) is no evidence.
TRADED_SQL = "coalesce(volume, 1) > 0 AND coalesce(trades, 1) > 0"


def traded(volume: np.ndarray, trades: np.ndarray | None = None) -> np.ndarray:
    """Mask of the bars that are prices (see ``TRADED_SQL``): not a known volume of 0, nor a known
    count of 0 (``trades`` None: no count known; NULL / NaN: not known)."""
    def known(v: np.ndarray) -> np.ndarray:
        return pd.Series(v).astype("Float64").to_numpy(np.float64, na_value=np.nan)

    vol = known(volume)
    ok = ~(vol <= 0)  # NaN (not known) passes
    return ok if trades is None else ok & (known(trades) != 0)


def check_timeframe(tf: str) -> str:
    """``tf`` if it is one of the timeframes the pipeline builds and stores (DEFAULT_TIMEFRAMES),
    else InvalidParameter: one rule for every command, notebook and URL."""
    if tf not in DEFAULT_TIMEFRAMES:
        raise InvalidParameter(f"timeframe {tf!r} is not one of {', '.join(DEFAULT_TIMEFRAMES)} "
                               "(the bars statarb_kit builds and stores)")
    return tf


def is_timeframe(tf: object) -> bool:
    """Whether ``tf`` is written as a timeframe: a positive count and a unit (s, m, h, d)."""
    m = _TF_RE.match(tf) if isinstance(tf, str) else None
    return bool(m) and int(m.group(1)) > 0


def timeframe_ms(tf: str) -> int:
    """Length of a timeframe such as ``"1s"``, ``"1m"``, ``"5m"``, ``"1h"`` in milliseconds."""
    if not is_timeframe(tf):
        raise InvalidParameter(f"timeframe {tf!r} is not valid: use e.g. '1s', '1m', '5m' or '1h'")
    m = _TF_RE.match(tf)
    return int(m.group(1)) * _TF_UNIT_MS[m.group(2)]


def bars_from_ticks(batch: TickBatch, tf_ms: int) -> np.ndarray:
    """Reduce ticks to bars of ``tf_ms``, sorted by (sym, start). Ticks may arrive in any order."""
    n = len(batch)
    out = np.empty(n, dtype=BAR_DTYPE)
    out["sym"] = batch.sym
    out["start"] = batch.ts
    for name in ("open", "high", "low", "close"):
        out[name] = batch.price
    out["volume"] = batch.qty
    out["quote_volume"] = batch.price * batch.qty
    out["trades"] = 1
    out["taker_buy_volume"] = np.where(batch.is_buyer_maker, 0.0, batch.qty)
    out["first_trade_id"] = batch.trade_id
    out["last_trade_id"] = batch.trade_id
    return rollup(out, tf_ms, single_trades=True)


def rollup(parts: np.ndarray, tf_ms: int, single_trades: bool = False) -> np.ndarray:
    """Merge partial bars into bars of ``tf_ms`` (a multiple of theirs), sorted by (sym, start).

    ``single_trades`` says every part is one trade (first id == last id), saving a sort.
    """
    n = len(parts)
    if n == 0:
        return np.empty(0, dtype=BAR_DTYPE)
    start = parts["start"] // tf_ms * tf_ms
    order = np.lexsort((parts["first_trade_id"], start, parts["sym"]))
    p = parts[order]
    st = start[order]
    brk = np.empty(n, dtype=bool)
    brk[0] = True
    np.not_equal(p["sym"][1:], p["sym"][:-1], out=brk[1:])
    brk[1:] |= st[1:] != st[:-1]
    idx = np.flatnonzero(brk)
    ends = np.append(idx[1:], n) - 1
    out = np.empty(len(idx), dtype=BAR_DTYPE)
    out["sym"] = p["sym"][idx]
    out["start"] = st[idx]
    out["open"] = p["open"][idx]
    out["first_trade_id"] = p["first_trade_id"][idx]
    out["high"] = np.maximum.reduceat(p["high"], idx)
    out["low"] = np.minimum.reduceat(p["low"], idx)
    for name in ("volume", "quote_volume", "trades", "taker_buy_volume"):
        out[name] = np.add.reduceat(p[name], idx)
    if single_trades:
        last = ends
    else:  # the close comes from the part holding the highest last id of each group
        group = np.cumsum(brk) - 1
        last = np.lexsort((p["last_trade_id"], group))[ends]
    out["close"] = p["close"][last]
    out["last_trade_id"] = p["last_trade_id"][last]
    return out


def merge_bars(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise merge of two equally long arrays of bars for the same (sym, start)."""
    out = a.copy()
    b_first = b["first_trade_id"] < a["first_trade_id"]
    out["open"] = np.where(b_first, b["open"], a["open"])
    out["first_trade_id"] = np.minimum(a["first_trade_id"], b["first_trade_id"])
    b_last = b["last_trade_id"] > a["last_trade_id"]
    out["close"] = np.where(b_last, b["close"], a["close"])
    out["last_trade_id"] = np.maximum(a["last_trade_id"], b["last_trade_id"])
    out["high"] = np.maximum(a["high"], b["high"])
    out["low"] = np.minimum(a["low"], b["low"])
    for name in ("volume", "quote_volume", "trades", "taker_buy_volume"):
        out[name] = a[name] + b[name]
    return out


def resample_ticks(ticks: pd.DataFrame, tf_ms: int) -> pd.DataFrame:
    """From-scratch reference: bars of a tick frame (columns symbol, trade_id, ts, price, qty,
    is_buyer_maker) by pandas groupby. Sorted by (symbol, start); used by tests and benchmarks."""
    t = ticks.sort_values(["symbol", "trade_id"])
    t = t.assign(
        start=t["ts"] // tf_ms * tf_ms,
        quote_volume=t["price"] * t["qty"],
        taker_buy_volume=t["qty"].where(~t["is_buyer_maker"].astype(bool), 0.0),
    )
    g = t.groupby(["symbol", "start"], sort=True, observed=True)
    out = g.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("qty", "sum"),
        quote_volume=("quote_volume", "sum"),
        trades=("price", "size"),
        taker_buy_volume=("taker_buy_volume", "sum"),
        first_trade_id=("trade_id", "first"),
        last_trade_id=("trade_id", "last"),
    )
    return out.reset_index()


@dataclass
class BarChanges:
    """What one update did to one timeframe. Arrays have BAR_DTYPE.

    ``final``: bars that just became final (to store, and to feed analytics);
    ``corrected``: final bars changed by late ticks (to store, replacing the old row);
    ``merge``: late partials for bars no longer held in memory (to merge into the stored row).
    """

    final: list[np.ndarray] = field(default_factory=list)
    corrected: list[np.ndarray] = field(default_factory=list)
    merge: list[np.ndarray] = field(default_factory=list)

    @staticmethod
    def _cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype=BAR_DTYPE)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._cat(self.final), self._cat(self.corrected), self._cat(self.merge)

    def __bool__(self) -> bool:
        return bool(self.final or self.corrected or self.merge)


class BarSeries:
    """Bars of one symbol and timeframe, sorted by start; the newest ``retain`` kept in memory.

    Every bar but the newest is final; the newest is final only after ``close_due``. The buffer
    holds ``retain`` plus a slack of an eighth (at least 64 bars): appends stay amortised O(1)
    (a compaction moves ``retain`` bars once per slack's worth of appends) and a long-running
    session holds at most 1.125 x ``retain`` bars per series.
    """

    def __init__(self, tf_ms: int, retain: int) -> None:
        if retain < 1:
            raise InvalidParameter(f"retain must be >= 1 bar, got {retain}")
        self.tf_ms = tf_ms
        self.retain = retain
        self._buf = np.empty(retain + max(64, retain // 8), dtype=BAR_DTYPE)
        self._lo = self._hi = 0
        self.last_final = True  # vacuously: there is no forming bar yet
        self.late_ticks = 0
        self.corrected = 0
        #: the held bars begin at the series' first bar (none dropped to ``retain``): a late bar
        #: before them is the series' new first bar, not one whose place has left memory
        self.complete = True

    @property
    def bars(self) -> np.ndarray:
        """Held bars, oldest first (a view: do not keep it across updates)."""
        return self._buf[self._lo : self._hi]

    def _store(self, bars: np.ndarray) -> None:
        """Append bars later than every held bar, compacting to the newest ``retain``."""
        k = len(bars)
        if self._hi + k > len(self._buf):
            keep = np.concatenate((self.bars, bars))
            if len(keep) > self.retain:
                keep, self.complete = keep[-self.retain :], False
            self._buf[: len(keep)] = keep
            self._lo, self._hi = 0, len(keep)
        else:
            self._buf[self._hi : self._hi + k] = bars
            self._hi += k

    def load(self, history: np.ndarray) -> None:
        """Seed with stored final bars (sorted by start), e.g. after a kernel restart."""
        self._lo = self._hi = 0
        self._store(history[-self.retain :])
        self.complete = len(history) < self.retain  # fewer than asked for: the store has no older bar
        self.last_final = True

    def merge(self, parts: np.ndarray, changes: BarChanges) -> None:
        """Fold partial bars of this symbol (sorted by start, unique starts) into the series."""
        held = self.bars
        if len(held):
            last_start = held["start"][-1]
            split = np.searchsorted(parts["start"], last_start, side="right")
            old, new = parts[:split], parts[split:]
        else:
            old, new = parts[:0], parts
        if len(old):
            self._merge_old(old, changes)
        if len(new):
            if len(self.bars) and not self.last_final:
                changes.final.append(self.bars[-1:].copy())
            if len(new) > 1:
                changes.final.append(new[:-1].copy())
            self._store(new)
            self.last_final = False

    def _merge_old(self, old: np.ndarray, changes: BarChanges) -> None:
        held = self.bars
        starts = held["start"]
        pos = np.searchsorted(starts, old["start"])
        found = (pos < len(held)) & (starts[np.minimum(pos, len(held) - 1)] == old["start"])
        if found.any():
            p = pos[found]
            held[p] = merge_bars(held[p], old[found])
            forming = (p == len(held) - 1) & (not self.last_final)
            late = ~forming
            if late.any():
                self.late_ticks += int(old["trades"][found][late].sum())
                self.corrected += int(late.sum())
                changes.corrected.append(held[p[late]].copy())
        missing = old[~found]
        if len(missing):
            self.late_ticks += int(missing["trades"].sum())
            evicted = (missing["start"] < starts[0]) & (not self.complete)
            if evicted.any():
                changes.merge.append(missing[evicted].copy())
            gaps = missing[~evicted]
            if len(gaps):  # late bars inside the held window (or before a complete one), for periods with no trade
                self.corrected += len(gaps)
                changes.corrected.append(gaps.copy())
                merged = np.concatenate((self.bars, gaps))
                merged = merged[np.argsort(merged["start"], kind="stable")]
                self._lo = self._hi = 0
                if len(merged) > self.retain:
                    merged, self.complete = merged[-self.retain :], False
                self._store(merged)

    def close_due(self, clock_ms: int, grace_ms: int) -> np.ndarray | None:
        """Finalize the forming bar if ``clock_ms`` is past its end plus grace; return it."""
        if self.last_final or not len(self.bars):
            return None
        last = self.bars[-1:]
        if clock_ms >= int(last["start"][0]) + self.tf_ms + grace_ms:
            self.last_final = True
            return last.copy()
        return None


class BarBuilder:
    """Incremental bars for every (timeframe, symbol) of a session.

    ``update(new_ticks)`` must receive each stored tick exactly once (the store deduplicates),
    which is what makes the bars equal a from-scratch resample of the stored ticks.
    """

    def __init__(
        self,
        n_symbols: int,
        timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES,
        retain: int = 50_000,
        grace_ms: int = 2_000,
    ) -> None:
        if not timeframes:
            raise InvalidParameter("at least one timeframe is needed")
        ms = {tf: timeframe_ms(tf) for tf in timeframes}
        self.base_ms = min(ms.values())
        bad = [tf for tf, v in ms.items() if v % self.base_ms]
        if bad:
            raise InvalidParameter(f"timeframes {bad} are not multiples of the smallest one")
        if grace_ms < 0:
            raise InvalidParameter(f"grace_ms must be >= 0, got {grace_ms}")
        self.timeframes = tuple(sorted(ms, key=ms.get))
        self.tf_ms = ms
        self.grace_ms = grace_ms
        self.series = {
            tf: [BarSeries(ms[tf], retain) for _ in range(n_symbols)] for tf in self.timeframes
        }

    @property
    def late_ticks(self) -> int:
        """Late ticks merged into final bars, counted on the smallest timeframe."""
        return sum(s.late_ticks for s in self.series[self.timeframes[0]])

    @property
    def corrected_bars(self) -> int:
        return sum(s.corrected for per_tf in self.series.values() for s in per_tf)

    def update(self, ticks: TickBatch) -> dict[str, BarChanges]:
        """Fold new (deduplicated) ticks into every timeframe."""
        changes = {tf: BarChanges() for tf in self.timeframes}
        if not len(ticks):
            return changes
        base = bars_from_ticks(ticks, self.base_ms)
        for tf in self.timeframes:
            parts = base if self.tf_ms[tf] == self.base_ms else rollup(base, self.tf_ms[tf])
            bounds = np.searchsorted(parts["sym"], np.arange(len(self.series[tf]) + 1))
            for sym, series in enumerate(self.series[tf]):
                lo, hi = bounds[sym], bounds[sym + 1]
                if hi > lo:
                    series.merge(parts[lo:hi], changes[tf])
        return changes

    def close_due(self, clock_ms: int) -> dict[str, BarChanges]:
        """Finalize forming bars whose end plus grace the clock has passed."""
        changes = {tf: BarChanges() for tf in self.timeframes}
        for tf, per_sym in self.series.items():
            for series in per_sym:
                done = series.close_due(clock_ms, self.grace_ms)
                if done is not None:
                    changes[tf].final.append(done)
        return changes

    def forming(self) -> dict[str, np.ndarray]:
        """The bars not yet final, per timeframe (written by a session on stop)."""
        out = {}
        for tf, per_sym in self.series.items():
            rows = [s.bars[-1:] for s in per_sym if len(s.bars) and not s.last_final]
            out[tf] = np.concatenate(rows) if rows else np.empty(0, dtype=BAR_DTYPE)
        return out

    def view(self, sym: int, tf: str, last: int | None = None) -> pd.DataFrame:
        """Newest ``last`` bars of one symbol as a DataFrame with a UTC DatetimeIndex ``time``
        (bar open), OHLCV columns, ``vwap`` and ``final``."""
        if tf not in self.series:
            raise InvalidParameter(f"timeframe {tf!r} is not built by this session: {self.timeframes}")
        series = self.series[tf][sym]
        bars = series.bars if last is None else series.bars[-last:] if last > 0 else series.bars[:0]
        return bars_frame(bars, forming_last=not series.last_final)


def bars_frame(bars: np.ndarray, forming_last: bool = False) -> pd.DataFrame:
    """DataFrame view of BAR_DTYPE rows: UTC DatetimeIndex ``time`` and ``final`` column."""
    cols = {name: bars[name].copy() for name in BAR_FIELDS if name not in ("sym", "start")}
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["vwap"] = np.where(cols["volume"] > 0, cols["quote_volume"] / cols["volume"], np.nan)
    final = np.ones(len(bars), dtype=bool)
    if forming_last and len(bars):
        final[-1] = False
    cols["final"] = final
    index = pd.DatetimeIndex(pd.to_datetime(bars["start"], unit="ms", utc=True), name="time")
    return pd.DataFrame(cols, index=index)
