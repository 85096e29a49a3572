"""A watchlist at desk scale: 200 pairs over 100 symbols on 1s bars (SyntheticGroups: 20 groups of
5). Per bar, the update of all 200 live views (each view's
``update`` timed; the session hands each batch of bars to the views, then to the listeners), a table refresh (kernel time and bytes sent) and a new order of every row,
against the same pairs
computed one by one from scratch (pair_frame over each pair's bars) in the same run.

    python benchmarks/bench_watchlist.py [--minutes 30] [--cycles 200]

Ends with one JSON line: pairs, update_ms (one bar of all pairs, median), refresh_ms (median),
reorder_ms (median), vs_scratch_ratio (from-scratch time / update time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import numpy as np

from statarb_kit import Session
from statarb_kit.analytics import align_pair, pair_frame
from statarb_kit.rule import Rule
from statarb_kit.sources import SyntheticGroups
from statarb_kit.watchlist import Watchlist
from statarb_kit.widgets.traffic import Traffic
from statarb_kit.widgets.watchlist_view import WatchlistView

T0 = 1_767_225_600_000  # 2026-01-01 UTC


async def run(minutes: float, cycles: int) -> dict:
    rule = Rule(hedge_window=120, z_window=60, corr_window=60, z_entry=2.0, corr_min=0.0)
    params = rule.pair_params()
    history = int(minutes * 60 * 100 * 2.1)
    src = SyntheticGroups(realtime=False, start_ms=T0, chunk_s=1.0, max_ticks=history + cycles * 400)
    session = Session(source=src, timeframes=("1s",), batch_rows=50_000).start()
    spent = [0.0]  # seconds the views' updates took since the last batch of bars
    per_bar: list[float] = []
    with Traffic() as traffic:
        watch = Watchlist(session, src.pairs(), "1s", rule)
        view = WatchlistView(session, watch, refresh_s=3600)
        for v in watch.views:  # each view's update, timed (the session hands bars to the views first)
            def timed(tf, final, corrected, _update=v.update):
                t = time.perf_counter()
                try:
                    return _update(tf, final, corrected)
                finally:
                    spent[0] += time.perf_counter() - t
            v.update = timed

        def after(tf: str, final: np.ndarray, corrected: np.ndarray) -> None:
            bars = len(np.unique(final["start"])) if len(final) else 0
            if bars and src.status.ticks > history:
                per_bar.append(spent[0] * 1000 / bars)
            spent[0] = 0.0

        session.subscribe_bars(after)
        await session.wait_source()
        await session.flush()
        refresh = []
        for _ in range(30):
            traffic.reset()
            t = time.perf_counter()
            view.refresh()
            refresh.append((time.perf_counter() - t) * 1000)
        sent = traffic.bytes
        reorder = []  # the worst case: every row changes rank (order by pair, then by |z| again)
        for k in range(10):
            traffic.reset()
            t = time.perf_counter()
            view.sort.value = "pair" if k % 2 == 0 else "|z|"  # the view refreshes on the change
            reorder.append((time.perf_counter() - t) * 1000)
        reorder_messages = traffic.messages  # of the last reorder
    # the same pairs from scratch: each pair's aligned bars through pair_frame
    bars = {s: session.bars(s, "1s", last=None) for s in src.symbols}
    t = time.perf_counter()
    for x, y in src.pairs():
        bx, by = bars[x], bars[y]
        a = align_pair(bx.index.as_unit("ms").asi8, bx["close"].to_numpy(), by.index.as_unit("ms").asi8,
                       by["close"].to_numpy(), 1000, params.max_stale)
        pair_frame(a.time, a.x, a.y, params, a.flags)
    scratch_ms = (time.perf_counter() - t) * 1000
    rows = len(watch.views[0])
    view.close()
    watch.close()
    await session.stop()
    update = statistics.median(per_bar)
    return {"pairs": len(src.pairs()), "symbols": len(src.symbols), "rows": rows, "update_ms": update,
            "refresh_ms": statistics.median(refresh), "refresh_bytes": sent,
            "reorder_ms": statistics.median(reorder), "reorder_messages": reorder_messages, "scratch_ms": scratch_ms,
            "bars_timed": len(per_bar)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="history of 1s bars before timing")
    ap.add_argument("--cycles", type=int, default=200, help="bars timed after the history")
    args = ap.parse_args()
    r = asyncio.run(run(args.minutes, args.cycles))
    ratio = r["scratch_ms"] / r["update_ms"]
    print(f"{r['pairs']} pairs over {r['symbols']} symbols, {r['rows']:,} rows each: one bar of all pairs "
          f"{r['update_ms']:.2f} ms (median of {r['bars_timed']}), from scratch {r['scratch_ms']:.0f} ms -> {ratio:.0f}x")
    print(f"table refresh: {r['refresh_ms']:.2f} ms kernel side (median), {r['refresh_bytes']:,} bytes in the last one")
    print(f"a new order of every row (rows keep their widgets; CSS order moves them): {r['reorder_ms']:.2f} ms "
          f"(median), {r['reorder_messages']:,} messages in the last one")
    print(json.dumps({"benchmark": "watchlist", "pairs": r["pairs"], "update_ms": round(r["update_ms"], 3),
                      "refresh_ms": round(r["refresh_ms"], 3), "reorder_ms": round(r["reorder_ms"], 3),
                      "vs_scratch_ratio": round(ratio, 1)}))


if __name__ == "__main__":
    main()
