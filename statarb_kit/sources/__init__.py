"""Market-data sources behind one interface (see ``base.Source``): live Binance, replay of
Binance history files, and a synthetic cointegrated pair."""

from .base import Source, SourceBase, SourceInfo, SourceStatus
from .binance_live import BinanceConfig, BinanceLive
from .binance_rest import RestError
from .history import HistoryFile, HistoryFileError, download, read_history
from .replay import Replay
from .synthetic import PairModel, SyntheticGroups, SyntheticPair

__all__ = ["BinanceConfig", "BinanceLive", "HistoryFile", "HistoryFileError", "PairModel", "Replay", "RestError", "Source",
           "SourceBase", "SourceInfo", "SourceStatus", "SyntheticGroups", "SyntheticPair", "download", "read_history"]
