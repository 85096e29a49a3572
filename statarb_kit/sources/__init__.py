"""Market-data sources behind one interface (see ``base.Source``): replay of history files, a
synthetic cointegrated pair (and groups), and the options that build any of them. An exchange's
own sources live in its wing (``statarb_kit.exchange.binance``: the live client)."""

from .base import Source, SourceBase, SourceInfo, SourceStatus
from .replay import Replay
from .synthetic import PairModel, SyntheticGroups, SyntheticPair

__all__ = ["PairModel", "Replay", "Source", "SourceBase", "SourceInfo", "SourceStatus", "SyntheticGroups",
           "SyntheticPair"]
