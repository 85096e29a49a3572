"""One rule from research to live (issue 21): a recorded session's live alerts and events equal
the backtest's signals on the bars it stored, in every hedge mode, for the synthetic pair and for
a replay of Binance trade dumps; paper trading equals ``run_backtest`` on the same rows, also
across a restart on the file."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from statarb_kit import Session, TickStore
from statarb_kit.alerts import AlertRule, EventState, event_rows
from statarb_kit.backtest.data import bars_from_store
from statarb_kit.backtest.engine import run_backtest
from statarb_kit.backtest.frame import SignalFrame, signal_frame
from statarb_kit.funding import FundingRates, PairFunding
from statarb_kit.errors import InvalidParameter
from statarb_kit.paper import TRADE_COLUMNS, PaperBook, PaperDesk
from statarb_kit.rule import Rule, direction_of, entry_mask
from statarb_kit.sources import Replay, SyntheticPair

PAIR = ("BTCUSDT", "ETHUSDT")
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
HOUR = 3_600_000


def dump_files(tmp_path, minutes: float, seed: int = 5) -> list[list[str]]:
    """Binance trade dumps (the exact CSV layout, header included) of the synthetic pair's trades,
    one file per symbol and UTC day: the first day's files, then the second's."""
    src = SyntheticPair(PAIR, seed=seed, realtime=False, start_ms=T0 + 86_400_000 - int(minutes * 30_000),
                        max_ticks=int(2 * 20 * minutes * 60))

    async def collect():
        return [b async for b in src.stream()]

    batches = asyncio.run(collect())
    days: dict[str, list[str]] = {}
    for code, sym in enumerate(PAIR):
        rows = pd.concat([pd.DataFrame({"id": b.trade_id[b.sym == code], "price": b.price[b.sym == code],
                                        "qty": b.qty[b.sym == code], "time": b.ts[b.sym == code],
                                        "is_buyer_maker": b.is_buyer_maker[b.sym == code]}) for b in batches])
        rows["quote_qty"] = np.round(rows["price"] * rows["qty"], 8)
        rows = rows[["id", "price", "qty", "quote_qty", "time", "is_buyer_maker"]]
        for day, part in rows.groupby(rows["time"] // 86_400_000):
            name = f"{sym}-trades-{pd.Timestamp(int(day) * 86_400_000, unit='ms'):%Y-%m-%d}.csv"
            text = part.to_csv(index=False).replace("True", "true").replace("False", "false")
            (tmp_path / name).write_text(text)
            days.setdefault(name.rsplit("-trades-", 1)[1], []).append(str(tmp_path / name))
    return [days[d] for d in sorted(days)]


#: Both legs' funding around the recording (settled a few ms after the hour, as Binance does).
FUNDING = PairFunding(*(FundingRates(s, np.array([T0 + 16 * HOUR + 3, T0 + 24 * HOUR + 4, T0 + 32 * HOUR + 9]),
                                     np.array([1e-4, r, -2e-4]), "dump") for s, r in zip(PAIR, (3e-4, -1e-4))))


def record(db, source, rule: Rule, paper: dict | None = None, start_ms: int | None = 0):
    """Run ``source`` to its end through a Session on ``db`` with one view of ``rule`` (1s bars),
    and a paper book when ``paper`` gives its trading fields; the live alerts, events, the view's
    rows and the book."""

    async def go():
        async with Session(source=source, db=db, timeframes=("1s",), retain_bars=100_000) as session:
            view = session.pair(*PAIR, "1s", rule)
            desk = PaperDesk(session, flush_s=0.2)
            book = await desk.follow(view, FUNDING, start_ms, **paper) if paper is not None else None
            await session.wait_source()
            await session.flush()
            rows = view.arrays()
            if desk.books:
                book.update()
                await desk.close()
            return session.alerts(), session.events(), rows, book

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["rolling", "fixed", "kalman"])
@pytest.mark.parametrize("origin", ["synthetic", "replay"])
def test_live_alerts_and_events_equal_the_backtest_signals_on_the_stored_bars(tmp_path, origin, mode):
    rule = Rule(hedge_mode=mode, z_entry=1.5, corr_min=0.1, z_window=40, corr_window=40, hedge_window=90)
    db = tmp_path / "rec.duckdb"
    if origin == "synthetic":
        source = SyntheticPair(PAIR, seed=3, realtime=False, start_ms=T0, max_ticks=2 * 20 * 1_800)
    else:
        source = Replay([f for day in dump_files(tmp_path, 30) for f in day], progress=False)
    alerts, events, rows, _ = record(db, source, rule)

    bars = bars_from_store(db, PAIR, "1s")  # what a backtest of the file reads
    bars = bars.between(None, pd.Timestamp(int(rows["time"][-1]) + 1, unit="ms", tz="UTC"))  # the bars the view saw
    f = signal_frame(bars.close_time, bars.price_x, bars.price_y, rule)
    hits = np.flatnonzero(entry_mask(f.z, f.corr, rule.z_entry, rule.corr_min, f.beta))
    assert len(bars) > 1_500 and len(hits) >= 10
    assert alerts["time_ms"].tolist() == bars.time[hits].tolist()  # bar for bar (alerts: bar open times)
    assert alerts["direction"].tolist() == [direction_of(z) for z in f.z[hits]]
    np.testing.assert_allclose(alerts["z"], f.z[hits], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(alerts["beta"], f.beta[hits], rtol=1e-9)
    fired, _ = event_rows(bars.time, f.z, f.corr, AlertRule.of(rule), EventState())
    assert len(fired) >= 3 and events["time_ms"].tolist() == bars.time[fired].tolist()
    # the backtest enters on alert bars only, in the alert's direction
    trades = run_backtest(f, rule, bars.bar_s).trades
    entry_bar = np.searchsorted(f.time, ((trades["entry_time"] - pd.Timestamp(0, tz="UTC"))
                                         // pd.Timedelta(milliseconds=1)).to_numpy()) - rule.lag
    assert len(trades) >= 2 and set(bars.time[entry_bar]) <= set(alerts["time_ms"])
    by_time = dict(zip(alerts["time_ms"], alerts["direction"]))
    assert [by_time[t] for t in bars.time[entry_bar]] == trades["direction"].tolist()


def _rows_frame(rows: dict, since_ms: int, tf_ms: int = 1_000) -> SignalFrame:
    keep = rows["time"] >= since_ms
    return SignalFrame(rows["time"][keep] + tf_ms, rows["price_x"][keep], rows["price_y"][keep], rows["alpha"][keep],
                       rows["beta"][keep], rows["z"][keep], rows["corr"][keep])


def assert_trades_equal(book_trades: pd.DataFrame, result_trades: pd.DataFrame) -> None:
    want = result_trades.copy()
    for c in ("entry", "exit"):
        want[f"{c}_ms"] = ((want.pop(f"{c}_time") - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))
    got = book_trades.reset_index(drop=True)
    assert len(got) == len(want) and len(got) >= 3
    for c in ("entry_ms", "exit_ms", "direction", "reason", "hold_bars"):
        assert got[c].tolist() == want[c].tolist(), c
    for c in ("entry_z", "exit_z", "beta", "units_x", "units_y", "entry_x", "exit_y", "gross_pnl", "fees",
              "slippage", "costs", "funding", "pnl"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-12, atol=1e-12, err_msg=c)
    assert (got["status"].iloc[:-1] == "closed").all()


def test_paper_trades_equal_run_backtest_and_continue_after_a_restart(tmp_path):
    rule_kw = dict(z_entry=1.5, corr_min=0.1, z_window=40, corr_window=40, hedge_window=90)
    trading = dict(z_exit=-1.0, z_stop=4.0, max_hold=600, fee_bps=2.0, slippage_bps=1.0)  # long holds
    rule = Rule(**rule_kw, **trading)
    first, second = dump_files(tmp_path, 50)
    db = tmp_path / "paper.duckdb"

    _, _, rows, book = record(db, Replay(first, progress=False), Rule(**rule_kw), trading)
    assert book.rule == rule
    want = run_backtest(_rows_frame(rows, book.state.start_ms), rule, 1.0, FUNDING).trades
    assert_trades_equal(book.trades(), want)
    stored = TickStore(db, read_only=True).paper_trades(book.key)
    assert list(stored.columns) == list(TRADE_COLUMNS)
    pd.testing.assert_frame_equal(stored.reset_index(drop=True), book.trades().reset_index(drop=True),
                                  check_dtype=False)
    open_before = book.open.copy()

    # started again on the file: the book continues from its stored state over the rest of the trades
    _, _, rows2, book2 = record(db, Replay(second, progress=False), Rule(**rule_kw), trading, start_ms=None)
    assert book2.state.start_ms == book.state.start_ms and book2.state.closed >= book.state.closed
    want2 = run_backtest(_rows_frame(rows2, book.state.start_ms), rule, 1.0, FUNDING).trades
    assert_trades_equal(book2.trades(), want2)
    assert len(want2) > len(want)
    assert len(open_before) == 1  # a position was open when the session stopped: it is the same trade after
    again = book2.trades().set_index("seq").loc[int(open_before["seq"].iloc[0])]
    assert again["entry_ms"] == open_before["entry_ms"].iloc[0]
    assert again["direction"] == open_before["direction"].iloc[0] and again["status"] == "closed"
    assert again["exit_ms"] > open_before["exit_ms"].iloc[0]
    assert (book2.trades()["funding"] != 0).sum() >= 1  # a settlement (00:00:00.004 UTC) fell in a held trade


def test_a_paper_book_fills_at_the_touch_as_the_backtest_of_the_same_quotes(tmp_path):
    """The synthetic pair with quotes (a bid and ask after each trade): the paper book of a rule
    fills each leg at the ask (buying) or the bid (selling) in force at its fill bar's close, and
    its closed trades equal, fill for fill, a backtest of the stored bars and quotes. With a legging
    delay, the newest fill holds one leg (its exposure by hand) until the other leg's market has
    passed the delay."""
    from statarb_kit.backtest.data import backtest_bars, bars_from_store

    rule_kw = dict(z_entry=1.5, corr_min=0.1, z_window=40, corr_window=40, hedge_window=90)
    trading = dict(z_exit=0.0, fee_bps=2.0, slippage_bps=0.0)
    db = tmp_path / "touch.duckdb"
    source = SyntheticPair(PAIR, seed=5, realtime=False, start_ms=T0, max_ticks=2 * 20 * 1_200, quotes=True)
    _, _, rows, book = record(db, source, Rule(**rule_kw), trading)
    closed = book.closed
    assert len(closed) >= 5
    bars = bars_from_store(db, PAIR, "1s")
    assert bars.quotes is not None
    result = backtest_bars(bars, Rule(**rule_kw, **trading))
    want = result.trades.copy()
    want["entry_ms"] = want["entry_time"].dt.as_unit("ms").astype("int64")
    want = want.set_index("entry_ms")
    got = closed.set_index("entry_ms")
    common = got.index.intersection(want.index)
    assert len(common) >= 0.8 * len(got)  # the backtest starts at the first bar, the book at its own
    for c in ("entry_x", "entry_y", "exit_x", "exit_y", "fees", "pnl"):
        np.testing.assert_allclose(got.loc[common, c].to_numpy(float), want.loc[common, c].to_numpy(float),
                                   rtol=1e-12, err_msg=c)
    qx, qy = bars.quotes
    at = np.searchsorted(qx.start + 1_000, common.to_numpy())  # fill bar of each entry
    buy_x = got.loc[common, "units_x"].to_numpy() > 0
    np.testing.assert_allclose(got.loc[common, "entry_x"].to_numpy(), np.where(buy_x, qx.ask[at], qx.bid[at]),
                               rtol=1e-14)  # the mid plus half the spread: the ask to the last bit or two

    # two legs are two orders: x fills at once, y 250 ms later; until y's market passes that, one leg is held
    with pytest.raises(InvalidParameter, match="legging_ms needs a clock"):
        PaperBook(book.view, book.rule, legging_ms=250)
    newest = {"x": 0, "y": 0}
    book.legging_ms, book.first_leg, book.clock = 250, "x", newest.get
    if len(book.open):
        fill, t, held = "entry", book.open.iloc[0], "x"  # an entry holds its first leg
        at = int(t["entry_ms"])
    else:
        fill, t, held = "exit", book.closed.iloc[-1], "y"  # an exit still holds its second leg
        at = int(t["exit_ms"])
    newest["y"] = at + 249
    p = book.position()
    assert (p.pending_fill, p.pending_leg, p.pending_until) == (fill, "y", at + 250)
    assert p.exposure == pytest.approx(t[f"units_{held}"] * book.view.tail(f"price_{held}", 1)[0], rel=1e-15)
    assert p.exposure != 0
    newest["y"] = at + 250
    p = book.position()
    assert (p.pending_fill, p.pending_leg, p.pending_until, p.exposure) == ("", "", -1, 0.0)
    newest["x"] = 10**15  # the first leg's market is not the one waited for
    newest["y"] = at
    assert book.position().pending_leg == "y"


def test_a_live_view_priced_at_the_mid_equals_the_backtest_of_the_stored_quote_bars(tmp_path):
    """``price="mid"`` in a live view, on the shared real tape replayed with its quotes (1s bars,
    BTCUSDT against ETHUSDT): each row's prices are the quote mids in force at its bar's close,
    and its z and alerts equal a backtest's frame of the stored bars and quote bars with the same
    rule, bar for bar; the mid moves the z-score off the trade prices' (bid-ask bounce); a
    viewer's feed, which holds no quotes, refuses such a view in one line."""
    from statarb_kit.backtest.data import bars_frame
    from statarb_kit.monitor.remote import RemoteSession
    from statarb_kit.pair import PairView
    from tests.fake_binance import write_tape_dumps

    files, _ = write_tape_dumps(tmp_path)
    rule = Rule(z_entry=1.0, corr_min=-1.0, z_window=30, corr_window=30, hedge_window=60, price="mid")
    db = tmp_path / "mid.duckdb"
    pair = ("BTCUSDT", "ETHUSDT")

    async def go():
        async with Session(source=Replay(files, progress=False), db=db, timeframes=("1s",)) as session:
            view = session.pair(*pair, "1s", rule)
            await session.wait_source()
            await session.flush()
            return session.alerts(), view.arrays(), view.unquoted

    alerts, rows, unquoted = asyncio.run(go())
    bars = bars_from_store(db, pair, "1s")
    bars = bars.between(None, pd.Timestamp(int(rows["time"][-1]) + 1, unit="ms", tz="UTC"))
    f, f_last = bars_frame(bars, rule), bars_frame(bars, Rule(**{**rule.__dict__, "price": "last"}))
    assert len(bars) > 300 and (rows["time"] == bars.time).all() and unquoted == 0
    np.testing.assert_array_equal(rows["price_x"], f.price_x)  # the mid at each close (the touch of a fill there)
    np.testing.assert_array_equal(rows["price_y"], f.price_y)
    assert (rows["price_x"] != bars.price_x).mean() > 0.9  # not the trade prices
    ok = ~np.isnan(f.z)
    assert ok.sum() > 200
    np.testing.assert_allclose(rows["z"][ok], f.z[ok], rtol=1e-9, atol=1e-9)
    assert np.isnan(rows["z"][~ok]).all()
    assert np.nanmax(np.abs(f.z - f_last.z)) > 0.1  # the mid moves the z-score
    hits = np.flatnonzero(entry_mask(f.z, f.corr, rule.z_entry, rule.corr_min, f.beta))
    assert len(hits) >= 5 and alerts["time_ms"].tolist() == bars.time[hits].tolist()

    viewer = RemoteSession.__new__(RemoteSession)  # its feed only: no monitor needed
    stub = type("View", (), {"params": rule.pair_params(), "_feed": viewer, "x": 0, "y": 1, "timeframe": "1s",
                             "unquoted": 0})()
    with pytest.raises(InvalidParameter, match="price 'mid' needs the quotes where the bars are built"):
        PairView._priced(stub, np.array([T0]), np.ones(1), np.ones(1))
