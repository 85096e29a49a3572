"""Frozen, validated settings of a Session and a Monitor: what the CLI, the pages' URL settings and
notebooks build, checked once here (a bad value is refused before anything starts)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from .bars import DEFAULT_TIMEFRAMES, check_timeframe
from .errors import InvalidParameter
from .monitor import DEFAULT_PORT, is_loopback


class _Settings:
    """What both configs share: a copy of a config with some fields changed, validated anew."""

    WHAT: ClassVar[str]  # what the settings are of, for messages

    @classmethod
    def of(cls, config: Any = None, **changes: object) -> Any:
        """``config`` (default: the defaults) with ``changes`` (unknown names refused in one line)."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise InvalidParameter(f"unknown {cls.WHAT} setting {', '.join(unknown)}: use {', '.join(names)}")
        if config is not None and not isinstance(config, cls):
            raise InvalidParameter(f"config must be a {cls.__name__}, got {type(config).__name__}")
        return replace(config or cls(), **changes)


@dataclass(frozen=True)
class SessionConfig(_Settings):
    """How a Session runs. ``timeframes``: the bars it builds; ``buffer_capacity``: ring rows;
    ``batch_rows`` / ``flush_interval_s``: the writer's size and time triggers; ``grace_ms``: how
    long after a bar's end a late trade still goes into it; ``retain_bars`` / ``retain_ticks``:
    per symbol (and timeframe) in memory; ``alert_log_size``: alerts and events kept in memory;
    ``stop_timeout_s``: what a stop's reconciliation with the exchange may take;
    ``memory_retention_h``: an in-memory store keeps that many hours of data time (None: all;
    a file keeps everything); ``raw_quotes``: store every quote too (table ``quotes``)."""

    WHAT: ClassVar[str] = "session"
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    buffer_capacity: int = 1_000_000
    batch_rows: int = 100_000
    flush_interval_s: float = 0.25
    grace_ms: int = 2_000
    retain_bars: int = 50_000
    retain_ticks: int = 100_000
    alert_log_size: int = 10_000
    stop_timeout_s: float = 10.0
    memory_retention_h: float | None = 6.0
    raw_quotes: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeframes", tuple(check_timeframe(tf) for tf in self.timeframes))
        if not self.timeframes:
            raise InvalidParameter("a session builds at least one timeframe")
        for name in ("buffer_capacity", "batch_rows", "retain_bars", "retain_ticks", "alert_log_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidParameter(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.grace_ms, int) or self.grace_ms < 0:
            raise InvalidParameter(f"grace_ms must be an integer >= 0, got {self.grace_ms!r}")
        if not self.flush_interval_s > 0 or not self.stop_timeout_s > 0:
            raise InvalidParameter("flush_interval_s and stop_timeout_s must be > 0")
        if self.memory_retention_h is not None and not self.memory_retention_h >= 2:
            raise InvalidParameter(f"memory_retention_h must be >= 2 hours or None (keep all), "
                                   f"got {self.memory_retention_h}")


@dataclass(frozen=True)
class MonitorConfig(_Settings):
    """How a Monitor serves. ``host``/``port``: HTTP /health on ``port``, updates on ``port`` + 1,
    requests on ``port`` + 2; ``token``: the PLAIN password viewers give (needed off loopback);
    ``viewer_queue``: updates queued per viewer before it drops (it then resynchronises);
    ``persist_every_s``: how often events and their state are committed; ``status_every_s``:
    how often a status heartbeat is published."""

    WHAT: ClassVar[str] = "monitor"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    viewer_queue: int = 1_000
    persist_every_s: float = 0.25
    status_every_s: float = 1.0

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise InvalidParameter(f"binding the monitor to {self.host} (not loopback) needs a token: pass --token, "
                                   "or let `statarb monitor` generate one")
        if not isinstance(self.viewer_queue, int) or self.viewer_queue < 1 or self.persist_every_s <= 0 \
                or self.status_every_s <= 0:
            raise InvalidParameter("need viewer_queue >= 1, persist_every_s > 0 and status_every_s > 0")
        if not isinstance(self.port, int) or not 0 < self.port < 65_534:
            raise InvalidParameter(f"port must be 1 to 65533 (it uses port + 1 and + 2 too), got {self.port!r}")
