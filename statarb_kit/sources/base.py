"""The one interface every market-data source implements, and its status object."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..ticks import TickBatch, now_ms

if TYPE_CHECKING:
    from ..quotes import QuoteBatch
    from ..exchange.binance.mark_price import FundingProvider


class SourceState(StrEnum):
    """What a source is doing (``SourceStatus.state``; a str, so it prints and compares as its text)."""

    IDLE = "idle"  # not started
    CONNECTING = "connecting"
    STREAMING = "streaming"
    QUIET = "quiet"  # connected; the exchange printed nothing new (not an error)
    RECONNECTING = "reconnecting"
    SILENT_ROUTE = "silent route"  # connected, but the route delivers nothing while REST shows trades
    FINISHED = "finished"  # a finite source came to its end
    ERROR = "error"


@dataclass
class SourceStatus:
    """Live figures a source keeps up to date (read by the session status and the UI).

    Times are int64 ms UTC; 0 means 'never'.
    """

    name: str
    state: SourceState = SourceState.IDLE
    ticks: int = 0
    batches: int = 0
    last_message_ms: int = 0
    reconnects: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0
    malformed: int = 0
    averaged_aggregates: int = 0  # aggregates of a REST fill whose missing trades got an average size
    last_error: str = ""
    started_ms: int = field(default_factory=now_ms)

    def record(self, batch: TickBatch) -> None:
        self.ticks += len(batch)
        self.batches += 1
        self.last_message_ms = now_ms()

    def age_s(self) -> float | None:
        """Seconds since the last message, None before the first."""
        return None if not self.last_message_ms else (now_ms() - self.last_message_ms) / 1000


@dataclass(frozen=True)
class SourceInfo:
    """What a page shows of a source: its name, whether its tick times follow the wall clock,
    and for generated data what was planted in it (``truth``: a sentence; ``planted_hedge``: (x,
    y, beta, half-life s) of a planted pair, in price space); None for market data."""

    name: str
    realtime: bool
    truth: str | None = None
    planted_hedge: tuple[str, str, float, float] | None = None


@runtime_checkable
class Source(Protocol):
    """An async stream of tick batches for a fixed tuple of upper-case symbols.

    Batches carry ``sym`` codes into ``symbols``. ``realtime`` says whether tick times follow
    the wall clock (live, paced synthetic) or run ahead of it (replay, fast synthetic): only a
    realtime source lets the wall clock finalize bars. The stream ends when the source is
    exhausted; a live source runs until its task is cancelled.

    History a source emits (a warm-up, a REST backfill, a resume) goes in batches marked
    ``TickBatch.backlog``: the session waits for ring space for them instead of overwriting, which
    it does only to keep a live feed live under overload.

    Five optional parts, with the defaults of ``SourceBase`` (a source inherits them): ``info()``
    (a ``SourceInfo``: what pages show of it),
    ``funding`` (its symbols' funding: a FundingProvider; one that is ``live`` runs as a task of
    the session, which stores its settlements), ``resume(newest)`` (continue after the trades a
    file already holds: symbol -> (trade id, time ms, price)) and ``reconcile(until_ms,
    timeout_s)`` (after the stream stopped: the trades up to ``until_ms`` it still owes, checked
    against the exchange; ``Session.stop()`` stores them) and ``take_quotes()`` (the quotes
    received since the last call, a ``quotes.QuoteBatch``, or None: the session stores them).
    """

    symbols: tuple[str, ...]
    realtime: bool
    status: SourceStatus
    funding: FundingProvider | None

    def stream(self) -> AsyncIterator[TickBatch]: ...

    def resume(self, newest: Mapping[str, tuple[int, int, float]]) -> None: ...

    async def reconcile(self, until_ms: int, timeout_s: float) -> TickBatch: ...

    def take_quotes(self) -> QuoteBatch | None: ...

    def info(self) -> SourceInfo: ...


class SourceBase:
    """The optional parts of a Source, as a source without them has them: no funding, nothing
    to resume (a recorded source's trades carry their own ids), nothing owed at a stop."""

    funding: FundingProvider | None = None

    def resume(self, newest: Mapping[str, tuple[int, int, float]]) -> None:
        """Nothing to continue: the trades are the exchange's or the files'."""

    async def reconcile(self, until_ms: int, timeout_s: float) -> TickBatch:
        """Nothing owed: everything this source has was streamed."""
        return TickBatch.empty()

    def take_quotes(self) -> QuoteBatch | None:
        """No quotes: this source streams trades only."""
        return None

    def info(self) -> SourceInfo:
        """Market data: its name and pacing, nothing planted."""
        return SourceInfo(self.status.name, self.realtime)
