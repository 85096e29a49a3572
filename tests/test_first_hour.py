"""What a new user meets in the first hour: every mistake answered in one line with exit code 2,
nothing written on a refusal, paths resolved where the command runs, a file recorded twice."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from statarb_kit import TickStore
from statarb_kit import cli

pytestmark = pytest.mark.skipif(shutil.which("statarb") is None, reason="package not installed with pip")


def statarb(*argv: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["statarb", *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "STATARB_PREVIEW_S": ""})


def one_line_refusal(out: subprocess.CompletedProcess, *words: str) -> str:
    """The command exited 2 with a message naming ``words`` and no traceback; returns the message."""
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    message = out.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in message, message
    return message


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("argv", [
    ("scan", "--timeframe", "7m"),
    ("sweep", "--timeframe", "2h"),
    ("record", "--timeframe", "7m", "--duration", "1", "--db", "rec.duckdb"),
    ("dashboard", "--timeframe", "7m", "--port", "1"),
])
def test_a_timeframe_the_pipeline_does_not_build_is_refused_before_anything_runs(tmp_path, argv):
    out = statarb(*argv, cwd=tmp_path)
    one_line_refusal(out, "'7m'" if "7m" in argv else "'2h'", "1s, 1m, 5m")
    assert list(tmp_path.iterdir()) == [], "a refused command wrote a file"
    assert "recording" not in out.stdout and "grid" not in out.stdout


def test_the_url_refuses_the_same_timeframes():
    from statarb_kit.app import AppSettings
    from statarb_kit.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="1s, 1m, 5m"):
        AppSettings.parse("timeframe=7m", env={})
    assert AppSettings.parse("timeframe=5m", env={}).timeframe == "5m"


def test_scan_files_that_are_missing_or_not_dumps_say_which(tmp_path):
    one_line_refusal(statarb("scan", "--files", "nope.zip", cwd=tmp_path), "no such file: nope.zip")
    (tmp_path / "garbage.csv").write_text("a,b\n1,2\n")
    message = one_line_refusal(statarb("scan", "--files", "garbage.csv", cwd=tmp_path), "garbage.csv",
                               "not a Binance dump name", "rename")
    assert "explicitly" not in message  # no option gives them: the name must say the symbol and kind


def test_download_with_a_bad_date_or_no_network_answers_in_one_line(tmp_path):
    out = statarb("download", "BTCUSDT", "--start", "2024-13-01", cwd=tmp_path)
    assert out.returncode == 2 and "'2024-13-01' is not a day YYYY-MM-DD" in out.stderr
    out = statarb("download", "BTCUSDT", "--start", "2024-01-01", "--base-url", "http://127.0.0.1:9",
                  "--dir", "data", cwd=tmp_path)
    one_line_refusal(out, "http://127.0.0.1:9/data/futures/um/daily/trades/BTCUSDT/", "could not be reached",
                     "--base-url")
    assert list((tmp_path / "data").iterdir()) == []  # nothing partial left


def test_a_corrupt_database_file_is_named_on_every_command_and_left_untouched(tmp_path):
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(os.urandom(9_000))
    before = digest(bad)
    for argv in (("scan", "--db", "bad.duckdb", "--all"), ("sweep", "--db", "bad.duckdb"),
                 ("record", "--db", "bad.duckdb", "--duration", "1"), ("dashboard", "--db", "bad.duckdb", "--port", "1")):
        one_line_refusal(statarb(*argv, cwd=tmp_path), f"{bad}" if argv[0] == "dashboard" else "bad.duckdb",
                         "is not a DuckDB database")
    out = statarb("scan", "--db", "missing.duckdb", "--all", cwd=tmp_path)
    one_line_refusal(out, "missing.duckdb does not exist")
    assert digest(bad) == before and sorted(p.name for p in tmp_path.iterdir()) == ["bad.duckdb"]


def test_dashboard_paths_are_resolved_where_the_command_runs(tmp_path, monkeypatch):
    """The server runs the notebook in the package's folder: a relative --db must still mean the
    caller's file. The command becomes the server (execve): capture what it would run."""
    seen = {}

    def execve(path, cmd, env):
        seen.update(cmd=cmd, env=env)
        raise SystemExit(0)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "execve", execve)
    (tmp_path / "pairs.txt").write_text("BTCUSDT/ETHUSDT\n")  # read on the command line: it must exist
    with pytest.raises(SystemExit):
        cli.main(["dashboard", "--db", "rec.duckdb", "--watchlist", "pairs.txt", "--cull-after", "15"])
    assert seen["env"]["STATARB_DB"] == str(tmp_path / "rec.duckdb")
    assert seen["env"]["STATARB_WATCHLIST"] == str(tmp_path / "pairs.txt")
    assert seen["cmd"][1:3] == ["-m", "statarb_kit.server"] and "--cull-after=15" in seen["cmd"]


