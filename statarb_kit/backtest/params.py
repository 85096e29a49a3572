"""Parameters of an alert-rule backtest and grids of them."""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from ..analytics.hedge import HEDGE_MODES
from ..analytics.rolling import check_window
from ..errors import InvalidParameter

#: Hedge modes of a backtest: the pair analytics' modes plus walk-forward blocks.
BACKTEST_HEDGE_MODES: tuple[str, ...] = (*HEDGE_MODES, "walk_forward")

#: What each parameter may hold (None only where listed).
_TYPES: dict[str, tuple[str, bool]] = {
    "z_entry": ("number", False), "z_exit": ("number", False), "z_stop": ("number", True),
    "corr_min": ("number", False), "z_window": ("integer", False), "corr_window": ("integer", False),
    "hedge_mode": ("text", False), "hedge_window": ("integer", False), "trade_window": ("integer", True),
    "log_prices": ("boolean", False), "fee_bps": ("number", False), "slippage_bps": ("number", False),
    "max_hold": ("integer", True), "lag": ("integer", False),
    "kalman_q_alpha": ("number", True), "kalman_q_beta": ("number", True),
}
#: dtypes of the parameters that may be None, so one row and many rows of results have the same columns.
OPTIONAL_DTYPES = {name: "float64" if kind == "number" else "Int64" for name, (kind, optional) in _TYPES.items()
                   if optional}
_CHECKS = {
    "number": lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)),
    "integer": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)),
    "text": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
}


def check_type(name: str, value: Any) -> None:
    """Raise InvalidParameter unless ``value`` has the kind parameter ``name`` takes."""
    kind, optional = _TYPES[name]
    if not ((optional and value is None) or _CHECKS[kind](value)):
        raise InvalidParameter(f"{name} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
                               f"{' or none' if optional else ''}, got {value!r}")


#: Fields that change the signal frame (hedge ratio, z, correlation); the others only the trading.
FRAME_FIELDS = ("hedge_mode", "hedge_window", "trade_window", "z_window", "corr_window", "log_prices",
                "kalman_q_alpha", "kalman_q_beta")


