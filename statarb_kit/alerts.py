"""Alert rule, alert records and alert events.

Rule: the entry test of ``statarb_kit.rule`` (|z| >= z_entry AND corr >= corr_min; SHORT_SPREAD
when z > 0, LONG_SPREAD when z < 0; NaN never qualifies), evaluated on each new final bar. Every
qualifying bar alerts (the log: no suppression) unless an optional cooldown is set.

Events are what reaches people: one when a pair enters the condition; the pair re-arms only
after |z| has fallen below ``reset_z`` and ``event_cooldown_s`` has passed since its last event
(hysteresis: a z hovering at the threshold does not fire again and again).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .errors import InvalidParameter
from .rule import DEFAULT, LONG_SPREAD, SHORT_SPREAD, Rule, check_entry, direction_of, entry_mask, resolve_aliases

__all__ = ["ALERT_COLUMNS", "Alert", "AlertRule", "EventState", "LONG_SPREAD", "SHORT_SPREAD", "alert_rows",
           "alerts_frame", "direction_of", "event_rows", "window_marks"]

#: Column order of the DuckDB ``alerts`` table and of alert DataFrames.
ALERT_COLUMNS = ("time_ms", "pair", "timeframe", "direction", "z", "corr", "alpha", "beta",
                 "price_x", "price_y", "rule")


@dataclass(frozen=True, init=False)
class AlertRule:
    """The live alert rule: a Rule's entry levels (``z_entry`` > 0, ``corr_min`` in [-1, 1]; the
    defaults and the validation are ``statarb_kit.rule``'s) and how often it speaks:
    ``cooldown_bars`` >= 0 bars during which a pair does not alert again after an alert (0: every
    qualifying bar alerts); events: ``reset_z`` (default z_entry / 4) and ``event_cooldown_s``
    (see the module doc). Old names (``z_threshold``, ``corr_threshold``) are accepted."""

    z_entry: float
    corr_min: float
    cooldown_bars: int
    reset_z: float | None
    event_cooldown_s: float

    def __init__(self, z_entry: float = DEFAULT.z_entry, corr_min: float = DEFAULT.corr_min, cooldown_bars: int = 0,
                 reset_z: float | None = None, event_cooldown_s: float = 0.0, **aliases: float) -> None:
        named = resolve_aliases(aliases, "AlertRule")
        unknown = sorted(set(named) - {"z_entry", "corr_min"})
        if unknown:
            raise TypeError(f"AlertRule() got an unexpected keyword argument {unknown[0]!r}")
        z_entry, corr_min = named.get("z_entry", z_entry), named.get("corr_min", corr_min)
        for name, value in (("z_entry", z_entry), ("corr_min", corr_min), ("cooldown_bars", cooldown_bars),
                            ("reset_z", reset_z), ("event_cooldown_s", event_cooldown_s)):
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        check_entry(self.z_entry, self.corr_min)
        if not isinstance(self.cooldown_bars, int) or self.cooldown_bars < 0:
            raise InvalidParameter(f"cooldown_bars must be an integer >= 0, got {self.cooldown_bars!r}")
        if self.reset_z is not None and not (isinstance(self.reset_z, (int, float))
                                             and 0 <= self.reset_z <= self.z_entry):
            raise InvalidParameter(f"reset_z must be within [0, z_entry] (or None), got {self.reset_z!r}")
        if not (isinstance(self.event_cooldown_s, (int, float)) and self.event_cooldown_s >= 0):
            raise InvalidParameter(f"event_cooldown_s must be >= 0 seconds, got {self.event_cooldown_s!r}")

    @classmethod
    def of(cls, rule: Rule, **events: float) -> AlertRule:
        """The live alert rule of ``rule``'s entry levels (``events``: cooldown_bars, reset_z,
        event_cooldown_s)."""
        return cls(z_entry=rule.z_entry, corr_min=rule.corr_min, **events)

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

    def qualifies(self, z: np.ndarray, corr: np.ndarray) -> np.ndarray:
        """Element-wise entry test (``rule.entry_mask``) without cooldown."""
        return entry_mask(z, corr, self.z_entry, self.corr_min)


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


def window_marks(time_ms: np.ndarray, z: np.ndarray, corr: np.ndarray, rule: AlertRule,
                 published: list[tuple[int, float]] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(alert rows, event rows) of a drawn window of one line, indices in time order.

    Alerts are the window's bars that meet ``rule`` (a cooldown counted from the window's first
    row). Events are the ``published`` ones, (bar time ms, z) of the events its owner fired for
    this pair and timeframe, that fall on this line (a row at that time with that z, to 1e-9),
    and those ``event_rows`` finds in the window starting disarmed: a condition already met on
    the window's first rows may have begun before it, so it is an event only when published."""
    time_ms, z, corr = np.asarray(time_ms), np.asarray(z, dtype=np.float64), np.asarray(corr, dtype=np.float64)
    alerts = alert_rows(z, corr, rule)
    found, _ = event_rows(time_ms, z, corr, rule, EventState(armed=False))
    ours = []
    for t, value in published:
        at = int(np.searchsorted(time_ms, t))
        if at < len(time_ms) and time_ms[at] == t and abs(z[at] - value) <= 1e-9 * max(1.0, abs(value)):
            ours.append(at)
    return alerts, np.union1d(found, np.array(ours, dtype=np.int64)).astype(np.int64)


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


def alerts_frame(alerts: list[Alert]) -> pd.DataFrame:
    """Alerts as a DataFrame indexed by UTC bar time, newest last."""
    frame = pd.DataFrame([asdict(a) for a in alerts], columns=list(ALERT_COLUMNS))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame["time_ms"].astype("int64"), unit="ms", utc=True), name="time")
    return frame
