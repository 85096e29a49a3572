"""The tick model: columnar batches of trades with int64 millisecond UTC timestamps.

A tick is one exchange trade. Symbols are carried as small integer codes (``sym``) into the
symbol tuple of the source that produced them, so batches stay plain numpy columns; the
upper-case names are attached only when a batch leaves for DuckDB or pandas.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import InvalidParameter

#: Column name -> numpy dtype, in storage order.
TICK_COLUMNS: dict[str, np.dtype] = {
    "sym": np.dtype(np.uint16),  # code into the source's symbol tuple
    "trade_id": np.dtype(np.int64),  # exchange trade id, consecutive per symbol on Binance
    "ts": np.dtype(np.int64),  # exchange trade time, ms since the Unix epoch (UTC)
    "price": np.dtype(np.float64),
    "qty": np.dtype(np.float64),  # base-asset quantity
    "is_buyer_maker": np.dtype(np.bool_),  # True: the taker sold
    "recv_ts": np.dtype(np.int64),  # local receive time, ms UTC (latency figures only)
    "via": np.dtype(np.uint8),  # how the trade was obtained: a code into VIA
}

#: How a stored trade was obtained (``via`` codes index this tuple). Exact: every field as the
#: exchange printed it. Split: rebuilt from an aggregate trade, its quantity split evenly over the
#: aggregate's trades (price, side, time, bar volume and counts exact; a single size is an average).
VIA: tuple[str, ...] = (
    "stream",  # live WebSocket @trade (exact)
    "recent_trades",  # REST /fapi/v1/trades, the newest 1,000 trades (exact)
    "historical_trades",  # REST /fapi/v1/historicalTrades, with an API key (exact)
    "agg_split",  # REST /fapi/v1/aggTrades, split
    "dump",  # a Binance trades dump file (exact)
    "dump_agg_split",  # a Binance aggTrades dump file, split
    "synthetic",  # the synthetic source
)
VIA_CODE: dict[str, int] = {name: i for i, name in enumerate(VIA)}

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")


def normalize_symbol(symbol: str) -> str:
    """Upper-case and validate a symbol (``btcusdt`` -> ``BTCUSDT``).

    Raises InvalidParameter for anything that cannot be a Binance symbol.
    """
    if not isinstance(symbol, str):
        raise InvalidParameter(f"symbol must be a string, got {symbol!r}")
    s = symbol.strip().upper()
    if not _SYMBOL_RE.match(s):
        raise InvalidParameter(
            f"{symbol!r} is not a valid symbol: use letters and digits only, e.g. BTCUSDT"
        )
    return s


def now_ms() -> int:
    """Wall-clock time in int64 milliseconds since the epoch, UTC."""
    return time.time_ns() // 1_000_000


class Tick(NamedTuple):
    """One trade, for single-tick appends. ``sym`` is a code into the source's symbols."""

    sym: int
    trade_id: int
    ts: int
    price: float
    qty: float
    is_buyer_maker: bool
    recv_ts: int = 0
    via: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class TickBatch:
    """Equal-length numpy columns, one row per trade. Rows are in arrival order.

    ``backlog`` marks trades that are history, not the live edge (a warm-up, a REST backfill or
    catch-up, a resume): the session waits for ring space for them instead of overwriting, which
    it does only to keep a live feed live under overload.
    """

    sym: np.ndarray
    trade_id: np.ndarray
    ts: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    is_buyer_maker: np.ndarray
    recv_ts: np.ndarray
    via: np.ndarray
    backlog: bool = False

    def __post_init__(self) -> None:
        n = len(self.sym)
        for name, dtype in TICK_COLUMNS.items():
            col = getattr(self, name)
            if col.dtype != dtype or col.ndim != 1 or len(col) != n:
                raise InvalidParameter(
                    f"TickBatch column {name!r} must be 1-d {dtype} of length {n}, "
                    f"got {col.dtype} shape {col.shape}"
                )

    def __len__(self) -> int:
        return len(self.sym)

    @classmethod
    def from_columns(cls, via: str | np.ndarray = "stream", backlog: bool = False, **columns: np.ndarray) -> TickBatch:
        """Build from array-likes, casting each to its column dtype.

        ``recv_ts`` defaults to now; ``via`` is a name of VIA for every row, or codes per row.
        """
        n = len(columns["trade_id"])
        columns.setdefault("recv_ts", np.full(n, now_ms(), dtype=np.int64))
        columns["via"] = np.full(n, VIA_CODE[via], dtype=np.uint8) if isinstance(via, str) else via
        missing = set(TICK_COLUMNS) - set(columns)
        if missing:
            raise InvalidParameter(f"TickBatch is missing columns {sorted(missing)}")
        return cls(**{k: np.ascontiguousarray(columns[k], dtype=d) for k, d in TICK_COLUMNS.items()}, backlog=backlog)

    @classmethod
    def empty(cls) -> TickBatch:
        return cls(**{k: np.empty(0, dtype=d) for k, d in TICK_COLUMNS.items()})

    @classmethod
    def concat(cls, batches: list[TickBatch]) -> TickBatch:
        """Rows of all ``batches`` in order; backlog if any of them is."""
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(**{k: np.concatenate([getattr(b, k) for b in batches]) for k in TICK_COLUMNS},
                   backlog=any(b.backlog for b in batches))

    def take(self, index: np.ndarray | slice) -> TickBatch:
        """Rows selected by an integer index or boolean mask (a copy), or by a slice (views)."""
        return TickBatch(**{k: getattr(self, k)[index] for k in TICK_COLUMNS}, backlog=self.backlog)

    def as_backlog(self) -> TickBatch:
        """The same rows, marked as backlog (see the class doc)."""
        return TickBatch(**self.columns(), backlog=True)

    def columns(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in TICK_COLUMNS}

    def to_frame(self, symbols: tuple[str, ...]) -> pd.DataFrame:
        """Storage layout: ``symbol`` (names from ``symbols``) followed by the other columns,
        ``via`` as names."""
        cols = self.columns()
        sym = cols.pop("sym")
        frame = pd.DataFrame(cols, copy=False)
        frame.insert(0, "symbol", pd.Categorical.from_codes(sym.astype(np.int32), categories=symbols))
        frame["via"] = pd.Categorical.from_codes(self.via.astype(np.int32), categories=VIA)
        return frame

    def to_arrow(self, symbols: tuple[str, ...]) -> pa.Table:
        """Storage layout as an Arrow table (zero-copy columns; ``symbol`` and ``via``
        dictionary-encoded with their names)."""
        cols = self.columns()
        sym = pa.DictionaryArray.from_arrays(cols.pop("sym").astype(np.int32), pa.array(symbols, pa.string()))
        via = pa.DictionaryArray.from_arrays(cols.pop("via").astype(np.int32), pa.array(VIA, pa.string()))
        return pa.table({"symbol": sym, **cols, "via": via})

    def to_view(self, symbols: tuple[str, ...]) -> pd.DataFrame:
        """A research view: UTC DatetimeIndex ``time`` from ``ts``, trade columns, symbol names."""
        frame = self.to_frame(symbols)
        frame.index = pd.DatetimeIndex(pd.to_datetime(self.ts, unit="ms", utc=True), name="time")
        return frame.drop(columns=["ts"])
