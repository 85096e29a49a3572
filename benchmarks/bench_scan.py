"""The universe scan at desk scale: 300 symbols x 10,000 formation bars (44,850 pairs) end to end
(formation statistics both ways, q-values, validation on 30% more bars), against a loop over
statsmodels ``coint`` timed on a sample of pairs and extrapolated; agreement on that sample;
recovery of the planted pairs; and the same scan on a local Dask cluster of two workers.

Then a year of 1m bars (525,600) of 300 symbols with staggered listings (half listed late,
a fifth delisted) written to a Parquet archive and scanned from it in a fresh process: end-to-end
time (read + scan), that process's peak memory, and the same on 2 Dask workers.

    python benchmarks/bench_scan.py [--symbols 300] [--bars 10000] [--sample 30] [--year-bars 525600]

Ends with one JSON line: pairs, scan_s, vs_statsmodels_ratio, max_rel_diff_stat, lag_agreement,
recall, false_discovery_proportion, dask_2workers_s (and the raw-p contrast); year_1m_scan_s,
year_1m_peak_gb, year_1m_pairs, median_pair_n, year_1m_dask_2workers_s, year_1m_recall. Exits 1
when a check does not hold: the statistic equal to ``coint``'s (1e-8 relative), planted recall and
false discovery proportion within ``--min-recall`` / ``--max-fdp``, Dask identical.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
from statsmodels.tsa.stattools import adfuller, coint

from statarb_kit.analytics import ols_hedge
from statarb_kit.archive import read_closes, write_bars
from statarb_kit.scan import scan_pairs, synthetic_universe
from statarb_kit.scan.data import dask_client


def year_child(root: str, workers: int | None) -> None:
    """In a fresh process: read the archive's closes and scan them; print one JSON line."""
    t = time.perf_counter()
    closes = read_closes(root, "1m")
    read_s = time.perf_counter() - t
    with dask_client(workers=workers) as client:
        if client is not None:
            client.submit(sum, [1]).result()
        t0 = time.perf_counter()
        r = scan_pairs(closes, client=client, progress=False, log_prices=True)  # generated in logs
        scan_s = time.perf_counter() - t0
    planted = {frozenset(p) for p in json.loads(sys.stdin.read())}
    found = {frozenset(p) for p in zip(r.x[r.selected], r.y[r.selected])}
    tested = r[r.pvalue.notna()]
    print(json.dumps({"read_s": read_s, "scan_s": scan_s, "total_s": read_s + scan_s,
                      "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      "pairs": int(r.attrs["pairs_tested"]), "median_pair_n": float(tested["n"].median()),
                      "max_pair_n": int(tested["n"].max()), "bars": len(closes),
                      "recall": len(found & planted) / max(1, len(planted)),
                      "fdp": len(found - planted) / max(1, len(found))}))


