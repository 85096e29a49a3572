"""The watchlist: pairs from lists, files and scans; its table equals its views; the page's rows."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from statarb_kit import InvalidParameter, Session
from statarb_kit.analytics import half_life
from statarb_kit.rule import Rule
from statarb_kit.sources import SyntheticGroups
from statarb_kit.watchlist import Watchlist, parse_pairs, read_watchlist
from statarb_kit.widgets.traffic import Traffic
from statarb_kit.widgets.watchlist_view import WatchlistView


def test_pairs_from_a_list_a_file_and_a_scan(tmp_path):
    assert parse_pairs("btcusdt/ethusdt, SOLUSDT/AVAXUSDT") == [("BTCUSDT", "ETHUSDT"), ("SOLUSDT", "AVAXUSDT")]
    assert parse_pairs(["A1USDT/B1USDT", ("A1USDT", "B1USDT"), "C1USDT,D1USDT"]) == [("A1USDT", "B1USDT"),
                                                                                    ("C1USDT", "D1USDT")]
    lines = tmp_path / "w.txt"
    lines.write_text("# my pairs\nBTCUSDT/ETHUSDT\nSOLUSDT,AVAXUSDT  # comment\n\n")
    assert read_watchlist(lines) == [("BTCUSDT", "ETHUSDT"), ("SOLUSDT", "AVAXUSDT")]
    scan = pd.DataFrame({"x": ["AUSDT", "CUSDT", "EUSDT"], "y": ["BUSDT", "DUSDT", "FUSDT"], "q_value": [0.01, 0.2, 0.03],
                         "selected": [True, False, True]})
    scan.to_csv(tmp_path / "scan.csv", index=False)
    assert read_watchlist(tmp_path / "scan.csv") == [("AUSDT", "BUSDT"), ("EUSDT", "FUSDT")]
    for bad, words in [("AUSDT/AUSDT", "two different"), ("AUSDT", "X/Y"), ("", "no pair")]:
        with pytest.raises(InvalidParameter, match=words):
            parse_pairs(bad)
    with pytest.raises(InvalidParameter, match="does not exist"):
        read_watchlist(tmp_path / "nope.txt")


def test_the_table_is_the_views_and_the_page_sends_only_what_changed():
    async def go():
        src = SyntheticGroups(n_groups=4, group_size=4, realtime=False, start_ms=1_700_000_000_000, max_ticks=60_000,
                              rate=3.0)
        session = Session(source=src, timeframes=("1s",)).start()
        watch = Watchlist(session, src.pairs(), "1s", Rule(hedge_window=60, z_window=30, corr_window=30, z_entry=1.5,
                                                           corr_min=-1.0))
        with pytest.raises(InvalidParameter, match="does not record"):
            Watchlist(session, [("BTCUSDT", "G00A00USDT")], "1s")
        with Traffic() as traffic:
            view = WatchlistView(session, watch, refresh_s=3600)
            await session.wait_source()
            await session.flush()
            table = watch.table()
            traffic.reset()
            view.refresh()
            first = traffic.messages
            traffic.reset()
            view.refresh()  # nothing changed: nothing sent
            again = traffic.messages
            assert list(view.body.children) == view.lines  # rows never move: their CSS order ranks them
            shown = [view.rows[i].value for i in sorted(range(len(view.rows)), key=lambda i: int(view.lines[i].layout.order))]
            assert [s.split("data-pair='")[1].split("'")[0] for s in shown] == view.ranked()
        view.close()
        watch.close()
        await session.stop()
        return watch, table, first, again, shown, session

    watch, table, first, again, shown, session = asyncio.run(go())
    assert len(table) == 4 * 6 and first > 0 and again == 0
    for row, v in zip(table.itertuples(), watch.views):
        frame = v.arrays()
        assert row.z == frame["z"][-1] or (np.isnan(row.z) and np.isnan(frame["z"][-1]))
        assert row.beta == frame["beta"][-1] and row.rows == len(v) and row.warm
        spread = frame["spread"][-60:]
        assert row.half_life_bars == pytest.approx(half_life(spread).bars, rel=1e-9, nan_ok=True)
    assert table["last_event"].astype(bool).sum() > 0 and session.status().events > 0
    zs = [abs(float(t.split("sak-wl-z")[1].split(">")[1].split("<")[0])) for t in shown if ">-<" not in t]
    assert zs == sorted(zs, reverse=True)  # shown by |z|, largest first


def test_a_watchlist_page_holds_bounded_history_per_symbol():
    """200 pairs over 100 symbols: 2 h of 1s bars per symbol, 2 h of stored ticks, 2,000 recent
    ticks per symbol in memory (at 100,000 each the tick rings alone grew to 440 MB in a soak)."""
    from statarb_kit.app import App, AppSettings

    async def go():
        app = App(AppSettings.parse("pairs=synthetic&timeframe=1s", {"STATARB_HISTORY_MIN": "1"}))
        s = app.session
        got = (len(app.watchlist), s.retained_bars("1s"), s.retained_ticks, s.memory_retention_ms)
        await app.stop()
        return got

    assert asyncio.run(go()) == (200, 7_200, 2_000, 2 * 3_600_000)


def test_the_synthetic_groups_show_their_planted_structure_on_the_page_windows():
    """The watchlist page's default source and windows (1s bars, hedge 120, z and correlation 60):
    pairs inside a group are correlated and well hedged, pairs across groups are not (a page that
    calls the groups cointegrated must show it, not correlations of 0.0-0.3 and R² 0.0008)."""
    async def go():
        src = SyntheticGroups(n_groups=3, group_size=3, realtime=False, start_ms=1_700_000_000_000,
                              max_ticks=9 * 2 * 1_200)
        session = Session(source=src, timeframes=("1s",)).start()
        rule = Rule(hedge_window=120, z_window=60, corr_window=60)
        g = src.groups()
        inside = Watchlist(session, src.pairs(), "1s", rule)
        across = Watchlist(session, [(g[0][0], g[1][0]), (g[1][1], g[2][1]), (g[0][2], g[2][2])], "1s", rule)
        await session.wait_source()
        await session.flush()
        out = [(w.table(), [v.summary().fit.r2 for v in w.views]) for w in (inside, across)]
        await session.stop()
        return out, src

    ((t_in, r2_in), (t_out, r2_out)), src = asyncio.run(go())
    assert np.median(t_in["corr"]) > 0.3 and np.median(r2_in) > 0.75, (t_in["corr"].tolist(), r2_in)
    assert np.median(np.abs(t_out["corr"])) < 0.2, t_out["corr"].tolist()
    assert "cointegrated" in src.truth() and "generated prices" in src.truth()
