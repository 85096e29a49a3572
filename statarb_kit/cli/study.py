"""``statarb study``: the walk-forward universe study of selection methods (statarb_kit.research)
from a klines file, a store or an archive, in-process or on Dask, to a table, JSON and an HTML
report."""

from __future__ import annotations

import argparse
import time

from ..analytics.spread_estimators import ESTIMATORS
from ..backtest.costs import COST_MODELS
from ..errors import InvalidParameter
from ..research.methods import METHODS
from ..research.periods import PRESETS, parse_span
from ..results import check_writable
from ..rule import Rule
from .options import any_timeframe_type

#: The rule's trading fields a study takes from the command line (the rest: the Rule's defaults).
RULE_FLAGS = {"z_entry": float, "z_exit": float, "z_window": int, "corr_min": float, "corr_window": int,
              "fee_bps": float, "slippage_bps": float, "max_hold": int}


def _span(text: str) -> str:
    try:
        parse_span(text)
    except InvalidParameter as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``study`` subcommand."""
    st = sub.add_parser("study", help="walk-forward study: which selection method predicts the next period",
                        description="Rolling formation and trading windows over a universe's history: each method "
                        "selects on the formation only; the trading window judges it (hit: the formation spread is "
                        "stationary there), against the base rate of every pair tested (lift), and trades it "
                        "with the rule, net of fees and slippage.")
    src = st.add_mutually_exclusive_group(required=True)
    src.add_argument("--klines", metavar="FILE", help="a klines file (.parquet or .csv, long format: symbol, open_time "
                     "in ms UTC, open, high, low, close, volume[, trades]), as in shared/data")
    src.add_argument("--db", metavar="DB", help="a DuckDB store or an archive folder (every symbol in it)")
    st.add_argument("--timeframe", default="1h", type=any_timeframe_type, help="--db: bars to read (default: %(default)s)")
    st.add_argument("--start", default=None, help="first UTC time to use")
    st.add_argument("--end", default=None, help="UTC time to stop before")
    st.add_argument("--formation", default="60d", type=_span, help="formation window (default: %(default)s)")
    st.add_argument("--trading", default="30d", type=_span, help="trading window (default: %(default)s)")
    st.add_argument("--step", default=None, type=_span, help="step between periods (default: the trading window)")
    st.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="ggr: Gatev, Goetzmann & Rouwenhorst's 12 months formation, 6 months trading")
    st.add_argument("--methods", default="all", help=f"comma-separated: {', '.join(METHODS)} (default: all)")
    st.add_argument("--top", type=int, default=20, help="selections per method and period (default: %(default)s)")
    st.add_argument("--min-obs", type=int, default=500, help="bars a symbol and a pair need in a formation window")
    for name, kind in RULE_FLAGS.items():
        st.add_argument("--" + name.replace("_", "-"), type=kind, default=getattr(Rule(), name),
                        help=f"rule: {name} (default: %(default)s)")
    st.add_argument("--costs", default="flat", choices=COST_MODELS[:1] + ESTIMATORS,
                    help="flat: the rule's fee and slippage bps per leg (default); abdi_ranaldo or corwin_schultz: "
                    "each fill also crosses half the spread estimated from the klines' high, low and close over "
                    "--spread-window bars (--klines only; set --slippage-bps 0 to count the spread alone)")
    st.add_argument("--spread-window", type=int, default=720, help="bars of a spread estimate (default: %(default)s)")
    st.add_argument("--workers", type=int, default=None, help="a local Dask cluster of N worker processes")
    st.add_argument("--scheduler", default=None, help="Dask scheduler address to run on")
    st.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    st.add_argument("--html", default=None, metavar="FILE", help="write an HTML report")
    st.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    st.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..research import study
    from ..scan.data import closes_from_klines, closes_from_store, dask_client, half_spreads_from_klines

    for out, option, suffix in ((args.json, "--json", ".json"), (args.html, "--html", ".html")):
        if out:  # refused before the study runs, not after
            check_writable(out, option, (suffix,))
    rule = Rule(**{name: getattr(args, name) for name in RULE_FLAGS})
    if args.costs != "flat" and not args.klines:
        raise InvalidParameter(f"--costs {args.costs} estimates spreads from high, low and close: it needs --klines")
    if args.spread_window < 2:
        raise InvalidParameter(f"--spread-window must be >= 2 bars, got {args.spread_window}")
    spreads = None
    if args.klines:
        closes = closes_from_klines(args.klines, None, args.start, args.end)
        origin = f"klines file {args.klines}"
        if args.costs != "flat":
            spreads = (args.costs, half_spreads_from_klines(args.klines, args.costs, args.spread_window, args.start,
                                                            args.end))
    else:
        closes = closes_from_store(args.db, args.timeframe, None, args.start, args.end)
        origin = f"store {args.db}"
    print(f"data: {origin}, {closes.shape[1]} symbols x {len(closes):,} bars ({closes.index[0]:%Y-%m-%d} to "
          f"{closes.index[-1]:%Y-%m-%d} UTC; bars without trades are no price)", flush=True)
    started = time.perf_counter()
    with dask_client(args.scheduler, args.workers) as client:
        result = study(closes, formation=args.formation, trading=args.trading, step=args.step, preset=args.preset,
                       methods=args.methods, rule=rule, client=client, progress=not args.quiet, top=args.top,
                       min_obs=args.min_obs, spreads=spreads)
    print(result.summary(), flush=True)
    print(f"in {time.perf_counter() - started:.1f} s{' on Dask' if client is not None else ''}", flush=True)
    if args.json:
        print(f"json: {result.to_json(args.json)}", flush=True)
    if args.html:
        print(f"report: {result.to_html(args.html)}", flush=True)
    return 0
