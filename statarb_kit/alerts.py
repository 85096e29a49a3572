"""Alert rule, alert records and alert events.

Rule: |z| >= z_entry AND corr >= corr_min, evaluated on each new final bar;
SHORT_SPREAD when z > 0 (sell x, buy beta * y), LONG_SPREAD when z < 0. Every qualifying bar
alerts (the log: no suppression) unless an optional cooldown is set. NaN z or corr never
qualifies, nor z == 0 (it has no direction).

Events are what reaches people: one when a pair enters the condition; the pair re-arms only
after |z| has fallen below ``reset_z`` and ``event_cooldown_s`` has passed since its last event
(hysteresis: a z hovering at the threshold does not fire again and again).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .errors import InvalidParameter

LONG_SPREAD = "LONG_SPREAD"
SHORT_SPREAD = "SHORT_SPREAD"

#: Column order of the DuckDB ``alerts`` table and of alert DataFrames.
ALERT_COLUMNS = ("time_ms", "pair", "timeframe", "direction", "z", "corr", "alpha", "beta",
                 "price_x", "price_y", "rule")


#: Names older releases used for the rule's parameters (accepted, with a DeprecationWarning).
RULE_ALIASES = {"z_threshold": "z_entry", "corr_threshold": "corr_min"}


@dataclass(frozen=True, init=False)
class AlertRule:
    """``z_entry`` >= 0: the |z| that meets the rule; ``corr_min`` in [-1, 1]: the least
    correlation; ``cooldown_bars`` >= 0 bars during which a pair does not alert again after an
    alert (0: every qualifying bar alerts). Events: ``reset_z`` (default z_entry / 4) and
    ``event_cooldown_s`` (see the module doc). The names are those of the backtests, the URL
    settings and the CLI; ``z_threshold`` / ``corr_threshold`` are accepted as old aliases."""

    z_entry: float
    corr_min: float
    cooldown_bars: int
    reset_z: float | None
    event_cooldown_s: float

    def __init__(self, z_entry: float = 2.0, corr_min: float = 0.5, cooldown_bars: int = 0,
                 reset_z: float | None = None, event_cooldown_s: float = 0.0, **aliases: float) -> None:
        for old, value in aliases.items():
            if old not in RULE_ALIASES:
                raise TypeError(f"AlertRule() got an unexpected keyword argument {old!r}")
            warnings.warn(f"AlertRule({old}=...) is now {RULE_ALIASES[old]}", DeprecationWarning, stacklevel=2)
            z_entry, corr_min = (value, corr_min) if old == "z_threshold" else (z_entry, value)
        for name, value in (("z_entry", z_entry), ("corr_min", corr_min), ("cooldown_bars", cooldown_bars),
                            ("reset_z", reset_z), ("event_cooldown_s", event_cooldown_s)):
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        if not (isinstance(self.z_entry, (int, float)) and math.isfinite(self.z_entry) and self.z_entry >= 0):
            raise InvalidParameter(f"z_entry must be a finite number >= 0, got {self.z_entry!r}")
        if not (isinstance(self.corr_min, (int, float)) and -1 <= self.corr_min <= 1):
            raise InvalidParameter(f"corr_min must be within [-1, 1], got {self.corr_min!r}")
        if not isinstance(self.cooldown_bars, int) or self.cooldown_bars < 0:
            raise InvalidParameter(f"cooldown_bars must be an integer >= 0, got {self.cooldown_bars!r}")
        if self.reset_z is not None and not (isinstance(self.reset_z, (int, float))
                                             and 0 <= self.reset_z <= self.z_entry):
            raise InvalidParameter(f"reset_z must be within [0, z_entry] (or None), got {self.reset_z!r}")
        if not (isinstance(self.event_cooldown_s, (int, float)) and self.event_cooldown_s >= 0):
            raise InvalidParameter(f"event_cooldown_s must be >= 0 seconds, got {self.event_cooldown_s!r}")

    def with_(self, **changes: float) -> AlertRule:
        """A copy with some parameters changed (validated; old aliases accepted)."""
        return AlertRule(**{**self.__dict__, **changes})

    def describe(self) -> str:
        text = f"|z| >= {self.z_entry:g} and corr >= {self.corr_min:g}"
        return text + (f", cooldown {self.cooldown_bars} bars" if self.cooldown_bars else "")

    @property
    def rearm_z(self) -> float:
        """|z| below which a pair re-arms for its next event (default: a quarter of z_entry)."""
        return self.z_entry / 4 if self.reset_z is None else self.reset_z

    def describe_events(self) -> str:
        text = f"{self.describe()}; re-arms below |z| {self.rearm_z:g}"
        return text + (f" after {self.event_cooldown_s:g} s" if self.event_cooldown_s else "")

    def qualifies(self, z: np.ndarray, corr: np.ndarray) -> np.ndarray:
        """Element-wise rule without cooldown; NaN never qualifies, nor z == 0 (no direction,
        which only a threshold of 0 could let through)."""
        with np.errstate(invalid="ignore"):
            return (np.abs(z) >= self.z_entry) & (z != 0) & (corr >= self.corr_min)


def alert_rows(z: np.ndarray, corr: np.ndarray, rule: AlertRule, bars_since_alert: int | None = None) -> np.ndarray:
    """Indices of the rows that alert, applying the cooldown in order. ``bars_since_alert``:
    bars between the last alert before these rows and the first row (None: no earlier alert)."""
    hits = np.flatnonzero(rule.qualifies(np.asarray(z), np.asarray(corr)))
    if not rule.cooldown_bars or not len(hits):
        return hits
    keep, last = [], None if bars_since_alert is None else -bars_since_alert
    for i in hits.tolist():
        if last is None or i - last > rule.cooldown_bars:
            keep.append(i)
            last = i
    return np.array(keep, dtype=np.int64)


@dataclass
class EventState:
    """Where a pair stands between bars: ``armed`` (the next qualifying bar is an event) and the
    time (ms) of its last event (None: never)."""

    armed: bool = True
    last_ms: int | None = None


def event_rows(time_ms: np.ndarray, z: np.ndarray, corr: np.ndarray, rule: AlertRule,
               state: EventState | None = None) -> tuple[np.ndarray, EventState]:
    """Indices of the rows that are events (see the module doc), applied in order from
    ``state``; returns them and the state after the last row."""
    state = EventState(state.armed, state.last_ms) if state else EventState()
    hits = rule.qualifies(np.asarray(z), np.asarray(corr))
    with np.errstate(invalid="ignore"):
        calm = np.abs(np.asarray(z)) < rule.rearm_z
    cooldown = int(rule.event_cooldown_s * 1000)
    out = []
    for i in np.flatnonzero(hits | calm).tolist():  # only these rows can change anything
        t = int(time_ms[i])
        if not state.armed and calm[i] and (state.last_ms is None or t - state.last_ms >= cooldown):
            state.armed = True
        if state.armed and hits[i] and (state.last_ms is None or t - state.last_ms >= cooldown):
            out.append(i)
            state.armed, state.last_ms = False, t
    return np.array(out, dtype=np.int64), state


@dataclass(frozen=True)
class Alert:
    """One alert. ``time_ms`` is the bar open time (ms UTC) of the bar that fired."""

    time_ms: int
    pair: str
    timeframe: str
    direction: str
    z: float
    corr: float
    alpha: float
    beta: float
    price_x: float
    price_y: float
    rule: str

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.time_ms, unit="ms", tz="UTC")

    def __str__(self) -> str:
        return (f"{self.time:%Y-%m-%d %H:%M:%S}Z {self.pair} {self.timeframe} {self.direction} "
                f"z={self.z:+.2f} corr={self.corr:.2f} beta={self.beta:.4g}")

    @property
    def symbols(self) -> tuple[str, str]:
        x, y = self.pair.split("/")
        return x, y


def direction_of(z: float) -> str:
    return SHORT_SPREAD if z > 0 else LONG_SPREAD


def alerts_frame(alerts: list[Alert]) -> pd.DataFrame:
    """Alerts as a DataFrame indexed by UTC bar time, newest last."""
    frame = pd.DataFrame([asdict(a) for a in alerts], columns=list(ALERT_COLUMNS))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame["time_ms"].astype("int64"), unit="ms", utc=True), name="time")
    return frame
