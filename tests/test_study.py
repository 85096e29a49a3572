"""The walk-forward study: hit rate, base rate and lift equal a count by hand (statsmodels) on a
small universe with planted pairs, some of which break in the trading window; selections never
read the trading window; the distance method equals its formula by hand; Dask equals in-process."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller

from statarb_kit.errors import InvalidParameter
from statarb_kit.research import Formation, MethodParams, parse_span, rolling_periods, study
from statarb_kit.research.methods import METHODS, distance
from statarb_kit.research.study import HIT_LEVEL, run_period
from statarb_kit.rule import Rule

HOUR = pd.Timedelta(hours=1)
SMALL = dict(formation="20d", trading="10d", min_obs=200, top=3)


def planted_universe(seed: int = 3, days: int = 70) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """1h closes of 10 symbols: 4 planted pairs (log y = log x + AR(1) noise, half-life ~5 h) and
    2 loners. Pairs C and D break after day 40 (their noise becomes a random walk)."""
    rng = np.random.default_rng(seed)
    n = days * 24
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    cols, pairs = {}, []
    for k, name in enumerate("ABCD"):
        x = np.cumsum(rng.normal(0, 0.01, n))
        e = np.zeros(n)
        for t in range(1, n):
            e[t] = 0.87 * e[t - 1] + rng.normal(0, 0.004)
        cut = 40 * 24
        if name in "CD" and n > cut:
            e[cut:] = e[cut - 1] + np.cumsum(rng.normal(0, 0.01, n - cut))
        cols[f"{name}1USDT"] = 10 * (k + 1) * np.exp(x)
        cols[f"{name}2USDT"] = 10 * (k + 1) * np.exp(x + e + 0.1)
        pairs.append((f"{name}1USDT", f"{name}2USDT"))
    for name in ("L1USDT", "L2USDT"):
        cols[name] = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(cols, index=index), pairs


def by_hand(closes: pd.DataFrame, period) -> tuple[int, int, dict[tuple[str, str], bool]]:
    """Every pair's formation OLS hedge (statsmodels) and its trading spread's ADF (statsmodels,
    constant, AIC): (pairs judged, hits, pair -> hit)."""
    form = np.log(closes[(closes.index >= period.formation[0]) & (closes.index < period.formation[1])])
    trade = np.log(closes[(closes.index >= period.trading[0]) & (closes.index < period.trading[1])])
    hits = {}
    names = list(closes.columns)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            fit = sm.OLS(form[x].to_numpy(), sm.add_constant(form[y].to_numpy())).fit()
            spread = trade[x].to_numpy() - fit.params[1] * trade[y].to_numpy()
            hits[(x, y)] = adfuller(spread, regression="c", autolag="AIC", result_object=False)[1] < HIT_LEVEL
    return len(hits), sum(hits.values()), hits


def test_hit_rate_base_rate_and_lift_equal_a_count_by_hand():
    closes, planted = planted_universe()
    r = study(closes, methods="engle_granger", **SMALL)
    periods = rolling_periods(closes.index[0], closes.index[-1] + HOUR, "20d", "10d", "10d")
    assert len(periods) == r.settings["periods"] == 5
    tested = hit_total = sel_judged = sel_hits = 0
    for q, row, sel in zip(periods, r.periods.itertuples(), r.selections):
        n, h, hits = by_hand(closes, q)
        assert (row.tested, round(row.base_rate * n)) == (n, h)  # every pair tested, hits as statsmodels
        for legs, hit in zip(sel["selected"], sel["hits"]):
            assert hit == hits[tuple(legs["legs"])]
        tested, hit_total = tested + n, hit_total + h
        sel_judged += len(sel["hits"])
        sel_hits += sum(sel["hits"])
        if q.formation[1] <= closes.index[0] + pd.Timedelta(days=40):  # before any pair broke
            assert {tuple(s["legs"]) for s in sel["selected"]} <= set(planted)  # the 3 best: planted ones
    m = r.methods.iloc[0]
    assert m["tested"] == tested and m["base_rate"] == pytest.approx(hit_total / tested)
    assert m["hit_rate"] == pytest.approx(sel_hits / sel_judged)
    assert m["lift"] == pytest.approx((sel_hits / sel_judged) / (hit_total / tested))
    assert m["lift_lo"] <= m["lift"] <= m["lift_hi"]
    # formed on days 20-40, traded on days 40-50: the pairs that broke there (C, D) miss, A and B hit
    broke = r.selections[2]
    assert broke["trading"][0].startswith("2024-02-10") and broke["selected"]
    for legs, hit in zip(broke["selected"], broke["hits"]):
        assert hit == (legs["legs"][0][0] in "AB"), legs


def test_selections_never_read_the_trading_window():
    closes, _ = planted_universe()
    q = rolling_periods(closes.index[0], closes.index[-1] + HOUR, "20d", "10d", "10d")[1]
    form = closes[(closes.index >= q.formation[0]) & (closes.index < q.formation[1])]
    trade = closes[(closes.index >= q.trading[0]) & (closes.index < q.trading[1])]
    p, rule = MethodParams(min_obs=200, top=3, k=1, K=2), Rule()
    changed = trade * np.random.default_rng(1).uniform(0.5, 2.0, trade.shape)
    every = tuple(METHODS)
    a = run_period(q, form, trade, every, p, rule, 3_600_000)
    b = run_period(q, form, changed, every, p, rule, 3_600_000)
    for ra, rb in zip(a, b):
        assert [(s["legs"], s["weights"]) for s in ra["selections"]] == [(s["legs"], s["weights"]) for s in rb["selections"]]
        assert ra["selections"], ra["method"]


def test_distance_is_the_normalised_sum_of_squares_by_hand():
    closes, _ = planted_universe(days=20)
    f = Formation.of(closes, MethodParams(min_obs=200))
    c = distance(f, MethodParams(min_obs=200, top=5))
    ssd = {}
    for x, y in zip(f.scan["x"], f.scan["y"]):
        a, b = closes[x].to_numpy(), closes[y].to_numpy()
        ssd[(x, y)] = np.mean((a / a[0] - b / b[0]) ** 2)
    assert np.allclose(c.score, [ssd[legs] for legs in c.legs], rtol=1e-12)
    best = sorted(ssd, key=ssd.get)[:5]
    assert [c.legs[i] for i in c.selected] == best
    (x, y), (wx, wy) = c.legs[c.selected[0]], c.weights[c.selected[0]]
    assert wx == 1 / closes[x].iloc[0] and wy == -1 / closes[y].iloc[0] and c.prices == "level"


def test_on_dask_workers_the_study_is_identical():
    from distributed import Client, LocalCluster

    closes, _ = planted_universe()
    here = study(closes, methods="engle_granger,distance,johansen,pca", **SMALL)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        there = study(closes, methods="engle_granger,distance,johansen,pca", client=client, **SMALL)
    pd.testing.assert_frame_equal(here.methods, there.methods)
    pd.testing.assert_frame_equal(here.periods, there.periods)
    assert here.selections == there.selections
    pd.testing.assert_frame_equal(here.equity, there.equity)


def test_results_render_and_recount_from_json(tmp_path):
    closes, _ = planted_universe()
    r = study(closes, **SMALL)
    page = r._repr_html_()
    assert "Walk-forward study" in page and "lift" in page and "<svg" in page
    data = r.as_json()
    assert {m["method"] for m in data["methods"]} == {"engle_granger", "distance", "correlation", "stability", "johansen",
                                                      "pca"}
    assert set(data["methods"][0]) == {"method", "periods", "tested", "selected", "hit_rate", "base_rate", "lift",
                                       "lift_ci", "profitable_rate", "net_return", "net_sharpe", "trades"}
    # recount a hit from the JSON alone: spread = sum of weights x (log) prices of the legs
    period = next(p for p in data["periods"] if p["selected"])
    s, hit = period["selected"][0], period["hits"][0]
    lo, hi = (pd.Timestamp(t) for t in period["trading"])
    window = closes[(closes.index >= lo) & (closes.index < hi)]
    values = np.log(window[s["legs"]]) if s["prices"] == "log" else window[s["legs"]]
    spread = values.to_numpy() @ np.array(s["weights"])
    assert (adfuller(spread, regression="c", autolag="AIC", result_object=False)[1] < HIT_LEVEL) == hit
    assert r.to_json(tmp_path / "s.json").stat().st_size > 0 and "<table" in r.to_html(tmp_path / "s.html").read_text()


def test_bad_settings_are_refused():
    closes, _ = planted_universe(days=20)
    with pytest.raises(InvalidParameter, match="a window is"):
        parse_span("sixty days")
    with pytest.raises(InvalidParameter, match="unknown method"):
        study(closes, methods="astrology", **{k: v for k, v in SMALL.items() if k != "top"})
    with pytest.raises(InvalidParameter, match="shorter than one formation"):
        study(closes, formation="30d", trading="30d")


def test_placebo_pairs_are_coint_on_shifted_legs_by_hand_and_calibrate_p():
    """Each placebo p is the scan's p (min(1, 2 min of both directions' coint p)) of one symbol's
    last window against another symbol's window before it, as statsmodels' coint gives it; the
    calibrated p is the share of placebo p at or below a pair's p, counted by hand."""
    from statsmodels.tsa.stattools import coint

    from statarb_kit.research.calibration import placebo, with_calibrated
    from statarb_kit.scan import scan_pairs

    rng = np.random.default_rng(8)
    n, w = 1_200, 600
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    closes = pd.DataFrame({f"S{k}USDT": 10 * np.exp(np.cumsum(rng.normal(0, 0.01, n))) for k in range(4)}, index=index)
    null = placebo(closes, w, shifts=(1,), min_obs=200)
    logs = np.log(closes)
    by_hand = []
    for a in closes.columns:
        for b in closes.columns:
            if a != b:  # a's last window against b's window before it: both directions, as the scan tests
                x, y = logs[a].to_numpy()[-w:], logs[b].to_numpy()[:w]
                by_hand.append(min(1.0, 2 * min(coint(x, y, trend="c", autolag="aic")[1],
                                                coint(y, x, trend="c", autolag="aic")[1])))
    assert len(null.pvalues) == len(by_hand) == 12
    np.testing.assert_allclose(np.sort(null.pvalues), np.sort(by_hand), rtol=1e-8)
    r = with_calibrated(scan_pairs(closes.iloc[-w:], validation=0.0, log_prices=True, min_obs=200), null)
    for p, pc in zip(r["pvalue"], r["p_calibrated"]):
        assert pc == pytest.approx((1 + sum(q <= p for q in by_hand)) / 13)
    assert r.attrs["placebo_size"] == pytest.approx(np.mean(np.array(by_hand) < 0.05))


