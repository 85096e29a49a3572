"""A pair rule: its parameters (one set of defaults, one validation) and the one test of entry,
exit and direction that the live alerts, events, paper trading and the backtest engine all use.

The rule, on the signal frame of a pair (z-score, correlation and hedge ratio at each bar, see
``analytics.signals``):
- **entry** at bar t when |z_t| >= ``z_entry`` and corr_t >= ``corr_min`` and the hedge ratio is
  known (NaN never qualifies); z < 0 is LONG_SPREAD (buy x, sell beta * y), z > 0 SHORT_SPREAD.
- **exit** of a long once z >= -``z_exit`` (of a short once z <= ``z_exit``): z has come back
  through the exit level towards zero; **stop** of a long once z <= -``z_stop`` (of a short once
  z >= ``z_stop``), after which no entry until |z| < z_entry again ("calm").
Windows, lags and holding times are in bars; costs in basis points of each leg's notional.

Every place that takes these parameters builds them from ``Rule``: the URL settings and the
dashboard (``AppSettings``), the CLI, notebook parameters, live views (they carry the Rule and
derive their analytics' parameters and alert rule from it, ``view_options``), paper trading,
backtests, sweeps (``BacktestParams`` is this class) and the scan (its ``log_prices``). Older names (``ALIASES``) are accepted with a
DeprecationWarning.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .analytics.hedge import HEDGE_MODES, KalmanParams
from .analytics.rolling import check_window
from .analytics.signals import PairParams
from .errors import InvalidParameter

LONG_SPREAD = "LONG_SPREAD"
SHORT_SPREAD = "SHORT_SPREAD"
#: Hedge modes of a rule: the pair analytics' modes plus walk-forward blocks (backtests only).
RULE_HEDGE_MODES: tuple[str, ...] = (*HEDGE_MODES, "walk_forward")
#: Older names of the rule's parameters (URL keys, keyword arguments), still accepted.
ALIASES = {"z_threshold": "z_entry", "corr_threshold": "corr_min", "z": "z_entry", "corr": "corr_min",
           "hedge": "hedge_mode"}

#: What each parameter may hold (None only where marked optional).
_TYPES: dict[str, tuple[str, bool]] = {
    "z_entry": ("number", False), "z_exit": ("number", False), "z_stop": ("number", True),
    "corr_min": ("number", False), "z_window": ("integer", False), "corr_window": ("integer", False),
    "hedge_mode": ("text", False), "hedge_window": ("integer", False), "trade_window": ("integer", True),
    "log_prices": ("boolean", False), "fee_bps": ("number", False), "slippage_bps": ("number", False),
    "max_hold": ("integer", True), "lag": ("integer", False),
    "kalman_q_alpha": ("number", True), "kalman_q_beta": ("number", True), "price": ("text", False),
}
#: What a rule's signals are computed on: the bars' last trade, or the mid of the quote in force
#: at each close (backtests of recorded quotes: no bid-ask bounce in the z-score).
PRICES = ("last", "mid")
#: dtypes of the parameters that may be None, so one row and many rows of results have the same columns.
OPTIONAL_DTYPES = {name: "float64" if kind == "number" else "Int64" for name, (kind, optional) in _TYPES.items()
                   if optional}
_CHECKS = {
    "number": lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)),
    "integer": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)),
    "text": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, (bool, np.bool_)),
}
#: Fields that say how a rule is traded once it has entered: exit, stop, holding, fills, costs.
TRADING_FIELDS = ("z_exit", "z_stop", "fee_bps", "slippage_bps", "max_hold", "lag")
#: Fields that change the signal frame (hedge ratio, z, correlation); the others only the trading.
FRAME_FIELDS = ("hedge_mode", "hedge_window", "trade_window", "z_window", "corr_window", "log_prices",
                "kalman_q_alpha", "kalman_q_beta", "price")
#: The pair analytics' defaults (windows, hedge mode, prices or logs): the rule's.
_PAIR = PairParams()


#: The exit level when none is given, for an entry above it (see ``default_exit``).
DEFAULT_EXIT = 0.5


def default_exit(z_entry: float) -> float:
    """The exit level of a rule that names none: DEFAULT_EXIT, or z_entry / 2 for an entry at
    or below it (a low entry of a live page, z_entry=0.5 say, stays a valid rule)."""
    return DEFAULT_EXIT if z_entry > DEFAULT_EXIT else z_entry / 2


def check_type(name: str, value: Any) -> None:
    """Raise InvalidParameter unless ``value`` has the kind parameter ``name`` takes."""
    kind, optional = _TYPES[name]
    if not ((optional and value is None) or _CHECKS[kind](value)):
        raise InvalidParameter(f"{name} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
                               f"{' or none' if optional else ''}, got {value!r}")


def check_entry(z_entry: Any, corr_min: Any) -> None:
    """The entry levels' validation (the rule's and the alert rule's): z_entry > 0 (z == 0 has
    no direction), corr_min within [-1, 1]."""
    check_type("z_entry", z_entry)
    check_type("corr_min", corr_min)
    if not (math.isfinite(z_entry) and z_entry > 0):
        raise InvalidParameter(f"z_entry must be a finite number > 0, got {z_entry!r}")
    if not -1.0 <= corr_min <= 1.0:
        raise InvalidParameter(f"corr_min must be within [-1, 1], got {corr_min!r}")


def resolve_aliases(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` with old names (ALIASES) renamed, each with a DeprecationWarning naming ``where``."""
    out = {}
    for name, value in values.items():
        if name in ALIASES:
            warnings.warn(f"{where}({name}=...) is now {ALIASES[name]}", DeprecationWarning, stacklevel=3)
            name = ALIASES[name]
        out[name] = value
    return out


