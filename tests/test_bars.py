import asyncio
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statarb_kit import BarBuilder, InvalidParameter, Session, TickBatch, TickStore, resample_ticks, timeframe_ms
from statarb_kit.bars import bars_from_ticks, rollup
from tests.conftest import ListSource, make_ticks

TFS = ("1s", "1m", "5m")
COLS = ["open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume",
        "first_trade_id", "last_trade_id"]


def random_ticks(rng, n, n_sym=2, mean_gap_ms=300.0, dyadic=True, t0=1_700_000_000_000) -> TickBatch:
    """Per-symbol consecutive trade ids whose times rise with the id (as on Binance)."""
    sym = rng.integers(0, n_sym, n)
    ts = np.empty(n, dtype=np.int64)
    tid = np.empty(n, dtype=np.int64)
    for k in range(n_sym):
        m = sym == k
        c = int(m.sum())
        tid[m] = 10_000 * (k + 1) + np.arange(c)
        ts[m] = t0 + np.cumsum(rng.exponential(mean_gap_ms, c)).astype(np.int64)
    if dyadic:  # exactly representable values: float sums are exact in any order
        price = 100 + rng.integers(-6400, 6400, n) / 64
        qty = rng.integers(1, 4096, n) / 1024
    else:
        price = np.round(100 * np.exp(rng.normal(0, 0.01, n)), 2)
        qty = np.round(rng.lognormal(-2, 1, n), 3) + 0.001
    return TickBatch.from_columns(sym=sym, trade_id=tid, ts=ts, price=price, qty=qty,
                                  is_buyer_maker=rng.random(n) < 0.5)


def frame_of(batch: TickBatch, symbols=("AAAUSDT", "BBBUSDT")) -> pd.DataFrame:
    return batch.to_frame(symbols)


def duckdb_bars(ticks: pd.DataFrame, tf_ms: int) -> pd.DataFrame:
    """An independent reference: one DuckDB GROUP BY over the ticks."""
    con = duckdb.connect()
    con.register("t", ticks)
    return con.execute(f"""
        SELECT symbol::VARCHAR AS symbol, (ts // {tf_ms}) * {tf_ms} AS start,
               arg_min(price, trade_id) AS open, max(price) AS high, min(price) AS low,
               arg_max(price, trade_id) AS close, sum(qty) AS volume, sum(price * qty) AS quote_volume,
               count(*) AS trades, sum(CASE WHEN is_buyer_maker THEN 0 ELSE qty END) AS taker_buy_volume,
               min(trade_id) AS first_trade_id, max(trade_id) AS last_trade_id
        FROM t GROUP BY ALL ORDER BY symbol, start""").df()


def as_frame(bars: np.ndarray, symbols=("AAAUSDT", "BBBUSDT")) -> pd.DataFrame:
    df = pd.DataFrame({c: bars[c] for c in ["start", *COLS]})
    df.insert(0, "symbol", np.asarray(symbols, dtype=object)[bars["sym"]])
    return df


def assert_bars_equal(got: pd.DataFrame, want: pd.DataFrame, exact: bool = True) -> None:
    got = got[["symbol", "start", *COLS]].reset_index(drop=True).astype({"symbol": str})
    want = want[["symbol", "start", *COLS]].reset_index(drop=True).astype({"symbol": str})
    if exact:
        pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)
    else:
        pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("tf", TFS)
def test_reduction_equals_pandas_and_duckdb_group_by(tf):
    rng = np.random.default_rng(3)
    batch = random_ticks(rng, 20_000, mean_gap_ms=50)
    shuffled = batch.take(rng.permutation(len(batch)))
    got = as_frame(bars_from_ticks(shuffled, timeframe_ms(tf)))
    ticks = frame_of(batch)
    assert_bars_equal(got, resample_ticks(ticks, timeframe_ms(tf)))
    assert_bars_equal(got, duckdb_bars(ticks, timeframe_ms(tf)))


def test_rollup_of_partials_equals_direct_reduction():
    rng = np.random.default_rng(4)
    batch = random_ticks(rng, 10_000, mean_gap_ms=40)
    # partials built from overlapping chunks of arbitrary order, like successive batches
    shuffled = batch.take(rng.permutation(10_000))
    chunks = [shuffled.take(idx) for idx in np.array_split(np.arange(10_000), 7)]
    parts = np.concatenate([bars_from_ticks(c, 1000) for c in chunks])
    assert_bars_equal(as_frame(rollup(parts, 60_000)), as_frame(bars_from_ticks(batch, 60_000)))


