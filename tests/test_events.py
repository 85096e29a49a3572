"""Alert events: entering the condition, hysteresis and cooldown; stored and pushed."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statarb_kit import InvalidParameter, Session, SyntheticPair, TickStore
from statarb_kit.alerts import AlertRule, event_rows


def brute(time_ms, z, corr, rule):
    """The rule bar by bar, written the plain way."""
    armed, last, out = True, None, []
    for i, (t, zi, ci) in enumerate(zip(time_ms, z, corr)):
        cooled = last is None or t - last >= rule.event_cooldown_s * 1000
        if not armed and not math.isnan(zi) and abs(zi) < rule.rearm_z and cooled:
            armed = True
        if armed and cooled and not (math.isnan(zi) or math.isnan(ci)) and zi != 0 \
                and abs(zi) >= rule.z_entry and ci >= rule.corr_min:
            out.append(i)
            armed, last = False, t
    return out


@settings(max_examples=200, deadline=None)
@given(z=st.lists(st.one_of(st.floats(-4, 4), st.just(math.nan)), min_size=1, max_size=80),
       reset=st.floats(0, 2), cooldown=st.sampled_from([0.0, 1.0, 5.0]), cut=st.integers(0, 80))
def test_events_equal_the_plain_rule_also_when_fed_in_pieces(z, reset, cooldown, cut):
    z = np.array(z)
    t = np.arange(len(z)) * 1000
    corr = np.where(np.arange(len(z)) % 7 == 3, 0.1, 0.9)
    rule = AlertRule(2.0, 0.5, reset_z=reset, event_cooldown_s=cooldown)
    whole, _ = event_rows(t, z, corr, rule)
    assert whole.tolist() == brute(t, z, corr, rule)
    cut = min(cut, len(z))
    first, state = event_rows(t[:cut], z[:cut], corr[:cut], rule)
    second, _ = event_rows(t[cut:], z[cut:], corr[cut:], rule, state)
    assert [*first.tolist(), *(second + cut).tolist()] == whole.tolist()


def test_a_z_hovering_at_the_threshold_is_one_event_not_many():
    z = np.array([0.0, 2.1, 1.9, 2.2, 2.05, 1.95, 2.3, 0.3, 2.4, 2.5])
    t = np.arange(len(z)) * 1000
    rows, state = event_rows(t, z, np.ones(len(z)), AlertRule(2.0, 0.5))  # re-arms below 0.5
    assert rows.tolist() == [1, 8] and not state.armed and state.last_ms == 8000
    rows, _ = event_rows(t, z, np.ones(len(z)), AlertRule(2.0, 0.5, event_cooldown_s=10))
    assert rows.tolist() == [1]  # re-armed at bar 7 only after the cooldown: no second event
    with pytest.raises(InvalidParameter, match="reset_z"):
        AlertRule(2.0, 0.5, reset_z=3.0)


def test_one_vocabulary_with_the_old_names_as_aliases():
    with pytest.warns(DeprecationWarning) as said:
        rule = AlertRule(z_threshold=2.5, corr_threshold=0.2)
    assert [str(w.message) for w in said] == ["AlertRule(z_threshold=...) is now z_entry",
                                             "AlertRule(corr_threshold=...) is now corr_min"]
    assert (rule.z_entry, rule.corr_min) == (2.5, 0.2) and rule == AlertRule(z_entry=2.5, corr_min=0.2)
    assert rule.with_(corr_min=0.4).corr_min == 0.4
    with pytest.raises(TypeError, match="z_thresh"):
        AlertRule(z_thresh=1)


def test_events_are_stored_and_pushed_while_every_alert_is_logged(tmp_path):
    db = tmp_path / "ev.duckdb"
    pushed = []

    async def go():
        src = SyntheticPair(realtime=False, start_ms=1_700_000_000_000, max_ticks=150_000, seed=2)
        async with Session(source=src, db=db, timeframes=("1s",)) as session:
            session.subscribe_events(pushed.append)
            session.pair("BTCUSDT", "ETHUSDT", "1s", hedge_window=60, z_window=30, corr_window=30,
                         z_entry=1.5, corr_min=-1.0)
            await session.wait()
        return session

    session = asyncio.run(go())
    store = TickStore(db, read_only=True)
    events, alerts = store.alerts("alert_events"), store.alerts()
    assert len(pushed) == len(events) == session.status().events > 5
    assert len(alerts) == session.status().alerts > 2 * len(events)  # the log keeps every qualifying bar
    assert events["time_ms"].tolist() == [e.time_ms for e in pushed]
    assert set(events["time_ms"]) <= set(alerts["time_ms"])


def test_alerts_and_events_a_failing_store_refused_are_stored_by_a_later_flush(tmp_path, monkeypatch):
    """The event log hands what is unstored to the writer; an insert that fails hands it back (the
    other table's batch too), and a later flush stores it: none lost, none twice."""
    db = tmp_path / "ev.duckdb"
    real = TickStore.insert_alerts
    refused: list[str] = []

    def flaky(self, frame, table="alerts"):
        if len(refused) < 4:  # the first four inserts fail, whichever table comes first
            refused.append(table)
            raise OSError("disk full (test)")
        return real(self, frame, table)

    monkeypatch.setattr(TickStore, "insert_alerts", flaky)

    async def go():
        src = SyntheticPair(realtime=False, start_ms=1_700_000_000_000, max_ticks=150_000, seed=2)
        async with Session(source=src, db=db, timeframes=("1s",), flush_interval_s=0.01) as session:
            session.pair("BTCUSDT", "ETHUSDT", "1s", hedge_window=60, z_window=30, corr_window=30,
                         z_entry=1.5, corr_min=-1.0)
            await session.wait()
        return session

    session = asyncio.run(go())
    st = session.status()
    assert len(refused) == 4 and st.errors >= 4 and "disk full" in st.last_error
    store = TickStore(db, read_only=True)
    events, alerts = store.alerts("alert_events"), store.alerts()
    assert len(events) == st.events > 5 and len(alerts) == st.alerts
    assert events["time_ms"].tolist() == [e.time_ms for e in session.event_log][-len(events):]
    assert alerts["time_ms"].is_unique and events["time_ms"].is_unique
