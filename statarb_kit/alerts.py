"""Alert rule and alert records.

Rule: |z| >= z_threshold AND corr >= corr_threshold, evaluated on each new final bar;
SHORT_SPREAD when z > 0 (sell x, buy beta * y), LONG_SPREAD when z < 0. Every qualifying bar
alerts (no suppression) unless an optional cooldown is set. NaN z or corr never qualifies, nor
z == 0 (it has no direction).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .errors import InvalidParameter

LONG_SPREAD = "LONG_SPREAD"
SHORT_SPREAD = "SHORT_SPREAD"

#: Column order of the DuckDB ``alerts`` table and of alert DataFrames.
ALERT_COLUMNS = ("time_ms", "pair", "timeframe", "direction", "z", "corr", "alpha", "beta",
                 "price_x", "price_y", "rule")


@dataclass(frozen=True)
class AlertRule:
    """``z_threshold`` >= 0; ``corr_threshold`` in [-1, 1]; ``cooldown_bars`` >= 0 bars during
    which a pair does not alert again after an alert (0: every qualifying bar alerts)."""

    z_threshold: float = 2.0
    corr_threshold: float = 0.5
    cooldown_bars: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.z_threshold, (int, float)) and math.isfinite(self.z_threshold)
                and self.z_threshold >= 0):
            raise InvalidParameter(f"z_threshold must be a finite number >= 0, got {self.z_threshold!r}")
        if not (isinstance(self.corr_threshold, (int, float)) and -1 <= self.corr_threshold <= 1):
            raise InvalidParameter(f"corr_threshold must be within [-1, 1], got {self.corr_threshold!r}")
        if not isinstance(self.cooldown_bars, int) or self.cooldown_bars < 0:
            raise InvalidParameter(f"cooldown_bars must be an integer >= 0, got {self.cooldown_bars!r}")

    def describe(self) -> str:
        text = f"|z| >= {self.z_threshold:g} and corr >= {self.corr_threshold:g}"
        return text + (f", cooldown {self.cooldown_bars} bars" if self.cooldown_bars else "")

    def qualifies(self, z: np.ndarray, corr: np.ndarray) -> np.ndarray:
        """Element-wise rule without cooldown; NaN never qualifies, nor z == 0 (no direction,
        which only a threshold of 0 could let through)."""
        with np.errstate(invalid="ignore"):
            return (np.abs(z) >= self.z_threshold) & (z != 0) & (corr >= self.corr_threshold)


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


def direction_of(z: float) -> str:
    return SHORT_SPREAD if z > 0 else LONG_SPREAD


def alerts_frame(alerts: list[Alert]) -> pd.DataFrame:
    """Alerts as a DataFrame indexed by UTC bar time, newest last."""
    frame = pd.DataFrame([asdict(a) for a in alerts], columns=list(ALERT_COLUMNS))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame["time_ms"].astype("int64"), unit="ms", utc=True), name="time")
    return frame
