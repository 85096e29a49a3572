"""Dashboard components, kernel side: incremental drawing, controls, tests, export, traffic."""

import asyncio
import base64
import re

import numpy as np
import pandas as pd
import pytest

from statarb_kit import Session
from statarb_kit.rule import Rule
from statarb_kit.widgets import Dashboard
from statarb_kit.widgets.segments import SegmentedLine, thin
from statarb_kit.widgets.traffic import Traffic
from tests.conftest import QueueSource
from tests.test_pair_view import synthetic_batches

RULE = Rule(hedge_window=40, z_window=20, corr_window=20)


async def dashboard_with(batches, rule=RULE, **kw):
    src = QueueSource()
    session = Session(source=src, flush_interval_s=0.01).start()
    dash = Dashboard(session, timeframe="1s", rule=rule, refresh_s=3600, **kw)  # refresh by hand
    for b in batches:
        await src.put(b)
    await session.flush()
    dash.refresh()
    return session, dash, src


def z_points(dash) -> int:
    return dash.z.points


def test_charts_follow_the_view_and_only_new_rows_are_appended():
    async def go():
        batches = synthetic_batches(400)
        session, dash, src = await dashboard_with(batches[:40])
        first = len(dash.view)
        assert dash.z.points == dash.price.points // 2 == first
        frozen_before = [m for _, seg in dash.z.lines for m in seg.marks[:-1]]
        for b in batches[40:]:
            await src.put(b)
        await session.flush()
        dash.refresh()
        frozen_after = [m for _, seg in dash.z.lines for m in seg.marks[:-1]]
        assert dash.z.points > first and dash.z.points - len(frozen_after) + 1 >= len(dash.view) - 400
        assert frozen_after[: len(frozen_before)] == frozen_before  # old segments were not redrawn
        got = np.concatenate([np.asarray(m.y) for m in dash.z.lines[0][1].marks])
        z = dash.view.arrays()["z"]
        np.testing.assert_array_equal(np.unique(got[~np.isnan(got)]), np.unique(z[~np.isnan(z)]))
        await session.stop()

    asyncio.run(go())


def test_warming_up_message_until_the_z_window_is_full():
    async def go():
        session, dash, _ = await dashboard_with(synthetic_batches(40), rule=Rule(hedge_window=100, z_window=60))
        title = dash.z.figure.title
        assert re.search(r"warming up: \d+ of 161 bars", title), title  # hedge 100 + z 60 + the bar itself
        assert "warming up" in dash.hedge.widget.value
        await session.stop()

    asyncio.run(go())


def test_controls_change_the_view_and_redraw():
    async def go():
        session, dash, _ = await dashboard_with(synthetic_batches(300), rule=RULE.with_(z_entry=50.0, corr_min=0.0))
        z_before = np.asarray(dash.z.lines[0][1].live.y).copy()
        dash.controls.z_window.value = 40
        assert dash.view.params.z_window == 40 and "window 40" in dash.z.figure.title
        assert not np.array_equal(np.asarray(dash.z.lines[0][1].live.y), z_before)
        dash.controls.z_entry.value = 1.2
        assert dash.view.rule.z_entry == 1.2 and list(dash.z.upper.y) == [1.2, 1.2]
        dash.controls.corr_min.value = -0.3
        assert list(dash.corr.line.y) == [-0.3, -0.3]
        dash.controls.hedge_mode.value = "kalman"
        assert dash.view.params.hedge_mode == "kalman" and "kalman hedge" in dash.spread.figure.title
        dash.controls.x.value, dash.controls.y.value = "BBBUSDT", "AAAUSDT"
        assert dash.view.name == "BBBUSDT/AAAUSDT" and "BBBUSDT (left)" in dash.price.figure.title
        dash.controls.y.value = "BBBUSDT"  # same as x: refused, clearly
        assert "different symbols" in dash.controls.error.value and dash.view.name == "BBBUSDT/AAAUSDT"
        await session.stop()

    asyncio.run(go())


def test_adf_runs_in_the_background_and_shows_results():
    async def go():
        session, dash, _ = await dashboard_with(synthetic_batches(300))
        dash.run_tests()
        assert dash.tests.button.disabled
        await asyncio.wait_for(asyncio.gather(*session._owned.running() - {dash._task}), 30)
        html = dash.tests.result.value
        await session.stop()
        return html, dash.tests.button.disabled

    html, disabled = asyncio.run(go())
    assert not disabled
    for text in ("ADF", "Engle-Granger", "p-value", "critical (MacKinnon, applies)", "lags"):
        assert text in html


