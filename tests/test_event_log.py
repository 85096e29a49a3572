"""The event log speaks once a batch at INFO: a history's 1,500 events are one line (each at
DEBUG), a live event its own line."""

from __future__ import annotations

import logging

from statarb_kit.event_log import EventLog


def test_a_batch_of_events_is_one_info_line_and_each_event_a_debug_line(caplog):
    log = EventLog(2_000)
    seen = []
    log.subscribe_events(seen.append)
    with caplog.at_level(logging.DEBUG, logger="statarb_kit"):
        log.publish_events([f"event {k}" for k in range(1_500)])
        log.publish_events(["a live one"])
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert info == ["1500 events, the last: event 1499 (each at DEBUG)", "event: a live one"]
    assert len(debug) == 1_500 and len(seen) == 1_501 and log.events_fired == 1_501