def test_johansen_pairs_equal_statsmodels_and_select_the_planted_pairs():
    """Each pair tested within a cluster gets statsmodels' coint_johansen trace statistic and first
    cointegrating vector (scaled to 1 on x); the planted pairs are selected."""
    from statsmodels.tsa.vector_ar.vecm import coint_johansen

    from statarb_kit.research.methods import johansen

    closes, planted = planted_universe(days=30)
    p = MethodParams(min_obs=200, top=10)
    c = johansen(Formation.of(closes, p), p)
    logs = np.log(closes)
    assert len(c) > 0 and c.prices == "log"
    for legs, w, score in zip(c.legs, c.weights, c.score):
        r = coint_johansen(logs[list(legs)].to_numpy(), 0, 1)
        assert score == pytest.approx(-r.lr1[0] / r.cvt[0, 1], rel=1e-12)
        np.testing.assert_allclose(w, r.evec[:, 0] / r.evec[0, 0], rtol=1e-10, atol=1e-13)
    chosen = {c.legs[i] for i in c.selected}
    assert chosen >= set(planted)  # intact over the first 30 days: all four found
    assert all(c.score[i] < -1.0 for i in c.selected)


def planted_basket(seed: int = 5, n: int = 900) -> pd.DataFrame:
    """1h closes of five symbols on one market walk: C's log price is (log A + log B) / 2 plus
    AR(1) noise (a basket of three; no pair of them cointegrated), D and E on their own."""
    rng = np.random.default_rng(seed)
    market = np.cumsum(rng.normal(0, 0.01, n))
    walk = {k: market + np.cumsum(rng.normal(0, 0.01, n)) for k in "ABDE"}
    e = np.zeros(n)
    for t in range(1, n):
        e[t] = 0.85 * e[t - 1] + rng.normal(0, 0.003)
    logs = {"AUSDT": walk["A"], "BUSDT": walk["B"], "CUSDT": (walk["A"] + walk["B"]) / 2 + e,
            "DUSDT": walk["D"], "EUSDT": walk["E"]}
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({k: 30.0 * np.exp(v) for k, v in logs.items()}, index=index)