def test_alert_log_and_markers_show_alerts_newest_first():
    async def go():
        session, dash, _ = await dashboard_with(synthetic_batches(300), rule=RULE.with_(z_entry=1.0, corr_min=-1.0))
        out = dash.alert_log.table.value, dash.alert_log.count.value, list(session.alert_log)
        markers = len(dash.z.long.x) + len(dash.z.short.x)
        rings = sorted(np.asarray(dash.z.events.x).astype("datetime64[ms]").astype(np.int64))
        events = sorted(e.time_ms for e in session.event_log)
        await session.stop()
        return (*out, markers, rings, events)

    table, count, alerts, markers, rings, events = asyncio.run(go())
    assert len(alerts) > 0 and f">{len(alerts)}<" in count and markers == len(alerts)
    assert 0 < len(events) < len(alerts) and rings == events  # a ring where the pair entered the condition
    times = re.findall(r"<td>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)Z</td>", table)
    assert times == sorted(times, reverse=True) and len(times) == min(len(alerts), 100)


def test_markers_are_every_bar_of_the_line_drawn_that_meets_the_rule_and_its_events():
    """After a parameter change (a new z line) and after new bars: a marker on each bar of the
    window drawn that meets the rule (by hand: |z| >= 1, corr >= -1), each alert the session
    fired on that line among them; a ring on each event the session fired on it, every ring a
    bar that meets the rule after a calm one or a published event; the log counts the line's."""
    rule = RULE.with_(z_entry=1.0, corr_min=-1.0)

    def by_hand(dash):
        c = dash.view.arrays()
        hit = np.isfinite(c["z"]) & (np.abs(c["z"]) >= 1.0) & (c["corr"] >= -1.0)
        return c, c["time"][hit].tolist()

    def drawn(dash):
        return sorted(np.concatenate([dash.z.long.x, dash.z.short.x]).astype("datetime64[ms]").astype(np.int64))

    async def go():
        batches = synthetic_batches(600)
        half = len(batches) // 2
        session, dash, src = await dashboard_with(batches[:half], rule=rule)
        dash.controls.z_window.value = 30  # a new z line
        dash.refresh()
        after_change = drawn(dash), by_hand(dash)[1]
        before = len(session.alert_log), len(session.event_log)
        for b in batches[half:]:
            await src.put(b)
        await session.flush()
        dash.refresh()
        c, hits = by_hand(dash)
        out = (after_change, drawn(dash), hits, c, list(session.alert_log)[before[0]:],
               list(session.event_log)[before[1]:],
               sorted(np.asarray(dash.z.events.x).astype("datetime64[ms]").astype(np.int64)),
               dash.alert_log.count.value, len(dash.view), dash.view.name)
        await session.stop()
        return out

    (changed, hand_changed), shown, hits, c, alerts, events, rings, count, rows, name = asyncio.run(go())
    assert len(changed) > 0 and changed == hand_changed  # the new line's alerts, at once
    assert len(shown) > len(changed) and shown == hits
    assert len(alerts) > 0 and {a.time_ms for a in alerts} <= set(shown)  # the session's, on this line
    mine = [e for e in events if e.pair == name]
    assert len(mine) > 0 and {e.time_ms for e in mine} <= set(rings) and set(rings) <= set(hits)
    assert f">{len(shown):,}<" in count and f"over the {rows:,} bars drawn" in count


def test_export_produces_csv_files_with_header_and_rows(tmp_path):
    from statarb_kit.export import export_csv

    async def go():
        session, dash, _ = await dashboard_with(synthetic_batches(200), rule=RULE.with_(z_entry=1.0, corr_min=-1.0))
        dash.export.prepare()
        files = export_csv(session, dash.view, tmp_path)
        html = dash.export.links.value
        await session.stop()
        return html, files

    html, files = asyncio.run(go())
    links = re.findall(r"download='([^']+)' href='data:text/csv;base64,([^']+)'", html)
    assert [name for name, _ in links] == [f.name for f in files]
    for (name, data), path in zip(links, files):
        text = base64.b64decode(data).decode()
        assert text == path.read_text()
        lines = text.splitlines()
        assert len(lines) > 2 and lines[0].startswith("time,")
    assert "open,high,low,close" in files[0].read_text().splitlines()[0]


