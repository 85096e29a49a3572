"""The always-on monitor: one ingestion, one event log, one notification per event, viewers attached.

Monitors and viewers run as processes (``statarb monitor``, ``tests.monitor_viewer``, Voila pages in
Chromium), as they do for users; a local webhook (apprise's ``json://``) counts notifications.
``STATARB_MONITOR_S`` sets how long the main test watches (default 20 s; the README reports 600 s).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from statarb_kit.alerts import EventState, event_rows
from statarb_kit.analytics import PairParams, align_pair, ols_hedge, pair_frame
from statarb_kit.alerts import AlertRule
from statarb_kit.errors import InvalidParameter
from statarb_kit.monitor import wire
from statarb_kit.monitor.remote import MonitorError, RemoteSession
from statarb_kit.store import TickStore
from tests.test_browser import free_port, free_ports
from tests.test_notify import Receiver

ROOT = Path(__file__).resolve().parents[1]
WATCH_S = float(os.environ.get("STATARB_MONITOR_S", "20"))
#: Bytes of updates published while a viewer is stopped that overflow its queue of 5 updates and the
#: socket buffers of both ends (Linux doubles each SO_SNDBUF / SO_RCVBUF asked for: 4 x SOCKET_BUFFER),
#: with a margin for the updates in the queue and in zmq's encoder.
OVERFLOW_BYTES = 8 * wire.SOCKET_BUFFER


class Hook(Receiver):
    """A webhook on 127.0.0.1 (apprise's ``json://``): ``calls`` are (arrival time, JSON body)."""

    @property
    def calls(self) -> list[tuple[float, dict]]:
        return list(zip(self.arrivals, self.posts))

    def keys(self) -> list[tuple[str, str, int]]:
        """(pair, timeframe, bar time ms) of each notification, in arrival order."""
        out = []
        for body in list(self.posts):
            m = re.search(r"\((\w+)\)$", body["title"])
            pair = body["message"].split(" ", 1)[0]
            at = re.search(r"at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", body["message"]).group(1)
            out.append((pair, m.group(1), int(pd.Timestamp(at, tz="UTC").value // 1_000_000)))
        return out


@contextlib.contextmanager
def monitor(tmp: Path, *args: str, name: str = "monitor"):
    """``statarb monitor`` on a free port until /health answers; yields (process, port, log path).
    Stopped with SIGTERM (it must exit 0) unless the test ended it."""
    port = free_ports(3)
    log = tmp / f"{name}.log"
    out = open(log, "a")
    proc = subprocess.Popen([sys.executable, "-m", "statarb_kit.cli", "monitor", "--port", str(port), "--every", "2",
                             *args], stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        wait_health(port, proc, log)
        yield proc, port, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        out.close()


def wait_health(port: int, proc: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the monitor exited {proc.returncode}: {log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            if r.status_code == 200:
                return r.json()
        time.sleep(0.3)
    raise AssertionError(f"no /health: {log.read_text()[-3000:]}")


def health(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()


class Viewer:
    """``tests.monitor_viewer`` in its own process; ``line()`` is its newest JSON line."""

    def __init__(self, port: int, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.monitor_viewer", f"127.0.0.1:{port}", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        self.lines: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(orjson.loads(raw))

    def line(self, after: int = 0, timeout_s: float = 60.0, what: str = "a line") -> dict:
        """The newest line once there are more than ``after`` of them."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.lines) > after:
                return self.lines[-1]
            if self.proc.poll() is not None:
                raise AssertionError(f"the viewer exited: {self.proc.stderr.read().decode()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"the viewer printed no {what}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def monitor_rows(port: int, pairs: list[str], token: str | None = None) -> dict[str, pd.DataFrame]:
    """The monitor's rows of ``pairs`` right now, through a fresh viewer's requests."""

    async def go():
        viewer = RemoteSession(f"127.0.0.1:{port}", token)
        viewer.start()
        try:
            out = {}
            for name in pairs:
                rows, _ = await viewer._rows(name, None)
                out[name] = pd.DataFrame(rows).set_index("time")
            return out
        finally:
            await viewer.stop()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a thread of its own: the caller may run a loop
        return pool.submit(asyncio.run, go()).result()


def assert_views_equal_the_monitor(line: dict, rows: dict[str, pd.DataFrame]) -> int:
    """Each view's newest row (time, z, beta) equals the monitor's row at that time, exactly."""
    checked = 0
    for name, (t, z, beta) in line["views"].items():
        mine = rows[name]
        assert t in mine.index, f"{name}: bar {t} is not among the monitor's rows"
        want = mine.loc[t]
        assert (z is None and np.isnan(want["z"])) or z == want["z"], (name, z, want["z"])
        assert beta is None and np.isnan(want["beta"]) or beta == want["beta"], (name, beta, want["beta"])
        checked += 1
    return checked


def stored_events(db: Path) -> pd.DataFrame:
    store = TickStore(db, read_only=True)
    try:
        return store.alerts("alert_events"), store.notifications()
    finally:
        store.close()


def keys_of(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
    return [(p, tf, int(t)) for p, tf, t in zip(frame["pair"], frame["timeframe"], frame["time_ms"])]


# ---- the must-show runs ------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_a_monitor_its_viewers_and_one_notification_per_event(tmp_path, request):
    """A synthetic monitor with a notebook-like viewer and two Voila pages in Chromium: the viewers
    show the monitor's rows and events; a webhook gets each stored event exactly once, also once
    every viewer is closed."""
    from playwright import sync_api

    from tests.test_browser import ARGS, CHROMIUM, serve, watch_outside

    hook = Hook()
    db = tmp_path / "m.duckdb"
    with monitor(tmp_path, "--db", str(db), "--groups", "2", "--group-size", "3", "--history-min", "4",
                 "--z-entry", "1.5", "--corr-min", "0", "--notify", hook.url) as (proc, port, log):
        dash_port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "STATARB_PREVIEW_S"}  # the pages keep running
        pages = serve([sys.executable, "-m", "statarb_kit.cli", "dashboard", "--monitor", f"127.0.0.1:{port}",
                       "--port", str(dash_port)], dash_port, env, tmp_path / "voila.log")
        base = next(pages)
        request.addfinalizer(lambda: next(pages, None))  # whatever happens: the server stops, its kernels with it
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            watch = browser.new_page(viewport={"width": 1366, "height": 900})
            pair = browser.new_page(viewport={"width": 1366, "height": 900})
            outside = watch_outside(watch) + watch_outside(pair)
            watch.goto(base, timeout=120_000)
            pair.goto(base + "?symbols=G00A00USDT,G00A01USDT", timeout=120_000)
            for page, mark in ((watch, "#sak-wl-status"), (pair, "#sak-pair")):
                page.wait_for_selector(f"{mark}, #sak-error", timeout=120_000)
                assert page.locator("#sak-error").count() == 0, page.inner_text("#sak-error")
            viewer = Viewer(port)  # the notebook-like viewer
            request.addfinalizer(viewer.close)
            t_end = time.monotonic() + WATCH_S
            checked = 0
            while time.monotonic() < t_end:
                time.sleep(min(5.0, max(0.0, t_end - time.monotonic())))
                line = viewer.line(after=len(viewer.lines))
                shown = watch.evaluate("""() => [...document.querySelectorAll('.sak-wl-row[data-pair]')].map(
                    r => [r.dataset.pair, Number(r.dataset.t), r.querySelector('.sak-wl-z').textContent])""")
                hedge = pair.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#sak-hedge th')]
                    .map(th => [th.textContent, th.nextElementSibling.textContent]))""")
                rows = monitor_rows(port, sorted({*line["views"], "G00A00USDT/G00A01USDT"}))
                checked += assert_views_equal_the_monitor(line, rows)
                for name, t, z_text in shown:  # each row's z: the monitor's at that row's bar
                    if z_text != "-":
                        assert z_text == f"{rows[name].loc[t, 'z']:+.2f}", (name, t, z_text)
                        checked += 1
                at = int(pd.Timestamp(hedge["last bar"].replace(" UTC", ""), tz="UTC").value // 1_000_000)
                mine = rows["G00A00USDT/G00A01USDT"].loc[:at].tail(PairParams().hedge_window)
                if hedge["beta"] != "n/a" and mine.index[-1] == at:  # the pair page's hedge fit: the monitor's rows
                    fit = ols_hedge(mine["price_x"].to_numpy(), mine["price_y"].to_numpy())
                    assert float(hedge["beta"]) == pytest.approx(fit.beta, rel=1e-5)
                    assert float(hedge["alpha"]) == pytest.approx(fit.alpha, rel=1e-5, abs=1e-9)
                    checked += 1
            watch.screenshot(path=str(tmp_path / "monitor-watchlist.png"))
            pair.screenshot(path=str(tmp_path / "monitor-pair.png"))
            assert outside == []
            for page in (watch, pair):
                page.goto("about:blank")
            browser.close()
        next(pages, None)  # the Voila server stops (SIGTERM), its kernels with it
        final = viewer.line(after=len(viewer.lines))
        viewer.close()
        assert final["drops"] == 0 and final["resyncs"] == 0
        until(lambda: health(port)["viewers"] <= 1, 60, "the closed pages' kernels to leave")
        events_alone = health(port)["events"]
        # nobody watching: the monitor goes on and so do its notifications (events come by chance: wait for one)
        until(lambda: health(port)["events"] > events_alone, 120, "an event with nobody watching")
        proc.terminate()
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    events, outbox = stored_events(db)
    stored = keys_of(events)
    assert len(stored) == len(set(stored)) > 5 and checked > 20
    deadline = time.monotonic() + 10
    while len(hook.calls) < len(stored) and time.monotonic() < deadline:
        time.sleep(0.2)
    got = hook.keys()
    hook.close()
    assert sorted(got) == sorted(stored)  # each stored event notified once, none twice
    assert outbox["sent_ms"].notna().all() and len(outbox) == len(stored)
    held = {tuple(k) for k in final["events"]}  # the notebook viewer's event log
    assert held <= set(stored)
    for name, (newest, _, _) in final["views"].items():  # it holds every event up to its newest row
        assert {k for k in stored if k[0] == name and k[2] <= newest} <= held, name


@pytest.mark.timeout(600)
def test_kill_9_and_restart_live_store_the_exchange_trades_and_notify_each_event_once(tmp_path):
    """Live against the local fake Binance: kill -9 mid-run, start again on the file: the stored
    ticks equal the server's, each event of the stored bars is stored and notified exactly once."""
    hook = Hook()
    db = tmp_path / "live.duckdb"
    windows = ["--hedge-window", "5", "--z-window", "5", "--corr-window", "5", "--z-entry", "0.5", "--corr-min", "-1"]

    with fake_binance(n=9_000, rate=150.0, start_delay_s=2.0) as fake:  # a 42 s tape
        args = ["--db", str(db), "--source", "live", "--pairs", "BTCUSDT/ETHUSDT", "--ws-url", fake.ws_url,
                "--rest-url", fake.http_url, "--notify", hook.url, *windows]
        with monitor(tmp_path, *args, name="first") as (proc, port, log):
            until(lambda: health(port)["events"] >= 1, 90, "an event before the kill")
            time.sleep(2.5)
            # a kill between an endpoint's accepting an event and the commit of that sending sends it
            # again (at-least-once, see monitor.service): kill when no sending is unconfirmed
            until(lambda: health(port)["notify_unconfirmed"] == 0, 30, "no sending unconfirmed")
            proc.kill()  # kill -9: no stop, no reconciliation, no last commit
            proc.wait()
        time.sleep(4.0)  # trades print while nothing records
        with monitor(tmp_path, *args, name="second") as (proc, port, log):
            until(lambda: fake.done, 120, "the end of the tape")
            time.sleep(3.0)
            proc.terminate()
            assert proc.wait(60) == 0, log.read_text()[-3000:]
        truth = fake.truth()
    store = TickStore(db, read_only=True)
    ticks = store.con.execute("SELECT symbol, trade_id, via FROM ticks ORDER BY symbol, trade_id").df()
    bars = {s: store.load_bars("1s", s, k, 10**9) for k, s in enumerate(("BTCUSDT", "ETHUSDT"))}
    store.close()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = ticks[ticks["symbol"] == symbol]["trade_id"].to_numpy()
        want = truth[truth["symbol"] == symbol]["trade_id"].to_numpy()
        # every trade the exchange printed from the first one recorded on, once, across the kill
        assert len(ids) > 0.8 * len(want) and ids.tolist() == want[want >= ids[0]].tolist()
    assert (ticks["via"] != "stream").any()  # the outage was filled from REST
    events, outbox = stored_events(db)
    stored = keys_of(events)
    # how many events a 42 s tape makes depends on where its trades fall in 1 s bars (1 in one run of
    # several): what counts is below, every one recomputed from the stored bars, stored once and sent once
    assert len(stored) == len(set(stored)) >= 1
    # every event the stored bars hold, recomputed from scratch, was stored (none lost) ...
    params = PairParams(hedge_window=5, z_window=5, corr_window=5)
    a = align_pair(bars["BTCUSDT"]["start"], bars["BTCUSDT"]["close"], bars["ETHUSDT"]["start"],
                   bars["ETHUSDT"]["close"], 1_000, params.max_stale)
    pf = pair_frame(a.time, a.x, a.y, params, a.flags)
    fired, _ = event_rows(pf.time, pf.z, pf.corr, AlertRule(z_entry=0.5, corr_min=-1), EventState())
    # the newest aligned bar can be one the stop committed (final only then): no view saw it
    recomputed = {("BTCUSDT/ETHUSDT", "1s", int(pf.time[i])) for i in fired if i < len(pf.time) - 1}
    assert recomputed - set(stored) == set()
    # an event published on rows a REST fill later corrected stays (it was sent): at most a stray one
    assert len(set(stored) - recomputed) <= 1, sorted(set(stored) ^ recomputed)
    # ... and notified exactly once, across the kill
    deadline = time.monotonic() + 10
    while len(hook.calls) < len(stored) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(hook.keys()) == sorted(stored)
    assert outbox["sent_ms"].notna().all()
    hook.close()


def until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if predicate():
                return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def fake_binance(**kw):
    """The local fake Binance on its own thread and loop (the test's waits must not stall it)."""
    from tests.fake_binance import FakeBinance

    ready, held = threading.Event(), {}

    def run() -> None:
        async def main() -> None:
            async with FakeBinance(**kw) as fake:
                held.update(fake=fake, loop=asyncio.get_running_loop(), stop=asyncio.Event())
                ready.set()
                await held["stop"].wait()

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the fake Binance did not start"
    try:
        yield held["fake"]
    finally:
        held["loop"].call_soon_threadsafe(held["stop"].set)
        thread.join(30)


@pytest.mark.timeout(600)
def test_a_viewer_stopped_for_30_s_slows_nothing_and_resynchronises(tmp_path):
    """200 pairs; a viewer queue of 5 updates: 30 s stopped overflows it (and the socket buffers)."""
    hook = Hook()
    with monitor(tmp_path, "--db", str(tmp_path / "s.duckdb"), "--history-min", "4", "--z-entry", "2.5",
                 "--corr-min", "0.3", "--notify", hook.url, "--viewer-queue", "5") as (proc, port, log):
        viewer = Viewer(port, "--every", "0.5", "--pairs", "10", "--rows", "200")
        try:
            viewer.line(timeout_s=120)

            def rates(seconds: float) -> tuple[float, float]:
                """(updates a second, median notification delay after the bar's end in s) over ``seconds``."""
                h0, n0, t0 = health(port)["seq"], len(hook.calls), time.monotonic()
                time.sleep(seconds)
                h1, t1 = health(port)["seq"], time.monotonic()
                delays = [at - (key[2] + 1_000) / 1000 for (at, _), key in zip(hook.calls[n0:], hook.keys()[n0:])]
                return (h1 - h0) / (t1 - t0), float(np.median(delays)) if delays else float("nan")

            time.sleep(5)  # past the history's catch-up
            before = rates(10)
            resyncs_before = viewer.line()["resyncs"]  # one may come before the stop (a hiccup under load)
            viewer.proc.send_signal(signal.SIGSTOP)
            stopped_at = health(port)
            during = rates(30)
            deadline = time.monotonic() + 240  # a loaded monitor publishes less: wait for enough bytes
            while True:
                now = health(port)
                published = now["update_bytes"] - stopped_at["update_bytes"]
                if (published >= OVERFLOW_BYTES and now["seq"] - stopped_at["seq"] > 10) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert published >= OVERFLOW_BYTES, f"only {published} bytes published while the viewer stopped"
            n = len(viewer.lines)
            viewer.proc.send_signal(signal.SIGCONT)
            line = viewer.line(after=n)
            deadline = time.monotonic() + 180  # a loaded viewer first works through what its buffers held
            while (line["resyncs"] <= resyncs_before or not line["drops"]) and time.monotonic() < deadline:
                line = viewer.line(after=len(viewer.lines))
            # its queue overflowed; it resynchronised
            assert line["drops"] > 0 and line["resyncs"] > resyncs_before, (published, line["drops"], line["resyncs"],
                                                                             resyncs_before, line["seq"])
            line = viewer.line(after=len(viewer.lines))
            checked = assert_views_equal_the_monitor(line, monitor_rows(port, list(line["views"])))
        finally:
            viewer.close()
            hook.close()
    assert checked == 10
    print(f"updates/s and median notification delay (s): before {before}, during the stop {during}; "
          f"{published} bytes published while stopped; "
          f"viewer drops {line['drops']}, resyncs {line['resyncs']}")
    # the bar rate did not fall: a monitor held up by the stopped viewer would stall (no updates);
    # the machine's other work moves it by a fifth either way (5.95 before, 4.73 during, on two workers)
    assert during[0] >= 0.5 * before[0], (before, during)
    if not np.isnan(before[1]) and not np.isnan(during[1]):
        assert during[1] <= max(2 * before[1], before[1] + 1.0), (before, during)


def test_a_token_is_needed_off_loopback_and_refuses_a_viewer_without_it(tmp_path):
    from statarb_kit.monitor.service import Monitor
    from statarb_kit.session import Session
    from statarb_kit.sources import SyntheticPair

    with pytest.raises(InvalidParameter, match="needs a token"):
        Monitor(Session(source=SyntheticPair(), db=tmp_path / "t.duckdb"), [("BTCUSDT", "ETHUSDT")], host="0.0.0.0")
    token = "s3cret-token"
    with monitor(tmp_path, "--db", str(tmp_path / "t.duckdb"), "--pairs", "BTCUSDT/ETHUSDT", "--history-min", "3",
                 "--token", token) as (proc, port, log):

        async def attach(tok):
            viewer = RemoteSession(f"127.0.0.1:{port}", tok, request_timeout_s=3.0)
            viewer.start()
            view = viewer.pair("BTCUSDT", "ETHUSDT")
            await viewer.ready()  # its rows arrive in the background
            rows = len(view)
            await viewer.stop()
            return rows

        for wrong in (None, "not-the-token"):
            with pytest.raises(MonitorError, match="did not answer"):
                asyncio.run(attach(wrong))
        assert asyncio.run(attach(token)) > 0
        assert health(port)["ok"]


def test_the_cli_generates_a_token_for_an_outside_address(capsys):
    from argparse import Namespace

    from statarb_kit.cli.monitor import _token

    assert _token(Namespace(token=None, host="127.0.0.1")) is None
    token = _token(Namespace(token=None, host="0.0.0.0"))
    assert len(token) >= 24 and token in capsys.readouterr().err


def test_a_slider_on_an_attached_page_computes_the_pair_here_from_the_monitors_bars(tmp_path):
    """A mirror with other parameters becomes a local view: its rows are pair_frame over the
    monitor's bars; the monitor's own view (and its events) stay as they were."""
    with monitor(tmp_path, "--db", str(tmp_path / "w.duckdb"), "--pairs", "BTCUSDT/ETHUSDT",
                 "--history-min", "5") as (proc, port, log):

        async def go():
            viewer = RemoteSession(f"127.0.0.1:{port}")
            viewer.start()
            try:
                view = viewer.pair("BTCUSDT", "ETHUSDT")
                deadline = time.monotonic() + 120
                while len(view) <= 200 and time.monotonic() < deadline:  # the history's catch-up (slow when loaded)
                    await asyncio.sleep(0.5)
                mirrored_rows = len(view)
                assert view.mirrored and mirrored_rows > 200
                view.set_rule(z_window=30)
                assert not view.mirrored
                await viewer.ready()  # the bars it computes from arrive in the background; it recomputes
                bars = [viewer.final_bars(viewer.code(s), "1s") for s in ("BTCUSDT", "ETHUSDT")]
                mine = view.arrays()
                theirs, _ = await viewer._rows("BTCUSDT/ETHUSDT", None)
                return mirrored_rows, bars, mine, theirs, view.params
            finally:
                await viewer.stop()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            mirrored_rows, bars, mine, theirs, params = pool.submit(asyncio.run, go()).result()
    a = align_pair(bars[0]["start"], bars[0]["close"], bars[1]["start"], bars[1]["close"], 1_000, params.max_stale)
    pf = pair_frame(a.time, a.x, a.y, params, a.flags)
    n = len(mine["time"])
    np.testing.assert_array_equal(mine["time"], pf.time[-n:])
    np.testing.assert_allclose(mine["z"], pf.z[-n:], rtol=1e-9, atol=1e-12, equal_nan=True)
    assert params.z_window == 30 and len(theirs) >= mirrored_rows  # the monitor kept its own rule


def test_an_attached_page_marks_its_pairs_alerts_and_the_monitors_events_and_the_viewer_reads_them_all(tmp_path):
    """More events than a snapshot carries (500): the viewer reads the monitor's whole stored
    history in pages (a page of 7 and of 5,000 read the same), ``events()`` starts at the first
    stored event; an attached pair page marks every bar of its window that meets the rule (by
    hand), each event the monitor fired on the pair in that window, and counts them per pair."""
    from statarb_kit.monitor.service import SNAPSHOT_EVENTS
    from statarb_kit.widgets import Dashboard

    with monitor(tmp_path, "--db", str(tmp_path / "m.duckdb"), "--pairs", "synthetic", "--groups", "5",
                 "--group-size", "4", "--history-min", "30") as (proc, port, log):

        async def go():
            viewer = await RemoteSession(f"127.0.0.1:{port}").open()
            try:
                deadline = time.monotonic() + 300
                while viewer.events_fired <= SNAPSHOT_EVENTS + 50 and time.monotonic() < deadline:
                    await asyncio.sleep(1.0)
                    await viewer._snapshot()
                await asyncio.sleep(3.0)  # the monitor stores what it fired within a second or two
                snapshot_first = {(e.time_ms, e.pair, e.timeframe) for e in viewer.event_log}
                viewer._load_history()
                await viewer.ready()
                everything = viewer.events()
                small, large = await viewer.stored(page=7), await viewer.stored()
                x, y = viewer.pairs[0]
                dash = Dashboard(viewer, x, y, timeframe=viewer.timeframe, refresh_s=3600)
                await viewer.ready()
                dash.refresh()
                frame = dash.view.arrays()
                drawn = sorted(np.concatenate([dash.z.long.x, dash.z.short.x]).astype("datetime64[ms]").astype(np.int64))
                rings = sorted(np.asarray(dash.z.events.x).astype("datetime64[ms]").astype(np.int64))
                theirs = [e for e in viewer.held_events(dash.view.name, dash.view.timeframe)
                          if frame["time"][0] <= e.time_ms <= frame["time"][-1]]
                count = dash.alert_log.count.value
                dash.close()
                return snapshot_first, everything, small, large, frame, drawn, rings, theirs, count, viewer.rule
            finally:
                await viewer.stop()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first, everything, small, large, frame, drawn, rings, theirs, count, rule = \
                pool.submit(asyncio.run, go()).result()
    key = lambda e: (e.time_ms, e.pair, e.timeframe)  # noqa: E731
    assert len(large) > SNAPSHOT_EVENTS and [key(e) for e in small] == [key(e) for e in large]
    head = everything.iloc[0]
    assert (head["time_ms"], head["pair"], head["timeframe"]) == key(large[0])  # from the first stored one
    older = {key(e) for e in large} - first  # stored, and not among the events the viewer had heard
    assert older and len(first) < len(large)  # (those all read: events() holds every stored event, above)
    newest = int(everything["time_ms"].max())  # what was stored before events() was read
    assert set(zip(everything["time_ms"], everything["pair"], everything["timeframe"])) >= \
        {key(e) for e in large if e.time_ms < newest}
    hit = np.isfinite(frame["z"]) & (np.abs(frame["z"]) >= rule.z_entry) & (frame["corr"] >= rule.corr_min)
    assert len(drawn) > 0 and drawn == frame["time"][hit].tolist()
    assert len(theirs) > 0 and {e.time_ms for e in theirs} <= set(rings) <= set(drawn)
    assert f">{len(drawn):,}<" in count and f">{len(rings):,}<" in count
