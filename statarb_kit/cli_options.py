"""Command-line options shared by the commands: the rule's (statarb_kit.rule: names, defaults
and validation come from there, never repeated here)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from .rule import LIVE_FIELDS, PRICES, RULE_HEDGE_MODES, Rule

_HELP = {"z_entry": "|z| at which the rule enters", "corr_min": "least correlation of returns to enter",
         "z_window": "bars of the z-score window", "corr_window": "bars of the correlation window",
         "hedge_window": "bars of the hedge-ratio window", "hedge_mode": "how the hedge ratio is fitted",
         "log_prices": "fit and trade log prices", "z_exit": "paper trading: exit once z is back through it",
         "fee_bps": "paper trading: fee per leg and fill (bps)",
         "price": "prices of the analytics: last (trades) or mid (the quote mid at each close; needs --quotes)",
         "slippage_bps": "paper trading: slippage per leg and fill (bps)"}


def add_rule_options(parser: argparse.ArgumentParser, live: bool = True) -> None:
    """``--z-entry``, ``--corr-min``, ... for each of the rule's LIVE_FIELDS, with its default;
    ``live``: a live view's hedge modes only (walk-forward is for backtests)."""
    group = parser.add_argument_group("rule (defaults: statarb_kit.rule)")
    declared = {f.name: f.default for f in fields(Rule)}
    for name in LIVE_FIELDS:
        flag, default = "--" + name.replace("_", "-"), declared[name]
        text = f"{_HELP[name]} (default: {'see statarb_kit.rule.default_exit' if default is None else default})"
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif name == "hedge_mode":
            modes = [m for m in RULE_HEDGE_MODES if not live or m != "walk_forward"]
            group.add_argument(flag, choices=modes, default=default, help=text)
        elif name == "price":
            group.add_argument(flag, choices=PRICES, default=default, help=text)
        else:
            group.add_argument(flag, type=int if isinstance(default, int) else float, default=default, help=text)


def rule_from_args(args: argparse.Namespace) -> Rule:
    """The Rule of the options ``add_rule_options`` added (validated)."""
    return Rule(**{name: getattr(args, name) for name in LIVE_FIELDS})
