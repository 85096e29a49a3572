"""Market-data sources behind one interface (see ``base.Source``)."""

from .base import Source, SourceStatus
from .synthetic import PairModel, SyntheticPair

__all__ = ["PairModel", "Source", "SourceStatus", "SyntheticPair"]
