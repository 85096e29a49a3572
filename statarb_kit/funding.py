"""Funding rates of USD-M perpetuals: the data and a seeded synthetic process (Binance's dumps
are read in ``exchange.binance.funding_files``).

At each funding time a position of notional N pays N x rate when long and receives it when
short (rate > 0; the reverse when < 0). Binance settles every 8 h for most symbols (00:00,
08:00, 16:00 UTC), every 4 h or 1 h for some, and may change a symbol's interval.

"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InvalidParameter
from .ticks import normalize_symbol

HOUR_MS = 3_600_000
#: The longest interval Binance uses: a longer gap between settlements means missing data.
MAX_INTERVAL_MS = 8 * HOUR_MS
#: How late after the hour a settlement may be stamped (Binance: a few ms, at times seconds): two
#: settlements up to MAX_INTERVAL_MS + this apart leave no gap (a missing one would make 16 h).
SETTLEMENT_JITTER_MS = 60_000
#: Two records of one symbol's settlement (a REST row and a dump row differ by a few ms) are
#: closer than this; distinct settlements are at least an hour apart on Binance.
SAME_SETTLEMENT_MS = 1_000
#: Binance caps most USD-M rates at +/-0.75% per 8 h (some symbols more); synthetic rates stay within.
SYNTHETIC_CAP = 0.0075


@dataclass(frozen=True, eq=False)
class FundingRates:
    """One symbol's settlements: ``time`` (ms UTC, strictly ascending), ``rate`` (a fraction per
    settlement: 0.0001 = 0.01%; > 0: longs pay shorts) and ``origin`` (synthetic, dump, rest,
    store or stream)."""

    symbol: str
    time: np.ndarray
    rate: np.ndarray
    origin: str

    def __post_init__(self) -> None:
        t = np.asarray(self.time, dtype=np.int64)
        r = np.asarray(self.rate, dtype=np.float64)
        if t.shape != r.shape or t.ndim != 1:
            raise InvalidParameter(f"{self.symbol}: funding times and rates must be 1-d of one length")
        if len(t) and (np.any(np.diff(t) <= 0) or not np.all(np.isfinite(r))):
            raise InvalidParameter(f"{self.symbol}: funding times must be strictly ascending and rates finite")
        object.__setattr__(self, "time", t)
        object.__setattr__(self, "rate", r)

    def __len__(self) -> int:
        return len(self.time)

    def gaps(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Spans of [start_ms, end_ms] longer than MAX_INTERVAL_MS (plus SETTLEMENT_JITTER_MS)
        without a settlement: where the data cannot say what was paid."""
        edges = np.concatenate(([start_ms], self.time[(self.time > start_ms) & (self.time < end_ms)], [end_ms]))
        long = np.flatnonzero(np.diff(edges) > MAX_INTERVAL_MS + SETTLEMENT_JITTER_MS)
        return [(int(edges[i]), int(edges[i + 1])) for i in long]

    def frame(self) -> pd.DataFrame:
        """time (UTC) -> rate."""
        index = pd.to_datetime(self.time, unit="ms", utc=True).rename("time")
        return pd.DataFrame({"rate": self.rate}, index=index)

    @classmethod
    def concat(cls, parts: list[FundingRates]) -> FundingRates:
        """One symbol's parts (e.g. monthly files) merged; a settlement given twice (within
        SAME_SETTLEMENT_MS) is kept once, as first given."""
        if not parts or len({p.symbol for p in parts}) != 1:
            raise InvalidParameter("concat takes parts of one symbol")
        t = np.concatenate([p.time for p in parts])
        r = np.concatenate([p.rate for p in parts])
        order = np.argsort(t, kind="stable")
        t, r = t[order], r[order]
        keep = np.concatenate(([True], np.diff(t) >= SAME_SETTLEMENT_MS)) if len(t) else np.empty(0, dtype=bool)
        return cls(parts[0].symbol, t[keep], r[keep], parts[0].origin)


@dataclass(frozen=True, eq=False)
class PairFunding:
    """The funding of both legs of a pair (x, y)."""

    x: FundingRates
    y: FundingRates

    def check_covers(self, start_ms: int, end_ms: int) -> None:
        """Raise InvalidParameter naming the first uncovered span of either leg (see gaps)."""
        for leg in (self.x, self.y):
            gaps = leg.gaps(start_ms, end_ms)
            if gaps:
                a, b = (pd.Timestamp(v, unit="ms", tz="UTC") for v in gaps[0])
                raise InvalidParameter(
                    f"no funding data for {leg.symbol} from {a} to {b} ({len(gaps)} such gap(s), "
                    f"origin {leg.origin}): load its funding for the whole period, or backtest without "
                    "funding (the result then says funding was not included)")


def synthetic_funding(symbol: str, start_ms: int, end_ms: int, seed: int = 7, interval_h: int = 8,
                      mean: float | None = None, std: float = 1e-4, phi: float = 0.8) -> FundingRates:
    """A seeded AR(1) rate per settlement on the UTC grid of ``interval_h`` hours, from the first
    settlement after ``start_ms`` through ``end_ms``: r_k = mean + phi (r_{k-1} - mean) + e_k,
    e_k ~ N(0, std^2 (1 - phi^2)), clipped to +/-SYNTHETIC_CAP. ``mean`` (None) is drawn per
    symbol from the seed within [0, 2e-4] (0.01% per 8 h is Binance's usual baseline), so two
    legs differ and a pair carries net funding."""
    if interval_h not in (1, 2, 4, 8) or not (std >= 0 and -1 < phi < 1):
        raise InvalidParameter("need interval_h in (1, 2, 4, 8), std >= 0 and -1 < phi < 1")
    step = interval_h * HOUR_MS
    times = np.arange((start_ms // step + 1) * step, end_ms + 1, step, dtype=np.int64)
    rng = np.random.default_rng([seed, zlib.crc32(normalize_symbol(symbol).encode())])
    mu = rng.uniform(0.0, 2e-4) if mean is None else mean
    shocks = rng.normal(0.0, std * np.sqrt(1 - phi * phi), len(times))
    rates = np.empty(len(times))
    level = mu + rng.normal(0.0, std)
    for k, e in enumerate(shocks):
        level = mu + phi * (level - mu) + e
        rates[k] = level
    return FundingRates(normalize_symbol(symbol), times, np.clip(rates, -SYNTHETIC_CAP, SYNTHETIC_CAP), "synthetic")