def test_bars_align_to_utc_epoch_and_skip_empty_periods():
    t0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
    ts = np.array([t0 + 1, t0 + 59_999, t0 + 60_000 * 3 + 5])
    b = TickBatch.from_columns(sym=[0, 0, 0], trade_id=[1, 2, 3], ts=ts, price=[1.0, 2.0, 3.0],
                               qty=[1.0, 1.0, 1.0], is_buyer_maker=[False, True, False])
    bars = bars_from_ticks(b, 60_000)
    assert bars["start"].tolist() == [t0 // 60_000 * 60_000, (t0 + 59_999) // 60_000 * 60_000,
                                      (t0 + 180_005) // 60_000 * 60_000]
    assert all(s % 60_000 == 0 for s in bars["start"])
    assert len(bars) == 3  # the minutes in between had no trade: no bar


def test_forming_bar_final_on_later_tick_or_clock_and_late_tick_corrects():
    b = BarBuilder(1, ("1s",), grace_ms=500)
    mk = lambda tid, ts, p: TickBatch.from_columns(sym=[0], trade_id=[tid], ts=[ts], price=[p], qty=[1.0],
                                                  is_buyer_maker=[False])
    t0 = 1_700_000_000_000
    ch = b.update(mk(1, t0 + 100, 10.0))["1s"]
    assert not ch and not b.view(0, "1s")["final"].iloc[-1]
    assert not b.close_due(t0 + 1_499)["1s"]  # end + grace not reached
    done = b.close_due(t0 + 1_500)["1s"].arrays()[0]
    assert done["start"].tolist() == [t0] and b.view(0, "1s")["final"].all()
    ch = b.update(mk(2, t0 + 200, 12.0))["1s"]  # late for a final bar: corrected and counted
    final, corrected, _ = ch.arrays()
    assert len(final) == 0 and corrected["close"].tolist() == [12.0] and corrected["trades"].tolist() == [2]
    assert b.late_ticks == 1 and b.corrected_bars == 1
    ch = b.update(mk(3, t0 + 1_100, 13.0))["1s"]  # a later bar makes nothing final: already final
    assert not ch.arrays()[0].size
    ch = b.update(mk(4, t0 + 2_100, 14.0))["1s"]  # ...and this one finalizes t0+1000
    assert ch.arrays()[0]["start"].tolist() == [t0 + 1_000]


def test_a_late_bar_before_the_first_is_held_unless_older_bars_left_memory():
    """The start of a live recording: REST's catch-up of the trades before the first streamed one
    arrives after that one's bar is final. The earlier bar is the series' new first bar, held and
    reported corrected (views recompute with it); only once older bars were dropped to ``retain``
    does an earlier bar go to the store alone (``merge``)."""
    mk = lambda tids, ts: TickBatch.from_columns(sym=[0] * len(ts), trade_id=tids, ts=ts, price=[10.0] * len(ts),
                                                 qty=[1.0] * len(ts), is_buyer_maker=[False] * len(ts))
    t0 = 1_700_000_000_000
    b = BarBuilder(1, ("1s",), retain=10)
    b.update(mk([10, 11, 12], [t0 + 1_100, t0 + 2_100, t0 + 3_100]))  # the stream: bars t0+1s..3s
    final, corrected, merge = b.update(mk([9], [t0 + 100]))["1s"].arrays()  # REST: a trade before them
    assert corrected["start"].tolist() == [t0] and not len(merge) and not len(final)
    assert b.view(0, "1s").index.as_unit("ms").asi8.tolist() == [t0, t0 + 1_000, t0 + 2_000, t0 + 3_000]
    b.update(mk(list(range(13, 113)), [t0 + 4_100 + 1_000 * k for k in range(100)]))  # old bars leave memory
    final, corrected, merge = b.update(mk([8], [t0 - 900]))["1s"].arrays()
    assert merge["start"].tolist() == [t0 - 1_000] and not len(corrected)
    assert b.view(0, "1s").index[0].value // 10**6 > t0


@pytest.mark.parametrize("retain", [1, 100, 1_000])
def test_a_series_holds_its_newest_bars_and_at_most_an_eighth_more(retain):
    """However the ticks are cut into updates, the held bars are the newest ones, between
    ``retain`` and ``retain`` plus a slack of max(64, retain // 8), and every bar turns final once."""
    rng = np.random.default_rng(5)
    batch = random_ticks(rng, 6_000, n_sym=1, mean_gap_ms=700.0)
    want = bars_from_ticks(batch, 1_000)
    b = BarBuilder(1, ("1s",), retain=retain)
    final, at, most = [], 0, 0
    while at < len(batch):
        step = int(rng.integers(1, 400))
        final.append(b.update(batch.take(slice(at, at + step)))["1s"].arrays()[0])
        at += step
        held = b.view(0, "1s")
        so_far = want["start"][want["start"] <= held.index[-1].value // 10**6]
        assert min(retain, len(so_far)) <= len(held) <= retain + max(64, retain // 8)
        np.testing.assert_array_equal(held.index.as_unit("ms").asi8, so_far[-len(held):])
        most = max(most, len(held))
    assert most > retain  # the slack is used, then compacted
    np.testing.assert_array_equal(np.concatenate(final)["start"], want["start"][:-1])


@pytest.mark.parametrize("bad", [("1x",), ("0m",), ("1s", "1500ms"), ()])
def test_bad_timeframes(bad):
    with pytest.raises(InvalidParameter):
        BarBuilder(1, bad)


# ---- the property: stored bars == from-scratch resample of stored ticks ------------------

@st.composite
def tick_streams(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 600))
    batch = random_ticks(rng, n, mean_gap_ms=draw(st.sampled_from([3.0, 400.0, 30_000.0])),
                         dyadic=draw(st.booleans()), t0=draw(st.sampled_from([1_700_000_000_000, None])) or
                         (pd.Timestamp.now(tz="UTC").value // 10**6 - 3_600_000))
    grace = draw(st.sampled_from([0, 300, 2_000, 20_000]))
    order = np.argsort(batch.ts + rng.uniform(0, grace, n), kind="stable")  # shuffled within grace
    rows = list(order)
    for _ in range(draw(st.integers(0, 20))):  # duplicates, re-sent at or after the original
        i = int(rng.integers(0, len(rows)))
        rows.insert(int(rng.integers(i + 1, len(rows) + 1)), rows[i])
    stream = batch.take(np.array(rows))
    cuts = np.sort(rng.choice(np.arange(1, len(stream)), size=min(len(stream) - 1, draw(st.integers(0, 12))),
                              replace=False)) if len(stream) > 1 else []
    batches = [stream.take(np.arange(a, b)) for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    return dict(batches=batches, grace=grace, retain=draw(st.sampled_from([1, 3, 50_000])),
                realtime=draw(st.booleans()), batch_rows=draw(st.sampled_from([1, 7, 97])), exact=bool(np.all(batch.qty * 1024 == np.round(batch.qty * 1024))),
                restart=draw(st.booleans()))


async def run_session(path, batches, **kw):
    async with Session(source=ListSource(batches, realtime=kw.pop("realtime"), delay_s=0.001), db=path,
                       flush_interval_s=0.005, **kw) as s:
        await s.wait()
    return s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tick_streams())
def test_stored_bars_equal_resample_of_stored_ticks(case):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.duckdb"
        batches = case["batches"]
        kw = dict(grace_ms=case["grace"], retain_bars=case["retain"], realtime=case["realtime"],
                  batch_rows=case["batch_rows"])
        if case["restart"] and len(batches) > 1:  # a kernel restart half way, same file
            half = len(batches) // 2
            asyncio.run(run_session(path, batches[:half], **kw))
            asyncio.run(run_session(path, batches[half - 1:], **kw))  # resends one batch too
        else:
            asyncio.run(run_session(path, batches, **kw))
        store = TickStore(path, read_only=True)
        ticks = store.con.execute("SELECT * FROM ticks").df()
        sent = TickBatch.concat(batches)
        assert len(ticks) == len(set(zip(sent.sym.tolist(), sent.trade_id.tolist())))  # none lost, none twice
        for tf in TFS:
            assert_bars_equal(store.bars(tf), resample_ticks(ticks, timeframe_ms(tf)), exact=case["exact"])
        store.close()


def test_live_view_marks_only_the_forming_bar():
    async def go():
        batches = [make_ticks(300, spacing_ms=20)]
        async with Session(source=ListSource(batches), flush_interval_s=0.01) as s:
            await asyncio.sleep(0.2)
            view = s.bars("AAAUSDT", "1s", last=None)
            await asyncio.sleep(0)
        return view

    view = asyncio.run(go())
    assert len(view) == 6 and view["final"].tolist() == [True] * 5 + [False]
    assert str(view.index.tz) == "UTC" and view.index.name == "time"
    assert (view["vwap"] >= view["low"]).all() and (view["vwap"] <= view["high"]).all()
