"""Walk-forward periods: a formation window, then the trading window right after it, rolled on by
a step over a history (Gatev, Goetzmann & Rouwenhorst 2006: 12 months / 6 months, the ``ggr``
preset). Times are UTC; windows are half-open [start, end)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ..errors import InvalidParameter

_SPAN = re.compile(r"^\s*(\d+)\s*([hdwmy])\s*$")
#: Named protocols: (formation, trading, step).
PRESETS = {"ggr": ("12m", "6m", "6m")}


def parse_span(text: str) -> pd.DateOffset:
    """A window length: ``N`` and a unit, h (hours), d (days), w (weeks), m (calendar months) or
    y (years), e.g. ``60d``, ``12m``. InvalidParameter otherwise."""
    m = _SPAN.match(str(text))
    if not m or int(m.group(1)) == 0:
        raise InvalidParameter(f"a window is a count and a unit (h, d, w, m, y), e.g. 60d or 12m; got {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return {"h": pd.DateOffset(hours=n), "d": pd.DateOffset(days=n), "w": pd.DateOffset(weeks=n),
            "m": pd.DateOffset(months=n), "y": pd.DateOffset(years=n)}[unit]


@dataclass(frozen=True)
class Period:
    """One formation window and the trading window after it (UTC, [start, end))."""

    formation: tuple[pd.Timestamp, pd.Timestamp]
    trading: tuple[pd.Timestamp, pd.Timestamp]

    def label(self) -> str:
        return f"{self.trading[0]:%Y-%m-%d}"


def rolling_periods(first: pd.Timestamp, end: pd.Timestamp, formation: str, trading: str, step: str) -> list[Period]:
    """Periods whose formation starts at ``first`` (floored to its UTC day), then every ``step``,
    as long as the trading window ends by ``end`` (exclusive: the end of the data)."""
    f, t, s = parse_span(formation), parse_span(trading), parse_span(step)
    start = pd.Timestamp(first).tz_convert("UTC").floor("D") if pd.Timestamp(first).tzinfo else \
        pd.Timestamp(first).tz_localize("UTC").floor("D")
    out: list[Period] = []
    while start + f + t <= end:
        out.append(Period((start, start + f), (start + f, start + f + t)))
        start = start + s
    return out