@dataclass(frozen=True)
class Rule:
    """A pair rule and how it is traded (see the module doc for entry, exit and stop).

    ``z_window`` / ``corr_window`` / ``hedge_window``: bars; ``hedge_mode``: "rolling" (OLS over
    the previous ``hedge_window`` bars), "fixed" (the first ``hedge_window`` bars, traded after
    them), "kalman", or "walk_forward" (backtests: OLS on a formation window of ``hedge_window``
    bars, traded on the following ``trade_window`` bars, refitted per block). ``log_prices``:
    fit and spread on log prices. ``kalman_q_alpha`` / ``kalman_q_beta``: the Kalman state
    variances per bar (None: set from the first ``hedge_window`` bars). Orders decided at the
    close of bar t fill at the close of bar t + ``lag`` (>= 1); ``z_exit`` None: ``default_exit``
    (0.5, or half of a z_entry at or below it); ``max_hold`` bars at most (None:
    no limit); ``fee_bps`` and ``slippage_bps`` are charged per leg on each fill's notional;
    ``price`` "last" (trade prices) or "mid" (the quote mid at each close: backtests of recorded
    quotes, live views of a session that records them)."""

    z_entry: float = 2.0
    z_exit: float | None = None
    z_stop: float | None = None
    corr_min: float = 0.5
    z_window: int = _PAIR.z_window
    corr_window: int = _PAIR.corr_window
    hedge_mode: str = _PAIR.hedge_mode
    hedge_window: int = _PAIR.hedge_window
    trade_window: int | None = None
    log_prices: bool = _PAIR.log_prices
    fee_bps: float = 2.0
    slippage_bps: float = 1.0
    max_hold: int | None = None
    lag: int = 1
    kalman_q_alpha: float | None = None
    kalman_q_beta: float | None = None
    price: str = "last"

    def __post_init__(self) -> None:
        if self.z_exit is None and isinstance(self.z_entry, numbers.Real):
            object.__setattr__(self, "z_exit", default_exit(self.z_entry))
        for f in fields(self):
            check_type(f.name, getattr(self, f.name))
        check_entry(self.z_entry, self.corr_min)
        check_window(self.z_window, "z_window")
        check_window(self.corr_window, "corr_window")
        check_window(self.hedge_window, "hedge_window")
        if self.price not in PRICES:
            raise InvalidParameter(f"price must be one of {PRICES}, got {self.price!r}")
        if self.hedge_mode not in RULE_HEDGE_MODES:
            raise InvalidParameter(f"hedge_mode must be one of {RULE_HEDGE_MODES}, got {self.hedge_mode!r}")
        if self.trade_window is not None:
            check_window(self.trade_window, "trade_window")
        if not (math.isfinite(self.z_exit) and -self.z_entry < self.z_exit < self.z_entry):
            raise InvalidParameter(f"z_exit must be within (-z_entry, z_entry), got {self.z_exit!r}")
        if self.z_stop is not None and not (self.z_stop > self.z_entry):
            raise InvalidParameter(f"z_stop must be > z_entry (or None), got {self.z_stop!r}")
        if min(self.fee_bps, self.slippage_bps) < 0:
            raise InvalidParameter("fee_bps and slippage_bps must be >= 0")
        if self.max_hold is not None and self.max_hold < 1:
            raise InvalidParameter(f"max_hold must be an integer >= 1 bar (or None), got {self.max_hold!r}")
        if self.lag < 1:
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

    def with_(self, **changes: Any) -> Rule:
        """A copy with some parameters changed (validated; old names accepted). A z_exit at its
        default follows a new z_entry (``default_exit``) unless the change names one."""
        changes = resolve_aliases(changes, type(self).__name__)
        if "z_entry" in changes and "z_exit" not in changes and self.z_exit == default_exit(self.z_entry):
            changes["z_exit"] = None
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def trading(self) -> dict[str, Any]:
        """How this rule is traded (TRADING_FIELDS)."""
        return {name: getattr(self, name) for name in TRADING_FIELDS}

    def pair_params(self, **extra: Any) -> PairParams:
        """The pair analytics' parameters of this rule (``extra``: z_include_current, corr_of,
        max_stale). Walk-forward is a backtest mode only: no live view computes it."""
        if self.hedge_mode == "walk_forward":
            raise InvalidParameter("hedge_mode 'walk_forward' is a backtest mode: a live view uses rolling, "
                                   "fixed or kalman")
        return PairParams(hedge_mode=self.hedge_mode, hedge_window=self.hedge_window,  # type: ignore[arg-type]
                          z_window=self.z_window, corr_window=self.corr_window, log_prices=self.log_prices,
                          kalman=KalmanParams(q_alpha=self.kalman_q_alpha, q_beta=self.kalman_q_beta),
                          price=self.price).with_(**extra)

    def same_signals(self, other: Rule) -> bool:
        """Whether ``other`` computes the same signal frame and enters on the same levels (its
        trading may differ): e.g. a paper book's rule and the live view it follows."""
        return self.frame_key() == other.frame_key() and (self.z_entry, self.corr_min) == (other.z_entry, other.corr_min)


