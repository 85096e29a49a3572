"""The universe scan: exact against statsmodels, false discoveries controlled, validated out of
sample, the same on Dask workers."""

from __future__ import annotations

import functools
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
from statarb_kit.scan import bh_qvalues, mackinnon_p, synthetic_universe
from statarb_kit.scan import scan_pairs as _scan_pairs

#: These tests check the scan on log prices (their references take np.log): the setting a universe
#: of very different price levels is scanned with (the rule's default is prices).
scan_pairs = functools.partial(_scan_pairs, log_prices=True)


@pytest.fixture(scope="module")
def universe():
    return synthetic_universe(n_symbols=40, n_bars=2_500, n_pairs=5, n_groups=2, seed=11)


@pytest.fixture(scope="module")
def result(universe):
    return scan_pairs(universe.closes)


def _assert_both_directions_equal_coint(row: pd.Series, x: np.ndarray, y: np.ndarray) -> None:
    """The row's Engle-Granger statistic, lag and p-value equal statsmodels' coint both ways."""
    for stat, p, lags, (a, b) in ((row.eg_stat, row.eg_pvalue, row.eg_lags, (x, y)),
                                  (row.eg_stat_yx, row.eg_pvalue_yx, row.eg_lags_yx, (y, x))):
        ref = coint(a, b, trend="c", autolag="aic")
        fit = ols_hedge(a, b)
        used = adfuller(a - fit.alpha - fit.beta * b, regression="n", autolag="AIC", result_object=False)[2]
        assert abs(stat - ref[0]) <= 1e-8 * abs(ref[0]) and lags == used
        assert p == pytest.approx(ref[1], rel=1e-9, abs=1e-12)


def test_engle_granger_equals_statsmodels_coint_on_every_pair(universe, result):
    form = np.log(universe.closes.iloc[: result.attrs["formation"][2]])
    rng = np.random.default_rng(0)
    sample = result.iloc[np.r_[0:15, rng.choice(np.arange(15, len(result)), 45, replace=False)]]
    for _, row in sample.iterrows():
        x, y = form[row.x].to_numpy(), form[row.y].to_numpy()
        _assert_both_directions_equal_coint(row, x, y)
        fit = ols_hedge(x, y)
        assert row.beta == pytest.approx(fit.beta, rel=1e-10) and row.alpha == pytest.approx(fit.alpha, rel=1e-9, abs=1e-12)
        assert row.r2 == pytest.approx(fit.r2, rel=1e-10)
        spread = x - fit.alpha - fit.beta * y
        assert row.half_life_bars == pytest.approx(half_life(spread).bars, rel=1e-8)
        assert row["corr"] == pytest.approx(np.corrcoef(np.diff(x), np.diff(y))[0, 1], rel=1e-9)
        if row.selected:
            assert row.crossings == np.count_nonzero(np.diff(np.sign(spread - spread.mean())) != 0)
        else:
            assert np.isnan(row.crossings)


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
    with6 = (r.x == closes.columns[6]) | (r.y == closes.columns[6])
    assert (r.loc[with6, "n"] == 1_750 - 7).all()  # 10 missing, 3 of them carried: only its own pairs lose them
    assert (r.loc[~with6, "n"] == 1_750).all() and r.attrs["formation"][2] == 1_750
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


# ---- real universes: staggered listings, messy data -------------------------------------------

def _own_rows(closes: pd.DataFrame, split: str, x: str, y: str) -> pd.DataFrame:
    """A pair's formation sample as a user would build it: bounded forward fill, both legs present."""
    form = np.log(closes[closes.index < pd.Timestamp(split)]).ffill(limit=3)
    return form[[x, y]].dropna()


@pytest.fixture(scope="module")
def staggered():
    u = synthetic_universe(n_symbols=30, n_bars=4_000, n_pairs=4, n_groups=1, seed=21, listed_late=0.5, delisted=0.3)
    closes = u.closes.copy()
    closes.iloc[1_500:1_520, 3] = np.nan  # a 20-bar outage inside a symbol's life: its pairs are gapped
    closes.iloc[700:, 4] = np.nan  # delisted early ...
    closes.iloc[:550, 5] = np.nan  # ... and listed before that: 150 bars together
    return u, closes, scan_pairs(closes, min_obs=300)


def test_each_pair_is_tested_on_its_own_bars_exactly_as_coint(staggered):
    u, closes, r = staggered
    assert (u.listings["first"] > closes.index[0]).sum() >= 10 and (u.listings["last"] < closes.index[-1]).sum() >= 5
    tested = r[r.pvalue.notna()]
    assert r["n"].nunique() > 20  # staggered spans: many different sample lengths
    gapped = tested[(tested.x == closes.columns[3]) | (tested.y == closes.columns[3])]
    rng = np.random.default_rng(3)
    sample = pd.concat([tested.iloc[rng.choice(len(tested), 25, replace=False)], gapped.head(5)])
    for _, row in sample.iterrows():
        own = _own_rows(closes, r.attrs["split"], row.x, row.y)
        assert row.n == len(own)
        x, y = own[row.x].to_numpy(), own[row.y].to_numpy()
        _assert_both_directions_equal_coint(row, x, y)
        assert row["corr"] == pytest.approx(np.corrcoef(np.diff(x), np.diff(y))[0, 1], rel=1e-9)
    # pairs that never overlap long enough are not tested, and say why; q-values count only the tested
    untested = r[r.pvalue.isna()]
    assert len(untested) and untested["note"].str.contains("min_obs=300|never traded").all()
    assert r.attrs["pairs_tested"] == len(tested) == len(r) - r.attrs["pairs_not_tested"]
    np.testing.assert_allclose(tested.q_value, bh_qvalues(tested.pvalue.to_numpy()))