def test_johansen_baskets_of_three_equal_statsmodels_and_find_the_planted_one():
    from statsmodels.tsa.vector_ar.vecm import coint_johansen

    from statarb_kit.research.methods import johansen

    closes = planted_basket()
    p = MethodParams(min_obs=200, top=5)
    c = johansen(Formation.of(closes, p), p)
    triples = [i for i, legs in enumerate(c.legs) if len(legs) == 3]
    assert len(triples) == 10  # one cluster of five: every basket of three
    for i in triples:
        r = coint_johansen(np.log(closes[list(c.legs[i])]).to_numpy(), 0, 1)
        assert c.score[i] == pytest.approx(-r.lr1[0] / r.cvt[0, 1], rel=1e-12)
        np.testing.assert_allclose(c.weights[i], r.evec[:, 0] / r.evec[0, 0], rtol=1e-10, atol=1e-13)
    best = c.legs[c.selected[0]]
    assert best == ("AUSDT", "BUSDT", "CUSDT")
    np.testing.assert_allclose(c.weights[c.selected[0]] / c.weights[c.selected[0]][2], [-0.5, -0.5, 1.0], atol=0.06)
    # the study trades it as a basket of three and judges its spread
    r = study(closes, formation="25d", trading="12d", methods="johansen", min_obs=200, top=1)
    sel = r.selections[0]["selected"][0]
    assert sel["legs"] == ["AUSDT", "BUSDT", "CUSDT"] and r.selections[0]["hits"] == [True]
    assert r.methods["trades"].iloc[0] > 0


