"""The live client on real Binance USD-M frames (the shared tape of 2024-08-08, BTCUSDT and
ETHUSDT): the fake replays them byte for byte, paced by their receive times, and answers REST from
the same trades; clean, with dropped connections, and with runs of trades withheld from the
stream (past the 1,000 recent trades: aggregates without a key, historicalTrades with one).

Stored ticks equal the tape; 1s, 1m and 5m bars equal a pandas resample of it (OHLC, volume,
quote volume, VWAP, count). The tape is from 2024, so every bar is final on arrival and each later
trade of it corrects a stored bar: that path stays exact too."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from statarb_kit import Session, TickStore
from statarb_kit.session import SessionStatus
from statarb_kit.bars import timeframe_ms
from statarb_kit.exchange.binance.live import BinanceLive
from tests.fake_binance import FakeBinance, aggregate, recorded_files
from tests.test_binance_live import assert_aggregates_sum, config, stored, until

SPEED = 25.0  # 343 s of tape in about 14 s


async def drops(fake: FakeBinance) -> None:
    """Drop every connection every ~2 s (50 s of tape)."""
    await asyncio.sleep(fake.start_delay_s + 1.0)
    while not fake.done:
        fake.drop()
        await asyncio.sleep(2.0)


def cutting_runs(fake: FakeBinance, length: int, count: int = 3) -> dict[str, list[tuple[int, int]]]:
    """Per symbol, ``count`` runs of about ``length`` trade ids spread over the tape, each starting
    and ending inside an aggregate of 3 or more trades: a gap edge that splits an aggregate."""
    runs = {}
    for s, tape in fake.tapes.items():
        big = [a for a in aggregate(tape, len(tape.ts)) if a["l"] - a["f"] >= 2]
        firsts = np.array([a["f"] for a in big])
        out = []
        for k in range(count):
            a = big[(k + 1) * len(big) // (count + 2)]
            b = big[min(len(big) - 1, int(np.searchsorted(firsts, a["f"] + length)))]
            out.append((a["f"] + 1, b["l"] - 1))
        runs[s] = out
    return runs


def record(db, kind: str, **cfg) -> tuple[FakeBinance, BinanceLive, SessionStatus]:
    async def go():
        async with FakeBinance(recording=recorded_files(), speed=SPEED, wait_for_client=True) as fake:
            src = BinanceLive(tuple(fake.tapes), config(fake, **cfg))
            session = Session(source=src, db=db, flush_interval_s=0.05).start()
            if kind == "withheld":  # runs past the recent trades' reach, cut inside aggregates
                fake.withheld = cutting_runs(fake, 1_500)
            misbehave = asyncio.create_task(drops(fake)) if kind == "drops" else None
            await fake.wait_done(timeout=120)
            total = sum(fake.printed.values())
            await until(lambda: session.status().ticks_stored >= total and src.pending_gaps == 0, timeout=60,
                        what="every trade of the tape stored")
            if misbehave:
                misbehave.cancel()
            await session.stop()
            return fake, src, session.status()

    return asyncio.run(go())


def resampled(truth: pd.DataFrame, tf_ms: int) -> pd.DataFrame:
    """Bars by pandas alone: trades grouped by symbol and UTC period of ``tf_ms``."""
    t = truth.assign(start=truth["ts"] // tf_ms * tf_ms, quote=truth["price"] * truth["qty"])
    g = t.sort_values("trade_id").groupby(["symbol", "start"], sort=True)
    bars = g.agg(open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
                 volume=("qty", "sum"), quote_volume=("quote", "sum"), trades=("price", "size")).reset_index()
    bars["vwap"] = bars["quote_volume"] / bars["volume"]
    return bars


@pytest.mark.parametrize("kind,key", [("clean", None), ("drops", None), ("withheld", None), ("withheld", "k")])
def test_the_real_tape_is_stored_exactly_and_its_bars_equal_a_resample(tmp_path, kind, key):
    db = tmp_path / "tape.duckdb"
    fake, src, status = record(db, kind, api_key=key)
    assert status.corrected_bars > 0  # bars from 2024 are final on arrival: later trades correct them
    truth = fake.truth()
    assert len(truth) == 21_313 + 14_076
    got = stored(db)
    assert len(got) == len(truth) and got["symbol"].tolist() == truth["symbol"].tolist()
    for col in ("trade_id", "ts", "price", "is_buyer_maker"):
        np.testing.assert_array_equal(got[col].to_numpy(), truth[col].to_numpy(), err_msg=col)
    exact = (got["via"] != "agg_split").to_numpy()
    np.testing.assert_array_equal(got["qty"].to_numpy()[exact], truth["qty"].to_numpy()[exact])
    cut = 0
    for s, tape in fake.tapes.items():
        cut += assert_aggregates_sum(got[got["symbol"] == s].reset_index(drop=True), aggregate(tape, len(tape.ts)))
    via = got["via"].value_counts().to_dict()
    if kind == "clean":
        assert via == {"stream": len(truth)} and src.status.reconnects == 0
    elif kind == "drops":  # back at once: the recent trades reach; a loaded machine's slower return may
        # need aggregates for a gap (their sizes averaged, counted, totals kept): never for most trades
        assert src.status.reconnects >= 3 and via.get("agg_split", 0) <= 0.1 * len(truth)
        assert (via.get("agg_split", 0) > 0) == (src.status.averaged_aggregates > 0)
    elif key is None:  # withheld runs past the recent trades' reach: aggregates, their totals kept
        assert via.get("agg_split", 0) > 1_000 and src.status.averaged_aggregates > 0
        assert cut >= 6  # each run's first edge cuts an aggregate: its streamed part kept, only the rest spread
    else:  # with a key: trade by trade
        assert via.get("historical_trades", 0) > 1_000 and "agg_split" not in via
        assert fake.api_keys_seen and set(fake.api_keys_seen) == {"k"}
    store = TickStore(db, read_only=True)
    try:
        for tf in ("1s", "1m", "5m"):
            bars = store.bars(tf).astype({"symbol": str}).reset_index(drop=True)
            want = resampled(truth, timeframe_ms(tf))
            assert len(bars) == len(want), tf
            np.testing.assert_array_equal(bars["start"].to_numpy(), want["start"].to_numpy())
            for col in ("open", "high", "low", "close", "trades"):
                np.testing.assert_array_equal(bars[col].to_numpy(), want[col].to_numpy(), err_msg=f"{tf} {col}")
            for col in ("volume", "quote_volume", "vwap"):
                np.testing.assert_allclose(bars[col].to_numpy(), want[col].to_numpy(), rtol=1e-9,
                                           err_msg=f"{tf} {col}")
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["clean", "drops"])
def test_the_live_client_stores_the_tapes_quotes_exactly_through_drops(tmp_path, kind):
    """``@bookTicker`` beside ``@trade`` on the same routed connections (``quotes=True``), the
    recording's real quote frames replayed: clean, every quote of the tape is stored, field for
    field, in order, once; with a drop every 2 s, every quote the fake sent is stored except
    those in flight on a dropped connection (none twice, none made up), each span without quotes
    is recorded as a quote gap, and the trades stay exact. The quote bars stored live (1s, 1m, 5m)
    equal, to the bit, those computed from the stored quotes afterwards, and those of the tape's
    own rows for the quotes stored."""
    from statarb_kit.quotes import quote_bar_rows, quote_bars, quotes_of_frame
    from tests.fake_binance import read_tape_quotes

    db = tmp_path / f"{kind}.duckdb"

    async def go():
        async with FakeBinance(recording=recorded_files(), speed=SPEED, wait_for_client=True, quotes=True) as fake:
            src = BinanceLive(tuple(fake.tapes), config(fake, quotes=True))
            assert all(u.count("@bookTicker") == u.count("@trade") == 2 for u in src.urls())
            session = Session(source=src, db=db, flush_interval_s=0.05, raw_quotes=True).start()
            misbehave = asyncio.create_task(drops(fake)) if kind == "drops" else None
            await fake.wait_done(timeout=120)
            total = sum(fake.printed.values())
            sent = sum(len(v) for v in fake.quotes_sent.values())
            await until(lambda: session.status().ticks_stored >= total and src.pending_gaps == 0, timeout=60,
                        what="every trade of the tape stored")
            await until(lambda: session.quotes_stored + 50 * (src.status.reconnects + 1) >= sent, timeout=30,
                        what="the quotes stored")
            if misbehave:
                misbehave.cancel()
            await session.stop()
            return fake, src, session.status(), session.live_quotes.late

    fake, src, status, late = asyncio.run(go())
    assert late == 0
    store = TickStore(db, read_only=True)
    try:
        for symbol in fake.tapes:
            tape = read_tape_quotes(next(p for p in recorded_files() if p.name.startswith(symbol.lower())))
            sent = np.array(fake.quotes_sent[symbol], dtype=np.int64)
            got = quotes_of_frame(symbol, store.quotes(symbol))
            order = np.lexsort((tape.update_id, tape.time_ms))  # the tape's quotes in stored order
            key = lambda q: list(zip(q.time_ms.tolist(), q.update_id.tolist()))  # noqa: E731
            tape_keys = key(tape)
            at = {k: i for i, k in enumerate(tape_keys)}
            assert len(set(key(got))) == len(got)  # none twice
            if kind == "clean":
                assert len(got) == len(tape) > 50_000
                for col in ("time_ms", "update_id", "bid", "ask", "bid_qty", "ask_qty"):
                    np.testing.assert_array_equal(getattr(got, col), getattr(tape, col)[order])
            else:
                sent_keys = {tape_keys[i] for i in sent.tolist()}
                stored = set(key(got))
                assert stored <= sent_keys  # none made up
                lost = len(sent_keys - stored)
                assert lost <= 400 * status.reconnects, (lost, status.reconnects)  # in flight at a drop
                assert len(got) > 0.7 * len(tape)
                rows = np.array([at[k] for k in key(got)])
                for col in ("bid", "ask", "bid_qty", "ask_qty"):
                    np.testing.assert_array_equal(getattr(got, col), getattr(tape, col)[rows])
            # quote bars of what was stored, by the kit and from the tape's own rows
            mine = quote_bars(got, 1_000, int(got.time_ms[-1]) + 1)
            rows = np.array([at[k] for k in key(got)])
            theirs = quote_bars(type(tape)(symbol, tape.time_ms[rows], tape.bid[rows], tape.ask[rows],
                                           tape.bid_qty[rows], tape.ask_qty[rows], tape.update_id[rows]),
                                1_000, int(got.time_ms[-1]) + 1)
            np.testing.assert_array_equal(mine.mean_spread, theirs.mean_spread)
            for tf, tf_ms in (("1s", 1_000), ("1m", 60_000), ("5m", 300_000)):
                live = store.quote_bars(symbol, tf)
                pd.testing.assert_frame_equal(live, quote_bar_rows(quote_bars(got, tf_ms), tf), check_dtype=False)
        if kind == "drops":
            assert status.reconnects >= 3 and len(src.quote_gaps) >= 2 * 3 - 2
            # a gap runs from the last quote before the drop to the first after it: later, or in the same
            # millisecond (the real tape has bursts of quotes within one ms; a drop can fall inside one)
            assert all(a <= b for _, a, b in src.quote_gaps), src.quote_gaps
            assert any(a < b for _, a, b in src.quote_gaps), src.quote_gaps
        else:
            assert_touch_fills_and_legging_by_hand(db)
        assert status.ticks_stored == sum(len(t.trade_id) for t in fake.tapes.values())  # trades stay exact
    finally:
        store.close()


def assert_touch_fills_and_legging_by_hand(db) -> None:
    """A backtest of the recorded 1 s bars fills at the touch of the recorded quotes: each leg
    bought at the ask and sold at the bid of the tape's last quote before the fill bar's close;
    the net PnL follows by hand, and so does the legging cost of ETHUSDT 250 ms after BTCUSDT."""
    import bisect

    from statarb_kit.backtest import BacktestParams
    from statarb_kit.backtest.costs import legging
    from statarb_kit.backtest.data import backtest_bars, bars_from_store
    from tests.fake_binance import read_tape_quotes

    bars = bars_from_store(db, ("BTCUSDT", "ETHUSDT"), "1s")
    assert bars.quotes is not None and "fills at the touch" in bars.origin
    p = BacktestParams(hedge_window=60, z_window=30, corr_window=30, z_entry=1.0, z_exit=0.0, corr_min=-1.0,
                       fee_bps=2.0, slippage_bps=0.0)
    r = backtest_bars(bars, p)
    tr = r.trades
    assert len(tr) >= 3 and r.frame.cost_model == "touch"
    tape = {s: read_tape_quotes(next(f for f in recorded_files() if f.name.startswith(s.lower())))
            for s in ("BTCUSDT", "ETHUSDT")}
    order = {s: np.lexsort((q.update_id, q.time_ms)) for s, q in tape.items()}

    def touch(symbol: str, t_ms: int, buy: bool) -> float:
        q, o = tape[symbol], order[symbol]
        times = q.time_ms[o].tolist()
        k = o[bisect.bisect_left(times, t_ms) - 1]  # the last quote before the close
        return float(q.ask[k] if buy else q.bid[k])

    fees = pnl = 0.0
    for row in tr.itertuples():
        t0, t1 = (int(x.value // 10**6) for x in (row.entry_time, row.exit_time))
        ex, ey = touch("BTCUSDT", t0, row.units_x > 0), touch("ETHUSDT", t0, row.units_y > 0)
        xx, xy = touch("BTCUSDT", t1, row.units_x < 0), touch("ETHUSDT", t1, row.units_y < 0)
        assert (row.entry_x, row.entry_y, row.exit_x, row.exit_y) == pytest.approx((ex, ey, xx, xy), rel=1e-13)
        fee = 2e-4 * (abs(row.units_x) * (ex + xx) + abs(row.units_y) * (ey + xy))
        assert row.pnl == pytest.approx(row.units_x * (xx - ex) + row.units_y * (xy - ey) - fee, rel=1e-9, abs=1e-14)
        fees, pnl = fees + fee, pnl + row.pnl
    assert r.metrics.fees == pytest.approx(fees) and r.metrics.spread > 0
    eth = tape["ETHUSDT"]
    o = order["ETHUSDT"]
    eth_sorted = type(eth)("ETHUSDT", eth.time_ms[o], eth.bid[o], eth.ask[o], eth.bid_qty[o], eth.ask_qty[o],
                           eth.update_id[o])
    got = legging(tr, eth_sorted, 250)
    times = eth_sorted.time_ms.tolist()
    for row, g in zip(tr.itertuples(), got.itertuples()):
        for fill, t, buy in (("entry", row.entry_time, row.units_y > 0), ("exit", row.exit_time, row.units_y < 0)):
            t = int(t.value // 10**6)
            k0, k1 = bisect.bisect_right(times, t) - 1, bisect.bisect_right(times, t + 250) - 1
            side = eth_sorted.ask if buy else eth_sorted.bid
            move = (side[k1] - side[k0]) * (1 if buy else -1)
            assert getattr(g, f"{fill}_legging") == pytest.approx(abs(row.units_y) * move, abs=1e-15)
