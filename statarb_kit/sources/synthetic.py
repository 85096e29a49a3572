"""A seeded cointegrated pair of trade streams: the default source.

Model, on a grid of ``step_ms`` (exchange time):
    log y_t is a random walk with volatility ``vol_y`` (per sqrt(day)),
    s_t is an Ornstein-Uhlenbeck spread with the given half-life and stationary std ``spread_std``,
    x_t = alpha + beta * y_t + s_t.
Each symbol trades as a Poisson process of ``rate`` trades/s; a trade prints at the mid plus or
minus half a tick by side, rounded to the tick size, with log-normal sizes rounded to the lot.
The same seed and ``start_ms`` give the same trades.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameter
from ..quotes import HeldQuotes, QuoteBatch
from ..ticks import TickBatch, normalize_symbol, now_ms
from ..exchange.binance.mark_price import SyntheticFundingNow
from .base import SourceBase, SourceInfo, SourceState, SourceStatus

_DAY_MS = 86_400_000
#: Most of a gap since a file's newest trade that a resumed real-time source generates (6 h of
#: the default pair is ~860k trades, a few seconds).
MAX_RESUME_GAP_MS = 6 * 3_600_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairModel:
    """Parameters of the synthetic pair. Prices in quote currency, times in seconds."""

    beta: float = 20.0
    alpha: float = 0.0
    y0: float = 3_000.0
    vol_y: float = 0.03  # daily log-volatility of y
    half_life_s: float = 300.0  # mean-reversion half-life of the spread
    spread_std: float = 25.0  # stationary std of the spread, in price units of x
    rate: float = 20.0  # trades per second per symbol
    tick_size: tuple[float, float] = (0.1, 0.01)
    lot: tuple[float, float] = (0.001, 0.001)
    mean_qty: tuple[float, float] = (0.05, 0.5)
    quoted_bps: tuple[float, float] = (1.0, 3.0)  # mean quoted spread of x and y (quotes=True), bps

    def __post_init__(self) -> None:
        checks = {
            "beta": self.beta > 0,
            "y0": self.y0 > 0,
            "vol_y": self.vol_y >= 0,
            "half_life_s": self.half_life_s > 0,
            "spread_std": self.spread_std >= 0,
            "rate": self.rate > 0,
            "quoted_bps": min(self.quoted_bps) > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InvalidParameter(f"synthetic pair parameters out of range: {bad}")


class SyntheticPair(SourceBase):
    """Source of a cointegrated pair ``symbols = (x, y)``.

    ``realtime=True`` paces trades on the wall clock (tick time = now), after producing the
    history from an earlier ``start_ms`` (a warm-up) at once, in backlog batches of ``chunk_s``
    simulated seconds; otherwise trades are produced from ``start_ms`` in chunks of ``chunk_s``
    simulated seconds, as fast as the consumer takes them or ``speed`` times real time (a day in
    minutes: accelerated time for soak runs), until ``max_ticks`` (or forever). ``quotes``: a
    best bid and ask after each trade, around its price, the spread ``model.quoted_bps`` times a
    uniform 0.5..1.5 (at least a tick), from a generator of their own (the trades stay the same).
    """

    def __init__(
        self,
        symbols: tuple[str, str] = ("BTCUSDT", "ETHUSDT"),
        model: PairModel | None = None,
        seed: int = 7,
        realtime: bool = True,
        start_ms: int | None = None,
        max_ticks: int | None = None,
        step_ms: int = 100,
        chunk_s: float = 10.0,
        speed: float | None = None,
        quotes: bool = False,
    ) -> None:
        if speed is not None and (realtime or speed <= 0):
            raise InvalidParameter("speed (times real time) is for a source that is not real-time, and > 0")
        self.speed = speed
        if len(symbols) != 2:
            raise InvalidParameter(f"a synthetic pair needs exactly two symbols, got {symbols!r}")
        self.symbols = tuple(normalize_symbol(s) for s in symbols)
        if self.symbols[0] == self.symbols[1]:
            raise InvalidParameter("the two symbols of a pair must differ")
        if step_ms < 1 or chunk_s * 1000 < step_ms:
            raise InvalidParameter("need step_ms >= 1 and chunk_s * 1000 >= step_ms")
        self.model = model or PairModel()
        self.realtime = realtime
        self.status = SourceStatus(name="synthetic")
        self.max_ticks = max_ticks
        self.funding = SyntheticFundingNow(seed)  # its funding rates, as a dashboard asks for them
        self.seed = seed
        self.quotes = quotes
        self._quote_rng = np.random.default_rng(seed + 1_000)
        self._quotes = HeldQuotes()
        self._next_update = 1
        self._rng = np.random.default_rng(seed)
        self._step_ms = step_ms
        self._chunk_steps = int(chunk_s * 1000 // step_ms)
        self._t_ms = (now_ms() if start_ms is None else start_ms) // step_ms * step_ms
        m = self.model
        self._log_y = math.log(m.y0)
        self._spread = 0.0
        self._next_id = [int(self._rng.integers(1_000_000, 5_000_000)) for _ in range(2)]
        self._rate, self._tick_size, self._lot, self._mean_qty = m.rate, m.tick_size, m.lot, m.mean_qty
        dt_s = step_ms / 1000
        self._ar = math.exp(-math.log(2) / m.half_life_s * dt_s)
        self._spread_sd = m.spread_std * math.sqrt(1 - self._ar**2)
        self._y_sd = m.vol_y * math.sqrt(step_ms / _DAY_MS)

    def planted_hedge(self) -> tuple[str, str, float, float]:
        """(x, y, beta, half-life in seconds) of the relation planted in the prices, in price space
        (x = alpha + beta * y + s): what a page's estimates can be held against."""
        return self.symbols[0], self.symbols[1], self.model.beta, self.model.half_life_s

    def truth(self) -> str:
        """What the prices are: generated, and the relation planted in them (for pages to show)."""
        m, (x, y) = self.model, self.symbols
        return (f"generated prices, not market data ({x} and {y} are only names): x = {m.alpha:g} + {m.beta:g} * y "
                f"+ s, with s mean-reverting (half-life {m.half_life_s:g} s, std {m.spread_std:g}); seed {self.seed}"
                + (f"; quoted spreads about {m.quoted_bps[0]:g} bps ({x}) and {m.quoted_bps[1]:g} bps ({y})"
                   if self.quotes else ""))

    def info(self) -> SourceInfo:
        """Generated data: what was planted (``truth``, ``planted_hedge``)."""
        return SourceInfo(self.status.name, self.realtime, self.truth(), self.planted_hedge())

    def resume(self, last: Mapping[str, tuple[int, int, float]]) -> None:
        """Continue a recording: ``last`` maps a symbol to its newest stored (trade id, time ms,
        price). Trade ids go on after the stored ones, prices from the stored ones, and time from
        the newest stored trade: a real-time source generates the gap since then as history (a
        gap over MAX_RESUME_GAP_MS is left as a gap, and logged). Raises InvalidParameter for a
        real-time source whose file ends in the future (an accelerated recording)."""
        mine = {s: v for s, v in last.items() if s in self.symbols}
        if not mine:
            return
        for symbol, (trade_id, _, _) in mine.items():
            k = self.symbols.index(symbol)
            self._next_id[k] = max(self._next_id[k], trade_id + 1)
        end = max(ts for _, ts, _ in mine.values()) + 1
        now = now_ms()
        if self.realtime and end > now + 60_000:
            raise InvalidParameter(f"the file's newest trade is {(end - now) / 60_000:.0f} min in the future (an "
                                   "accelerated recording): a real-time source cannot continue it; use another file")
        start = max(end, now - MAX_RESUME_GAP_MS) if self.realtime else max(end, self._t_ms)
        if self.realtime and start > end:
            log.warning("the file ends %.1f h ago: generating the last %.0f h, the rest stays a gap",
                        (now - end) / 3_600_000, MAX_RESUME_GAP_MS / 3_600_000)
        self._t_ms = -(-start // self._step_ms) * self._step_ms
        self._continue_prices({s: price for s, (_, _, price) in mine.items()})

    def _continue_prices(self, prices: Mapping[str, float]) -> None:
        """Move the latent state so the next mids start at ``prices`` (the pair: y's level and
        the spread that x's price implies)."""
        x, y = self.symbols
        if y in prices and prices[y] > 0:
            self._log_y = math.log(prices[y])
        if x in prices:
            self._spread = prices[x] - (self.model.alpha + self.model.beta * math.exp(self._log_y))

    def _mids(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Advance the latent process by ``steps`` grid points; return mid prices of x and y."""
        from scipy.signal import lfilter  # scipy.signal takes ~0.5 s to import: only when generating

        log_y = self._log_y + np.cumsum(self._rng.normal(0.0, self._y_sd, steps))
        shocks = self._rng.normal(0.0, self._spread_sd, steps)
        spread, _ = lfilter([1.0], [1.0, -self._ar], shocks, zi=[self._ar * self._spread])
        self._log_y, self._spread = float(log_y[-1]), float(spread[-1])
        y = np.exp(log_y)
        return self.model.alpha + self.model.beta * y + spread, y

    def _trades(self, steps: int) -> TickBatch:
        """Trades of every symbol over the next ``steps`` grid points, sorted by time."""
        rng = self._rng
        mids = self._mids(steps)
        t0 = self._t_ms
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("sym", "trade_id", "ts", "price", "qty", "ibm")}
        for k in range(len(self.symbols)):
            counts = rng.poisson(self._rate * self._step_ms / 1000, steps)
            n = int(counts.sum())
            step = np.repeat(np.arange(steps), counts)
            ts = np.sort(t0 + step * self._step_ms + rng.integers(0, self._step_ms, n))
            sell = rng.random(n) < 0.5
            tick, lot = self._tick_size[k], self._lot[k]
            price = np.round((mids[k][step] + np.where(sell, -0.5, 0.5) * tick) / tick) * tick
            qty = np.maximum(lot, np.round(rng.lognormal(math.log(self._mean_qty[k]) - 0.5, 1.0, n) / lot) * lot)
            cols["sym"].append(np.full(n, k))
            cols["trade_id"].append(self._next_id[k] + np.arange(n))
            self._next_id[k] += n
            cols["ts"].append(ts)
            cols["price"].append(price)
            cols["qty"].append(qty)
            cols["ibm"].append(sell)  # the taker sold: the buyer was the maker
        self._t_ms = t0 + steps * self._step_ms
        flat = {k: np.concatenate(v) for k, v in cols.items()}
        order = np.argsort(flat["ts"], kind="stable")
        return TickBatch.from_columns(
            sym=flat["sym"][order],
            trade_id=flat["trade_id"][order],
            ts=flat["ts"][order],
            price=flat["price"][order],
            qty=flat["qty"][order],
            is_buyer_maker=flat["ibm"][order],
            via="synthetic",
        )

    async def stream(self) -> AsyncIterator[TickBatch]:
        self.status.state = SourceState.STREAMING
        produced = 0
        try:
            while self.max_ticks is None or produced < self.max_ticks:
                backlog = not self.realtime
                if self.realtime:
                    wait_ms = self._t_ms + self._step_ms - now_ms()
                    if wait_ms > 0:
                        await asyncio.sleep(wait_ms / 1000)
                    behind = max(1, (now_ms() - self._t_ms) // self._step_ms)
                    steps = min(behind, self._chunk_steps)  # history (a warm-up) in chunks, as backlog
                    backlog = behind > steps
                    if backlog:
                        await asyncio.sleep(0)
                else:
                    steps = self._chunk_steps
                    # paced at `speed` times real time, or as fast as taken (let the consumer breathe)
                    await asyncio.sleep(self._chunk_steps * self._step_ms / 1000 / self.speed if self.speed else 0)
                batch = self._trades(steps)
                if backlog:
                    batch = batch.as_backlog()
                if self.max_ticks is not None and produced + len(batch) > self.max_ticks:
                    batch = batch.take(np.arange(self.max_ticks - produced))
                produced += len(batch)
                self.status.record(batch)
                if len(batch):
                    if self.quotes:
                        self._quotes.hold(self._quotes_of(batch))
                    yield batch
        finally:
            self.status.state = SourceState.FINISHED


    def _quotes_of(self, batch: TickBatch) -> QuoteBatch:
        """A quote at each trade: bid and ask on ticks around its price (see the class doc)."""
        n = len(batch)
        tick = np.asarray(self.model.tick_size)[batch.sym]
        rel = np.asarray(self.model.quoted_bps)[batch.sym] * 1e-4 * self._quote_rng.uniform(0.5, 1.5, n)
        half = batch.price * rel / 2.0
        bid = np.floor((batch.price - half) / tick) * tick
        ask = np.maximum(bid + tick, np.ceil((batch.price + half) / tick) * tick)
        ids = np.arange(self._next_update, self._next_update + n, dtype=np.int64)
        self._next_update += n
        size = np.round(self._quote_rng.exponential(1.0, (2, n)), 3) + 0.001
        return QuoteBatch(batch.sym.astype(np.int64), batch.ts.astype(np.int64), ids, np.round(bid, 8), size[0],
                          np.round(ask, 8), size[1])

    def take_quotes(self) -> QuoteBatch | None:
        """The quotes made since the last call (None: none, or ``quotes`` False)."""
        return self._quotes.take()


class SyntheticGroups(SyntheticPair):
    """Many symbols in cointegrated groups: a source for watchlists of many pairs.

    Group g's members have log prices f_g + log(p0_i) + s_i, with f_g a random walk of daily
    volatility ``vol`` shared by the group and s_i an Ornstein-Uhlenbeck deviation of half-life
    ``half_life_s`` and stationary std ``spread_std`` (log units): every pair inside a group is
    cointegrated, pairs across groups are not. ``n_groups`` x ``group_size`` symbols named
    ``G00A00USDT``...; each trades ``rate`` times a second; pacing as SyntheticPair.
    """

    def __init__(self, n_groups: int = 20, group_size: int = 5, vol: float = 0.2, half_life_s: float = 30.0,
                 spread_std: float = 0.001, rate: float = 2.0, seed: int = 7, realtime: bool = True,
                 start_ms: int | None = None, max_ticks: int | None = None, step_ms: int = 100,
                 chunk_s: float = 10.0, speed: float | None = None) -> None:
        if n_groups < 1 or group_size < 2 or rate <= 0 or half_life_s <= 0:
            raise InvalidParameter("need n_groups >= 1, group_size >= 2, rate > 0 and half_life_s > 0")
        names = [f"G{g:02d}A{i:02d}USDT" for g in range(n_groups) for i in range(group_size)]
        super().__init__(symbols=("AAAUSDT", "BBBUSDT"), seed=seed, realtime=realtime, start_ms=start_ms,
                         max_ticks=max_ticks, step_ms=step_ms, chunk_s=chunk_s, speed=speed)
        self.symbols = tuple(names)
        self.group_size = group_size
        self._planted = (n_groups, vol, half_life_s, spread_std)
        n = len(names)
        rng = self._rng
        self._log_p0 = np.log(rng.uniform(1.0, 1_000.0, n))
        self._factor = np.zeros(n_groups)
        self._dev = rng.normal(0.0, spread_std, n)
        self._ar_g = math.exp(-math.log(2) / half_life_s * step_ms / 1000)
        self._dev_sd = spread_std * math.sqrt(1 - self._ar_g**2)
        self._f_sd = vol * math.sqrt(step_ms / _DAY_MS)
        self._rate = rate
        self._tick_size = [10.0 ** np.floor(np.log10(np.exp(v)) - 4) for v in self._log_p0]
        self._lot = [0.001] * n
        self._mean_qty = [max(0.001, 100.0 / np.exp(v)) for v in self._log_p0]
        self._next_id = [int(rng.integers(1_000_000, 5_000_000)) for _ in range(n)]

    def truth(self) -> str:
        n_groups, vol, half_life_s, spread_std = self._planted
        return (f"generated prices, not market data: {n_groups} groups of {self.group_size} symbols "
                f"({self.symbols[0]}...); inside a group the log prices share a random walk (daily vol {vol:g}) "
                f"plus a mean-reverting deviation each (half-life {half_life_s:g} s, std {spread_std:g} in log "
                "units): every pair inside a group is cointegrated, pairs across groups are not; "
                f"seed {self.seed}")

    def info(self) -> SourceInfo:
        """Generated groups: what was planted; no one planted pair."""
        return SourceInfo(self.status.name, self.realtime, self.truth())

    def groups(self) -> list[tuple[str, ...]]:
        k = self.group_size
        return [self.symbols[i : i + k] for i in range(0, len(self.symbols), k)]

    def pairs(self) -> list[tuple[str, str]]:
        """Every pair inside a group (the cointegrated ones)."""
        return [(a, b) for g in self.groups() for i, a in enumerate(g) for b in g[i + 1 :]]

    def _continue_prices(self, prices: Mapping[str, float]) -> None:
        """Each member's level so its next mid (factor + level + deviation) is its stored price."""
        for symbol, price in prices.items():
            i = self.symbols.index(symbol)
            if price > 0:
                self._log_p0[i] = math.log(price) - self._factor[i // self.group_size] - self._dev[i]

    def _mids(self, steps: int) -> list[np.ndarray]:
        from scipy.signal import lfilter

        rng, k = self._rng, self.group_size
        f = self._factor[:, None] + np.cumsum(rng.normal(0.0, self._f_sd, (len(self._factor), steps)), axis=1)
        self._factor = f[:, -1].copy()
        shocks = rng.normal(0.0, self._dev_sd, (len(self.symbols), steps))
        dev, _ = lfilter([1.0], [1.0, -self._ar_g], shocks, axis=1, zi=(self._ar_g * self._dev)[:, None])
        self._dev = dev[:, -1].copy()
        logs = np.repeat(f, k, axis=0) + self._log_p0[:, None] + dev
        return list(np.exp(logs))
