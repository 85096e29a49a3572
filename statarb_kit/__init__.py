"""statarb_kit: a Jupyter-native research and monitoring kit for pairs trading on crypto futures.

The names below load on first use (PEP 562), so ``import statarb_kit.analytics`` stays light:
no DuckDB, websockets or httpx until a Session, store or live source is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import CorruptFileError, InvalidParameter, SessionStateError, StatarbError, StoreLockedError

#: Public name -> module that defines it.
_LAZY = {
    "BarBuilder": ".bars", "resample_ticks": ".bars", "timeframe_ms": ".bars",
    "TickRing": ".buffer",
    "Session": ".session", "SessionStatus": ".session",
    "PairModel": ".sources", "Source": ".sources", "SourceStatus": ".sources", "SyntheticPair": ".sources",
    "TickStore": ".store",
    "Tick": ".ticks", "TickBatch": ".ticks",
}

__all__ = ["CorruptFileError", "InvalidParameter", "SessionStateError", "StatarbError", "StoreLockedError", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'statarb_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