@dataclass(frozen=True)
class BacktestParams:
    """An alert rule and how it is traded. Windows, lags and holding times are in bars.

    Entry at the close of bar t when |z_t| >= ``z_entry`` and corr_t >= ``corr_min`` (z < 0:
    LONG_SPREAD, z > 0: SHORT_SPREAD); exit when z crosses back through ``z_exit`` towards zero
    (a long exits once z >= -z_exit), when |z| >= ``z_stop`` against the position (then no new
    entry until |z| < z_entry again), or after ``max_hold`` bars. Orders decided at the close of
    bar t fill at the close of bar t + ``lag`` (``lag`` >= 1: never on the bar that decided).

    ``hedge_mode``: "rolling" (OLS over the previous ``hedge_window`` bars), "fixed" (the first
    ``hedge_window`` bars, traded after them), "kalman", or "walk_forward" (OLS on a formation
    window of ``hedge_window`` bars, traded on the following ``trade_window`` bars, refitted per
    block: never traded on the data it was fitted on). ``kalman_q_alpha`` / ``kalman_q_beta``: the
    Kalman state variances per bar (None: set from the first ``hedge_window`` bars, see
    KalmanParams). ``fee_bps`` and ``slippage_bps`` are
    charged per leg on each fill's notional (slippage as an adverse fill price: the same cost).
    """

    z_entry: float = 2.0
    z_exit: float = 0.5
    z_stop: float | None = None
    corr_min: float = 0.0
    z_window: int = 60
    corr_window: int = 60
    hedge_mode: str = "rolling"
    hedge_window: int = 120
    trade_window: int | None = None
    log_prices: bool = False
    fee_bps: float = 2.0
    slippage_bps: float = 1.0
    max_hold: int | None = None
    lag: int = 1
    kalman_q_alpha: float | None = None
    kalman_q_beta: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            check_type(f.name, getattr(self, f.name))
        check_window(self.z_window, "z_window")
        check_window(self.corr_window, "corr_window")
        check_window(self.hedge_window, "hedge_window")
        if self.hedge_mode not in BACKTEST_HEDGE_MODES:
            raise InvalidParameter(f"hedge_mode must be one of {BACKTEST_HEDGE_MODES}, got {self.hedge_mode!r}")
        if self.trade_window is not None:
            check_window(self.trade_window, "trade_window")
        if not (math.isfinite(self.z_entry) and self.z_entry > 0):
            raise InvalidParameter(f"z_entry must be > 0, got {self.z_entry!r}")
        if not (math.isfinite(self.z_exit) and -self.z_entry < self.z_exit < self.z_entry):
            raise InvalidParameter(f"z_exit must be within (-z_entry, z_entry), got {self.z_exit!r}")
        if self.z_stop is not None and not (self.z_stop > self.z_entry):
            raise InvalidParameter(f"z_stop must be > z_entry (or None), got {self.z_stop!r}")
        if not -1.0 <= self.corr_min <= 1.0:
            raise InvalidParameter(f"corr_min must be within [-1, 1], got {self.corr_min!r}")
        if min(self.fee_bps, self.slippage_bps) < 0:
            raise InvalidParameter("fee_bps and slippage_bps must be >= 0")
        if self.max_hold is not None and (not isinstance(self.max_hold, int) or self.max_hold < 1):
            raise InvalidParameter(f"max_hold must be an integer >= 1 bar (or None), got {self.max_hold!r}")
        if not isinstance(self.lag, int) or isinstance(self.lag, bool) or self.lag < 1:
            raise InvalidParameter(f"lag must be an integer >= 1 bar, got {self.lag!r}")
        for name in ("kalman_q_alpha", "kalman_q_beta"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InvalidParameter(f"{name} must be >= 0 (or None: automatic), got {value!r}")

    @property
    def block(self) -> int:
        """Walk-forward trading block in bars (default: the formation window)."""
        return self.trade_window or self.hedge_window

    @property
    def cost_rate(self) -> float:
        """Cost per unit of filled notional (fee plus slippage)."""
        return (self.fee_bps + self.slippage_bps) / 1e4

    def frame_key(self) -> tuple:
        """What the signal frame depends on: combinations sharing it share one frame (the
        Kalman variances count only in Kalman mode)."""
        kalman = self.hedge_mode == "kalman"
        return tuple(getattr(self, f) if kalman or not f.startswith("kalman_") else None for f in FRAME_FIELDS)

    def with_(self, **changes: Any) -> BacktestParams:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PARAM_NAMES = tuple(f.name for f in fields(BacktestParams))


def expand_grid(grid: dict[str, list], base: BacktestParams | None = None) -> list[BacktestParams]:
    """Every combination of ``grid`` values over ``base``; invalid combinations (say z_exit >=
    z_entry) are left out, unknown names raise."""
    base = base or BacktestParams()
    unknown = sorted(set(grid) - set(PARAM_NAMES))
    if unknown:
        raise InvalidParameter(f"unknown backtest parameter(s) {unknown}; known: {', '.join(PARAM_NAMES)}")
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[n] for n in names)):
        try:
            out.append(base.with_(**dict(zip(names, values))))
        except InvalidParameter:
            continue
    return out


def parse_grid_spec(spec: str) -> tuple[str, list]:
    """``name=v1,v2,...`` or ``name=start:stop:step`` (stop included) into (name, values).
    Values become int, float, bool or None ("none") as written."""
    if "=" not in spec:
        raise InvalidParameter(f"grid spec {spec!r}: use name=v1,v2 or name=start:stop:step")
    name, text = (s.strip() for s in spec.split("=", 1))
    if name not in PARAM_NAMES:
        raise InvalidParameter(f"unknown backtest parameter {name!r}; known: {', '.join(PARAM_NAMES)}")
    if text.count(":") == 2:
        start, stop, step = (_value(v) for v in text.split(":"))
        if not all(isinstance(v, (int, float)) for v in (start, stop, step)) or step <= 0:
            raise InvalidParameter(f"grid spec {spec!r}: start:stop:step needs numbers and step > 0")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = [start + i * step for i in range(max(count, 0))]
        if all(isinstance(v, int) for v in (start, stop, step)):
            values = [int(v) for v in values]
        else:
            values = [round(float(v), 10) for v in values]
    else:
        values = [_value(v) for v in text.split(",") if v.strip()]
    if not values:
        raise InvalidParameter(f"grid spec {spec!r} has no values")
    for v in values:
        check_type(name, v)
    return name, values


def _value(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t
