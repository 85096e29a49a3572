"""The walk-forward study at desk scale: a synthetic universe of 300 symbols x 2 years of 1h bars
with staggered listings (a third listed late, a tenth delisted) and planted pairs, every method,
60-day formation and 30-day trading windows stepped monthly; in-process, then on a local Dask
cluster of 2 workers (results checked identical), with the peak memory of this process.

    python benchmarks/bench_study.py [--symbols 300] [--days 730] [--methods all]

Ends with one JSON line: study_s, study_dask_s, periods, methods, peak_gb, identical, and the lift of
each method. Exits 1 when Dask's results differ from in-process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import pandas as pd

from statarb_kit.research import study
from statarb_kit.scan import synthetic_universe
from statarb_kit.scan.data import dask_client


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--methods", default="all")
    ap.add_argument("--formation", default="60d")
    ap.add_argument("--trading", default="30d")
    ap.add_argument("--step", default="30d")
    ap.add_argument("--min-obs", type=int, default=500)
    args = ap.parse_args()
    u = synthetic_universe(n_symbols=args.symbols, n_bars=args.days * 24, seed=11, bar="1h", listed_late=0.33,
                           delisted=0.1, half_life=(5.0, 48.0))
    closes = u.closes
    kw = dict(formation=args.formation, trading=args.trading, step=args.step, methods=args.methods,
              min_obs=args.min_obs)
    t0 = time.perf_counter()
    here = study(closes, **kw)
    study_s = time.perf_counter() - t0
    print(f"{args.symbols} symbols x {len(closes):,} 1h bars, {here.settings['periods']} periods x "
          f"{len(here.methods)} methods in-process: {study_s:.1f} s", flush=True)
    print(here.summary(), flush=True)
    with dask_client(None, 2) as client:
        t0 = time.perf_counter()
        there = study(closes, client=client, **kw)
        dask_s = time.perf_counter() - t0
    identical = (here.methods.equals(there.methods) and here.periods.equals(there.periods)
                 and here.selections == there.selections)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"on 2 Dask workers: {dask_s:.1f} s, identical {identical}; peak memory {peak_gb:.2f} GB", flush=True)
    print(json.dumps({"benchmark": "study", "symbols": args.symbols, "bars": len(closes), "study_s": round(study_s, 2),
                      "study_dask_s": round(dask_s, 2), "periods": here.settings["periods"],
                      "methods": len(here.methods), "peak_gb": round(peak_gb, 3), "identical": identical,
                      "lift": {r.method: (None if pd.isna(r.lift) else round(r.lift, 3))
                               for r in here.methods.itertuples()}}))
    if not identical:
        print("Dask's results differ from in-process", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
