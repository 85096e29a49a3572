"""Pipeline throughput and the cost of incremental bars versus a full re-resample.

1. Pushes N synthetic ticks (2 symbols, pre-generated) through ring -> writer (DuckDB file,
   deduplicated) -> bars (1s, 1m, 5m) via a real Session, and reports ticks/s and peak RSS.
2. At N stored ticks, times one incremental bar cycle (one 1,000-tick batch folded into the
   bars and its changed bars upserted) against the original design's cycle (re-read every tick,
   re-resample every timeframe with pandas, rewrite every bar table), in the same run.

Ends with one JSON line: {"benchmark": "pipeline", "ticks_per_s", "incremental_vs_full_ratio", "peak_rss_mb"}.
Usage: python benchmarks/bench_pipeline.py [--ticks 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from statarb_kit import BarBuilder, Session, SourceStatus, SyntheticPair, TickBatch, TickStore, resample_ticks
from statarb_kit.sources import SourceBase
from statarb_kit.bars import timeframe_ms

TFS = ("1s", "1m", "5m")


class Prepared(SourceBase):
    """A non-realtime source replaying pre-generated batches (so generation is not timed)."""

    def __init__(self, batches: list[TickBatch], symbols: tuple[str, ...]) -> None:
        self.batches, self.symbols, self.realtime = batches, symbols, False
        self.status = SourceStatus(name="prepared")

    async def stream(self):
        for b in self.batches:
            self.status.record(b)
            yield b
            await asyncio.sleep(0)


def generate(n: int) -> tuple[list[TickBatch], tuple[str, ...], float]:
    src = SyntheticPair(realtime=False, start_ms=1_700_000_000_000, max_ticks=n, chunk_s=60.0,
                        model=None, seed=11)

    async def collect():
        return [b async for b in src.stream()]

    t = time.perf_counter()
    batches = asyncio.run(collect())
    return batches, src.symbols, n / (time.perf_counter() - t)


def run_pipeline(batches, symbols, path: Path) -> float:
    async def go():
        async with Session(source=Prepared(batches, symbols), db=path, batch_rows=200_000) as s:
            await s.wait()
        return s

    t = time.perf_counter()
    s = asyncio.run(go())
    elapsed = time.perf_counter() - t
    st = s.status()
    assert st.ticks_stored == sum(map(len, batches)) and st.overwritten == 0, st
    return elapsed


def incremental_cycle(store: TickStore, builder: BarBuilder, batch: TickBatch, symbols) -> tuple[float, float]:
    """One writer cycle as the Session runs it (one transaction). Returns (bar seconds, total seconds):
    the bar part is the builder update plus the upsert of the changed bars."""
    t0 = time.perf_counter()
    with store.transaction():
        fresh = store.insert_ticks(batch, symbols)
        t1 = time.perf_counter()
        for tf, ch in builder.update(fresh).items():
            store.write_bars(tf, *ch.arrays(), symbols)
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    return (t2 - t1) + (t3 - t2), t3 - t0


def full_cycle(store: TickStore) -> float:
    """The original design: re-read all ticks, resample everything, rewrite every bar table."""
    t = time.perf_counter()
    ticks = store.con.execute("SELECT symbol, trade_id, ts, price, qty, is_buyer_maker FROM ticks").df()
    for tf in TFS:
        bars = resample_ticks(ticks, timeframe_ms(tf))
        store.con.register("full_bars", bars)
        store.con.execute(f"CREATE OR REPLACE TABLE naive_bars_{tf} AS SELECT * FROM full_bars")
        store.con.unregister("full_bars")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    batches, symbols, gen_rate = generate(args.ticks)
    print(f"synthetic generator: {gen_rate:,.0f} ticks/s (not part of the pipeline figure)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        elapsed = run_pipeline(batches, symbols, path)
        rate = args.ticks / elapsed
        print(f"pipeline: {args.ticks:,} ticks -> ring -> DuckDB (dedup) -> 1s/1m/5m bars in {elapsed:.2f} s"
              f" = {rate:,.0f} ticks/s")

        # incremental vs full, at args.ticks stored ticks
        store = TickStore(path)
        store.ensure_bars_tables(TFS)
        builder = BarBuilder(len(symbols), TFS)
        for code, sym in enumerate(symbols):
            for tf in TFS:
                series = builder.series[tf][code]
                series.load(store.load_bars(tf, sym, code, series.retain))
        extra = SyntheticPair(realtime=False, start_ms=int(batches[-1].ts.max()) + 1, seed=12)
        extra._next_id = [int(b) + 1 for b in (batches[-1].trade_id[batches[-1].sym == k].max() for k in (0, 1))]
        incs, totals, fulls = [], [], []
        for _ in range(args.repeats):
            nxt = extra._trades(1)
            while len(nxt) < 1_000:
                nxt = TickBatch.concat([nxt, extra._trades(10)])
            bar_s, total_s = incremental_cycle(store, builder, nxt.take(np.arange(1_000)), symbols)
            incs.append(bar_s)
            totals.append(total_s)
            with store.transaction():
                fulls.append(full_cycle(store))
        store.close()
    inc, total, full = statistics.median(incs), statistics.median(totals), statistics.median(fulls)
    ratio = full / inc
    print(f"bar update at {args.ticks:,} stored ticks, 1,000 new ticks: incremental {inc * 1e3:.2f} ms "
          f"(bars folded + upserted + commit) vs full re-resample {full * 1e3:.1f} ms -> {ratio:,.0f}x")
    print(f"  whole writer cycle incl. tick insert and dedup: {total * 1e3:.2f} ms -> {full / total:,.0f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB (includes the {args.ticks:,} pre-generated ticks and the full re-resample)")
    print(json.dumps({"benchmark": "pipeline", "ticks_per_s": round(rate), "incremental_vs_full_ratio": round(ratio, 1),
                      "peak_rss_mb": round(peak, 1)}))


if __name__ == "__main__":
    main()
