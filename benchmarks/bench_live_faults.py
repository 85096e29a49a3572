"""The live client against the misbehaving local Binance (tests/fake_binance.py): how fast a
stalled busy stream is noticed with the rate-derived silence limit against a fixed limit (the old
behaviour: 30 s), and, for each fault scenario stopped a second after the last trade, what each
fill path stored and whether the store equals the exchange's truth.

    python benchmarks/bench_live_faults.py [--fixed-limit 30] [--rate 400]

Ends with one JSON line: stall_noticed_s, fixed_limit_noticed_s, and per scenario the ticks by
``via`` and ``equal`` (stored == printed, exactly).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from statarb_kit import Session, TickStore  # noqa: E402
from statarb_kit.sources.binance_live import BinanceConfig, BinanceLive  # noqa: E402
from tests.fake_binance import FAULTS, FakeBinance, misbehave  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def cfg(fake: FakeBinance, **kw) -> BinanceConfig:
    return BinanceConfig(**{"ws_url": fake.ws_url, "rest_url": fake.http_url, "ping_interval_s": None,
                            "backoff_initial_s": 0.05, "backoff_max_s": 0.4, "gap_grace_s": 0.2, **kw})


async def stall_noticed(rate: float, **kw) -> float:
    """Seconds from a silent stall of a busy stream to the client's reconnect."""
    async with FakeBinance(n=int(rate * 60), rate=rate) as fake:
        src = BinanceLive(SYMBOLS, cfg(fake, **kw))
        with TemporaryDirectory() as tmp:
            session = Session(source=src, db=Path(tmp) / "s.duckdb").start()
            while src.status.ticks < 5 * rate:  # a few seconds of trades: the rate is known
                await asyncio.sleep(0.01)
            fake.stall(120)
            t0 = time.monotonic()
            while src.status.reconnects < 1 and time.monotonic() - t0 < 90:
                await asyncio.sleep(0.01)
            noticed = time.monotonic() - t0
            fake.stalled_until = 0.0
            await session.stop()
    return noticed


async def scenario(name: str, rate: float) -> dict:
    async with FakeBinance(n=int(rate * 4), rate=rate, wait_for_client=True) as fake:
        if name == "wrong tier":
            fake.tiers["trade"] = "market"  # @trade only on /market: the default /public is silent
        src = BinanceLive(SYMBOLS, cfg(fake, stall_min_s=0.5 if name == "wrong tier" else 20.0, stall_timeout_s=30.0))
        with TemporaryDirectory() as tmp:
            db = Path(tmp) / "f.duckdb"
            session = Session(source=src, db=db, flush_interval_s=0.02).start()
            if name != "wrong tier":
                await misbehave(fake, name, lambda: src.status.ticks > rate * 0.5)
            await fake.wait_done()
            await asyncio.sleep(1.0)
            await session.stop()
            store = TickStore(db, read_only=True)
            got = store.con.execute("SELECT symbol, trade_id, ts, price, qty, is_buyer_maker, via FROM ticks "
                                    "ORDER BY symbol, trade_id").df()
            store.close()
    truth = fake.truth()
    equal = (len(got) == len(truth) and (got["trade_id"].to_numpy() == truth["trade_id"].to_numpy()).all()
             and (got["qty"].to_numpy() == truth["qty"].to_numpy()).all())
    return {"scenario": name, "printed": len(truth), "stored": len(got), "equal": bool(equal),
            "via": got["via"].value_counts().to_dict(), "route_switches": src.route_switches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=400.0, help="trades/s per symbol of the busy tape")
    ap.add_argument("--fixed-limit", type=float, default=30.0, help="the old fixed silence limit (s)")
    ap.add_argument("--scenarios", default=",".join((*FAULTS[:-1], "wrong tier", "all")),
                    help="comma-separated scenarios to run (default: all of them)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    new = asyncio.run(stall_noticed(args.rate))
    print(f"stall of a {args.rate:.0f} trades/s stream noticed after {new:.2f} s (limit from its rate, 2..30 s)")
    old = asyncio.run(stall_noticed(args.rate, stall_min_s=args.fixed_limit, stall_timeout_s=args.fixed_limit))
    print(f"with a fixed {args.fixed_limit:g} s limit (before): {old:.2f} s  -> {old / new:.0f}x sooner now")
    rows = []
    for name in args.scenarios.split(","):
        r = asyncio.run(scenario(name, 300.0))
        rows.append(r)
        print(f"{name:>20}: printed {r['printed']:,}, stored {r['stored']:,}, equal {r['equal']}, via {r['via']}")
    print(json.dumps({"benchmark": "live_faults", "stall_noticed_s": round(new, 2),
                      "fixed_limit_noticed_s": round(old, 2), "scenarios": rows}))


if __name__ == "__main__":
    main()