def test_refresh_payload_is_proportional_to_new_rows_not_history():
    async def median_bytes(session, dash, src, traffic, batches):
        sizes = []
        for b in batches:  # one batch (~3.7 s of 1s bars) per refresh
            await src.put(b)
            await session.flush()
            traffic.reset()
            dash.refresh()
            sizes.append(traffic.bytes)
        return float(np.median(sizes)), len(dash.view)

    async def go():
        batches = synthetic_batches(4_000)
        with Traffic() as traffic:
            session, dash, src = await dashboard_with(batches[:40])
            short = await median_bytes(session, dash, src, traffic, batches[40:60])
            for b in batches[60:900]:
                await src.put(b)
            await session.flush()
            dash.refresh()
            long = await median_bytes(session, dash, src, traffic, batches[900:920])
            await session.stop()
        return short, long

    (small, rows_small), (large, rows_large) = asyncio.run(go())
    assert rows_large > 5 * rows_small
    assert 0 < large < 1.5 * small, (small, large)


def test_thinning_bounds_points_and_keeps_extremes():
    x = np.arange(100_000).astype("datetime64[ms]")
    y = np.sin(np.arange(100_000) / 50.0)
    y[12_345] = 9.0
    tx, ty = thin(x, y, 2_000)
    assert len(tx) <= 2_000 and ty.max() == 9.0 and np.all(np.diff(tx.astype(np.int64)) > 0)
    import bqplot as bq
    seg = SegmentedLine({"x": bq.DateScale(), "y": bq.LinearScale()}, ["black"], segment=100, max_points=1_000)
    for i in range(0, 100_000, 250):
        seg.extend(x[i:i + 250], y[i:i + 250])
    assert seg.points <= 1_000 + 100 and 9.0 in np.concatenate([np.asarray(m.y) for m in seg.marks])


def test_a_failing_refresh_is_reported_and_the_feed_goes_on():
    async def go():
        src = QueueSource()
        session = Session(source=src, flush_interval_s=0.01).start()
        dash = Dashboard(session, timeframe="1s", rule=RULE, refresh_s=0.02)
        dash.hedge.update = lambda *a: (_ for _ in ()).throw(RuntimeError("draw failed"))
        for b in synthetic_batches(100):
            await src.put(b)
        await session.flush()
        await asyncio.sleep(0.2)
        st = session.status()
        rows = len(dash.view)
        await session.stop()
        return st, rows

    st, rows = asyncio.run(go())
    assert st.errors >= 1 and "draw failed" in st.last_error and rows > 50


def test_app_settings_from_query_string_and_environment():
    from statarb_kit import InvalidParameter
    from statarb_kit.app import AppSettings

    s = AppSettings.parse("?symbols=ethusdt,btcusdt&timeframe=1m&z_entry=2.5&z_window=30&hedge_mode=kalman",
                          {"STATARB_TIMEFRAME": "5m", "STATARB_CORR_MIN": "0.3"})
    assert s.symbols == ("ETHUSDT", "BTCUSDT") and s.timeframe == "1m" and s.z_entry == 2.5 and s.corr_min == 0.3
    assert s.trading_rule().hedge_mode == "kalman"
    old = AppSettings.parse("?z=2.5&hedge=fixed", {"STATARB_CORR": "0.3"})  # the old short names still work
    assert (old.z_entry, old.corr_min, old.hedge_mode) == (2.5, 0.3, "fixed")
    assert s.trading_rule().z_window == 30 and s.trading_rule().z_entry == 2.5
    for bad, words in [("timeframe=7q", "not one of"), ("z=-1", "z_entry"), ("symbols=btcusdt", "two different"),
                       ("z_window=abc", "not a valid int"), ("colour=red", "unknown setting"),
                       ("source=kraken", "not available"), ("z_window=1", "z_window"),
                       ("history_min=1e9", "history_min must be between 0 and 1440"),
                       ("db=/tmp/x.duckdb", "'db' is chosen when the server starts"),
                       ("ws_url=ws://10.0.0.1", "statarb dashboard --ws-url"), ("rest_url=http://x", "not in the URL"),
                       ("preview_s=5", r"server starts \(STATARB_PREVIEW_S in its environment\)")]:
        with pytest.raises(InvalidParameter, match=words):
            AppSettings.parse(bad, {})
    # the operator's settings come from the environment that `statarb dashboard` sets
    assert AppSettings.parse("?timeframe=1m", {"STATARB_DB": "x.duckdb"}).db == "x.duckdb"
    live = AppSettings.parse("?source=live", {"STATARB_WS_PATH": "/market/stream", "STATARB_WS_URL": "ws://127.0.0.1:9"})
    assert live.make_source().config.ws_path == "/market/stream"


