"""The live client on today's routed paths, exact fills, clean stops and adaptive stall checks,
against the local fake Binance (which routes by tier like the exchange)."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest

from statarb_kit import Session
from statarb_kit.exchange.binance.live import BinanceLive
from statarb_kit.exchange.binance.routes import route_candidates
from statarb_kit.exchange.binance.rates import RateMeter, silence_limit
from tests.fake_binance import FAULTS, FakeBinance, misbehave
from tests.test_binance_live import SYMBOLS, assert_stored_equals_truth, config, stored, until


def record(db, script=None, fake_kw=None, stop_after_s: float = 1.0, session_kw=None, **cfg_kw):
    """Play a tape into ``db`` while ``script(fake, src)`` misbehaves; stop ``stop_after_s`` after
    the tape's last trade, without waiting for anything else: the stop must reconcile."""

    async def go():
        async with FakeBinance(**{"n": 600, "rate": 300.0, "wait_for_client": True, **(fake_kw or {})}) as fake:
            src = BinanceLive(SYMBOLS, config(fake, **cfg_kw))
            session = Session(source=src, db=db, flush_interval_s=0.02, **(session_kw or {})).start()
            if script:
                await script(fake, src)
            await fake.wait_done()
            await asyncio.sleep(stop_after_s)
            t_stop = int(time.time() * 1000)
            await session.stop()
            return fake, src, session, t_stop

    return asyncio.run(go())


@pytest.mark.parametrize("path", ["/market/stream", "/market/ws"])
def test_a_wrong_tier_is_reported_and_the_other_route_tried(tmp_path, path):
    db = tmp_path / "w.duckdb"
    fake, src, session, _ = record(db, ws_path=path)
    got = assert_stored_equals_truth(db, fake)
    assert fake.silent_connections >= 1 and src.route_switches >= 1
    assert src.shards[0].path == path.replace("/market", "/public")  # the route that delivers
    assert any(v == "silent route" for _, _, v in src.stall_checks)
    assert (got["via"] == "stream").any() and (got["via"] == "recent_trades").any()  # REST until it switched


def test_the_retired_path_for_a_market_tier_stream_stores_every_trade(tmp_path):
    """If @trade were a market-tier stream (as some client libraries route it), the legacy
    /stream would be silent for it: every trade is stored anyway and the status says why."""
    messages = []

    async def script(fake, src):
        fake.tiers["trade"] = "market"
        await until(lambda: src.status.state == "silent route", what="the silent-route verdict")
        messages.append(src.status.last_error)

    db = tmp_path / "r.duckdb"
    fake, src, session, _ = record(db, script, ws_path="/stream")
    assert_stored_equals_truth(db, fake)
    assert route_candidates("/stream") == ["/stream", "/public/stream", "/market/stream"]
    assert src.shards[0].path == "/market/stream"
    text = messages[0]
    assert "btcusdt@trade" in text and "/stream delivered nothing" in text and "REST shows" in text
    assert "wrong route or a dead feed; trying /public/stream" in text


def test_no_route_delivers_yet_nothing_is_lost(tmp_path):
    async def script(fake, src):
        fake.tiers["trade"] = "private"  # no public or market path carries it

    db = tmp_path / "n.duckdb"
    fake, src, session, _ = record(db, script)
    got = assert_stored_equals_truth(db, fake)
    assert (got["via"] == "recent_trades").all() and src.route_switches >= 2
    assert session.status().stored_via == {"recent_trades": len(got)}


@pytest.mark.parametrize("fault", FAULTS)
def test_stored_ticks_equal_the_exchange_including_the_stop(tmp_path, fault):
    """Each fault, then a stop one second after the last trade; the stall check is slow here
    (stall_min_s 20 s), so trades withheld at the end reach the store only by the stop's check."""

    async def script(fake, src):
        await misbehave(fake, fault, lambda: src.status.ticks > 150)

    db = tmp_path / "f.duckdb"
    fake, src, session, t_stop = record(db, script, stall_min_s=20.0, stall_timeout_s=30.0)
    got = assert_stored_equals_truth(db, fake, until_ms=t_stop)
    assert not (got["via"] == "agg_split").any()  # every fill came from the exact recent trades
    if fault in ("withheld", "all"):
        assert (got.groupby("symbol")["via"].last() == "recent_trades").all()  # the tail came at the stop
    assert src.unreconciled == [] and session.status().errors == 0


