"""What a live view needs from whoever produces bars: the small public interface a Session
implements and a test fakes (views never reach into the Session)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from .alerts import Alert

#: Called with (timeframe, newly final bars, corrected bars), both BAR_DTYPE arrays.
BarListener = Callable[[str, np.ndarray, np.ndarray], None]


class BarFeed(Protocol):
    """Final bars of a set of symbols, as they become final.

    ``symbols`` (upper case) and ``timeframes`` are fixed; ``code(symbol)`` is a symbol's index
    (InvalidParameter if unknown); ``final_bars`` a copy of the held final bars of one symbol and
    timeframe (BAR_DTYPE, oldest first); ``retained_bars(tf)`` how many a symbol keeps;
    ``subscribe_bars(listener)`` returns its unsubscribe; ``publish_alerts`` takes a view's new
    alerts (every qualifying bar), ``publish_events`` its new events (entering the condition);
    ``report_error`` a listener's failure (counted, never raised).
    """

    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]

    def code(self, symbol: str) -> int: ...

    def final_bars(self, code: int, timeframe: str) -> np.ndarray: ...

    def retained_bars(self, timeframe: str) -> int: ...

    def subscribe_bars(self, listener: BarListener) -> Callable[[], None]: ...

    def publish_alerts(self, alerts: list[Alert]) -> None: ...

    def publish_events(self, events: list[Alert]) -> None: ...

    def report_error(self, where: str, exc: BaseException) -> None: ...
