"""Measure what widgets send to the browser: messages and bytes (JSON state plus binary buffers).

    with Traffic() as traffic:
        dash = Dashboard(session)       # widgets created inside the block are recorded
        traffic.reset(); dash.refresh()
        traffic.messages, traffic.bytes

It replaces ``comm.create_comm`` (the documented hook) for the duration of the block.
"""

from __future__ import annotations

import json
from typing import Any

import comm
from comm.base_comm import BaseComm


class Traffic:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self._saved: Any = None

    def reset(self) -> None:
        self.messages = self.bytes = 0

    def _record(self, data: Any, buffers: Any) -> None:
        self.messages += 1
        self.bytes += len(json.dumps(data, default=str)) + sum(memoryview(b).nbytes for b in buffers or ())

    def __enter__(self) -> Traffic:
        traffic = self

        class RecordingComm(BaseComm):
            def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                            **keys: Any) -> None:
                traffic._record(data, buffers)

        self._saved = comm.create_comm
        comm.create_comm = RecordingComm
        return self

    def __exit__(self, *exc: object) -> None:
        comm.create_comm = self._saved