def test_a_stop_with_rest_down_is_bounded_and_says_what_it_could_not_check(tmp_path):
    async def script(fake, src):
        await until(lambda: fake.printed["BTCUSDT"] > 450, what="most of the tape")
        fake.stall(30)
        fake.rest_down = True

    db = tmp_path / "d.duckdb"
    started = time.monotonic()
    fake, src, session, _ = record(db, script, stall_min_s=20.0, stall_timeout_s=30.0,
                                   session_kw={"stop_timeout_s": 1.5})
    assert time.monotonic() - started < 20
    assert src.unreconciled and all("after trade" in u for u in src.unreconciled)
    assert "not reconciled: BTCUSDT after trade" in session.status().last_error
    assert len(stored(db)) < len(fake.truth())  # honest: the withheld tail is missing, and said so


def test_gaps_beyond_the_recent_trades_use_aggregates_or_the_api_key(tmp_path, caplog):
    """A long outage (more than the recent trades reach back): without a key the older part is
    split from aggregates, marked agg_split; with one, historicalTrades make it exact."""
    caplog.set_level(logging.DEBUG)

    async def script(fake, src):
        fake.recent_cap = 40  # a busy market: the newest 1,000 trades are a few seconds
        await until(lambda: src.status.ticks > 100, what="first trades")
        fake.stall(0.8)

    kw = dict(fake_kw={"n": 500}, stop_after_s=0.5)
    db = tmp_path / "a.duckdb"
    fake, src, _, _ = record(db, script, **kw)
    got = assert_stored_equals_truth(db, fake)
    assert (got["via"] == "agg_split").any() and (got["via"] == "recent_trades").any()

    secret = "k3y-not-to-be-logged"
    db = tmp_path / "h.duckdb"
    fake, src, _, _ = record(db, script, api_key=secret, **kw)
    got = assert_stored_equals_truth(db, fake)
    assert not (got["via"] == "agg_split").any() and (got["via"] == "historical_trades").any()
    assert fake.api_keys_seen and set(fake.api_keys_seen) == {secret}
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("statarb_kit", "httpx", "httpcore"))
    assert secret not in ours and secret not in repr(src.config)  # (the fake server's own debug log shows it)


def test_silence_limits_follow_each_stream_rate():
    assert silence_limit(300.0, 20, 2.0, 30.0) == 2.0  # BTCUSDT-like: checked after 2 s, not 30
    assert silence_limit(0.5, 20, 2.0, 30.0) == 30.0  # a quiet symbol keeps the upper bound
    assert silence_limit(2.0, 20, 2.0, 30.0) == pytest.approx(10.0)
    assert silence_limit(0.0, 20, 2.0, 30.0) == 30.0
    m = RateMeter(tau_s=60.0, prior=100.0, now=0.0)
    assert m.rate(0.0) == pytest.approx(100.0)
    for t in range(1, 601):
        m.add(10, float(t))  # 10 per second observed: the prior fades
    assert m.rate(600.0) == pytest.approx(10.0, rel=0.02)
    fresh = RateMeter(tau_s=60.0, now=0.0)  # no prior: one second of 300 events is 300/s, not 5/s
    fresh.add(300, 1.0)
    assert fresh.rate(1.0) == pytest.approx(300.0, rel=0.02)


def test_a_stall_of_a_busy_stream_is_noticed_in_seconds_and_a_quiet_one_is_not_hammered(tmp_path):
    times = {}

    async def script(fake, src):
        await until(lambda: src.status.ticks > 300, what="first trades")
        fake.stall(3.0)
        times["stall"] = time.monotonic()
        await until(lambda: src.status.reconnects >= 1, 10, "the reconnect")
        times["noticed"] = time.monotonic()

    db = tmp_path / "s.duckdb"
    fake, src, _, _ = record(db, script, fake_kw={"n": 2_000, "rate": 400.0}, stall_min_s=0.5, stall_timeout_s=30.0)
    assert_stored_equals_truth(db, fake)
    assert times["noticed"] - times["stall"] < 2.0  # the fixed 30 s limit took 30 s
    busy = [limit for _, limit, verdict in src.stall_checks if verdict == "stalled"]
    assert busy and busy[0] < 1.0

    async def quiet():
        async with FakeBinance(n=30, rate=3.0) as fake:  # ~3 trades/s: 20 messages take ~7 s
            src = BinanceLive(SYMBOLS, config(fake, stall_min_s=0.5, stall_timeout_s=30.0))
            session = Session(source=src, db=tmp_path / "q.duckdb").start()
            await fake.wait_done()
            await asyncio.sleep(1.0)
            await session.stop()
            return fake, src

    fake, src = asyncio.run(quiet())
    assert not src.stall_checks and src.status.reconnects == 0  # Poisson gaps of a quiet tape are no stall
    assert_stored_equals_truth(tmp_path / "q.duckdb", fake)


