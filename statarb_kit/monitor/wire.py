"""The monitor's messages: what goes over ZeroMQ between a monitor and its viewers (version 1).

Every message is a ZeroMQ multipart message ``[topic, header, *arrays]``: ``topic`` a short
ASCII word (SUB sockets filter on it), ``header`` JSON (orjson) with at least ``v`` (this
module's VERSION), ``run`` (the monitor process's id: a new one means it restarted) and ``seq``
(the position in the monitor's update stream), and ``arrays`` raw numpy buffers whose dtypes
the header names by kind (``bars`` BAR_DTYPE, ``rows`` ROW_DTYPE). A viewer refuses a message of
another version with a message that says which versions met.

Published (PUB, one stream for every viewer, ``seq`` counting up by one):
- ``update``: one timeframe's bar notification: its final and corrected bars, the new rows of
  each watched pair that changed (``reset`` when the pair's frame was recomputed), and the alerts
  and events those rows fired;
- ``status``: the monitor's SessionStatus and its viewer count, every second (the heartbeat).

Requests (REQ -> ROUTER, answered at once, each reply carrying the ``seq`` it was taken at):
``snapshot`` (config, status, recent alerts and events), ``rows`` (one pair's newest rows),
``bars`` (one symbol's final bars of a timeframe), ``hello`` (a viewer's figures for /health).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import orjson

from ..alerts import ALERT_COLUMNS, Alert
from ..bars import BAR_DTYPE
from ..errors import StatarbError
from ..rule import Rule
from ..view_options import ViewOptions

VERSION = 1
#: One row of a pair view (``PairView.arrays``), as sent.
ROW_DTYPE = np.dtype([("time", "i8"), ("price_x", "f8"), ("price_y", "f8"), ("alpha", "f8"), ("beta", "f8"),
                      ("spread", "f8"), ("z", "f8"), ("corr", "f8"), ("flags", "i8")])
#: Most stored alerts or events one ``history`` request returns (a viewer pages through them).
HISTORY_PAGE = 5_000
#: Bytes of kernel socket buffer each side of a viewer's connection (fixed: not autotuned to megabytes).
SOCKET_BUFFER = 256 * 1024
#: The username of the PLAIN mechanism; the token is its password.
TOKEN_USER = b"statarb"


class WireError(StatarbError):
    """A message this viewer cannot read (another version, a malformed frame)."""


def encode(topic: str, header: dict[str, Any], *arrays: np.ndarray) -> list[bytes]:
    """A multipart message: topic, JSON header (``v`` added), contiguous array buffers."""
    head = orjson.dumps({**header, "v": VERSION}, option=orjson.OPT_SERIALIZE_NUMPY)
    return [topic.encode(), head, *(np.ascontiguousarray(a).tobytes() for a in arrays)]


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any], list[bytes]]:
    """(topic, header, raw array frames) of a message; WireError for another version or garbage."""
    if len(frames) < 2:
        raise WireError(f"a monitor message has at least 2 frames, got {len(frames)}")
    try:
        header = orjson.loads(frames[1])
    except orjson.JSONDecodeError as exc:
        raise WireError(f"unreadable message header: {exc}") from None
    version = header.get("v") if isinstance(header, dict) else None
    if version != VERSION:
        raise WireError(f"the monitor speaks message version {version}, this viewer version {VERSION}: "
                        "install the same statarb_kit on both sides")
    return bytes(frames[0]).decode(), header, [bytes(f) for f in frames[2:]]


def array(frame: bytes, dtype: np.dtype) -> np.ndarray:
    """A writable array of ``dtype`` from a raw frame (WireError when the size does not fit)."""
    if len(frame) % dtype.itemsize:
        raise WireError(f"a frame of {len(frame)} bytes is not a whole number of {dtype.itemsize}-byte rows")
    return np.frombuffer(frame, dtype=dtype).copy()


def bars_array(frame: bytes) -> np.ndarray:
    return array(frame, BAR_DTYPE)


def rows_array(frame: bytes) -> np.ndarray:
    return array(frame, ROW_DTYPE)


def rows_of(cols: dict[str, np.ndarray]) -> np.ndarray:
    """``PairView.arrays()`` columns as one ROW_DTYPE array."""
    out = np.empty(len(cols["time"]), dtype=ROW_DTYPE)
    for name in ROW_DTYPE.names:
        out[name] = cols[name]
    return out


def alert_dict(alert: Alert) -> dict[str, Any]:
    """An alert as JSON-safe fields (NaN as None: JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dataclasses.asdict(alert).items()}


def alert_of(fields: dict[str, Any]) -> Alert:
    try:
        return Alert(**{k: (math.nan if fields[k] is None else fields[k]) for k in ALERT_COLUMNS})
    except (KeyError, TypeError) as exc:
        raise WireError(f"malformed alert in a monitor message: {exc}") from None


def rule_dict(rule: Rule) -> dict[str, Any]:
    return rule.as_dict()


def rule_of(fields: dict[str, Any]) -> Rule:
    return Rule(**fields)


def options_dict(options: ViewOptions) -> dict[str, Any]:
    return dataclasses.asdict(options)


def options_of(fields: dict[str, Any]) -> ViewOptions:
    return ViewOptions(**fields)
