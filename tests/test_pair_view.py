"""The live pair view: incremental rows equal a full recompute; alerts equal brute force."""

import asyncio

import numpy as np
import pytest

from statarb_kit import InvalidParameter, Session, SyntheticPair, TickBatch, TickStore
from statarb_kit.alerts import LONG_SPREAD, SHORT_SPREAD, AlertRule, event_rows
from statarb_kit.analytics import align_pair, pair_frame
from statarb_kit.rule import Rule
from statarb_kit.view_options import ViewOptions
from statarb_kit.bars import BAR_DTYPE
from tests.conftest import QueueSource

START = 1_700_000_000_000


def synthetic_batches(seconds: int, seed: int = 1, chunk_steps: int = 37) -> list[TickBatch]:
    src = SyntheticPair(symbols=("AAAUSDT", "BBBUSDT"), realtime=False, start_ms=START, seed=seed)
    return [src._trades(chunk_steps) for _ in range(seconds * 10 // chunk_steps)]


def expected_frame(session: Session, view) -> dict[str, np.ndarray]:
    bars = [session.final_bars(code, view.timeframe) for code in (view.x, view.y)]
    al = align_pair(bars[0]["start"], bars[0]["close"], bars[1]["start"], bars[1]["close"], view.tf_ms,
                    view.params.max_stale)
    pf = pair_frame(al.time, al.x, al.y, view.params, al.flags)
    return {c: getattr(pf, c) for c in ("time", *pf.COLUMNS)}


async def drive(rule: Rule, batches, tf="1s", change=None, options: ViewOptions | None = None):
    src = QueueSource()
    session = Session(source=src, flush_interval_s=0.01).start()
    view = session.pair("AAAUSDT", "BBBUSDT", tf, rule, options)
    for i, batch in enumerate(batches):
        await src.put(batch)
        await session.flush()
        if change and i == change[0]:
            change[1](view)
    return session, view, src


def assert_same(got: dict, want: dict, start: int = 0):
    assert got["time"].tolist() == want["time"].tolist()
    for col in ("price_x", "price_y", "alpha", "beta", "spread", "z", "corr", "flags"):
        np.testing.assert_allclose(got[col][start:], want[col][start:], rtol=1e-9, atol=1e-9, err_msg=col)


@pytest.mark.parametrize("rule, options", [
    (Rule(hedge_window=40, z_window=20, corr_window=15), ViewOptions()),
    (Rule(hedge_mode="fixed", hedge_window=40, z_window=20, corr_window=15), ViewOptions(z_include_current=True)),
    (Rule(hedge_mode="kalman", hedge_window=40, z_window=20, corr_window=15, log_prices=True), ViewOptions()),
    (Rule(hedge_window=30, z_window=10, corr_window=10), ViewOptions(corr_of="levels", max_stale=0)),
])
def test_incremental_rows_equal_a_full_recompute(rule, options):
    params = options.params(rule)

    async def go():
        session, view, _ = await drive(rule, synthetic_batches(400), options=options)
        assert view.params == params
        got, want = view.arrays(), expected_frame(session, view)
        recomputes = view.recomputes
        await session.stop()
        return got, want, recomputes

    got, want, recomputes = asyncio.run(go())
    assert len(got["time"]) > 300 and recomputes == 1  # only the initial (empty) computation
    assert_same(got, want)
    assert not np.isnan(got["z"][params.warmup :]).all()


def brute_force_alerts(frame: dict, rule: AlertRule, rows: range) -> list[tuple[int, str]]:
    out, last = [], None
    for i in rows:
        z, c = frame["z"][i], frame["corr"][i]
        if np.isnan(z) or np.isnan(c) or z == 0 or not (abs(z) >= rule.z_entry and c >= rule.corr_min):
            continue
        if rule.cooldown_bars and last is not None and i - last <= rule.cooldown_bars:
            continue
        last = i
        out.append((int(frame["time"][i]), SHORT_SPREAD if z > 0 else LONG_SPREAD))
    return out


@pytest.mark.parametrize("entry, options", [((1.5, 0.2), ViewOptions()), ((1.0, -1.0), ViewOptions(cooldown_bars=5)),
                                             ((1e-9, 0.0), ViewOptions())])
def test_alerts_equal_brute_force_evaluation_and_are_persisted(entry, options, tmp_path):
    db = tmp_path / "a.duckdb"
    rule = options.alert(Rule(z_entry=entry[0], corr_min=entry[1]))
    assert (rule.z_entry, rule.corr_min, rule.cooldown_bars) == (*entry, options.cooldown_bars)

    async def go():
        src = QueueSource()
        session = Session(source=src, db=db, flush_interval_s=0.01).start()
        seen = []
        session.subscribe_alerts(seen.append)
        view = session.pair("AAAUSDT", "BBBUSDT", "1s", Rule(z_entry=entry[0], corr_min=entry[1]), options,
                            hedge_window=40, z_window=20, corr_window=15)
        for batch in synthetic_batches(300, seed=2):
            await src.put(batch)
            await session.flush()
        frame = view.arrays()
        alerts = session.alerts()
        await session.stop()
        return frame, alerts, seen

    frame, alerts, seen = asyncio.run(go())
    want = brute_force_alerts(frame, rule, range(len(frame["time"])))
    assert len(want) > 0
    assert list(zip(alerts["time_ms"].tolist(), alerts["direction"].tolist())) == want
    assert [a.time_ms for a in seen] == [t for t, _ in want]
    stored = TickStore(db, read_only=True).alerts()
    assert stored["time_ms"].tolist() == [t for t, _ in want]
    assert (stored["rule"] == rule.describe()).all() and (stored["pair"] == "AAAUSDT/BBBUSDT").all()
    row = alerts.iloc[0]
    i = frame["time"].tolist().index(row["time_ms"])
    assert (row["z"], row["corr"], row["beta"], row["price_x"]) == (
        frame["z"][i], frame["corr"][i], frame["beta"][i], frame["price_x"][i])
    assert str(alerts.index.tz) == "UTC"


def test_no_alert_and_no_signal_before_the_windows_are_full():
    async def go():
        session, view, _ = await drive(Rule(hedge_window=100, z_window=60, z_entry=1e-9, corr_min=-1.0),
                                       synthetic_batches(150))
        out = (len(view), view.warming_up, view.arrays(), session.alerts_fired)
        await session.stop()
        return out

    n, warming, frame, fired = asyncio.run(go())
    assert 100 < n < 160 and warming and np.isnan(frame["z"]).all() and fired == 0


def test_parameter_change_recomputes_once_and_rule_change_applies_from_next_bar():
    changed_at = {}

    def change(view):
        changed_at["rows"] = len(view)
        view.set_rule(z_entry=1e-9, corr_min=-1.0)  # everything alerts from now on

    async def go():
        session, view, _ = await drive(Rule(hedge_window=30, z_window=10, corr_window=10, z_entry=50.0),
                                       synthetic_batches(200), change=(8, change))
        before = view.recomputes
        view.set_rule(z_window=25)
        after = view.recomputes
        assert view.rule == Rule(hedge_window=30, z_window=25, corr_window=10, z_entry=1e-9, corr_min=-1.0)
        assert_same(view.arrays(), expected_frame(session, view))
        times = session.alerts()["time_ms"].tolist()
        rows = view.arrays()["time"]
        await session.stop()
        return before, after, times, rows

    before, after, times, rows = asyncio.run(go())
    assert after == before + 1
    first_alert = rows.tolist().index(times[0])
    assert first_alert >= changed_at["rows"]  # no alert re-evaluated for earlier bars
    with pytest.raises(InvalidParameter):
        AlertRule(z_entry=-1)
    with pytest.raises(InvalidParameter):
        AlertRule(corr_min=1.5)


def test_late_correction_of_a_bar_in_the_frame_recomputes():
    async def go():
        src = QueueSource()
        session = Session(source=src, flush_interval_s=0.01).start()
        view = session.pair("AAAUSDT", "BBBUSDT", "1s", hedge_window=20, z_window=10, corr_window=10)
        batches = synthetic_batches(100)
        for b in batches:
            await src.put(b)
            await session.flush()
        t = int(view.arrays()["time"][-10])
        late = TickBatch.from_columns(sym=[0], trade_id=[10**12], ts=[t + 5], price=[1e6], qty=[1.0],
                                      is_buyer_maker=[False])
        before = view.recomputes
        await src.put(late)
        await session.flush()
        got, want = view.arrays(), expected_frame(session, view)
        await session.stop()
        return before, view.recomputes, got, want, t

    before, after, got, want, t = asyncio.run(go())
    assert after == before + 1
    assert_same(got, want)
    assert got["price_x"][got["time"].tolist().index(t)] == 1e6  # the close is the highest trade id's price


class FakeFeed:
    """A BarFeed without a Session: bars are handed over by the test, which also owns the views
    (it hands them the bars and keeps the alerts and events they return)."""

    def __init__(self, symbols=("AAAUSDT", "BBBUSDT"), timeframes=("1m",)):
        self.symbols, self.timeframes = tuple(symbols), tuple(timeframes)
        self.bars = {code: np.empty(0, dtype=BAR_DTYPE) for code in range(len(symbols))}
        self.views, self.alerts, self.events, self.errors = [], [], [], []

    def code(self, symbol):
        return self.symbols.index(symbol)

    def final_bars(self, code, timeframe):
        return self.bars[code].copy()

    def retained_bars(self, timeframe):
        return 10_000

    def report_error(self, where, exc):
        self.errors.append((where, exc))

    def push(self, rows):
        for code in np.unique(rows["sym"]):
            self.bars[int(code)] = np.concatenate((self.bars[int(code)], rows[rows["sym"] == code]))
        for view in self.views:
            signals = view.update("1m", rows, np.empty(0, dtype=BAR_DTYPE))
            self.alerts.extend(signals.alerts)
            self.events.extend(signals.events)


def test_a_view_needs_only_a_bar_feed():
    from statarb_kit.pair import PairView

    rng = np.random.default_rng(3)
    n = 400
    y = 100 + np.cumsum(rng.normal(0, 0.5, n))
    x = 2 * y + rng.normal(0, 1, n)
    rows = np.zeros(2 * n, dtype=BAR_DTYPE)
    rows["sym"] = np.r_[np.zeros(n), np.ones(n)]
    rows["start"] = np.r_[np.arange(n), np.arange(n)] * 60_000
    rows["close"] = np.r_[x, y]
    feed = FakeFeed()
    rule = Rule(hedge_window=60, z_window=30, corr_window=30, z_entry=1.5, corr_min=-1.0)
    params = rule.pair_params()
    closed = []
    view = PairView(feed, "AAAUSDT", "BBBUSDT", "1m", rule, on_close=closed.append)
    feed.views.append(view)
    order = np.argsort(rows["start"], kind="stable")
    for lo in range(0, 2 * n, 50):  # bars arrive in batches, interleaved
        feed.push(rows[order][lo : lo + 50])
    ref = pair_frame(np.arange(n) * 60_000, x, y, params)
    got = view.arrays()
    np.testing.assert_allclose(got["z"], ref.z, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert len(feed.alerts) == int(np.nansum(np.abs(ref.z) >= 1.5)) and not feed.errors
    want, _ = event_rows(ref.time, ref.z, ref.corr, AlertRule(1.5, -1.0))  # events: entering the condition
    assert [e.time_ms for e in feed.events] == ref.time[want].tolist() and 0 < len(feed.events) < len(feed.alerts)
    view.close()
    assert closed == [view]
    alerts = len(feed.alerts)
    feed.push(rows[order][-50:])  # a closed view takes no more bars
    assert len(feed.alerts) == alerts


def test_the_view_carries_one_rule_and_derives_its_analytics_and_alerts():
    """The live path carries ``Rule``: a view's analytics parameters and alert rule are derived
    from it and its options; changes name either, anything else is refused in one line."""
    async def go():
        session, view, _ = await drive(Rule(hedge_window=30, z_window=10, corr_window=10, z_entry=2.5, fee_bps=7.0),
                                       synthetic_batches(60), options=ViewOptions(max_stale=1, reset_z=0.5))
        assert view.params == Rule(hedge_window=30, z_window=10, corr_window=10).pair_params(max_stale=1)
        assert view.alert == AlertRule(z_entry=2.5, corr_min=0.5, reset_z=0.5)
        assert view.rule.fee_bps == 7.0  # how it is traded rides along (paper trading, the page's backtest)
        recomputes = view.recomputes
        view.set_rule(z_entry=1.0, cooldown_bars=3)  # entry levels and alert options: no recompute
        assert (view.recomputes, view.alert.z_entry, view.alert.cooldown_bars) == (recomputes, 1.0, 3)
        assert view.rule.z_exit == 0.5 and view.rule.fee_bps == 7.0
        view.set_rule(z_include_current=True)  # a view option of the analytics: one recompute
        assert view.recomputes == recomputes + 1 and view.params.z_include_current
        with pytest.raises(InvalidParameter, match="'z_windw' is neither a rule parameter"):
            view.set_rule(z_windw=5)
        with pytest.raises(InvalidParameter, match="reset_z"):
            view.set_rule(reset_z=2.0)  # above z_entry 1.0
        assert view.rule.z_window == 10 and view.options.reset_z == 0.5  # a refused change changes nothing
        await session.stop()

    asyncio.run(go())


def test_a_default_exit_follows_the_entry_level_and_a_given_one_is_kept():
    rule = Rule(z_entry=2.0)
    assert rule.with_(z_entry=0.4).z_exit == 0.2  # the default for an entry at or below 0.5
    assert rule.with_(z_entry=3.0).z_exit == 0.5
    given = Rule(z_entry=2.0, z_exit=1.0)
    assert given.with_(z_entry=3.0).z_exit == 1.0
    with pytest.raises(InvalidParameter, match="z_exit"):
        given.with_(z_entry=0.8)
    assert rule.same_signals(rule.with_(fee_bps=9.0, z_exit=0.1)) and not rule.same_signals(rule.with_(z_window=61))
    assert not rule.same_signals(rule.with_(z_entry=2.1))
