"""The Voila server's loop: a page that closes while a message is on its way is no error."""

from __future__ import annotations

import asyncio
import gc
import logging

from tornado.websocket import WebSocketClosedError

from statarb_kit.server import quiet_closed_pages


def _unretrieved(exc: BaseException, caplog) -> list[logging.LogRecord]:
    """Records logged when a task that failed with ``exc`` is dropped unretrieved, on a loop with
    the server's handler (what jupyter_server does with tornado's write future)."""

    async def fail() -> None:
        raise exc

    async def main() -> None:
        asyncio.ensure_future(fail())  # never awaited, as jupyter_server's write_message
        await asyncio.sleep(0.01)

    loop = asyncio.new_event_loop()
    loop.set_exception_handler(quiet_closed_pages)
    with caplog.at_level(logging.DEBUG, "asyncio"), caplog.at_level(logging.DEBUG, "statarb_kit.server"):
        loop.run_until_complete(main())
        gc.collect()  # the dropped task's destructor reports it
        loop.close()
    return [r for r in caplog.records if r.name in ("asyncio", "statarb_kit.server")]


def test_a_write_to_a_closed_page_is_one_debug_line(caplog):
    records = _unretrieved(WebSocketClosedError(), caplog)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "a page closed while a message was on its way to it")]


def test_any_other_failure_is_still_reported_with_its_traceback(caplog):
    records = _unretrieved(ValueError("boom"), caplog)
    assert [r.levelno for r in records] == [logging.ERROR]
    assert "never retrieved" in records[0].getMessage() and records[0].exc_info[0] is ValueError
