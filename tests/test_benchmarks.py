"""The benchmarks still run (at toy sizes) and end with their JSON line; figures are not asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

CASES = {
    "bench_pipeline.py": (["--ticks", "20000", "--repeats", "1"], {"ticks_per_s", "incremental_vs_full_ratio"}),
    "bench_analytics.py": (["--bars", "3000", "--repeats", "1"], set()),
    "bench_dashboard.py": (["--points", "500", "--refreshes", "5"], set()),
    "bench_backtest.py": (["--bars", "3600", "--sample", "3"], {"grid_1000_s", "vs_loop_ratio", "funding_cost_ratio"}),
    "bench_live_faults.py": (["--fixed-limit", "3", "--rate", "100", "--scenarios", "withheld,wrong tier",
                              "--tape-speed", "25", "--drop-every", "40"],
                             {"stall_noticed_s", "fixed_limit_noticed_s", "socket_share", "rest_weight_per_drop"}),
    "bench_scan.py": (["--symbols", "30", "--bars", "1500", "--sample", "3", "--year-bars", "4000",
                       "--min-recall", "0.5", "--max-fdp", "0.5"],
                      {"pairs", "scan_s", "vs_statsmodels_ratio", "recall", "dask_2workers_s", "year_1m_scan_s",
                       "year_1m_peak_gb", "year_1m_pairs", "median_pair_n"}),
    "bench_study.py": (["--symbols", "24", "--days", "120", "--methods", "engle_granger,johansen,pca"],
                       {"study_s", "study_dask_s", "periods", "methods", "peak_gb"}),
    "bench_watchlist.py": (["--minutes", "4", "--cycles", "20"], {"pairs", "update_ms", "refresh_ms", "vs_scratch_ratio"}),
    "bench_soak.py": (["--speed", "600", "--hours", "0.05", "--warm-hours", "0.01"],
                      {"dom_end", "rss_mb_end", "simulated_hours"}),
    "bench_ingest.py": (["--messages", "3000", "--naive", "200", "--replay-rows", "5000"],
                        {"msgs_per_s", "vs_naive_ratio", "with_quotes_msgs_per_s", "replay_rows_per_s"}),
    "bench_monitor.py": (["--seconds", "3", "--warmup", "1", "--settle", "2", "--viewers", "0,1",
                          "--request-seconds", "2"],
                         {"fanout_p99_ms", "monitor_cpu_per_bar_ms", "viewer_rss_mb", "request_p99_ms"}),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_and_ends_with_its_json_line(script):
    args, keys = CASES[script]
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == script[len("bench_"):-len(".py")]
    assert keys <= figures.keys()
    values = [x for k, v in figures.items() if k in keys for x in (v if isinstance(v, list) else [v])]
    assert all(x > 0 for x in values if x is not None) and (not keys or any(x is not None for x in values))
