"""Project exception types. Messages say what went wrong and what to do next."""

from __future__ import annotations


class StatarbError(Exception):
    """Base class of every error statarb_kit raises on purpose."""


class InvalidParameter(StatarbError, ValueError):
    """A user-supplied parameter (symbol, timeframe, threshold, capacity...) is out of range."""


class StoreLockedError(StatarbError):
    """The DuckDB file is already open for writing by another process."""


class CorruptFileError(StatarbError):
    """A file is not what its name or use says (not a DuckDB database, a broken zip...)."""


class NetworkError(StatarbError):
    """A server (Binance's API, its data site) could not be reached or answered with an error."""


class SessionStateError(StatarbError, RuntimeError):
    """A Session method was called in the wrong state (e.g. start() twice, no event loop)."""
