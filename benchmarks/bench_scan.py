"""The universe scan at desk scale: 300 symbols x 10,000 formation bars (44,850 pairs) end to end
(formation statistics both ways, q-values, validation on 30% more bars), against a loop over
statsmodels ``coint`` timed on a sample of pairs and extrapolated; agreement on that sample;
recovery of the planted pairs; and the same scan on a local Dask cluster of two workers.

    python benchmarks/bench_scan.py [--symbols 300] [--bars 10000] [--sample 30]

Ends with one JSON line: pairs, scan_s, vs_statsmodels_ratio, max_rel_diff_stat, lag_agreement,
recall, false_discovery_proportion, dask_2workers_s (and the raw-p contrast).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings

import numpy as np
from statsmodels.tsa.stattools import adfuller, coint

from statarb_kit.analytics import ols_hedge
from statarb_kit.scan import scan_pairs, synthetic_universe
from statarb_kit.scan.data import dask_client


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--bars", type=int, default=10_000, help="formation bars (30%% more are generated to validate)")
    ap.add_argument("--sample", type=int, default=30, help="pairs timed with statsmodels coint")
    ap.add_argument("--no-dask", action="store_true", help="skip the two-worker Dask run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    total = int(round(args.bars / 0.7))
    t = time.perf_counter()
    u = synthetic_universe(n_symbols=args.symbols, n_bars=total, seed=7)
    print(f"universe: {args.symbols} symbols x {total:,} bars ({len(u.pairs)} planted cointegrated pairs) "
          f"in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    r = scan_pairs(u.closes, validation=0.3)
    scan_s = time.perf_counter() - t
    pairs, n = r.attrs["pairs_tested"], r.attrs["formation"][2]
    print(f"scan: {pairs:,} pairs on {n:,} formation bars in {scan_s:.1f} s ({pairs / scan_s:,.0f} pairs/s), "
          f"{r.attrs['selected']} selected at q <= 0.05")

    form = np.log(u.closes.iloc[:n])
    rng = np.random.default_rng(0)
    sample = r.iloc[rng.choice(len(r), min(args.sample, len(r)), replace=False)]
    rel, same_lag, spent = [], 0, 0.0
    for _, row in sample.iterrows():
        x, y = form[row.x].to_numpy(), form[row.y].to_numpy()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = coint(x, y, trend="c", autolag="aic")
        spent += time.perf_counter() - t
        fit = ols_hedge(x, y)
        lag = adfuller(x - fit.alpha - fit.beta * y, regression="n", autolag="AIC", result_object=False)[2]
        rel.append(abs(row.eg_stat - ref[0]) / abs(ref[0]))
        same_lag += int(lag == row.eg_lags)
    per_pair = spent / len(sample)
    loop_s = per_pair * pairs * 2  # the scan tests both directions of every pair
    print(f"statsmodels coint: {per_pair:.3f} s per pair and direction on {len(sample)} sampled pairs -> "
          f"{loop_s / 3600:.1f} h for both directions of all pairs; the scan is {loop_s / scan_s:,.0f}x faster")
    print(f"agreement on the sample: max relative difference of the statistic {max(rel):.1e}, "
          f"same lag on {same_lag} of {len(sample)}")

    truth = u.truth()
    found = {frozenset(p) for p in zip(r.x[r.selected], r.y[r.selected])}
    raw = {frozenset(p) for p in zip(r.x[r.pvalue < 0.05], r.y[r.pvalue < 0.05])}
    recall = len(found & truth) / len(truth)
    fdp = len(found - truth) / max(1, len(found))
    raw_fdp = len(raw - truth) / max(1, len(raw))
    print(f"planted pairs recovered at q <= 0.05: {recall:.3f} ({len(found & truth)} of {len(truth)}), false "
          f"discovery proportion {fdp:.3f} ({len(found - truth)} of {len(found)}); by raw p < 0.05: "
          f"{len(raw):,} selected, {raw_fdp:.3f} false")
    survived = int(r["survives"].sum())
    print(f"validation: {survived} of {len(found)} selected pairs survive on the last {len(u.closes) - n:,} bars")

    dask_s = None
    if not args.no_dask:
        with dask_client(workers=2) as client:
            client.submit(sum, [1]).result()  # workers up before the clock starts
            t = time.perf_counter()
            rd = scan_pairs(u.closes, validation=0.3, client=client)
            dask_s = time.perf_counter() - t
        same = bool((rd["eg_stat"].to_numpy() == r["eg_stat"].to_numpy()).all())
        print(f"dask, 2 local worker processes: {dask_s:.1f} s ({scan_s / dask_s:.2f}x the in-process scan; "
              f"identical statistics: {same})")
    print(json.dumps({"benchmark": "scan", "pairs": pairs, "scan_s": round(scan_s, 2),
                      "vs_statsmodels_ratio": round(loop_s / scan_s, 1), "max_rel_diff_stat": float(f"{max(rel):.3g}"),
                      "lag_agreement": same_lag / len(sample), "recall": round(recall, 4),
                      "false_discovery_proportion": round(fdp, 4), "raw_p_false_discovery_proportion": round(raw_fdp, 4),
                      "dask_2workers_s": None if dask_s is None else round(dask_s, 2)}))


if __name__ == "__main__":
    main()
