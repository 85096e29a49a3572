"""SessionAPI: what pages, watchlists and notebooks use of a session. Two implementations meet
here: ``Session`` (it ingests a source into its own store) and ``monitor.RemoteSession`` (it
views a running monitor and owns no store). A test checks both against this, member by member,
with the same signatures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pandas as pd

if TYPE_CHECKING:
    from .alerts import Alert
    from .pair import PairView
    from .rule import Rule
    from .view_options import ViewOptions
    from .quotes import QuoteBars
    from .sources.base import SourceInfo
    from .exchange.binance.mark_price import FundingProvider
    from .status import SessionStatus


@runtime_checkable
class SessionAPI(Protocol):
    """A session as the pages see it. ``owns_store``: whether it holds a store of its own (paper
    books and stored reads run there); a viewer's monitor holds its file."""

    alerts_fired: int
    events_fired: int
    funding: FundingProvider | None

    @property
    def symbols(self) -> tuple[str, ...]: ...

    @property
    def timeframes(self) -> tuple[str, ...]: ...

    @property
    def running(self) -> bool: ...

    @property
    def owns_store(self) -> bool: ...

    def source_info(self) -> SourceInfo: ...

    def status(self) -> SessionStatus: ...

    def pair(self, x: str, y: str, timeframe: str | None = None, rule: Rule | None = None,
             options: ViewOptions | None = None, **changes: object) -> PairView: ...

    def bars(self, symbol: str, timeframe: str = "1m", last: int | None = 500) -> pd.DataFrame: ...

    def quote_bars(self, symbol: str, timeframe: str) -> QuoteBars | None: ...

    def alerts(self, last: int | None = None) -> pd.DataFrame: ...

    def events(self, last: int | None = None) -> pd.DataFrame: ...

    def held_events(self, pair: str, timeframe: str) -> list[Alert]: ...

    def subscribe_alerts(self, listener: Callable[[Alert], None]) -> Callable[[], None]: ...

    def subscribe_events(self, listener: Callable[[Alert], None]) -> Callable[[], None]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "statarb-task") -> asyncio.Task[Any]: ...

    def every(self, interval_s: float, fn: Callable[[], Any], name: str) -> asyncio.Task[Any]: ...

    async def stop(self) -> None: ...
