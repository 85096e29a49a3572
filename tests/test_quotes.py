"""Quotes: @bookTicker frames parsed, and quote bars equal to a pandas computation on the shared
tape's real quotes."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from statarb_kit.errors import InvalidParameter
from statarb_kit.quotes import parse_book_tickers, quote_bars
from tests.fake_binance import read_tape_quotes, recorded_files


def bars_by_pandas(q, tf: str, until_ms: int) -> pd.DataFrame:
    """Quote bars by pandas: the quote in force on a 1 ms grid is too large, so a step function
    over quote times and bar starts (merge_asof), weighted by how long each step lasts."""
    quotes = pd.DataFrame({"time": q.time_ms, "bid": q.bid, "ask": q.ask})
    quotes["rel"] = (quotes.ask - quotes.bid) / ((quotes.ask + quotes.bid) / 2)
    quotes = quotes.drop_duplicates("time", keep="last")  # the last of a millisecond is the one in force
    tf_ms = int(pd.Timedelta(tf).total_seconds() * 1000)
    first = q.time_ms[0] // tf_ms * tf_ms
    starts = np.arange(first, until_ms, tf_ms)
    steps = pd.DataFrame({"time": np.union1d(quotes.time, starts[starts > q.time_ms[0]])})
    steps = pd.merge_asof(steps, quotes, on="time")
    steps["dur"] = steps.time.shift(-1, fill_value=until_ms) - steps.time
    steps["bar"] = (steps.time - first) // tf_ms * tf_ms + first
    g = steps.groupby("bar")
    out = pd.DataFrame({"mean_spread": (steps.rel * steps.dur).groupby(steps.bar).sum() / g.dur.sum(),
                        "max_spread": g.rel.max()})
    idx = pd.to_datetime(quotes.time, unit="ms")
    closes = quotes.set_index(idx)[["bid", "ask"]].resample(tf).last().ffill()
    out["bid"], out["ask"] = closes.bid.to_numpy()[: len(out)], closes.ask.to_numpy()[: len(out)]
    out["updates"] = pd.Series(1, index=pd.to_datetime(q.time_ms, unit="ms")).resample(tf).count().to_numpy()[: len(out)]
    return out


@pytest.mark.parametrize("tf", ["1s", "1min", "5min"])
def test_quote_bars_equal_pandas_on_the_shared_tape(tf):
    for path in recorded_files():
        q = read_tape_quotes(path)
        assert len(q) > 50_000 and q.malformed == 0
        until = int(q.time_ms[-1]) + 1
        tf_ms = int(pd.Timedelta(tf).total_seconds() * 1000)
        got = quote_bars(q, tf_ms, until)
        want = bars_by_pandas(q, tf, until)
        assert len(got) == len(want) and (got.start == want.index.to_numpy()).all()
        np.testing.assert_allclose(got.mean_spread, want.mean_spread, rtol=1e-9)
        np.testing.assert_array_equal(got.max_spread, want.max_spread)
        np.testing.assert_array_equal(got.bid, want.bid)
        np.testing.assert_array_equal(got.ask, want.ask)
        np.testing.assert_array_equal(got.updates, want.updates)
        assert got.updates.sum() == len(q)
        if tf == "1s" and q.symbol == "BTCUSDT":  # the README's figures: about 190 updates a second, 0.016 bps median
            assert 180 < got.updates.mean() < 200
            assert np.median(q.relative_spread) * 1e4 == pytest.approx(0.016, abs=0.001)


def test_malformed_and_crossed_book_tickers_are_counted_and_skipped():
    good = {"e": "bookTicker", "u": 2, "s": "BTCUSDT", "b": "100.0", "B": "1", "a": "100.1", "A": "2",
            "T": 1_000, "E": 1_001}
    frames = [orjson.dumps({"stream": "btcusdt@bookTicker", "data": good}),
              b"{not json", orjson.dumps({**good, "b": "101.0"}),  # crossed
              orjson.dumps({k: v for k, v in good.items() if k != "a"}),  # no ask
              orjson.dumps({**good, "s": "ETHUSDT"}),  # another symbol: ignored
              orjson.dumps({"e": "trade", "s": "BTCUSDT"}),  # another stream: ignored
              {**good, "u": 1, "T": 500}]
    q = parse_book_tickers("BTCUSDT", frames)
    assert q.malformed == 3 and q.time_ms.tolist() == [500, 1_000] and q.update_id.tolist() == [1, 2]
    bars = quote_bars(q, 1_000, 1_500)
    assert bars.start.tolist() == [0, 1_000] and bars.updates.tolist() == [1, 1]
    assert bars.mean_spread[0] == pytest.approx(0.1 / 100.05)
    with pytest.raises(InvalidParameter, match="tf_ms"):
        quote_bars(q, 0)


def test_download_of_book_ticker_dumps_stores_their_quotes_once_and_refuses_days_binance_never_published(tmp_path):
    """The tape's real BTCUSDT quotes moved to 2024-03-30 and served as Binance's daily bookTicker
    dump (with its .CHECKSUM): ``statarb download --kind bookTicker --raw-quotes`` stores its quote
    bars (equal to ``quote_bars``) and every quote in table ``quotes`` exactly; a second run stores
    none twice; a day after 2024-03-31 is refused in one line before anything is fetched or
    written."""
    import asyncio
    import io
    import subprocess
    import zipfile

    from statarb_kit.quotes import quote_bar_rows, quotes_of_frame
    from statarb_kit.store import TickStore
    from tests.fake_binance import FakeBinance

    q = read_tape_quotes(next(p for p in recorded_files() if p.name.startswith("btcusdt")))
    shift = int(pd.Timestamp("2024-03-30", tz="UTC").value // 10**6) - int(q.time_ms[0]) // 86_400_000 * 86_400_000
    rows = pd.DataFrame({"update_id": q.update_id, "best_bid_price": q.bid, "best_bid_qty": q.bid_qty,
                         "best_ask_price": q.ask, "best_ask_qty": q.ask_qty, "transaction_time": q.time_ms + shift,
                         "event_time": q.time_ms + shift + 1})
    name = "BTCUSDT-bookTicker-2024-03-30.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name.replace(".zip", ".csv"), rows.to_csv(index=False))
    db = tmp_path / "q.duckdb"

    async def go():
        async with FakeBinance(n=10) as fake:
            fake.publish(f"/data/futures/um/daily/bookTicker/BTCUSDT/{name}", buf.getvalue())
            runs = []
            for raw in (["--raw-quotes"], []):
                proc = await asyncio.create_subprocess_exec(
                    "statarb", "download", "BTCUSDT", "--kind", "bookTicker", "--start", "2024-03-30", "--dir",
                    str(tmp_path / "d"), "--db", str(db), "--base-url", fake.http_url, *raw,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                out, err = await proc.communicate()
                runs.append((proc.returncode, out.decode(), err.decode()))
            return runs

    (rc1, out1, err1), (rc2, out2, _) = asyncio.run(go())
    assert rc1 == 0 and rc2 == 0, err1
    assert f"{len(q):,} quotes as 355 quote bars (table quote_bars; every quote in table quotes), 0 already " \
           f"stored" in out1 and f"0 quotes as 0 quote bars (table quote_bars), {len(q):,} already stored" in out2
    order = np.lexsort((q.update_id, q.time_ms))
    shifted = type(q)("BTCUSDT", q.time_ms[order] + shift, q.bid[order], q.ask[order], q.bid_qty[order],
                      q.ask_qty[order], q.update_id[order])
    store = TickStore(db, read_only=True)
    try:
        got = quotes_of_frame("BTCUSDT", store.quotes("BTCUSDT"))
        for tf, tf_ms in (("1s", 1_000), ("1m", 60_000), ("5m", 300_000)):
            pd.testing.assert_frame_equal(store.quote_bars("BTCUSDT", tf),
                                          quote_bar_rows(quote_bars(shifted, tf_ms), tf), check_dtype=False)
    finally:
        store.close()
    np.testing.assert_array_equal(got.time_ms, q.time_ms[order] + shift)
    for col in ("bid", "ask", "bid_qty", "ask_qty", "update_id"):
        np.testing.assert_array_equal(getattr(got, col), getattr(q, col)[order])
    late = subprocess.run(["statarb", "download", "BTCUSDT", "--kind", "bookTicker", "--start", "2024-04-01",
                           "--dir", str(tmp_path / "late"), "--db", str(tmp_path / "late.duckdb")],
                          capture_output=True, text=True, timeout=60)
    assert late.returncode != 0 and "up to 2024-03-31 only" in late.stderr and "Traceback" not in late.stderr
    assert len(late.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "late").exists() and not (tmp_path / "late.duckdb").exists()


def test_a_file_that_is_not_a_book_ticker_dump_is_named_and_crossed_rows_are_counted(tmp_path):
    from statarb_kit.quotes import read_book_ticker_dump
    from statarb_kit.exchange.binance.history import HistoryFileError

    bad = tmp_path / "BTCUSDT-bookTicker-2024-03-30.csv"
    bad.write_text("update_id,best_bid_price\nx,y\n")
    with pytest.raises(HistoryFileError, match="BTCUSDT-bookTicker-2024-03-30.csv: not a Binance bookTicker dump"):
        read_book_ticker_dump(bad)
    ok = tmp_path / "ETHUSDT-bookTicker-2024-03-30.csv"
    ok.write_text("2,3000.1,1.0,3000.2,2.0,1000,1001\n1,3000.3,1.0,3000.2,2.0,999,1000\n3,3000.0,1.0,3000.1,1.0,998,999\n")
    q = read_book_ticker_dump(ok)  # no header; the second row is crossed
    assert q.symbol == "ETHUSDT" and q.malformed == 1 and q.time_ms.tolist() == [998, 1000]


def test_a_replay_of_trade_and_book_ticker_dumps_stores_both_and_backtests_fill_at_the_touch(tmp_path):
    """The shared tape written as Binance's trades and bookTicker dumps of its day: a replay
    stores every trade and every quote exactly, each quote handed over before the first trade
    after it, and a backtest of the file fills at the touch."""
    import asyncio
    from dataclasses import replace

    from statarb_kit import Session
    from statarb_kit.backtest.data import bars_from_store
    from statarb_kit.quotes import quote_bar_rows, quotes_of_frame
    from statarb_kit.sources import Replay
    from statarb_kit.store import TickStore
    from tests.fake_binance import write_tape_dumps

    files, tapes = write_tape_dumps(tmp_path)
    db = tmp_path / "r.duckdb"

    async def go(path, raw):
        async with Session(source=Replay(files, progress=False), db=path, raw_quotes=raw) as session:
            await session.wait()
        return session.status(), session.quotes_stored

    status, stored = asyncio.run(go(db, True))
    assert status.ticks_stored == 21_313 + 14_076 and stored == sum(len(q) for q in tapes.values())
    store = TickStore(db, read_only=True)
    try:
        for symbol, q in tapes.items():
            got = quotes_of_frame(symbol, store.quotes(symbol))
            order = np.lexsort((q.update_id, q.time_ms))
            for col in ("time_ms", "update_id", "bid", "ask", "bid_qty", "ask_qty"):
                np.testing.assert_array_equal(getattr(got, col), getattr(q, col)[order])
            for tf, tf_ms in (("1s", 1_000), ("1m", 60_000), ("5m", 300_000)):  # the quote bars stored as it ran
                pd.testing.assert_frame_equal(store.quote_bars(symbol, tf), quote_bar_rows(quote_bars(q, tf_ms), tf),
                                              check_dtype=False)
    finally:
        store.close()
    assert bars_from_store(db, ("BTCUSDT", "ETHUSDT"), "1s").quotes is not None
    # without raw quotes (the default) the same replay stores only the quote bars: fills at each close are
    # the same, a latency is refused
    bars_only = tmp_path / "bars_only.duckdb"
    assert asyncio.run(go(bars_only, False))[1] == 0
    with_raw, without = (bars_from_store(p, ("BTCUSDT", "ETHUSDT"), "1s") for p in (db, bars_only))
    for a, b in zip(with_raw.quotes, without.quotes):
        np.testing.assert_array_equal(a.start, b.start)
        np.testing.assert_array_equal(a.bid, b.bid)
        np.testing.assert_array_equal(a.ask, b.ask)
    with pytest.raises(InvalidParameter, match="need the quotes \\(record --raw-quotes\\)"):
        bars_from_store(bars_only, ("BTCUSDT", "ETHUSDT"), "1s", latency_ms=250)
    # an order that reaches the exchange 250 ms after the close meets the touch then in force
    import bisect

    from statarb_kit.backtest import BacktestParams
    from statarb_kit.backtest.data import backtest_bars

    # signals on the quote mid at each close (price="mid"), never on a later quote
    from statarb_kit.backtest.data import bars_frame

    at_close = bars_from_store(db, ("BTCUSDT", "ETHUSDT"), "1s")
    late = bars_from_store(db, ("BTCUSDT", "ETHUSDT"), "1s", latency_ms=250)
    rule = BacktestParams(hedge_window=60, z_window=30, corr_window=30, price="mid")
    f = bars_frame(at_close, rule)
    for symbol, got in (("BTCUSDT", f.price_x), ("ETHUSDT", f.price_y)):
        q = tapes[symbol]
        o = np.lexsort((q.update_id, q.time_ms))
        k = o[np.searchsorted(q.time_ms[o], at_close.close_time, side="left") - 1]  # the last quote before the close
        np.testing.assert_allclose(got, (q.bid[k] + q.ask[k]) / 2, rtol=1e-13)
    z_mid, z_late = bars_frame(at_close, rule).z, bars_frame(late, rule).z
    np.testing.assert_array_equal(z_mid, z_late)  # a latency changes the fills, never the signals
    with pytest.raises(InvalidParameter, match="price 'mid' needs"):
        bars_frame(replace(at_close, quotes=None, mids=None), rule)

    assert "250 ms after the close" in late.origin
    p = BacktestParams(hedge_window=60, z_window=30, corr_window=30, z_entry=1.0, z_exit=0.0, corr_min=-1.0,
                       fee_bps=0.0, slippage_bps=0.0)
    trades = backtest_bars(late, p).trades
    assert len(trades) >= 3
    sorted_q = {s: (np.lexsort((q.update_id, q.time_ms)), q) for s, q in tapes.items()}
    for row in trades.itertuples():
        for leg, symbol, units in (("x", "BTCUSDT", row.units_x), ("y", "ETHUSDT", row.units_y)):
            o, q = sorted_q[symbol]
            times = q.time_ms[o].tolist()
            for fill, t, buy in (("entry", row.entry_time, units > 0), ("exit", row.exit_time, units < 0)):
                k = o[bisect.bisect_left(times, int(t.value // 10**6) + 250) - 1]
                assert getattr(row, f"{fill}_{leg}") == pytest.approx(q.ask[k] if buy else q.bid[k], rel=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_live_quote_bars_in_any_batches_equal_quote_bars_of_the_whole_tape_to_the_bit(seed):
    """Both symbols' real quotes, interleaved in time and cut into random batches (some of a
    single quote, some spanning many bars; with seed 1 each batch arrives in reverse): the live bars, and the rows handed to the store (the
    open bars with them at the end), equal ``quote_bars`` of each whole tape, every field exact."""
    from statarb_kit.quotes import QUOTE_FIELDS, LiveQuotes, QuoteBatch, quote_bar_rows

    tapes = [read_tape_quotes(p) for p in recorded_files()]
    symbols = tuple(q.symbol for q in tapes)
    cols = {f: np.concatenate([getattr(q, c) if c != "sym" else np.full(len(q), k)
                               for k, q in enumerate(tapes)])
            for f, c in zip(QUOTE_FIELDS, ("sym", "time_ms", "update_id", "bid", "bid_qty", "ask", "ask_qty"))}
    order = np.argsort(cols["time_ms"], kind="stable")  # arrival order: by time, each symbol in its own order
    cols = {f: v[order] for f, v in cols.items()}
    rng = np.random.default_rng(seed)
    cuts = np.unique(np.concatenate([rng.integers(0, len(order), 400), rng.integers(0, len(order), 40)]))
    timeframes, tfs = ("1s", "1m", "5m"), (1_000, 60_000, 300_000)
    live = LiveQuotes(symbols, tfs, timeframes=timeframes)
    short = LiveQuotes(symbols, tfs, keep=37)  # keeps the newest 37 to 74 closed bars
    stored = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(order)]):
        part = slice(hi - 1, lo - 1 if lo else None, -1) if seed == 1 else slice(lo, hi)  # seed 1: each batch reversed
        live.add(QuoteBatch(*(cols[f][part] for f in QUOTE_FIELDS)))
        short.add(QuoteBatch(*(cols[f][part] for f in QUOTE_FIELDS)))
        if rng.random() < 0.3:
            stored.append(live.take_closed())
    stored.append(live.take_closed(with_open=True))
    assert live.take_closed() is None  # nothing closed since
    rows = pd.concat([r for r in stored if r is not None], ignore_index=True)
    assert live.late == 0
    for q in tapes:
        for name, tf in zip(timeframes, tfs):
            want = quote_bars(q, tf)
            got = live.bars(q.symbol, tf)
            assert len(got) == len(want) > 0
            for field in ("start", "bid", "ask", "mean_spread", "max_spread", "updates"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=f"{q.symbol} {name} {field}")
            mine = rows[(rows.symbol == q.symbol) & (rows.timeframe == name)].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine, quote_bar_rows(want, name), check_dtype=False)
            code = symbols.index(q.symbol)
            np.testing.assert_array_equal(live.mids_at_close(code, tf, want.start), want.mid)
            kept = short.bars(q.symbol, tf)
            assert min(len(want), 38) <= len(kept) <= 75
            np.testing.assert_array_equal(kept.start, want.start[-len(kept):])
            np.testing.assert_array_equal(kept.mean_spread, want.mean_spread[-len(kept):])
            mids = short.mids_at_close(code, tf, want.start)
            assert np.isnan(mids[: len(want) - len(kept)]).all()  # older than the bars kept: no mid
            np.testing.assert_array_equal(mids[len(want) - len(kept):], want.mid[-len(kept):])


def test_stored_quote_bars_carry_the_close_over_bars_without_a_row():
    from statarb_kit.quotes import stored_quote_bars

    rows = pd.DataFrame({"start": [2_000, 0], "bid": [10.0, 1.0], "ask": [12.0, 3.0], "mean_spread": [0.1, 0.2],
                         "max_spread": [0.3, 0.4], "updates": [5, 7]})
    qb = stored_quote_bars("X", 1_000, rows, until_ms=4_500)
    assert qb.start.tolist() == [0, 1_000, 2_000, 3_000, 4_000]
    assert qb.bid.tolist() == [1.0, 1.0, 10.0, 10.0, 10.0] and qb.updates.tolist() == [7, 0, 5, 0, 0]
    assert qb.mean_spread.tolist() == [0.2, 1.0, 0.1, 2 / 11, 2 / 11] and qb.max_spread[1] == 1.0
