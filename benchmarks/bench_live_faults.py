"""The live client against the misbehaving local Binance (tests/fake_binance.py): how fast a
stalled busy stream is noticed with the rate-derived silence limit against a fixed limit (the old
behaviour: 30 s), and, for each fault scenario stopped a second after the last trade, what each
fill path stored and whether the store equals the exchange's truth. Then the real tape
(``../shared/data/usdm_tape_20240808``, replayed byte for byte at ``--tape-speed``) with every
connection dropped each ``--drop-every`` seconds of tape: the share of trades the socket delivered
(the rest came from REST) and the REST weight spent per drop.

    python benchmarks/bench_live_faults.py [--fixed-limit 30] [--rate 400] [--tape-speed 2]

Ends with one JSON line: stall_noticed_s, fixed_limit_noticed_s, per scenario the ticks by ``via``
and ``equal`` (stored == printed, exactly), socket_share and rest_weight_per_drop. Exits 1 when a
store does not equal what the exchange printed.
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

import numpy as np  # noqa: E402

from statarb_kit import Session, TickStore  # noqa: E402
from statarb_kit.exchange.binance.live import BinanceConfig, BinanceLive  # noqa: E402
from tests.fake_binance import FAULTS, RECORDED_TAPE, FakeBinance, misbehave  # noqa: E402

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


async def tape_drops(speed: float, every_s: float) -> dict:
    """The shared real tape at ``speed`` with every connection dropped each ``every_s`` s of tape."""
    files = sorted(RECORDED_TAPE.glob("*usdt_*.gz"))
    if not files:
        raise SystemExit(f"the shared real tape is not at {RECORDED_TAPE}")
    async with FakeBinance(recording=files, speed=speed, wait_for_client=True) as fake:
        defaults = BinanceConfig()  # Binance's backoff as shipped (0.5 s doubling to 30 s)
        src = BinanceLive(tuple(fake.tapes), cfg(fake, backoff_initial_s=defaults.backoff_initial_s,
                                                    backoff_max_s=defaults.backoff_max_s))
        with TemporaryDirectory() as tmp:
            db = Path(tmp) / "t.duckdb"
            session = Session(source=src, db=db, flush_interval_s=0.05).start()
            drops, weight0 = 0, None
            await asyncio.sleep(fake.start_delay_s)
            while not fake.done:
                await asyncio.sleep(every_s / speed)
                if weight0 is None:
                    weight0 = sum(w for _, w in fake.weights)  # the start's own calls (exchangeInfo, anchors)
                if not fake.done:
                    fake.drop()
                    drops += 1
            while src.pending_gaps or src.status.ticks < sum(fake.printed.values()):
                await asyncio.sleep(0.05)
            await session.stop()
            store = TickStore(db, read_only=True)
            got = store.con.execute("SELECT symbol, trade_id, ts, qty, via FROM ticks ORDER BY symbol, trade_id").df()
            store.close()
    truth = fake.truth()
    via = got["via"].value_counts().to_dict()
    # ids exact, sizes exact where not split from an aggregate, and the volume of every millisecond
    # exact (an aggregate's trades share their time): bars' volume and VWAP exact
    exact = (got["via"] != "agg_split").to_numpy()
    equal = (len(got) == len(truth) and (got["trade_id"].to_numpy() == truth["trade_id"].to_numpy()).all()
             and (got["qty"].to_numpy()[exact] == truth["qty"].to_numpy()[exact]).all()
             and np.allclose(got.groupby(["symbol", "ts"], observed=True)["qty"].sum().to_numpy(),
                             truth.groupby(["symbol", "ts"])["qty"].sum().to_numpy(), rtol=1e-9))
    weight = sum(w for _, w in fake.weights) - (weight0 or 0)
    return {"scenario": f"tape, drop every {every_s:g} s", "printed": len(truth), "stored": len(got),
            "equal": bool(equal), "via": via, "drops": drops, "reconnects": src.status.reconnects,
            "socket_share": round(via.get("stream", 0) / max(1, len(got)), 4),
            "rest_weight_per_drop": round(weight / max(1, drops), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=400.0, help="trades/s per symbol of the busy tape")
    ap.add_argument("--fixed-limit", type=float, default=30.0, help="the old fixed silence limit (s)")
    ap.add_argument("--scenarios", default=",".join((*FAULTS[:-1], "wrong tier", "all")),
                    help="comma-separated scenarios to run (default: all of them)")
    ap.add_argument("--tape-speed", type=float, default=2.0, help="the real tape's speed-up (343 s of tape)")
    ap.add_argument("--drop-every", type=float, default=20.0, help="seconds of tape between drops")
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
    tape = asyncio.run(tape_drops(args.tape_speed, args.drop_every))
    rows.append(tape)
    print(f"real tape at {args.tape_speed:g}x, a drop every {args.drop_every:g} s of tape: {tape['drops']} drops, "
          f"{tape['socket_share']:.1%} of {tape['stored']:,} trades from the socket, REST weight "
          f"{tape['rest_weight_per_drop']:g} per drop, equal {tape['equal']}, via {tape['via']}")
    print(json.dumps({"benchmark": "live_faults", "stall_noticed_s": round(new, 2),
                      "fixed_limit_noticed_s": round(old, 2), "socket_share": tape["socket_share"],
                      "rest_weight_per_drop": tape["rest_weight_per_drop"], "scenarios": rows}))
    if not all(r["equal"] for r in rows):
        print("a store differs from what the exchange printed", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
