"""A seeded synthetic universe of closes with planted cointegrated pairs and groups: the scan's
default data, with a ground truth.

Log prices, per bar (one bar = ``bar`` of time, default 1 minute):
- planted pairs: log y is a random walk, log x = a + beta log y + s with s an Ornstein-Uhlenbeck
  spread of the given half-life (bars);
- planted groups of 3 or 4: each member is a_i + beta_i f + s_i, f a shared random walk and s_i
  its own OU deviation, so every pair inside a group is cointegrated;
- independent random walks, and trending ones (a drift plus a random walk): the rest.
Symbols are named ``S000USDT``, ``S001USDT``...; their order is shuffled, so planted members are
not neighbours. Like a real exchange's, a universe can list symbols late and delist them early
(``listed_late``, ``delisted``): a symbol has closes only from its listing to its delisting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InvalidParameter

#: Default first bar (UTC): fixed, so a seed always gives the same universe.
START = "2026-01-01"


@dataclass(frozen=True, eq=False)
class Universe:
    """Closes (UTC index, one column per symbol) and the planted truth: ``pairs`` has one row per
    cointegrated unordered pair (columns a, b in column order, kind, beta of a on b in logs,
    half_life_bars of the planted spread)."""

    closes: pd.DataFrame
    pairs: pd.DataFrame
    listings: pd.DataFrame | None = None  # per symbol (index): first and last bar time

    def truth(self) -> set[frozenset[str]]:
        """The planted cointegrated pairs, as unordered symbol pairs."""
        return {frozenset(p) for p in zip(self.pairs["a"], self.pairs["b"])}


def _ou(rng: np.random.Generator, n: int, half_life: float, std: float) -> np.ndarray:
    from scipy.signal import lfilter  # imported on first use (~0.5 s)

    phi = 2.0 ** (-1.0 / half_life)
    shocks = rng.normal(0.0, std * np.sqrt(1 - phi * phi), n)
    return lfilter([1.0], [1.0, -phi], shocks, zi=[phi * rng.normal(0.0, std)])[0]


def synthetic_universe(n_symbols: int = 300, n_bars: int = 10_000, n_pairs: int | None = None, n_groups: int | None = None,
                       trending: float = 0.2, half_life: tuple[float, float] = (5.0, 60.0),
                       vol: float = 0.002, spread_std: float = 0.004, seed: int = 7, bar: str = "1min",
                       start: str = START, listed_late: float = 0.0, delisted: float = 0.0) -> Universe:
    """``n_symbols`` series of ``n_bars`` closes: ``n_pairs`` planted pairs (default one per 10
    symbols), ``n_groups`` groups of 3-4 (default one per 30), a ``trending`` fraction of the rest
    with a drift; ``vol`` is the per-bar log-volatility
    of the random walks, ``spread_std`` the stationary std of the planted spreads (log units),
    half-lives drawn log-uniformly from ``half_life`` (bars). A ``listed_late`` fraction of the
    symbols (planted members included) lists at a bar drawn uniformly from the first 40%, a
    ``delisted`` fraction delists at one drawn from the last 25%: NaN outside; ``listings`` says
    when."""
    rng = np.random.default_rng(seed)
    n_pairs = n_symbols // 10 if n_pairs is None else n_pairs
    n_groups = n_symbols // 30 if n_groups is None else n_groups
    sizes = rng.integers(3, 5, n_groups) if n_groups else np.empty(0, dtype=int)
    planted = 2 * n_pairs + int(sizes.sum())
    if not (0 <= listed_late <= 1 and 0 <= delisted <= 1):
        raise InvalidParameter("listed_late and delisted are fractions of the symbols, within [0, 1]")
    if n_bars < 100 or n_symbols < planted or min(half_life) <= 0:
        raise InvalidParameter(f"a universe needs n_bars >= 100, n_symbols >= {planted} planted members "
                               f"and half-lives > 0 (got {n_symbols} symbols, {n_bars} bars)")

    def walk(drift: float = 0.0) -> np.ndarray:
        return np.cumsum(rng.normal(drift, vol, n_bars))

    def hl() -> float:
        return float(np.exp(rng.uniform(*np.log(half_life))))

    logs: list[np.ndarray] = []
    rows: list[tuple[int, int, str, float, float]] = []
    for _ in range(n_pairs):
        beta, h = float(rng.uniform(0.5, 2.0)), hl()
        y = walk()
        logs += [rng.uniform(-1, 1) + beta * y + _ou(rng, n_bars, h, spread_std), y]
        rows.append((len(logs) - 2, len(logs) - 1, "pair", beta, h))
    for size in sizes:
        f = walk()
        first = len(logs)
        betas, hls = rng.uniform(0.5, 2.0, size), [hl() for _ in range(size)]
        logs += [rng.uniform(-1, 1) + b * f + _ou(rng, n_bars, h, spread_std) for b, h in zip(betas, hls)]
        for i in range(size):
            for j in range(i + 1, size):
                rows.append((first + i, first + j, "group", float(betas[i] / betas[j]), max(hls[i], hls[j])))
    rest = n_symbols - len(logs)
    for k in range(rest):
        trend = rng.normal(0.0, 2.5 * vol * np.sqrt(n_bars)) / n_bars  # a total move ~2.5x the walk's
        logs.append(walk(trend if k < trending * rest else 0.0))
    order = rng.permutation(n_symbols)  # column position of each generated series
    names = [f"S{i:03d}USDT" for i in range(n_symbols)]
    levels = np.column_stack(logs)[:, np.argsort(order)] + np.log(rng.uniform(1, 1000, n_symbols))
    index = pd.date_range(start, periods=n_bars, freq=bar, tz="UTC", name="time")
    lists = np.where(rng.random(n_symbols) < listed_late, rng.integers(1, max(2, int(0.4 * n_bars)), n_symbols), 0)
    ends = np.where(rng.random(n_symbols) < delisted, rng.integers(int(0.75 * n_bars), n_bars, n_symbols), n_bars)
    bar_no = np.arange(n_bars)[:, None]
    levels = np.where((bar_no >= lists) & (bar_no < ends), levels, np.nan)
    closes = pd.DataFrame(np.exp(levels), index=index, columns=names)
    listings = pd.DataFrame({"first": index[lists], "last": index[ends - 1]}, index=pd.Index(names, name="symbol"))
    pairs = []
    for i, j, kind, beta, h in rows:
        a, b = sorted((int(order[i]), int(order[j])))
        beta_ab = beta if a == order[i] else 1.0 / beta
        pairs.append((names[a], names[b], kind, beta_ab, h))
    return Universe(closes, pd.DataFrame(pairs, columns=["a", "b", "kind", "beta", "half_life_bars"]), listings)