#: The rule's parameter names, in order: the columns of backtest results and notebook parameters.
PARAM_NAMES = tuple(f.name for f in fields(Rule))
#: The fields a live page takes as URL settings (``AppSettings``): the rule of a live view and how
#: paper trading trades it; the rest keep their defaults there.
LIVE_FIELDS = ("z_entry", "corr_min", "z_window", "corr_window", "hedge_window", "hedge_mode", "log_prices",
               "z_exit", "fee_bps", "slippage_bps", "price")
#: The defaults, for declarations elsewhere (URL settings, CLI options) to read rather than repeat.
DEFAULT = Rule()


# ---- the one test of entry, exit and direction ---------------------------------------------

def entry_mask(z: np.ndarray, corr: np.ndarray, z_entry: float, corr_min: float,
               beta: np.ndarray | None = None) -> np.ndarray:
    """Element-wise: |z| >= z_entry and corr >= corr_min (and, given ``beta``, the hedge ratio is
    known). NaN never qualifies; z_entry > 0, so z == 0 (no direction) never does either."""
    with np.errstate(invalid="ignore"):
        hit = (np.abs(z) >= z_entry) & (corr >= corr_min)
    return hit & ~np.isnan(beta) if beta is not None else hit


def side_of(z: float) -> int:
    """+1 (LONG_SPREAD) for z < 0, -1 (SHORT_SPREAD) for z > 0: trade towards the mean."""
    return 1 if z < 0 else -1


def direction_of(z: float) -> str:
    """The direction name of an entry at z (see side_of)."""
    return direction_name(side_of(z))


def direction_name(side: int) -> str:
    return LONG_SPREAD if side == 1 else SHORT_SPREAD


def exit_mask(z: np.ndarray, side: int, z_exit: float) -> np.ndarray:
    """Where a position of ``side`` exits: a long once z >= -z_exit, a short once z <= z_exit."""
    with np.errstate(invalid="ignore"):
        return z >= -z_exit if side == 1 else z <= z_exit


def stop_mask(z: np.ndarray, side: int, z_stop: float) -> np.ndarray:
    """Where a position of ``side`` is stopped: a long once z <= -z_stop, a short once z >= z_stop."""
    with np.errstate(invalid="ignore"):
        return z <= -z_stop if side == 1 else z >= z_stop


def calm_mask(z: np.ndarray, z_entry: float) -> np.ndarray:
    """|z| < z_entry: where entries may resume after a stop."""
    with np.errstate(invalid="ignore"):
        return np.abs(z) < z_entry
