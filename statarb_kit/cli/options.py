"""Options and argument types shared by the commands: timeframes and days checked up front, and
the rule's options (statarb_kit.rule: names, defaults and validation come from there, never
repeated here)."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import fields

from ..bars import check_timeframe
from ..errors import InvalidParameter
from ..exchange.binance.endpoints import REST_URL, WS_URL
from ..rule import LIVE_FIELDS, PRICES, RULE_HEDGE_MODES, Rule
from ..sources.options import API_KEY_HELP, QUOTES_HELP


def timeframe_type(text: str) -> str:
    """argparse type of every --timeframe: the one rule (bars.check_timeframe), refused up front."""
    try:
        return check_timeframe(text)
    except InvalidParameter as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def any_timeframe_type(text: str) -> str:
    """argparse type of a timeframe a store may hold: the pipeline's 1s/1m/5m or an interval
    Binance publishes klines for (3m, 15m, 1h ... 1d); anything else is refused up front."""
    from ..exchange.binance.klines import INTERVAL_MS

    if text not in INTERVAL_MS:
        raise argparse.ArgumentTypeError(f"timeframe {text!r} is neither one the pipeline builds (1s, 1m, 5m) nor a "
                                         f"Binance kline interval ({', '.join(INTERVAL_MS)})")
    return text


def day_type(text: str) -> dt.date:
    """argparse type of a UTC day, YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD (e.g. 2024-01-31)") from None


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


def add_live_options(parser: argparse.ArgumentParser, passthrough: bool = False, quotes: bool = True) -> None:
    """The live source's options (``--ws-url``, ``--ws-path``, ``--rest-url``, ``--api-key``,
    ``--quotes``), declared once for every command that runs a live source. ``passthrough``: the
    values go to a server's pages, which read the same defaults (None here: not given)."""
    parser.add_argument("--ws-url", default=None if passthrough else WS_URL,
                        help="live: Binance WebSocket base URL")
    parser.add_argument("--ws-path", default=None,
                        help="live: stream path to try first (default: by tier, @trade on /public/stream; "
                             "/market/stream, /public/ws, the legacy /stream); a silent one falls back to the other tier")
    parser.add_argument("--rest-url", default=None if passthrough else REST_URL,
                        help="live: Binance REST base URL")
    parser.add_argument("--api-key", default=None, help=API_KEY_HELP + (" (handed to the server's environment, never "
                                                                        "to a page's URL)" if passthrough else ""))
    if quotes:
        parser.add_argument("--quotes", action="store_true", help=QUOTES_HELP)
