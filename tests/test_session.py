import asyncio

import numpy as np
import pandas as pd
import pytest

from statarb_kit import InvalidParameter, Session, SessionStateError, SyntheticPair, TickStore
from tests.conftest import ListSource, make_ticks


def stored(path) -> tuple[int, int]:
    s = TickStore(path, read_only=True)
    n, distinct = s.con.execute("SELECT count(*), count(DISTINCT (symbol, trade_id)) FROM ticks").fetchall()[0]
    s.close()
    return n, distinct


def test_clean_stop_of_a_live_source_loses_no_tick(db_path):
    async def go():
        src = SyntheticPair(seed=1, model=None)  # real time, wall-clock paced
        s = Session(source=src, db=db_path, flush_interval_s=10.0).start()  # the writer rarely wakes
        await asyncio.sleep(1.5)
        await s.stop()
        return src, s

    src, s = asyncio.run(go())
    assert src.status.ticks > 20
    assert stored(db_path) == (src.status.ticks, src.status.ticks)
    st = s.status()
    assert st.state == "stopped" and st.ticks_stored == src.status.ticks and st.pending == 0
    assert st.overwritten == 0 and st.errors == 0


def test_a_kernel_shut_down_without_stop_still_writes_its_ticks(db_path):
    """Voila closing a page (and a kernel restart) shuts the kernel down without ``await stop()``:
    what the ring holds, the forming bars and the events are written at interpreter exit."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        code = (
            "import asyncio\n"
            "from statarb_kit import Session, SyntheticPair\n"
            "src = SyntheticPair(seed=1, model=None)\n"
            f"s = Session(source=src, db={str(db_path)!r}, flush_interval_s=3600.0).start()\n"
            "await asyncio.sleep(2.0)\n"
            "print(src.status.ticks, s.status().ticks_stored)"
        )
        out = []
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
        assert reply["content"]["status"] == "ok", reply["content"]
        seen, stored_by_then = map(int, "".join(out).split())
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)  # what Voila's page-unload handler does
    assert seen > 20 and stored_by_then == 0  # the writer never woke: everything was in the ring
    n, distinct = stored(db_path)
    assert n == distinct and n >= seen
    s = TickStore(db_path, read_only=True)
    assert s.con.execute("SELECT count(*) FROM bars_1s").fetchone()[0] >= 1
    s.close()


def test_fast_source_with_a_tiny_ring_waits_instead_of_overwriting(db_path):
    async def go():
        src = SyntheticPair(seed=2, realtime=False, start_ms=1_700_000_000_000, max_ticks=20_000)
        async with Session(source=src, db=db_path, buffer_capacity=1_000, batch_rows=500) as s:
            await s.wait()
        return s

    s = asyncio.run(go())
    assert s.ring.overwritten == 0 and s.status().ticks_stored == 20_000
    assert stored(db_path) == (20_000, 20_000)


def test_kernel_style_restart_on_the_same_file(db_path):
    def run(max_ticks):
        src = SyntheticPair(seed=3, realtime=False, start_ms=1_700_000_000_000, max_ticks=max_ticks)

        async def go():
            async with Session(source=src, db=db_path) as s:
                await s.wait()
            return s

        return asyncio.run(go())

    first = run(5_000)
    second = run(3_000)  # the same seed and start: the source continues the file's ids and clock
    assert second.status().duplicates == 0 and second.status().ticks_stored == 3_000
    assert stored(db_path) == (8_000, 8_000)
    con = TickStore(db_path, read_only=True).con
    for symbol, runs_meet in con.execute("""SELECT symbol, bool_and(ts >= lag_ts) FROM (
            SELECT symbol, ts, lag(ts) OVER (PARTITION BY symbol ORDER BY trade_id) AS lag_ts FROM ticks)
            WHERE lag_ts IS NOT NULL GROUP BY symbol""").fetchall():
        assert runs_meet, f"{symbol}: ids and times do not go on together across the restart"
    con.close()
    # the restarted session's views continue the history loaded from the file
    bars = second.bars("BTCUSDT", "1m", last=None)
    assert bars.index.is_monotonic_increasing and bars.index[0] == first.bars("BTCUSDT", "1m", None).index[0]
    assert int(bars["trades"].sum()) == len(second.ticks("BTCUSDT", last=10**9))


def test_views_are_utc_and_bounded():
    async def go():
        b = make_ticks(2_000, sym=1, spacing_ms=5)
        async with Session(source=ListSource([b]), retain_ticks=500) as s:
            await asyncio.sleep(0.3)
            return s.ticks("bbbusdt", last=10), s.ticks("BBBUSDT", last=10**6), s.ticks("AAAUSDT")

    last10, capped, empty = asyncio.run(go())
    assert str(last10.index.tz) == "UTC" and last10["trade_id"].tolist() == list(range(1991, 2001))
    assert len(capped) == 500 and len(empty) == 0
    assert last10.index[-1].value // 10**6 == 1_700_000_000_000 + 1999 * 5


def test_start_without_event_loop_and_bad_symbol_give_clear_errors():
    s = Session(source=ListSource([]))
    with pytest.raises(SessionStateError, match="running event loop"):
        s.start()
    with pytest.raises(InvalidParameter, match="not a symbol of this session"):
        s.bars("XRPUSDT")
    with pytest.raises(InvalidParameter, match="timeframe"):
        s.bars("AAAUSDT", "7q")


def test_a_failing_listener_is_reported_not_fatal():
    seen = []

    def bad(tf, final, corrected):
        raise RuntimeError("boom")

    async def go():
        async with Session(source=ListSource([make_ticks(500, spacing_ms=20)])) as s:
            s.subscribe_bars(bad)
            s.subscribe_bars(lambda tf, final, corrected: seen.append((tf, len(final))))
            await s.wait()
        return s

    s = asyncio.run(go())
    assert s.status().errors >= 1 and "boom" in s.status().last_error
    assert sum(n for tf, n in seen if tf == "1s") >= 9  # the good listener still got every final bar


def test_a_broken_source_is_reported_and_stored_ticks_survive(db_path):
    class Broken(ListSource):
        async def stream(self):
            yield make_ticks(100)
            raise ConnectionError("exchange went away")

    async def go():
        async with Session(source=Broken([]), db=db_path) as s:
            await asyncio.sleep(0.5)
            return s.status()

    st = asyncio.run(go())
    assert "exchange went away" in st.last_error and st.ticks_stored == 100
    assert stored(db_path) == (100, 100)


def test_synthetic_pair_is_seeded_and_realistic():
    def take(seed):
        async def go():
            src = SyntheticPair(seed=seed, realtime=False, start_ms=1_700_000_000_000, max_ticks=4_000)
            return [b async for b in src.stream()]
        from statarb_kit import TickBatch
        return TickBatch.concat(asyncio.run(go()))

    a, b, c = take(5), take(5), take(6)
    np.testing.assert_array_equal(a.price, b.price)
    assert not np.array_equal(a.price[:100], c.price[:100])
    for k in (0, 1):
        ids = a.trade_id[a.sym == k]
        assert (np.diff(ids) == 1).all()  # consecutive ids per symbol
        assert (np.diff(a.ts[a.sym == k]) >= 0).all()
    assert (a.qty > 0).all() and 0.3 < a.is_buyer_maker.mean() < 0.7


def test_a_day_of_warm_up_history_stores_every_generated_tick():
    """The dashboard's synthetic warm-up is history, not a live edge: it waits for the writer
    instead of being overwritten (a 600-minute warm-up used to drop 30% of its ticks)."""
    from statarb_kit import SyntheticPair
    from statarb_kit.ticks import now_ms

    async def go():
        src = SyntheticPair(realtime=True, start_ms=now_ms() - 86_400_000, seed=3)
        session = Session(source=src, timeframes=("1s", "1m"), retain_bars=10, retain_ticks=10).start()
        while src.status.ticks < 3_000_000 or session.status().pending:
            await asyncio.sleep(0.2)
        await session.flush()
        st = session.status()
        await session.stop()
        return src.status.ticks, st

    generated, st = asyncio.run(go())
    assert generated > 3_000_000  # a day of two symbols at ~20 trades/s each
    assert st.overwritten == 0 and st.ticks_stored >= generated and st.ticks_received == st.ticks_stored


def test_an_in_memory_store_keeps_its_retention_and_stays_consistent(tmp_path):
    """A monitor left open for days: an in-memory store drops ticks older than the retention and
    bars the live views can no longer hold; a file store keeps everything."""
    from statarb_kit.sources.synthetic import PairModel

    def run(db: str) -> tuple[Session, dict]:
        async def go():
            src = SyntheticPair(model=PairModel(rate=2.0), realtime=False, start_ms=1_700_000_000_000, seed=4,
                                max_ticks=2 * 2 * 5 * 3600)  # ~5 hours of two symbols at 2 trades/s
            session = Session(source=src, db=db, timeframes=("1s", "1m"), retain_bars=3_600,
                              memory_retention_h=2, batch_rows=5_000).start()
            await session.wait_source()
            await session.flush()
            con = session._store.con
            out = {
                "ticks": con.execute("SELECT count(*), min(ts), max(ts) FROM ticks").fetchone(),
                "bars": con.execute("SELECT min(start), count(*) FROM bars_1s WHERE symbol = 'BTCUSDT'").fetchone(),
                "bars_1m": con.execute("SELECT count(*) FROM bars_1m WHERE symbol = 'BTCUSDT'").fetchone()[0],
                "tail": con.execute("SELECT start, close FROM bars_1s WHERE symbol = 'BTCUSDT' ORDER BY start").df(),
                "memory": session.bars("BTCUSDT", "1s", last=None),
                "status": session.status(),
            }
            await session.stop()
            return session, out
        return asyncio.run(go())

    session, mem = run(":memory:")
    _, disk = run(str(tmp_path / "all.duckdb"))
    hour = 3_600_000
    count, oldest, newest = mem["ticks"]
    assert disk["ticks"][2] == newest and disk["ticks"][1] < newest - 4.9 * hour  # the file keeps all 5 hours
    assert newest - 2 * hour - hour // 3 <= oldest and count < disk["ticks"][0] * 0.6
    st = mem["status"]
    assert st.ticks_pruned == disk["ticks"][0] - count and st.rows_in_store == count
    assert st.ticks_stored == disk["ticks"][0]  # every tick was stored before the retention dropped it
    final = mem["memory"][mem["memory"]["final"]]
    # 1s bars: what memory holds (a series keeps 1 to 1.125 x retain_bars) plus at most one prune period
    assert 3_599 <= len(final) <= 3_600 + 3_600 // 8
    assert len(final) <= mem["bars"][1] < 3_600 + 3_600 // 8 + 2 * 3_600 // 6 + 2
    assert mem["bars"][1] < disk["bars"][1] / 2 and mem["bars"][0] <= final.index[0].value // 10**6
    assert mem["bars_1m"] == disk["bars_1m"]  # 1m bars: 5 hours are fewer than the views hold
    stored = mem["tail"].set_index(pd.to_datetime(mem["tail"]["start"], unit="ms", utc=True))
    np.testing.assert_array_equal(final["close"].to_numpy(), stored.loc[final.index, "close"].to_numpy())
    with pytest.raises(InvalidParameter, match="memory_retention_h"):
        Session(memory_retention_h=1)


def test_a_stop_while_a_backlog_waits_for_ring_space_stores_all_of_it(db_path):
    """A live source hands over a backlog 50x the ring; the stop cancels the ingest while it waits
    for space: the source has counted those trades as received, so the rest is still written."""
    backlog = make_ticks(50_000).as_backlog()
    handed = asyncio.Event()

    class Live(ListSource):
        async def stream(self):
            handed.set()
            yield backlog
            await asyncio.Event().wait()  # then a quiet market, until the stop

    async def go():
        s = Session(source=Live([], realtime=True), db=db_path, buffer_capacity=1_000, batch_rows=500).start()
        await handed.wait()
        await asyncio.sleep(0.05)
        assert s.status().ticks_stored < len(backlog)  # the stop comes while it is being written
        await s.stop()
        return s.status()

    assert asyncio.run(go()).ticks_stored == len(backlog)
    assert stored(db_path) == (len(backlog), len(backlog))
