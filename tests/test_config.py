"""SessionConfig and MonitorConfig: frozen, validated once, the same whether built by keywords or
given whole; a bad value is refused in one line before a session or monitor exists."""

from __future__ import annotations

import dataclasses

import pytest

from statarb_kit import Session
from statarb_kit.config import MonitorConfig, SessionConfig
from statarb_kit.errors import InvalidParameter


def test_a_session_takes_its_config_whole_or_as_keywords_and_it_is_frozen():
    whole = Session(config=SessionConfig(timeframes=("1s", "1m"), retain_bars=10, raw_quotes=True))
    keywords = Session(timeframes=("1s", "1m"), retain_bars=10, raw_quotes=True)
    assert whole.config == keywords.config and whole.timeframes == ("1s", "1m") and whole.raw_quotes
    changed = Session(config=whole.config, retain_bars=20)  # keywords change a given config
    assert changed.config.retain_bars == 20 and changed.config.timeframes == ("1s", "1m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        whole.config.retain_bars = 5


@pytest.mark.parametrize("bad, message", [
    ({"timeframes": ("7m",)}, "'7m'"),
    ({"timeframes": ()}, "at least one timeframe"),
    ({"batch_rows": 0}, "batch_rows must be an integer >= 1"),
    ({"retain_bars": 2.5}, "retain_bars must be an integer"),
    ({"flush_interval_s": 0}, "flush_interval_s and stop_timeout_s must be > 0"),
    ({"memory_retention_h": 1}, "memory_retention_h must be >= 2"),
    ({"retain_bar": 5}, "unknown session setting retain_bar"),
])
def test_bad_session_settings_are_refused_in_one_line(bad, message):
    with pytest.raises(InvalidParameter, match=message) as err:
        Session(**bad)
    assert "\n" not in str(err.value)


def test_monitor_settings_are_refused_before_a_monitor_exists():
    with pytest.raises(InvalidParameter, match="not loopback\\) needs a token"):
        MonitorConfig(host="0.0.0.0")
    assert MonitorConfig(host="0.0.0.0", token="t").token == "t"
    with pytest.raises(InvalidParameter, match="viewer_queue >= 1"):
        MonitorConfig(viewer_queue=0)
    with pytest.raises(InvalidParameter, match="port must be 1 to 65533"):
        MonitorConfig(port=65_535)
    with pytest.raises(InvalidParameter, match="config must be a SessionConfig"):
        SessionConfig.of(MonitorConfig())
