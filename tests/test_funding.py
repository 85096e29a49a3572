"""Funding data (synthetic, Binance dumps, the store) and what it does to a backtest."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from statarb_kit import InvalidParameter, TickStore
from statarb_kit.backtest import BacktestParams, DataSpec, backtest_bars
from statarb_kit.backtest.data import bars_from_store, with_funding_files
from statarb_kit.exchange.binance.funding_files import FundingFileError, read_funding_file
from statarb_kit.funding import FundingRates, synthetic_funding

HOUR = 3_600_000
DAY0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def test_synthetic_funding_is_seeded_on_the_utc_grid_and_differs_per_symbol():
    a = synthetic_funding("BTCUSDT", DAY0, DAY0 + 30 * 24 * HOUR, seed=7)
    b = synthetic_funding("BTCUSDT", DAY0, DAY0 + 30 * 24 * HOUR, seed=7)
    c = synthetic_funding("ETHUSDT", DAY0, DAY0 + 30 * 24 * HOUR, seed=7)
    np.testing.assert_array_equal(a.rate, b.rate)
    assert len(a) == 90 and a.time[0] == DAY0 + 8 * HOUR and (np.diff(a.time) == 8 * HOUR).all()
    assert (pd.to_datetime(a.time, unit="ms", utc=True).hour % 8 == 0).all()
    assert not np.allclose(a.rate, c.rate) and np.abs(a.rate).max() <= 0.0075
    assert synthetic_funding("SOLUSDT", DAY0, DAY0 + 24 * HOUR, interval_h=4).time.size == 6


def write_dump(path, rows, header="calc_time,funding_interval_hours,last_funding_rate"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(path.name.replace(".zip", ".csv"), header + "\n" + "".join(f"{r}\n" for r in rows))
    return path


def test_binance_funding_dumps_are_read_and_bad_ones_named(tmp_path):
    good = write_dump(tmp_path / "BTCUSDT-fundingRate-2026-01.zip",
                      [f"{DAY0 + 8 * HOUR + 3},8,0.00010000", f"{DAY0 + 16 * HOUR + 1},8,-0.00002500"])
    f = read_funding_file(good)
    assert f.symbol == "BTCUSDT" and f.origin == "dump"
    np.testing.assert_array_equal(f.time, [DAY0 + 8 * HOUR + 3, DAY0 + 16 * HOUR + 1])
    np.testing.assert_array_equal(f.rate, [0.0001, -0.000025])
    with pytest.raises(FundingFileError, match="lack \\['last_funding_rate'\\]"):
        read_funding_file(write_dump(tmp_path / "ETHUSDT-fundingRate-2026-01.zip", ["1,8"], "calc_time,funding_interval_hours"))
    with pytest.raises(FundingFileError, match="line 3 is not a settlement"):
        read_funding_file(write_dump(tmp_path / "SOLUSDT-fundingRate-2026-01.zip", ["1,8,0.1", "x,8,0.2"]))
    (tmp_path / "XRPUSDT-fundingRate-2026-01.zip").write_bytes(b"not a zip")
    with pytest.raises(FundingFileError, match="cannot read"):
        read_funding_file(tmp_path / "XRPUSDT-fundingRate-2026-01.zip")


def test_the_same_rule_with_and_without_funding_differs_by_exactly_the_payments():
    """The synthetic pair with its synthetic funding: the trades are the same, and each trade's
    PnL, the equity and the total return differ by the funding paid, nothing else."""
    bars = DataSpec(timeframe="5m", hours=72, seed=2).load()
    p = BacktestParams(z_entry=1.5, z_exit=-1.4, z_window=48, corr_window=48, hedge_window=96)  # held long
    with_f, without = backtest_bars(bars, p), backtest_bars(bars.without_funding(), p)
    assert with_f.funding_included and not without.funding_included
    cols = ["entry_time", "exit_time", "direction", "gross_pnl", "fees", "slippage"]
    pd.testing.assert_frame_equal(with_f.trades[cols], without.trades[cols])
    paid = with_f.trades["funding"]
    assert (paid != 0).sum() >= 4  # trades held over settlements
    np.testing.assert_allclose(with_f.trades["pnl"] - without.trades["pnl"], paid, atol=1e-15)
    assert with_f.metrics.total_return - without.metrics.total_return == pytest.approx(with_f.metrics.funding_pnl,
                                                                                        abs=1e-13)
    assert np.isnan(without.metrics.funding_pnl) and without.trades["funding"].isna().all()
    assert abs(with_f.metrics.funding_pnl) > 1e-5
    # by hand: every settlement of either leg while a trade was open, at that leg's close
    closes = bars.frame()
    t_close = pd.to_datetime(bars.close_time, unit="ms", utc=True)
    total = 0.0
    for leg, rates, units in ((0, bars.funding.x, "units_x"), (1, bars.funding.y, "units_y")):
        for T, r in zip(pd.to_datetime(rates.time, unit="ms", utc=True), rates.rate):
            held = with_f.trades[(with_f.trades.entry_time < T) & (T <= with_f.trades.exit_time)]
            if len(held):
                price = closes.iloc[np.searchsorted(t_close, T, side="right") - 1, leg]
                total += -held[units].iloc[0] * price * r
    assert with_f.metrics.funding_pnl == pytest.approx(total, rel=1e-12)


def test_funding_is_stored_once_and_read_back_with_the_bars(tmp_path):
    bars = DataSpec(timeframe="1m", hours=20, seed=1).load()
    db = tmp_path / "s.duckdb"
    store = TickStore(db)
    bx = pd.DataFrame({"start": bars.time, "close": bars.price_x})
    store.ensure_bars_tables(("1m",))
    for sym, price in zip(bars.symbols, (bars.price_x, bars.price_y)):
        store.con.execute("INSERT INTO bars_1m (symbol, start, close) SELECT ?, unnest(?), unnest(?)",
                          [sym, bx["start"].tolist(), price.tolist()])
    assert store.insert_funding(bars.funding.x) == len(bars.funding.x)
    assert store.insert_funding(bars.funding.x) == 0  # already stored: nothing twice
    store.close()
    loaded = bars_from_store(db, bars.symbols, "1m")
    assert loaded.funding is None  # only one leg's rates: not included, never half of it
    store = TickStore(db)
    store.insert_funding(bars.funding.y)
    store.close()
    loaded = bars_from_store(db, bars.symbols, "1m")
    np.testing.assert_array_equal(loaded.funding.y.rate, bars.funding.y.rate)
    assert loaded.funding.x.origin == "store"


def test_funding_files_must_name_both_legs(tmp_path):
    bars = DataSpec(timeframe="1m", hours=2, seed=1).load()
    f = write_dump(tmp_path / "BTCUSDT-fundingRate-2026-01.zip", [f"{DAY0 + 8 * HOUR},8,0.0001"])
    with pytest.raises(InvalidParameter, match="no funding file of \\['ETHUSDT'\\]"):
        with_funding_files(bars, [f])
    with pytest.raises(InvalidParameter, match="strictly ascending"):
        FundingRates("X", np.array([2, 1]), np.array([0.1, 0.1]), "test")


def test_funding_from_rest_and_from_monthly_dumps_lands_in_the_store(tmp_path):
    """`statarb funding` pages /fapi/v1/fundingRate of the fake Binance (1,000 per call: 120
    settlements in 40 days come in one page; limit honoured); `statarb download --kind fundingRate`
    fetches monthly dumps with their checksums; both store each settlement once."""
    import asyncio
    import hashlib
    import io
    import subprocess
    import sys

    from tests.fake_binance import FakeBinance

    async def go():
        async with FakeBinance(n=10) as fake:
            month = pd.Timestamp(fake.t0, unit="ms", tz="UTC")
            name = f"BTCUSDT-fundingRate-{month:%Y-%m}.zip"
            path = f"/data/futures/um/monthly/fundingRate/BTCUSDT/{name}"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                last = int(synthetic_funding("BTCUSDT", fake.t0 - 40 * 24 * HOUR, fake.t0, seed=11).time[-1])
                # the last settlement REST also gives (ms apart), and a later one REST does not have yet
                z.writestr(name.replace(".zip", ".csv"), "calc_time,funding_interval_hours,last_funding_rate\n"
                           f"{last + 1},8,0.00020000\n{last + 8 * HOUR + 2},8,-0.00010000\n")
            fake.files[path] = buf.getvalue()
            fake.files[path + ".CHECKSUM"] = f"{hashlib.sha256(buf.getvalue()).hexdigest()}  {name}".encode()
            db = tmp_path / "f.duckdb"
            run = lambda *a: asyncio.to_thread(subprocess.run, [sys.executable, "-m", "statarb_kit.cli", *a],  # noqa: E731
                                               capture_output=True, text=True, timeout=120, cwd=tmp_path)
            start = (month - pd.Timedelta(days=40)).strftime("%Y-%m-%d")
            rest = await run("funding", "BTCUSDT", "ETHUSDT", "--start", start, "--db", str(db),
                             "--rest-url", fake.http_url)
            again = await run("funding", "BTCUSDT", "--start", start, "--db", str(db), "--rest-url", fake.http_url)
            dumps = await run("download", "BTCUSDT", "--kind", "fundingRate", "--start", f"{month:%Y-%m-01}",
                              "--dir", str(tmp_path / "d"), "--db", str(db), "--base-url", fake.http_url)
            calls = [c for c in fake.rest_calls if c.startswith("/fapi/v1/fundingRate")]
            return rest, again, dumps, calls, fake.t0

    rest, again, dumps, calls, t0 = asyncio.run(go())
    assert rest.returncode == 0, rest.stderr
    assert "BTCUSDT: 120 settlements" in rest.stdout and "120 new" in rest.stdout
    assert "0 new" in again.stdout and all("limit=1000" in c for c in calls)
    assert dumps.returncode == 0, dumps.stderr
    assert "BTCUSDT: 2 settlements" in dumps.stdout and "1 new" in dumps.stdout  # one settlement is stored once
    store = TickStore(tmp_path / "f.duckdb", read_only=True)
    btc, eth = store.funding("BTCUSDT"), store.funding("ETHUSDT")
    store.close()
    want = synthetic_funding("BTCUSDT", t0 - 40 * 24 * HOUR, t0, seed=11)
    rest_part = btc.time % 10 == 3  # REST rows carry fundingTime = settlement + 3 ms in the fake
    np.testing.assert_array_equal(btc.time[rest_part], want.time + 3)
    np.testing.assert_allclose(btc.rate[rest_part], np.round(want.rate, 8), atol=1e-12)
    assert len(eth) == 120 and (~rest_part).sum() == 1 and btc.rate[-1] == -0.0001


def test_live_funding_from_the_markprice_stream_is_shown_and_its_settlements_stored(tmp_path):
    """BinanceLive subscribes <symbol>@markPrice@1s on /market/stream (the fake settles every 1.2 s):
    the session knows each leg's rate and next settlement, and stores each settlement with the
    rate published last before it; the dashboard's funding panel shows both legs."""
    import asyncio

    from statarb_kit import Session
    from statarb_kit.exchange.binance.live import BinanceLive
    from statarb_kit.widgets.dashboard import Dashboard
    from tests.fake_binance import FakeBinance
    from tests.test_binance_live import config, until

    async def go():
        async with FakeBinance(n=4_000, rate=300.0) as fake:
            fake.funding_period_ms = 1_200
            src = BinanceLive(("BTCUSDT", "ETHUSDT"), config(fake))
            session = Session(source=src, db=tmp_path / "m.duckdb", flush_interval_s=0.02).start()
            dash = Dashboard(session, timeframe="1s", refresh_s=0.1)
            await until(lambda: session.status().ticks_stored > 100 and src.funding.current("ETHUSDT") is not None,
                        what="trades and marks")
            await asyncio.sleep(4.0)  # three settlements or more
            now = {s: src.funding.current(s) for s in ("BTCUSDT", "ETHUSDT")}
            panel = dash.funding.widget.value
            dash.close()
            await session.stop()
            return fake, src, now, panel

    fake, src, now, panel = asyncio.run(go())
    period = fake.funding_period_ms
    for s, f in now.items():
        assert f.origin == "stream" and f.next_ms % period == 0
        assert f.rate == fake.mark_rate(s, f.next_ms // period) and f.interval_h == pytest.approx(period / HOUR)
    assert "BTCUSDT" in panel and "ETHUSDT" in panel and src.funding.malformed == 0  # per day: once beta is known
    store = TickStore(tmp_path / "m.duckdb", read_only=True)
    btc = store.funding("BTCUSDT")
    origins = store.con.execute("SELECT DISTINCT origin FROM funding").fetchall()
    store.close()
    assert len(btc) >= 3 and origins == [("stream",)] and (np.diff(btc.time) == period).all()
    np.testing.assert_array_equal(btc.rate, [fake.mark_rate("BTCUSDT", t // period) for t in btc.time])


def test_the_synthetic_dashboard_shows_its_funding_and_the_pair_net_per_day():
    import asyncio

    from statarb_kit import Session, SyntheticPair
    from statarb_kit.exchange.binance.mark_price import net_funding_per_day
    from statarb_kit.widgets.dashboard import Dashboard

    async def go():
        src = SyntheticPair(realtime=False, start_ms=DAY0, max_ticks=20_000, seed=5)
        session = Session(source=src).start()
        dash = Dashboard(session, timeframe="1s")
        await session.wait_source()
        await session.flush()
        dash.refresh()
        v = dash.view
        at = int(v.tail("time", 1)[0])
        x, y = (session.funding.current(s, at) for s in v.symbols)
        per_day = net_funding_per_day(x, y, float(v.tail("beta", 1)[0]), float(v.tail("price_x", 1)[0]),
                                      float(v.tail("price_y", 1)[0]))
        panel = dash.funding.widget.value
        dash.close()
        await session.stop()
        return x, y, per_day, panel

    x, y, per_day, panel = asyncio.run(go())
    want = synthetic_funding("BTCUSDT", DAY0 - 24 * HOUR, DAY0 + 48 * HOUR, seed=5)
    assert x.next_ms == DAY0 + 8 * HOUR and x.rate == want.rate[want.time == x.next_ms][0]
    assert f"{x.rate * 100:+.4f}%" in panel and f"{per_day * 100:+.4f}% a day" in panel
    assert f"{-per_day * 100:+.4f}% a day" in panel and x.origin == "synthetic"
