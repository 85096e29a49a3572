"""The universe scan: exact against statsmodels, false discoveries controlled, validated out of
sample, the same on Dask workers."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import duckdb

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.tsa.adfvalues import mackinnonp
from statsmodels.tsa.stattools import adfuller, coint

from statarb_kit import InvalidParameter
from statarb_kit.analytics import half_life, ols_hedge
from statarb_kit.scan import bh_qvalues, mackinnon_p, scan_pairs, synthetic_universe


@pytest.fixture(scope="module")
def universe():
    return synthetic_universe(n_symbols=40, n_bars=2_500, n_pairs=5, n_groups=2, seed=11)


@pytest.fixture(scope="module")
def result(universe):
    return scan_pairs(universe.closes)


def test_engle_granger_equals_statsmodels_coint_on_every_pair(universe, result):
    form = np.log(universe.closes.iloc[: result.attrs["formation"][2]])
    rng = np.random.default_rng(0)
    sample = result.iloc[np.r_[0:15, rng.choice(np.arange(15, len(result)), 45, replace=False)]]
    for _, row in sample.iterrows():
        x, y = form[row.x].to_numpy(), form[row.y].to_numpy()
        for stat, p, lags, (a, b) in ((row.eg_stat, row.eg_pvalue, row.eg_lags, (x, y)),
                                      (row.eg_stat_yx, row.eg_pvalue_yx, row.eg_lags_yx, (y, x))):
            ref = coint(a, b, trend="c", autolag="aic")
            fit = ols_hedge(a, b)
            used = adfuller(a - fit.alpha - fit.beta * b, regression="n", autolag="AIC", result_object=False)[2]
            assert abs(stat - ref[0]) <= 1e-8 * abs(ref[0]) and lags == used
            assert p == pytest.approx(ref[1], rel=1e-9, abs=1e-12)
        fit = ols_hedge(x, y)
        assert row.beta == pytest.approx(fit.beta, rel=1e-10) and row.alpha == pytest.approx(fit.alpha, rel=1e-9, abs=1e-12)
        assert row.r2 == pytest.approx(fit.r2, rel=1e-10)
        spread = x - fit.alpha - fit.beta * y
        assert row.half_life_bars == pytest.approx(half_life(spread).bars, rel=1e-8)
        assert row["corr"] == pytest.approx(np.corrcoef(np.diff(x), np.diff(y))[0, 1], rel=1e-9)
        assert row.crossings == np.count_nonzero(np.diff(np.sign(spread - spread.mean())) != 0)


def test_mackinnon_p_values_equal_statsmodels():
    stats = np.r_[np.linspace(-30, 5, 701), -np.inf, np.inf]
    for n in (1, 2):
        want = [mackinnonp(s, regression="c", N=n) for s in stats]
        np.testing.assert_allclose(mackinnon_p(stats, "c", n), want, rtol=1e-13, atol=0)


def test_q_values_are_benjamini_hochberg():
    p = np.random.default_rng(1).uniform(0, 1, 500) ** 3
    np.testing.assert_allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1], rtol=1e-13)
    with_nan = np.r_[p[:10], np.nan]
    assert np.isnan(bh_qvalues(with_nan)[-1])
    np.testing.assert_allclose(bh_qvalues(with_nan)[:10], multipletests(p[:10], method="fdr_bh")[1], rtol=1e-13)


def test_planted_pairs_are_found_and_false_discoveries_controlled():
    u = synthetic_universe(n_symbols=120, n_bars=6_000, n_pairs=10, n_groups=4, seed=5)
    r = scan_pairs(u.closes)
    truth = u.truth()
    found = {frozenset(p) for p in zip(r.x[r.selected], r.y[r.selected])}
    raw = {frozenset(p) for p in zip(r.x[r.pvalue < 0.05], r.y[r.pvalue < 0.05])}
    assert r.attrs["pairs_tested"] == 120 * 119 // 2 == len(r)
    assert len(found & truth) / len(truth) >= 0.9
    assert len(found - truth) / len(found) <= 0.1
    assert len(raw - truth) / len(raw) > 0.5  # by raw p < 0.05, most "discoveries" are chance


def test_selected_pairs_are_validated_out_of_sample_with_the_formation_hedge(universe, result):
    chosen = result[result.selected]
    assert len(chosen) and chosen["val_adf_stat"].notna().all() and result.loc[~result.selected, "val_adf_stat"].isna().all()
    val = np.log(universe.closes.iloc[result.attrs["formation"][2]:])
    for _, row in chosen.head(8).iterrows():
        spread = val[row.x].to_numpy() - row.alpha - row.beta * val[row.y].to_numpy()
        stat, p, used, *_ = adfuller(spread, regression="c", autolag="AIC", result_object=False)
        assert row.val_adf_stat == pytest.approx(stat, rel=1e-8) and row.val_adf_lags == used
        assert row.val_adf_pvalue == pytest.approx(p, rel=1e-9, abs=1e-12)
        assert row.val_half_life_bars == pytest.approx(half_life(spread).bars, rel=1e-8)
        assert row.survives == bool(p < 0.05 and np.isfinite(row.val_half_life_bars))
    assert result["survives"].isna().sum() == (~result.selected).sum()  # only selected pairs are judged


def test_symbols_with_too_little_data_are_left_out_with_a_reason_and_gaps_are_bounded(universe):
    closes = universe.closes.iloc[:, :8].copy()
    closes.iloc[: 2_000, 3] = np.nan  # listed late: 250 formation closes
    closes.iloc[100:102, 5] = np.nan  # two missing bars: carried forward (max_stale 3)
    closes.iloc[300:310, 6] = np.nan  # ten: those bars are dropped
    r = scan_pairs(closes, min_obs=500)
    name = closes.columns[3]
    assert name in r.attrs["left_out"] and "fewer than min_obs=500" in r.attrs["left_out"][name]
    assert name not in set(r.x) | set(r.y) and len(r) == 7 * 6 // 2
    assert r["n"].iloc[0] == r.attrs["formation"][2] == 1_750 - 7  # 10 missing, 3 of them carried
    closes.iloc[:, 2] = 42.0  # never moves: no statistic exists (statsmodels refuses a constant series)
    flat = scan_pairs(closes, min_obs=500)
    assert "constant over the formation period" in flat.attrs["left_out"][closes.columns[2]]
    assert len(flat) == 6 * 5 // 2 and flat["eg_stat"].notna().all()


def test_bad_input_is_refused_clearly(universe):
    with pytest.raises(InvalidParameter, match="DatetimeIndex"):
        scan_pairs(universe.closes.reset_index(drop=True))
    with pytest.raises(InvalidParameter, match="at least 2"):
        scan_pairs(universe.closes.iloc[:, :1])
    with pytest.raises(InvalidParameter, match="validation"):
        scan_pairs(universe.closes, validation=1.5)


def test_dask_workers_give_identical_results(universe, result):
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            on_dask = scan_pairs(universe.closes, client=client, block=100)
    pd.testing.assert_frame_equal(on_dask, result)


def _cli(*argv: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "statarb_kit.cli", *argv], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_scan_command_appends_runs_to_duckdb_and_writes_parquet(tmp_path):
    out = _cli("scan", "--universe", "40", "--bars", "2000", "--out", "scan.duckdb", "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "780 pairs of 40 symbols tested" in out.stdout and "Benjamini-Hochberg" in out.stdout
    assert "raw p < 0.05 would select" in out.stdout
    again = _cli("scan", "--universe", "40", "--bars", "2000", "--q", "0.01", "--out", "scan.duckdb", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    with duckdb.connect(str(tmp_path / "scan.duckdb"), read_only=True) as con:
        runs = con.execute("SELECT run_id, count(*), any_value(params) FROM scan_results GROUP BY run_id").fetchall()
    assert len(runs) == 2 and all(n == 780 for _, n, _ in runs)
    assert {json.loads(p)["q_level"] for _, _, p in runs} == {0.05, 0.01}
    pq = _cli("scan", "--universe", "40", "--bars", "2000", "--out", "scan.parquet", "-q", cwd=tmp_path)
    assert pq.returncode == 0 and len(pd.read_parquet(tmp_path / "scan.parquet")) == 780


def test_scan_of_a_store_with_all_its_symbols(tmp_path, universe):
    """Bars recorded by the pipeline are scanned like any closes (read-only, every symbol)."""
    from statarb_kit import Session
    from statarb_kit.ticks import TickBatch
    from tests.conftest import ListSource

    closes = universe.closes.iloc[:1200, :4]
    n, k = closes.shape
    ts = np.tile(closes.index.as_unit("ms").asi8 + 500, k)  # one trade a minute per symbol, mid-bar
    batch = TickBatch.from_columns(sym=np.repeat(np.arange(k), n), trade_id=np.tile(np.arange(n), k), ts=ts,
                                   price=closes.to_numpy().T.ravel(), qty=np.ones(n * k),
                                   is_buyer_maker=np.zeros(n * k, bool))
    order = np.argsort(ts, kind="stable")
    db = tmp_path / "bars.duckdb"

    async def record():
        async with Session(ListSource([batch.take(order)], symbols=tuple(closes.columns)), db=db) as s:
            await s.wait()

    import asyncio

    asyncio.run(record())
    out = _cli("scan", "--db", str(db), "--all", "--timeframe", "1m", "--min-obs", "300", "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "6 pairs of 4 symbols tested" in out.stdout
    direct = scan_pairs(closes, min_obs=300)
    from statarb_kit.scan.data import closes_from_store

    stored = closes_from_store(db, "1m")
    pd.testing.assert_frame_equal(scan_pairs(stored, min_obs=300), direct, check_dtype=False, rtol=1e-12)
    missing = _cli("scan", "--db", str(db), "--symbols", "NOPEUSDT", "-q", cwd=tmp_path)
    assert missing.returncode == 2 and "no 1m bars of NOPEUSDT" in missing.stderr


def test_sweep_on_dask_workers_equals_the_sweep_here(tmp_path):
    grid = ["--hours", "3", "--grid", "z_entry=1.5,2", "--grid", "z_window=30,60", "-q"]
    here = _cli("sweep", *grid, "--out", "here.csv", cwd=tmp_path)
    there = _cli("sweep", *grid, "--workers", "2", "--out", "dask.csv", cwd=tmp_path)
    assert here.returncode == 0 and there.returncode == 0, there.stderr
    a, b = pd.read_csv(tmp_path / "here.csv"), pd.read_csv(tmp_path / "dask.csv")
    pd.testing.assert_frame_equal(a.drop(columns="run_at"), b.drop(columns="run_at"))
