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


# ---- tiers: every test gets one of unit, integration, browser; slow ones also "slow" -------------
#: Modules of tests that drive a real browser (Playwright + Chromium).
BROWSER_MODULES = {"test_browser.py"}
#: Modules whose tests run servers, subprocesses or real-time sessions (seconds each).
INTEGRATION_MODULES = {"test_binance_live.py", "test_binance_routes_and_stops.py", "test_cli.py",
                       "test_cli_refusals.py", "test_demo_site.py", "test_first_hour.py", "test_klines.py",
                       "test_live_tape.py", "test_monitor.py", "test_notify.py", "test_packaging.py", "test_replay.py",
                       "test_session.py", "test_trade_socket.py", "test_viewer_loop.py", "test_watchlist.py",
                       "test_benchmarks.py", "test_archive.py", "test_funding.py", "test_rule_parity.py"}
#: Modules, or single tests (module::name prefix), that take tens of seconds on 2 cores.
SLOW = ("test_monitor.py", "test_live_tape.py", "test_benchmarks.py", "test_viewer_loop.py",
        "test_binance_routes_and_stops.py", "test_binance_live.py", "test_cli.py", "test_first_hour.py",
        "test_notify.py", "test_demo_site.py", "test_funding.py", "test_klines.py",
        "test_scan.py::test_scan_command", "test_scan.py::test_scan_of_a_store", "test_scan.py::test_each_pair_is_tested",
        "test_sweep.py::test_statarb_sweep", "test_sweep.py::test_notebook_runs", "test_quotes.py::test_download",
        "test_backtest_audit.py::test_funding_settled", "test_session.py::test_a_day_of_warm_up",
        "test_session.py::test_a_kernel_shut_down", "test_packaging.py::test_a_built_wheel",
        "test_analytics.py::test_engle_granger_power", "test_backtest.py::test_annual_return_compounds",
        "test_scan.py::test_engle_granger_equals_statsmodels_coint_on_every_pair",
        "test_bars.py::test_stored_bars_equal_resample_of_stored_ticks", "test_klines.py::test_cli_download_all",
        "test_funding.py::test_the_same_rule_with_and_without_funding", "test_rule_parity.py",
        "test_study.py::test_on_dask_workers", "test_scan.py::test_dask_workers", "test_scan.py::test_sweep_on_dask",
        "test_portfolio.py::test_dask_workers")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """Mark each test by tier (``pytest -m "not slow and not browser"`` is the everyday check); a
    notebook run (nbval) is an integration test, and slow, its cells one xdist group."""
    for item in items:
        path = item.path.name
        nodeid = f"{path}::{item.name}"
        if path.endswith(".ipynb"):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)
            # a notebook's cells share one kernel: under xdist (--dist loadgroup) they run on one worker
            item.add_marker(pytest.mark.xdist_group(name=path))
            continue
        tier = "browser" if path in BROWSER_MODULES else "integration" if path in INTEGRATION_MODULES else "unit"
        item.add_marker(getattr(pytest.mark, tier))
        if tier == "browser" or any(nodeid.startswith(s) or path == s for s in SLOW):
            item.add_marker(pytest.mark.slow)
