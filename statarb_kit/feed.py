"""What a live view needs from whoever produces bars: the small public interface a Session
implements and a test fakes (views never reach into the Session)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

#: Called with (timeframe, newly final bars, corrected bars), both BAR_DTYPE arrays.
BarListener = Callable[[str, np.ndarray, np.ndarray], None]


class BarFeed(Protocol):
    """Final bars of a set of symbols: what a view reads.

    ``symbols`` (upper case) and ``timeframes`` are fixed; ``code(symbol)`` is a symbol's index
    (InvalidParameter if unknown); ``final_bars`` a copy of the held final bars of one symbol and
    timeframe (BAR_DTYPE, oldest first); ``retained_bars(tf)`` how many a symbol keeps;
    ``report_error`` a view listener's failure (counted, never raised); ``mids_at_close`` the
    quote mid in force at the close of each bar starting at ``starts`` (NaN where none is held;
    None: this feed holds no quotes, so a view cannot price at the mid). New bars reach a view
    from its owner (``PairView.update``), which publishes what the view returns.
    """

    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]

    def code(self, symbol: str) -> int: ...

    def final_bars(self, code: int, timeframe: str) -> np.ndarray: ...

    def retained_bars(self, timeframe: str) -> int: ...

    def report_error(self, where: str, exc: BaseException) -> None: ...

    def mids_at_close(self, code: int, timeframe: str, starts: np.ndarray) -> np.ndarray | None: ...