def test_every_annualised_figure_follows_one_rule():
    """Sharpe and annual return are shown "a year" from MIN_ANNUALISE_DAYS of data on, and withheld
    with the span before: in the equity chart's title, the backtest panel and the portfolio's
    per-pair table alike (a 20-minute backtest printed "Sharpe -1048.15" in a title)."""
    import math

    from statarb_kit.backtest import BacktestParams, backtest
    from statarb_kit.backtest.engine import MIN_ANNUALISE_DAYS, annual_note
    from statarb_kit.widgets.backtest_view import equity_figure

    assert annual_note(1.234, 31 / 365) == "Sharpe 1.23 a year"
    withheld = f"no annual Sharpe from 20 min of data (needs {MIN_ANNUALISE_DAYS:g} days)"
    assert annual_note(-1048.15, 20 / 1_440 / 365) == withheld
    assert annual_note(0.05, 2.1 / 365, "return", "{:+.2%}") == "no annual return from 2.1 days of data (needs 30 days)"
    assert annual_note(math.nan, 1.0) == "Sharpe n/a (no trades or flat)"
    rng = np.random.default_rng(3)
    for minutes, shown in ((20, "no annual Sharpe from 20 min"), (60 * 24 * 40, "a year")):
        n = minutes
        x = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        y = x * np.exp(rng.normal(0, 2e-3, n))
        t = 1_700_000_000_000 + 60_000 * np.arange(1, n + 1)
        r = backtest(t, x, y, BacktestParams(z_entry=1.0, z_window=5, corr_window=5, hedge_window=5, corr_min=-1),
                     60.0)
        assert r.metrics.trades > 0
        title = equity_figure(r).title
        printed = f"Sharpe {r.metrics.sharpe:.2f}" in title
        assert shown in title and printed == (shown == "a year"), title


def test_count_axes_have_whole_distinct_ticks_and_percent_axes_enough_decimals():
    from statarb_kit.widgets.charts import DistributionChart, integer_ticks, percent_format

    for top in (1, 2, 3, 7, 95, 1_234):
        ticks = integer_ticks(top)
        assert ticks[0] == 0 and ticks[-1] >= top and len(set(ticks)) == len(ticks) and ticks.dtype.kind == "i"
    for lo, hi in ((-0.0009, -0.0004), (-0.05, 0.05), (0.001, 0.0012)):  # ".2%" printed -0.07% twice
        fmt = percent_format(lo, hi)
        labels = [f"{v:{fmt}}" for v in np.linspace(lo, hi, 6)]
        assert len(set(labels)) == 6, (fmt, labels)
    chart = DistributionChart("spread")
    chart.update(np.array([0.0, 0.1, 0.1, 0.2, 0.2, 0.2, 0.3]))
    assert list(chart.count_axis.tick_values) == [0, 1, 2, 3]
    assert chart.y.max > 3 / (1 - 0.45) - 1e-9  # room above the tallest bar for the legend


def test_the_z_chart_keeps_room_for_its_legend_and_names_only_what_it_draws():
    from statarb_kit.widgets.charts import LEGEND_ROOM, ZChart

    chart = ZChart(2.0)
    t = 1_700_000_000_000 + 1_000 * np.arange(50)
    z = np.sin(np.arange(50) / 5) * 3.0
    chart.reset({"time": t, "z": z})
    lo, hi = float(z.min()), float(z.max())
    scale = chart.y["z"]
    assert scale.min < lo and (scale.max - hi) / (scale.max - scale.min) >= LEGEND_ROOM - 0.05
    assert not any(m.display_legend for m in (chart.long, chart.short, chart.events))
    chart.set_alerts(t[z > 2.0], z[z > 2.0])
    assert chart.short.display_legend and not chart.long.display_legend  # no LONG marker drawn: not listed