def year_of_1m(symbols: int, bars: int, dask: bool) -> dict:
    """Write the staggered year to an archive, then scan it in fresh processes."""
    t = time.perf_counter()
    u = synthetic_universe(n_symbols=symbols, n_bars=bars, seed=17, listed_late=0.5, delisted=0.2)
    planted = json.dumps([sorted(p) for p in u.truth()])
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as root:
        start = ((u.closes.index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)
        for s in u.closes.columns:
            c = u.closes[s].to_numpy()
            keep = np.isfinite(c)
            write_bars(root, "1m", s, pd.DataFrame({"start": start[keep], "open": c[keep], "high": c[keep],
                                                    "low": c[keep], "close": c[keep], "origin": "kline_dump"}))
        del u
        print(f"year: {symbols} symbols x {bars:,} 1m bars (half listed late, a fifth delisted) written to a "
              f"Parquet archive in {time.perf_counter() - t:.0f} s", flush=True)
        runs = {}
        for workers in ((None, 2) if dask else (None,)):
            cmd = [sys.executable, __file__, "--year-child", root] + (["--year-workers", str(workers)] if workers else [])
            done = subprocess.run(cmd, input=planted, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"the year scan failed:\n{done.stderr[-3000:]}")
            out = done.stdout
            runs[workers] = json.loads(out.strip().splitlines()[-1])
            r = runs[workers]
            print(f"year, {'in process' if workers is None else f'{workers} Dask workers'}: read {r['read_s']:.0f} s "
                  f"+ scan {r['scan_s']:.0f} s = {r['total_s']:.0f} s, peak {r['peak_gb']:.2f} GB (that process), "
                  f"{r['pairs']:,} pairs, median pair n {r['median_pair_n']:,.0f} (max {r['max_pair_n']:,}), "
                  f"recall {r['recall']:.3f}, FDP {r['fdp']:.3f}", flush=True)
    one = runs[None]
    return {"year_1m_scan_s": round(one["total_s"], 1), "year_1m_peak_gb": round(one["peak_gb"], 2),
            "year_1m_pairs": one["pairs"], "median_pair_n": one["median_pair_n"],
            "year_1m_recall": round(one["recall"], 4),
            "year_1m_dask_2workers_s": round(runs[2]["total_s"], 1) if 2 in runs else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--bars", type=int, default=10_000, help="formation bars (30%% more are generated to validate)")
    ap.add_argument("--sample", type=int, default=30, help="pairs timed with statsmodels coint")
    ap.add_argument("--no-dask", action="store_true", help="skip the two-worker Dask runs")
    ap.add_argument("--min-recall", type=float, default=0.9, help="fail below this planted recall")
    ap.add_argument("--max-fdp", type=float, default=0.2, help="fail above this false discovery proportion")
    ap.add_argument("--year-bars", type=int, default=525_600, help="bars of the year of 1m (0: skip it)")
    ap.add_argument("--year-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--year-workers", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.year_child:
        year_child(args.year_child, args.year_workers)
        return
    total = int(round(args.bars / 0.7))
    t = time.perf_counter()
    u = synthetic_universe(n_symbols=args.symbols, n_bars=total, seed=7)
    print(f"universe: {args.symbols} symbols x {total:,} bars ({len(u.pairs)} planted cointegrated pairs) "
          f"in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    r = scan_pairs(u.closes, validation=0.3, log_prices=True)  # the universe is generated in log prices
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

    dask_s, same = None, True
    if not args.no_dask:
        with dask_client(workers=2) as client:
            client.submit(sum, [1]).result()  # workers up before the clock starts
            t = time.perf_counter()
            rd = scan_pairs(u.closes, validation=0.3, client=client, log_prices=True)
            dask_s = time.perf_counter() - t
        same = bool((rd["eg_stat"].to_numpy() == r["eg_stat"].to_numpy()).all())
        print(f"dask, 2 local worker processes: {dask_s:.1f} s ({scan_s / dask_s:.2f}x the in-process scan; "
              f"identical statistics: {same})")
    year = year_of_1m(args.symbols, args.year_bars, not args.no_dask) if args.year_bars else {}
    print(json.dumps({"benchmark": "scan", "pairs": pairs, "scan_s": round(scan_s, 2),
                      "vs_statsmodels_ratio": round(loop_s / scan_s, 1), "max_rel_diff_stat": float(f"{max(rel):.3g}"),
                      "lag_agreement": same_lag / len(sample), "recall": round(recall, 4),
                      "false_discovery_proportion": round(fdp, 4), "raw_p_false_discovery_proportion": round(raw_fdp, 4),
                      "dask_2workers_s": None if dask_s is None else round(dask_s, 2), **year}))
    failed = [what for what, bad in (
        (f"the statistic differs from statsmodels' coint by {max(rel):.1e} (relative)", max(rel) > 1e-8),
        (f"planted recall {recall:.3f} < {args.min_recall}", recall < args.min_recall),
        (f"false discovery proportion {fdp:.3f} > {args.max_fdp}", fdp > args.max_fdp),
        ("Dask's statistics differ from in-process", dask_s is not None and not same),
        (f"the year scan's planted recall {year.get('year_1m_recall', 1):.3f} < {args.min_recall}",
         year.get("year_1m_recall", 1.0) < args.min_recall)) if bad]
    for what in failed:
        print(f"check failed: {what}", file=sys.stderr)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
