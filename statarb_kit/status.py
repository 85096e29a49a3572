"""SessionStatus: the figures of a running pipeline, as a Session and a monitor's viewer report them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SessionStatus:
    """A snapshot of the pipeline's figures. Times in ms UTC; rates per second."""

    state: str
    source: str
    source_state: str
    symbols: tuple[str, ...]
    last_tick_age_s: float | None
    ticks_per_s: float
    ticks_received: int
    ticks_stored: int
    stored_via: dict[str, int]  # ticks stored by this session per ``ticks.VIA`` (how obtained)
    rows_in_store: int
    ticks_pruned: int  # ticks an in-memory store dropped after its retention (see Session)
    duplicates: int
    pending: int
    overwritten: int
    late_ticks: int
    corrected_bars: int
    reconnects: int
    gaps_found: int
    gaps_filled: int
    averaged_aggregates: int  # aggregates whose missing trades were stored with an average size
    malformed: int
    alerts: int
    events: int
    notified: int  # events sent by the notifier (failed and dropped below)
    notify_failed: int
    notify_dropped: int
    errors: int
    last_error: str

    def averaged_note(self) -> str:
        """Where REST fills gave trades an average size (bar volume and VWAP stay exact): "" if none."""
        n = self.averaged_aggregates
        return f" (sizes averaged within {n:,} aggregate{'s' * (n != 1)})" if n else ""