def test_the_hedge_panel_shows_the_planted_truth_and_why_a_short_window_misses_it():
    from statarb_kit.widgets.panels import planted_note

    short = planted_note((20.0, 300.0), 120, 1.0, "rolling")
    assert "planted: beta 20, half-life 300 s" in short and "spans 0.4 half-lives" in short and "3,000 bars" in short
    assert "spans" not in planted_note((20.0, 300.0), 3_600, 1.0, "rolling")
    assert "spans" not in planted_note((20.0, 300.0), 120, 1.0, "kalman")


def test_a_histogram_with_nothing_to_draw_shows_no_stale_bars():
    from statarb_kit.widgets.charts import DistributionChart

    chart = DistributionChart("spread")
    chart.update(np.linspace(0.0, 1.0, 50), "distribution of the spread")
    assert chart.counts.sum() == 50
    chart.update(np.full(3, np.nan), "distribution of the spread")  # a new view with no spread yet
    assert chart.figure.title == "distribution of the spread (0 bars)" and chart.counts.sum() == 0
    assert not np.asarray(chart.bars.y).any()


def test_a_backtests_charts_share_one_time_axis():
    """Equity, drawdown and z start and end at the frame's first and last bar, though z is NaN
    until its window fills (its chart started hours later than the equity's)."""
    from statarb_kit.backtest import BacktestParams, backtest
    from statarb_kit.widgets.backtest_view import drawdown_figure, equity_figure, signal_figure

    rng = np.random.default_rng(5)
    n = 600
    x = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    y = x * np.exp(rng.normal(0, 2e-3, n))
    t = 1_700_000_000_000 + 60_000 * np.arange(1, n + 1)
    r = backtest(t, x, y, BacktestParams(z_entry=1.0, z_window=120, corr_window=5, hedge_window=120, corr_min=-1),
                 60.0)
    spans = {(f.marks[0].scales["x"].min, f.marks[0].scales["x"].max)
             for f in (equity_figure(r), drawdown_figure(r), signal_figure(r))}
    assert spans == {(np.datetime64(int(t[0]), "ms"), np.datetime64(int(t[-1]), "ms"))}


def test_time_and_value_ticks_are_round_and_clear_of_both_ends():
    from statarb_kit.widgets.charts import TICK_INSET, time_ticks, value_ticks

    day = 86_400_000
    start = 1_733_356_440_000  # 2024-12-04 23:54 UTC
    for span, fmt in ((20 * 60_000, "%m-%d %H:%M"), (8 * 60_000, "%m-%d %H:%M"), (5 * 3_600_000, "%m-%d %H:%M"), (3 * day, "%m-%d %H:%M"),
                      (40 * day, "%m-%d"), (400 * day, "%Y-%m-%d")):
        ticks, got = time_ticks(start, start + span)
        t = ticks.astype(np.int64)
        assert got == fmt and 1 <= len(t) <= 5, (span, got, ticks)
        assert (t >= start + TICK_INSET * span).all() and (t <= start + (1 - TICK_INSET) * span).all()
        step = np.diff(t)
        assert len(set(step.tolist())) <= 1 and (len(t) == 1 or t[0] % step[0] == 0)  # round UTC multiples
        labels = [pd.Timestamp(v, unit="ms").strftime(fmt) for v in t]
        assert len(set(labels)) == len(labels)
    assert time_ticks(start + 600_000, start + 1_800_000)[1] == "%H:%M:%S"  # within an hour of one day
    assert time_ticks(start + 600_000, start + 1_800_000, dated=True)[1] == "%m-%d %H:%M"
    assert len(time_ticks(start, start)[0]) == 1  # one bar: one tick in the middle
    for lo, hi in ((-29.7, 20.4), (-0.0008, 0.00003), (59_700.0, 60_010.0), (0.0, 1.0)):
        v = value_ticks(lo, hi)
        inset = TICK_INSET * (hi - lo)
        assert 2 <= len(v) <= 5 and (v >= lo + inset - 1e-12).all() and (v <= hi - inset + 1e-12).all()
        step = np.diff(v)[0]
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert min(abs(mantissa - k) for k in (1, 2, 5, 10)) < 1e-9 and np.allclose(v / step, np.round(v / step))
    assert value_ticks(5.0, 5.0).tolist() == [5.0]