def pca_reference(logs: np.ndarray, variance: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Avellaneda & Lee by hand: the SVD of standardised returns for the eigenportfolios,
    statsmodels OLS for each symbol's betas and for the AR(1) of its residual spread; returns
    (weights, s-score at the last bar, factors)."""
    r = np.diff(logs, axis=0)
    sd = r.std(axis=0, ddof=1)
    y = (r - r.mean(axis=0)) / sd
    _, sv, vt = np.linalg.svd(y, full_matrices=False)
    share = np.cumsum(sv ** 2) / np.sum(sv ** 2)
    m = int(np.argmax(share >= variance)) + 1
    q = vt[:m].T / sd[:, None]
    f = r @ q
    k = logs.shape[1]
    weights, s = np.zeros((k, k)), np.zeros(k)
    for i in range(k):
        beta = sm.OLS(r[:, i], sm.add_constant(f)).fit().params[1:]
        weights[i] = np.eye(k)[i] - q @ beta
        x = logs @ weights[i]
        fit = sm.OLS(x[1:], sm.add_constant(x[:-1])).fit()
        a, b = fit.params
        s[i] = (x[-1] - a / (1 - b)) / np.sqrt(fit.ssr / len(x[1:]) / (1 - b * b))
    return weights, s, m


def test_pca_residuals_and_s_scores_equal_a_reference_by_hand():
    from statarb_kit.research.pca import residuals, rolling_s_score

    rng = np.random.default_rng(12)
    n, k = 700, 8
    market = np.cumsum(rng.normal(0, 0.01, n))
    logs = np.column_stack([market * (0.5 + 0.2 * j) + np.cumsum(rng.normal(0, 0.006, n)) for j in range(k)])
    got = residuals(logs, 0.55)
    weights, s, m = pca_reference(logs, 0.55)
    assert got.factors == m >= 1
    np.testing.assert_allclose(got.weights, weights, rtol=1e-9, atol=1e-12)
    ok = np.isfinite(got.s_score)
    assert ok.sum() >= k - 1
    np.testing.assert_allclose(got.s_score[ok], s[ok], rtol=1e-8)
    # the rolling s-score: the same OU fit of the window ending at each bar, by np.polyfit
    x = logs @ weights[0]
    roll = rolling_s_score(x, 200)
    assert np.isnan(roll[:199]).all()
    for t in (199, 350, 699):
        w = x[t - 199:t + 1]
        b, a = np.polyfit(w[:-1], w[1:], 1)
        var = np.var(w[1:] - a - b * w[:-1])
        want = (w[-1] - a / (1 - b)) / np.sqrt(var / (1 - b * b)) if 0 < b < 1 else np.nan
        assert roll[t] == pytest.approx(want, rel=1e-8, nan_ok=True)


def test_pca_selects_the_planted_fast_residual_and_trades_it_by_s_score():
    """Eight symbols on one market factor; one of them carries a fast mean-reverting residual (the
    rest small random walks): pca ranks it first, its residual basket holds in the next window
    (few others do), and the study trades it at the s thresholds at a profit."""
    from statarb_kit.research.methods import pca

    rng = np.random.default_rng(21)
    n, k = 1_400, 8
    market = np.cumsum(rng.normal(0, 0.01, n))
    cols = {}
    for j in range(k):
        own = np.cumsum(rng.normal(0, 0.0015, n))
        if j == 3:
            own = np.zeros(n)
            for t in range(1, n):
                own[t] = 0.9 * own[t - 1] + rng.normal(0, 0.004)
        cols[f"P{j}USDT"] = 10.0 * np.exp(market * (0.8 + 0.1 * j) + own)
    closes = pd.DataFrame(cols, index=pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"))
    p = MethodParams(min_obs=200, top=3)
    c = pca(Formation.of(closes.iloc[:700], p), p)
    assert c.signal == "s" and len(c) == k
    assert c.legs[c.selected[0]][0] == "P3USDT" and len(c.legs[c.selected[0]]) == k
    r = study(closes, formation="700h", trading="700h", methods="pca", min_obs=200, top=1)
    sel = r.selections[0]
    assert sel["selected"][0]["legs"][0] == "P3USDT" and sel["hits"] == [True]
    assert r.methods["base_rate"].iloc[0] <= 0.25 and r.methods["lift"].iloc[0] >= 4  # few residuals hold by chance
    assert r.methods["trades"].iloc[0] > 10 and r.methods["net_return"].iloc[0] > 0


def test_cli_study_writes_its_json_and_the_scan_shows_the_measured_lift(tmp_path, capsys):
    from statarb_kit.cli import main

    closes, _ = planted_universe(days=40)
    long = closes.stack().rename("close").reset_index().set_axis(["open_time", "symbol", "close"], axis=1)
    long["open_time"] = long["open_time"].dt.as_unit("ms").astype("int64")  # ms UTC, as Binance's klines
    long = long.assign(open=long["close"], high=long["close"], low=long["close"], volume=1.0)
    klines = tmp_path / "k.parquet"
    long[["symbol", "open_time", "open", "high", "low", "close", "volume"]].to_parquet(klines)
    out = tmp_path / "study.json"
    assert main(["study", "--klines", str(klines), "--formation", "20d", "--trading", "10d", "--min-obs", "200",
                 "--top", "3", "--methods", "engle_granger,pca", "--json", str(out), "-q"]) == 0
    data = orjson.loads(out.read_bytes())
    assert [m["method"] for m in data["methods"]] == ["engle_granger", "pca"]
    eg = data["methods"][0]
    capsys.readouterr()
    scan = ["scan", "--klines", str(klines), "--log-prices", "--min-obs", "200", "--split", "2024-01-31", "-q"]
    assert main([*scan, "--study", str(out)]) == 0  # planted pairs: Engle-Granger measured best (pca: no lift)
    shown = capsys.readouterr().out
    assert f"engle_granger lift {eg['lift']:.2f} [{eg['lift_ci'][0]:.2f}, {eg['lift_ci'][1]:.2f}]" in shown
    assert "the best of the methods measured" in shown and "selected on the formation" not in shown
    # a study that measured pca best: the scan's default becomes pca, judged on the same split
    data["methods"][1].update(lift=50.0, lift_ci=[20.0, 80.0], hit_rate=0.5, base_rate=0.01)
    other = tmp_path / "other.json"
    other.write_bytes(orjson.dumps(data))
    assert main([*scan, "--study", str(other), "--top", "3"]) == 0
    shown = capsys.readouterr().out
    assert "pca lift 50.00 [20.00, 80.00]" in shown and "the best of the methods measured" in shown
    line, table = shown.split("\npca: ")[1].split("\n", 1)
    assert "selected on the formation" in line and " hold on the validation bars" in line
    assert table.count("USDT/") >= int(line.split()[0]) >= 1 and ("True" in table or "False" in table)
    assert main([*scan, "--study", str(other), "--method", "engle_granger"]) == 0
    shown = capsys.readouterr().out
    assert f"engle_granger lift {eg['lift']:.2f}" in shown and "best measured: pca lift 50.00" in shown
    assert main(scan) == 0
    assert "no lift measured on this data" in capsys.readouterr().out
    assert main([*scan, "--method", "all"]) == 2 and "name one method" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{\"not\": \"a study\"}")
    assert main(["scan", "--klines", str(klines), "--study", str(tmp_path / "bad.json"), "-q"]) == 2
    both = capsys.readouterr()
    assert "not written by `statarb study --json`" in both.err and "pairs of" not in both.out


def test_a_scans_method_selection_is_the_studys_selection_and_hit():
    """``select`` (what `statarb scan --method` prints) picks and judges as the study's period does."""
    from statarb_kit.research.study import select

    closes, _ = planted_universe()
    q = rolling_periods(closes.index[0], closes.index[-1] + HOUR, "20d", "10d", "10d")[2]
    form = closes[(closes.index >= q.formation[0]) & (closes.index < q.formation[1])]
    trade = closes[(closes.index >= q.trading[0]) & (closes.index < q.trading[1])]
    p = MethodParams(min_obs=200, top=4)
    for method in ("engle_granger", "johansen"):
        period = run_period(q, form, trade, (method,), p, Rule(), 3_600_000)[0]
        table = select(form, trade, method, p)
        assert list(table["legs"]) == ["/".join(s["legs"]) for s in period["selections"]]
        assert list(table["holds"]) == [s["hit"] for s in period["selections"]] and len(table) >= 2


def test_a_period_is_the_same_whatever_blas_threads_the_caller_runs():
    """Dask's workers run one BLAS thread, a notebook usually several: a period's results are
    computed on one thread either way (threadpoolctl), so they are equal to the bit."""
    from threadpoolctl import threadpool_limits

    closes, _ = planted_universe()
    q = rolling_periods(closes.index[0], closes.index[-1] + HOUR, "20d", "10d", "10d")[1]
    form = closes[(closes.index >= q.formation[0]) & (closes.index < q.formation[1])]
    trade = closes[(closes.index >= q.trading[0]) & (closes.index < q.trading[1])]
    p = MethodParams(min_obs=200, top=3)
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            runs.append(run_period(q, form, trade, ("johansen", "pca"), p, Rule(), 3_600_000))
    for a, b in zip(*runs):
        assert a["selections"] == b["selections"] and a["base_hits"] == b["base_hits"]
        pd.testing.assert_series_equal(a["pnl"], b["pnl"])
