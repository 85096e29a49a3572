"""Shared test helpers: tick factories and a source that replays prepared batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import psutil
import pytest

from statarb_kit.sources import SourceBase, SourceStatus
from statarb_kit.ticks import TickBatch


def make_ticks(
    n: int, sym: int = 0, first_id: int = 1, t0: int = 1_700_000_000_000, spacing_ms: int = 10, seed: int = 0
) -> TickBatch:
    """``n`` consecutive trades of one symbol with dyadic prices and sizes (exact float sums)."""
    rng = np.random.default_rng(seed)
    return TickBatch.from_columns(
        sym=np.full(n, sym),
        trade_id=first_id + np.arange(n),
        ts=t0 + np.arange(n) * spacing_ms,
        price=100 + rng.integers(-640, 640, n) / 64,
        qty=rng.integers(1, 512, n) / 256,
        is_buyer_maker=rng.random(n) < 0.5,
        recv_ts=np.zeros(n),
    )


class ListSource(SourceBase):
    """A Source that yields prepared batches, then ends. ``delay_s`` paces them."""

    def __init__(
        self, batches: list[TickBatch], symbols=("AAAUSDT", "BBBUSDT"), realtime: bool = False, delay_s: float = 0.0
    ) -> None:
        self.batches = batches
        self.symbols = tuple(symbols)
        self.realtime = realtime
        self.delay_s = delay_s
        self.status = SourceStatus(name="list")

    async def stream(self) -> AsyncIterator[TickBatch]:
        for batch in self.batches:
            await asyncio.sleep(self.delay_s)
            self.status.record(batch)
            yield batch
        self.status.state = "finished"


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "ticks.duckdb"


class QueueSource(SourceBase):
    """A Source fed by the test: ``await put(batch)``; ``close()`` ends the stream."""

    def __init__(self, symbols=("AAAUSDT", "BBBUSDT"), realtime: bool = False) -> None:
        self.symbols = tuple(symbols)
        self.realtime = realtime
        self.status = SourceStatus(name="queue")
        self._queue: asyncio.Queue = asyncio.Queue()

    async def put(self, batch: TickBatch) -> None:
        await self._queue.put(batch)
        await asyncio.sleep(0)  # let the ingest task take it

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def stream(self) -> AsyncIterator[TickBatch]:
        while (batch := await self._queue.get()) is not None:
            self.status.record(batch)
            yield batch


def _cmd(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_tests():
    """Every server, kernel or worker a test starts is gone when the test session ends."""
    yield
    # multiprocessing's resource tracker lives as long as this interpreter, by design
    left = [p for p in psutil.Process().children(recursive=True) if "resource_tracker" not in " ".join(_cmd(p))]
    _, alive = psutil.wait_procs(left, timeout=15)  # reaps the ones that have exited
    stray = []
    for p in alive:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                stray.append((p.pid, " ".join(p.cmdline())[:120]))
                p.kill()
        except psutil.NoSuchProcess:
            pass
    assert not stray, f"processes outlived the tests: {stray}"
