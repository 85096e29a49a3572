"""Finite sources (replay files, the unpaced synthetic pair) recorded through the live pipeline
into a temporary DuckDB file, so a backtest or a scan reads exactly the bars a recording stores;
and running such coroutines from synchronous code and notebooks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .errors import InvalidParameter
from .sources.base import Source

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, also inside a notebook whose event loop
    is already running (then on a worker thread with its own loop; the cell waits)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="statarb-load") as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def recorded(make_source: Callable[[], Source], timeframe: str) -> Iterator[Path]:
    """Record the source ``make_source()`` builds (it must end) with a Session into a temporary
    DuckDB file with ``timeframe`` bars; yields the file's path (deleted after the block).
    InvalidParameter when the recording failed (a corrupt file, say)."""
    from .session import Session

    with tempfile.TemporaryDirectory(prefix="statarb-rec-") as tmp:
        db = Path(tmp) / "bars.duckdb"

        async def record() -> None:
            async with Session(source=make_source(), db=db, timeframes=(timeframe,), retain_bars=1,
                               retain_ticks=1) as session:
                await session.wait()
            if session.status().last_error:
                raise InvalidParameter(f"loading the data failed: {session.status().last_error}")

        run_sync(record())
        yield db
