"""The one interface every market-data source implements, and its status object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..ticks import TickBatch, now_ms


@dataclass
class SourceStatus:
    """Live figures a source keeps up to date (read by the session status and the UI).

    Times are int64 ms UTC; 0 means 'never'.
    """

    name: str
    state: str = "idle"  # idle | connecting | streaming | reconnecting | finished | error
    ticks: int = 0
    batches: int = 0
    last_message_ms: int = 0
    reconnects: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0
    malformed: int = 0
    last_error: str = ""
    started_ms: int = field(default_factory=now_ms)

    def record(self, batch: TickBatch) -> None:
        self.ticks += len(batch)
        self.batches += 1
        self.last_message_ms = now_ms()

    def age_s(self) -> float | None:
        """Seconds since the last message, None before the first."""
        return None if not self.last_message_ms else (now_ms() - self.last_message_ms) / 1000


@runtime_checkable
class Source(Protocol):
    """An async stream of tick batches for a fixed tuple of upper-case symbols.

    Batches carry ``sym`` codes into ``symbols``. ``realtime`` says whether tick times follow
    the wall clock (live, paced synthetic) or run ahead of it (replay, fast synthetic): only a
    realtime source lets the wall clock finalize bars. The stream ends when the source is
    exhausted; a live source runs until its task is cancelled.

    History a source emits (a warm-up, a REST backfill, a resume) goes in batches marked
    ``TickBatch.backlog``: the session waits for ring space for them instead of overwriting. A
    source that can check itself against the exchange offers ``async reconcile(until_ms,
    timeout_s) -> TickBatch``, which ``Session.stop()`` calls once the stream has stopped.
    """

    symbols: tuple[str, ...]
    realtime: bool
    status: SourceStatus

    def stream(self) -> AsyncIterator[TickBatch]: ...