def test_a_recording_whose_stream_never_delivers_starts_at_its_start(tmp_path):
    """Anchored on REST's newest trade at the start: nothing printed after it is missing, nothing
    printed before it is taken."""

    async def go():
        async with FakeBinance(n=900, rate=300.0) as fake:
            await until(lambda: fake.printed["BTCUSDT"] > 200, what="trades before the start")
            before = dict(fake.printed)
            fake.tiers["trade"] = "nowhere"
            src = BinanceLive(SYMBOLS, config(fake))
            session = Session(source=src, db=tmp_path / "x.duckdb", flush_interval_s=0.02).start()
            await fake.wait_done()
            await asyncio.sleep(0.5)
            await session.stop()
            return fake, before

    fake, before = asyncio.run(go())
    got = stored(tmp_path / "x.duckdb")
    for k, (symbol, tape) in enumerate(fake.tapes.items()):
        ids = got.loc[got["symbol"] == symbol, "trade_id"].to_numpy()
        assert len(ids) and ids[-1] == tape.trade_id[-1] and np.all(np.diff(ids) == 1)
        assert ids[0] >= tape.trade_id[before[symbol] - 1]  # nothing older than the start


def test_a_stop_during_a_catch_up_keeps_what_it_had_fetched(tmp_path, monkeypatch):
    """A stop cancels the stream between two REST calls of a catch-up: BTC's trades are fetched
    (its last id moved on) and ETH's call hangs. What was fetched is stored, and the stop's
    reconcile fetches the rest: every printed trade once."""
    from statarb_kit.exchange.binance.rest import RestClient

    real_fill, hang, hung = RestClient.fill, {"on": True}, []

    async def fill(self, symbol, *args, **kwargs):
        if hang["on"] and symbol == "ETHUSDT":
            hung.append(symbol)
            await asyncio.Event().wait()  # until the stop cancels it
        return await real_fill(self, symbol, *args, **kwargs)

    monkeypatch.setattr(RestClient, "fill", fill)

    async def script(fake, src):
        fake.tiers["trade"] = "private"  # no route delivers: every trade comes from catch-ups
        await until(lambda: hung, what="a catch-up stuck after BTC")
        assert src.seq[0].last_id is not None  # BTC's part of the catch-up was taken
        hang["on"] = False

    db = tmp_path / "c.duckdb"
    fake, src, session, _ = record(db, script)
    got = assert_stored_equals_truth(db, fake)
    assert len(hung) == 1 and (got["via"] == "recent_trades").all()


def test_a_start_with_more_trades_since_it_than_one_rest_call_shows_misses_none(tmp_path, monkeypatch):
    """The anchor's recent-trades call answers late, when over 1,000 trades have printed since
    the start: the first of them are found from the aggregates, not skipped."""
    from statarb_kit.exchange.binance.rest import RECENT_LIMIT, RestClient

    real, fakes = RestClient.recent_trades, []

    async def late(self, symbol, limit=RECENT_LIMIT):
        if limit == RECENT_LIMIT and fakes and fakes[0].printed[symbol] < RECENT_LIMIT + 200:
            await until(lambda: fakes[0].printed[symbol] >= RECENT_LIMIT + 200, what="1,200 trades")
        return await real(self, symbol, limit)

    monkeypatch.setattr(RestClient, "recent_trades", late)

    async def script(fake, src):
        fake.tiers["trade"] = "private"  # every trade from REST
        fakes.append(fake)

    db = tmp_path / "s.duckdb"
    fake, src, _, _ = record(db, script, fake_kw={"n": 1_500, "rate": 1_500.0})
    got = assert_stored_equals_truth(db, fake)
    assert (got["via"] == "agg_split").any()  # the part older than the newest 1,000


def test_a_helper_task_that_fails_is_reported_not_silent(tmp_path, monkeypatch):
    """The anchor task raising (a bug, a surprise from REST) ends the stream with its error in
    the session's status, and the session still stops cleanly."""

    async def broken(self, rest):
        raise ValueError("anchor exploded")

    monkeypatch.setattr(BinanceLive, "_anchor_starts", broken)

    async def go():
        async with FakeBinance(n=300, rate=300.0, wait_for_client=True) as fake:
            src = BinanceLive(SYMBOLS, config(fake))
            session = Session(source=src, db=tmp_path / "h.duckdb", flush_interval_s=0.02).start()
            await until(lambda: "anchor exploded" in session.status().last_error, what="the error reported")
            await session.stop()
            return session.status()

    assert asyncio.run(go()).errors >= 1