def test_one_calendar_split_and_nothing_after_it_informs_the_selection(staggered):
    u, closes, r = staggered
    split = pd.Timestamp(r.attrs["split"])
    span = closes.index[-1] - closes.index[0]
    assert split == closes.index[0] + span * 0.7
    changed = closes.copy()
    changed.loc[changed.index >= split] *= np.random.default_rng(0).uniform(0.5, 2.0, changed[changed.index >= split].shape)
    again = scan_pairs(changed, min_obs=300)
    cols = ["x", "y", "n", "eg_stat", "eg_stat_yx", "q_value", "selected"]
    pd.testing.assert_frame_equal(again[cols], r[cols])  # the future changed, the selection did not
    chosen = r[r.selected & r.survives.notna()]
    val = np.log(closes[closes.index >= split]).ffill(limit=3)
    for _, row in chosen.head(5).iterrows():
        both = val[[row.x, row.y]].dropna()
        spread = both[row.x].to_numpy() - row.alpha - row.beta * both[row.y].to_numpy()
        assert row.val_n == len(both)
        assert row.val_adf_stat == pytest.approx(adfuller(spread, regression="c", autolag="AIC", result_object=False)[0],
                                               rel=1e-8)
    dated = scan_pairs(closes, min_obs=300, split=str(closes.index[2_000]))
    assert dated.attrs["split"] == str(closes.index[2_000]) and dated.attrs["formation"][2] == 2_000


def test_planted_pairs_are_found_when_legs_list_late_and_delist():
    u = synthetic_universe(n_symbols=80, n_bars=12_000, n_pairs=8, n_groups=3, seed=8, listed_late=0.5, delisted=0.25,
                           half_life=(5.0, 30.0))
    r = scan_pairs(u.closes)
    truth = u.truth()
    found = {frozenset(p) for p in zip(r.x[r.selected], r.y[r.selected])}
    late = set(u.listings.index[u.listings["first"] > u.closes.index[0]])
    late_truth = {p for p in truth if p & late}
    assert len(late_truth) >= 5
    assert len(found & truth) / len(truth) >= 0.9 and len(found & late_truth) / len(late_truth) >= 0.9
    assert len(found - truth) / len(found) <= 0.1


def test_exact_twins_get_minus_inf_like_statsmodels_and_cost_nothing_else(universe):
    closes = universe.closes.iloc[:, :6].copy()
    a, b = closes.columns[:2]
    closes["TWINUSDT"] = closes[a]  # the same data under two names
    closes["DOUBLEUSDT"] = 2 * closes[b]  # an exact function of another
    r = scan_pairs(closes)
    for x, y in ((a, "TWINUSDT"), (b, "DOUBLEUSDT")):
        row = r[(r.x == x) & (r.y == y)].iloc[0]
        ref = coint(np.log(closes[x].iloc[:1750]), np.log(closes[y].iloc[:1750]), trend="c", autolag="aic")
        assert row.eg_stat == ref[0] == -np.inf and row.pvalue == ref[1] == 0.0
    assert r.attrs["pairs_tested"] == len(r) == 8 * 7 // 2 and r.eg_stat.notna().all()
    twin = r[(r.x == a) & (r.y == "TWINUSDT")].iloc[0]
    assert twin.selected and pd.isna(twin.survives) and "constant" in twin.note


def test_messy_symbols_are_left_out_with_stated_reasons(universe):
    closes = universe.closes.iloc[:, :6].copy()
    closes["INFUSDT"] = closes.iloc[:, 0] * 1.01
    closes.iloc[40, 6] = np.inf
    closes["STEPUSDT"] = np.where(np.arange(len(closes)) < 900, 10.0, 11.0)  # one move in the formation period
    r = scan_pairs(closes)
    assert "infinite closes" in r.attrs["left_out"]["INFUSDT"]
    assert "changed on 1 of its" in r.attrs["left_out"]["STEPUSDT"] and "min_move_share=0.05" in r.attrs["left_out"]["STEPUSDT"]
    assert r.attrs["pairs_tested"] == len(r) == 15 and r.pvalue.notna().all()  # the count is honest
    twice = pd.concat([closes.iloc[:100], closes.iloc[99:]])
    with pytest.raises(InvalidParameter, match="appear twice"):
        scan_pairs(twice)
    named_twice = closes.iloc[:, [0, 1, 1]]
    with pytest.raises(InvalidParameter, match="named twice"):
        scan_pairs(named_twice)


def test_a_pair_without_enough_validation_bars_is_not_validated_not_failed():
    u = synthetic_universe(n_symbols=10, n_bars=3_000, n_pairs=3, n_groups=0, seed=2, half_life=(5.0, 15.0))
    closes = u.closes.copy()
    a, b = sorted(next(iter(u.truth())))
    closes.loc[closes.index >= closes.index[2_120], a] = np.nan  # delisted 20 bars after the split
    r = scan_pairs(closes)
    row = r[(r.x == a) & (r.y == b)].iloc[0]
    assert row.selected and row.val_n == 20 + 3  # carried 3 bars
    assert pd.isna(row.survives) and "not validated: 23 validation bars" in row.note
    others = r[r.selected & (r.x != a) & (r.y != a)]
    assert len(others)
    assert others.survives.notna().all() and others.note.isna().all()
