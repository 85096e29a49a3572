"""Tasks an owner runs on its event loop: started by ``spawn`` / ``every``, errors reported to the
owner (counted, never raised), all cancelled by ``cancel``. A Session and a monitor viewer own one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .errors import InvalidParameter

#: Called with (where, exception) when a task fails.
ErrorReporter = Callable[[str, BaseException], None]


class Tasks:
    """The owned tasks of one owner; ``report`` receives each task's failure."""

    def __init__(self, report: ErrorReporter) -> None:
        self._report = report
        self._owned: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as an owned task (needs a running loop)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._owned.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._owned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._report(task.get_name(), task.exception())

    def every(self, interval_s: float, fn: Callable[[], Awaitable[None] | None], name: str) -> asyncio.Task[Any]:
        """Call ``fn`` every ``interval_s`` seconds until cancelled; an error is reported and the
        calls go on."""
        if interval_s <= 0:
            raise InvalidParameter(f"interval_s must be > 0, got {interval_s}")

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    result = fn()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception as exc:
                    self._report(name, exc)

        return self.spawn(loop(), name)

    def running(self) -> set[asyncio.Task[Any]]:
        """The owned tasks not finished yet."""
        return set(self._owned)

    async def cancel(self) -> None:
        """Cancel every owned task and wait for them to end."""
        tasks = list(self._owned)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
