"""statarb_kit: a Jupyter-native research and monitoring kit for pairs trading on crypto futures."""

from .bars import BarBuilder, resample_ticks, timeframe_ms
from .buffer import TickRing
from .errors import InvalidParameter, SessionStateError, StatarbError, StoreLockedError
from .session import Session, SessionStatus
from .sources import PairModel, Source, SourceStatus, SyntheticPair
from .store import TickStore
from .ticks import Tick, TickBatch

__all__ = [
    "BarBuilder",
    "InvalidParameter",
    "PairModel",
    "Session",
    "SessionStateError",
    "SessionStatus",
    "Source",
    "SourceStatus",
    "StatarbError",
    "StoreLockedError",
    "SyntheticPair",
    "Tick",
    "TickBatch",
    "TickRing",
    "TickStore",
    "resample_ticks",
    "timeframe_ms",
]
