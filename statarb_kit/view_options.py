"""A live view's settings beyond its rule, and how a view's ``Rule`` becomes what it computes.

The live path carries one type, ``rule.Rule`` (windows, hedge, prices, entry levels, trading).
A live view adds settings that no backtest or sweep varies (``ViewOptions``): how its analytics
read the bars and how often its alerts speak. From the two it derives the pair analytics'
parameters (``params``) and its alert rule (``alert``); nothing else builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .alerts import AlertRule
from .analytics.hedge import KalmanParams
from .analytics.signals import PairParams
from .errors import InvalidParameter
from .rule import ALIASES, DEFAULT, PARAM_NAMES, Rule


@dataclass(frozen=True)
class ViewOptions:
    """``z_include_current``: bar t in its own z window; ``corr_of``: "returns" (log returns) or
    "levels"; ``max_stale``: bars a leg's price may be carried forward (older: the row is left
    out); ``kalman_r``: the Kalman observation variance (None: from the first hedge_window bars);
    ``cooldown_bars``: bars without a new alert after one (0: every qualifying bar alerts);
    ``reset_z`` (None: z_entry / 4) and ``event_cooldown_s``: when a pair's event re-arms (see
    ``alerts``). Validated when made, ``reset_z`` against the rule's z_entry when applied."""

    z_include_current: bool = False
    corr_of: str = "returns"
    max_stale: int = 3
    kalman_r: float | None = None
    cooldown_bars: int = 0
    reset_z: float | None = None
    event_cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        self.params(DEFAULT)
        AlertRule(cooldown_bars=self.cooldown_bars, event_cooldown_s=self.event_cooldown_s)
        if self.reset_z is not None and not (isinstance(self.reset_z, (int, float)) and self.reset_z >= 0):
            raise InvalidParameter(f"reset_z must be a number >= 0 (or None), got {self.reset_z!r}")
        if self.kalman_r is not None and not (isinstance(self.kalman_r, (int, float)) and self.kalman_r > 0):
            raise InvalidParameter(f"kalman_r must be a number > 0 (or None: automatic), got {self.kalman_r!r}")

    def params(self, rule: Rule) -> PairParams:
        """The pair analytics' parameters of ``rule`` with these options."""
        kalman = KalmanParams(q_alpha=rule.kalman_q_alpha, q_beta=rule.kalman_q_beta, r=self.kalman_r)
        return rule.pair_params(z_include_current=self.z_include_current, corr_of=self.corr_of,
                                max_stale=self.max_stale, kalman=kalman)

    def alert(self, rule: Rule) -> AlertRule:
        """The alert rule of ``rule``'s entry levels with these options."""
        return AlertRule.of(rule, cooldown_bars=self.cooldown_bars, reset_z=self.reset_z,
                            event_cooldown_s=self.event_cooldown_s)

    def apply(self, rule: Rule, changes: dict[str, Any]) -> tuple[Rule, ViewOptions]:
        """``rule`` and these options with ``changes`` made: a rule's parameter (or an old name of
        one) changes the rule, an option the options; any other name is refused in one line."""
        mine = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - mine - set(PARAM_NAMES) - set(ALIASES))
        if unknown:
            raise InvalidParameter(f"{unknown[0]!r} is neither a rule parameter ({', '.join(PARAM_NAMES)}) "
                                   f"nor a view option ({', '.join(sorted(mine))})")
        options = replace(self, **{k: v for k, v in changes.items() if k in mine})
        rule_changes = {k: v for k, v in changes.items() if k not in mine}
        rule = rule.with_(**rule_changes) if rule_changes else rule
        options.alert(rule)  # reset_z within [0, z_entry]
        return rule, options