def test_serve_knows_the_pages_and_refuses_a_missing_one(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(os, "execve", lambda path, cmd, env: (seen.update(cmd=cmd), sys.exit(0)))
    with pytest.raises(SystemExit):
        cli.main(["serve", "scan"])
    assert Path(seen["cmd"][3]).name == "scan.ipynb" and Path(seen["cmd"][3]).is_file()
    assert cli.main(["serve", str(tmp_path / "nope.ipynb")]) == 2


def test_an_unlisted_symbol_is_refused_before_a_live_recording_starts(tmp_path):
    from tests.fake_binance import FakeBinance

    async def go():
        async with FakeBinance(n=10) as fake:
            return await asyncio.to_thread(
                statarb, "record", "--source", "live", "--symbols", "BTCUSDT,FOOUSDT", "--db", "live.duckdb",
                "--ws-url", fake.ws_url, "--rest-url", fake.http_url, "--duration", "3", cwd=tmp_path)

    out = asyncio.run(go())
    one_line_refusal(out, "lists no symbol FOOUSDT", "exchangeInfo")
    assert "recording" not in out.stdout and not (tmp_path / "live.duckdb").exists()


def test_recording_the_synthetic_source_again_continues_the_file(tmp_path):
    """Run 2 stores new trades after run 1's: ids go on (no duplicates), time goes on from the
    newest stored trade (the pause between the runs is generated, so 1s bars have no gap), and the
    prices go on from the stored ones."""
    for _ in range(2):
        out = statarb("record", "--db", "rec.duckdb", "--duration", "3", "--every", "1", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "generated prices" in out.stdout.splitlines()[0]
    first_new = int(out.stdout.splitlines()[-1].split("stopped: ")[1].split(" new")[0].replace(",", ""))
    assert first_new > 20
    con = TickStore(tmp_path / "rec.duckdb", read_only=True).con
    for symbol, n, distinct, bar_gap_ms, jump in con.execute("""
            WITH b AS (SELECT symbol, start, close, start - lag(start) OVER w AS gap,
                              abs(close / lag(close) OVER w - 1) AS jump
                       FROM bars_1s WINDOW w AS (PARTITION BY symbol ORDER BY start))
            SELECT t.symbol, t.n, t.d, max(b.gap), max(b.jump)
            FROM (SELECT symbol, count(*) n, count(DISTINCT trade_id) d FROM ticks GROUP BY symbol) t
            JOIN b USING (symbol) GROUP BY t.symbol, t.n, t.d""").fetchall():
        assert n == distinct, symbol
        assert bar_gap_ms <= 2_000, f"{symbol}: a {bar_gap_ms} ms hole between the runs"
        assert jump < 0.005, f"{symbol}: the second run's prices jumped {jump:.2%}"


def test_a_run_that_stores_nothing_new_says_so(tmp_path):
    from tests.test_replay import trades_rows, write

    dump = str(tmp_path / "BTCUSDT-trades-2023-11-14.csv")
    write(Path(dump), trades_rows(500))
    first = statarb("record", "--source", "replay", "--files", dump, "--db", "r.duckdb", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = statarb("record", "--source", "replay", "--files", dump, "--db", "r.duckdb", cwd=tmp_path)
    one_line_refusal(again, "produced 500 trades and none was new", "500 already stored")
    assert TickStore(tmp_path / "r.duckdb", read_only=True).tick_count() == 500


def test_a_pair_page_backtests_the_rule_it_shows_on_its_bars():
    """The dashboard's backtest button runs the rule of its controls on the view's bars: the same
    trades and figures as backtest_bars on those bars with those parameters, and the page's costs
    (the view carries its Rule: before, the button traded the default costs whatever the URL said)."""
    from statarb_kit import Session, SyntheticPair
    from statarb_kit.rule import Rule
    from statarb_kit.backtest import BacktestParams
    from statarb_kit.backtest.data import PairBars, backtest_bars
    from statarb_kit.widgets import Dashboard

    async def go():
        src = SyntheticPair(realtime=False, start_ms=1_700_000_000_000, max_ticks=150_000, seed=3)
        session = Session(source=src).start()
        dash = Dashboard(session, timeframe="1s", rule=Rule(hedge_window=60, z_window=30, corr_window=30, z_entry=1.5,
                                                            corr_min=0.0, fee_bps=7.0, slippage_bps=0.5),
                         refresh_s=3600)
        assert "Fees 7 bps and slippage 0.5 bp per leg" in dash.backtest.note.value  # says what it trades
        await session.wait_source()
        await session.flush()
        dash.run_backtest()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if "sak-backtest-result" in dash.backtest.note.value:
                break
        v = dash.view
        cols = v.arrays()
        want = backtest_bars(PairBars(v.symbols, "1s", cols["time"], cols["price_x"], cols["price_y"], "x"),
                             BacktestParams(z_entry=1.5, corr_min=0.0, z_window=30, corr_window=30, hedge_window=60,
                                            fee_bps=7.0, slippage_bps=0.5))
        shown = dash.backtest.note.value, len(dash.backtest.result.children)
        # a control changes the rule: the old rule's backtest goes, and both buttons say what they
        # now trade (the default exit follows an entry at or below 0.5: half of it)
        paper_before = dash.paper.result.value
        dash.controls.z_entry.value = 0.4
        after = (dash.backtest.note.value, len(dash.backtest.result.children), dash.paper.result.value,
                 dash.view.rule.z_exit, dash.backtest.button.disabled)
        dash.close()
        await session.stop()
        return shown, want, paper_before, after

    (note, figures), want, paper_before, after = asyncio.run(go())
    assert want.metrics.trades > 0 and f"{want.metrics.trades} trades" in note
    assert f"total {want.metrics.total_return:+.3%}" in note and figures == 3  # equity, drawdown, trade PnL
    note, figures, paper, z_exit, disabled = after
    assert "Fees 7 bps and slippage 0.5 bp per leg" in note and "trades, total" not in note and figures == 0
    assert "exit at z +0.5" in paper_before and "exit at z +0.2" in paper and z_exit == 0.2 and not disabled


def test_a_scan_row_backtests_on_the_bars_after_its_formation_and_links_only_market_data():
    from statarb_kit.scan import scan_pairs, synthetic_universe
    from statarb_kit.widgets.scan_view import ScanExplorer

    u = synthetic_universe(n_symbols=30, n_bars=2_000, seed=7)
    results = scan_pairs(u.closes)
    synthetic = ScanExplorer(u.closes, results, dashboard_url=None)
    assert "sak-open-dashboard" not in synthetic.title.value and "only in the synthetic universe" in synthetic.title.value
    synthetic.run_backtest()
    assert f"on the {int(round(2_000 * 0.3)):,} validation bars" in synthetic.backtest.note.value
    market = ScanExplorer(u.closes, results, dashboard_url="http://127.0.0.1:8866/")
    assert "source=live" in market.title.value and "sak-open-dashboard" in market.title.value


def test_time_axes_show_dates_once_a_chart_spans_days():
    import numpy as np

    from statarb_kit.widgets.charts import time_format

    t = np.datetime64("2026-01-01T10:00", "ms")
    assert time_format(t, t + np.timedelta64(30, "m")) == "%H:%M:%S"
    assert time_format(t, t + np.timedelta64(5, "h")) == "%H:%M"
    assert time_format(t, t + np.timedelta64(15, "h")) == "%m-%d %H:%M"  # crosses midnight UTC
    assert time_format(t, t + np.timedelta64(3, "D")) == "%m-%d %H:%M"


def test_a_page_says_when_it_is_catching_up():
    from statarb_kit.widgets.panels import behind_text

    now = 1_700_000_000_000
    assert behind_text(now - 2_000, 1_000, now) == ""  # a bar or two behind: live
    assert "16 min behind" in behind_text(now - 16 * 60_000, 1_000, now)
    assert behind_text(now - 200_000, 60_000, now) == ""  # 1m bars: 3 bars is not behind
    assert behind_text(0, 1_000, now) == ""  # nothing yet


def test_the_spread_distribution_counts_every_finite_row():
    import numpy as np

    from statarb_kit.widgets.charts import DistributionChart

    values = np.r_[np.nan, np.random.default_rng(3).normal(size=999), 1.5]
    chart = DistributionChart("d", bins=20)
    chart.update(values)
    assert int(chart.counts.sum()) == 1_000 and list(chart.now.x) == [1.5, 1.5]
    counts, edges = np.histogram(values[1:], bins=20)
    assert chart.counts.tolist() == counts.tolist() and np.array_equal(chart.edges, edges)
    assert list(chart.bars.y) == np.repeat(counts, 2).tolist()  # a step per bin, from edge to edge
    assert list(chart.bars.x) == np.repeat(edges, 2)[1:-1].tolist()
    assert (chart.x.min, chart.x.max) == (edges[0], edges[-1])  # the axis spans the bins


def test_the_scan_grid_shows_whole_headers_and_one_format_per_kind():
    from statarb_kit.scan import scan_pairs, synthetic_universe
    from statarb_kit.widgets.scan_view import GRID_COLUMNS, PROBABILITY_COLUMNS, ScanExplorer

    u = synthetic_universe(n_symbols=30, n_bars=1_000, seed=7)
    e = ScanExplorer(u.closes, scan_pairs(u.closes), dashboard_url=None)
    for c in GRID_COLUMNS:
        assert e.grid.column_widths[c] >= 8 * len(c) + 30  # "half_life_bars" was cut to "half_life_ba"
    formats = {c: r.format for c, r in e.grid.renderers.items()}
    assert {formats[c] for c in PROBABILITY_COLUMNS if c in formats} == {".2e"}
    assert {f for c, f in formats.items() if c not in PROBABILITY_COLUMNS} == {",.4~f"}
    ticks = [a for a in e.heatmap.axes if getattr(a, "tick_style", None)]
    assert all(a.tick_style["font-size"] == "11px" for a in ticks) and "USDT" not in "".join(e.heatmap.marks[0].row)


def test_a_portfolio_correlation_needs_twenty_sums():
    import numpy as np
    import pandas as pd

    from statarb_kit.backtest.portfolio import pnl_correlation

    rng = np.random.default_rng(5)
    index = pd.date_range("2026-01-01", periods=3 * 1_440, freq="1min", tz="UTC")  # 3 days of 1m PnL
    pnl = pd.DataFrame(rng.normal(size=(len(index), 3)), index=index, columns=["a", "b", "c"])
    corr, period, points = pnl_correlation(pnl)
    assert period == "1h" and points == 72
    assert np.allclose(corr, pnl.resample("1h").sum().corr(), atol=1e-12)
    corr, period, points = pnl_correlation(pnl.iloc[:600])  # 10 hours: too few hourly sums
    assert period == "" and points == 10 and corr.isna().all().all()


def test_a_backtest_result_is_forgotten_when_another_pair_is_shown():
    from statarb_kit.scan import scan_pairs, synthetic_universe
    from statarb_kit.widgets.scan_view import ScanExplorer

    u = synthetic_universe(n_symbols=30, n_bars=2_000, seed=7)
    e = ScanExplorer(u.closes, scan_pairs(u.closes), dashboard_url=None)
    first = e._pair
    e.run_backtest()
    assert f"{first[0]} / {first[1]}" in e.backtest.note.value and len(e.backtest.result.children) == 3
    other = next(o[1] for o in e.pick.options if o[1] != first)
    e.pick.value = other
    assert "sak-backtest-result" not in e.backtest.note.value and e.backtest.result.children == ()


def test_price_mid_is_refused_where_no_quotes_are_recorded(tmp_path):
    """``price=mid`` needs the quotes of the page (or ``--quotes`` of a live monitor): a watchlist,
    a page with ``quotes=false``, an attached page and a monitor without quotes are refused in one
    line before anything starts; a one-pair page takes it into its rule."""
    from statarb_kit.app import AppSettings
    from statarb_kit.errors import InvalidParameter

    assert AppSettings.parse("price=mid", env={}).trading_rule().price == "mid"
    for bad in ("price=mid&quotes=false", "price=mid&pairs=synthetic", "price=median"):
        with pytest.raises(InvalidParameter, match="price"):
            AppSettings.parse(bad, env={})
    out = statarb("monitor", "--price", "mid", "--port", "1", "--db", "m.duckdb", cwd=tmp_path)
    one_line_refusal(out, "--price mid needs the quotes", "--source live --quotes")
    assert list(tmp_path.iterdir()) == []
