"""The Voila app in a real headless Chromium (Debian's), driven by Playwright.

`statarb dashboard` serves it on a free 127.0.0.1 port. Screenshots go to
$STATARB_SCREENSHOTS (default: the test's temporary directory).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: CI must install Debian's chromium and chromium-driver")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)", allow_module_level=True)

try:
    from playwright import sync_api
except ImportError:
    if os.environ.get("CI"):
        raise RuntimeError("playwright is missing: CI installs it with the test extra (pip install -e '.[test]')")
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

# Failed loads of outside resources are expected: this machine has no internet.
OUTSIDE = re.compile(r"ERR_NAME_NOT_RESOLVED|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|ERR_ADDRESS_UNREACHABLE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> int:
    """A port p with p .. p + n - 1 free to listen on (a monitor's HTTP, updates and requests),
    taken below the kernel's ephemeral range: there, a port found free can be taken a moment later
    as the source port of any outgoing connection (a monitor's second port, next to one from
    bind(0) near 60,000, was lost that way on two workers)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    while True:
        port = random.randrange(10_000, low - n)
        try:
            with contextlib.ExitStack() as held:
                for k in range(n):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port + k))
            return port
        except OSError:
            continue


def serve(cmd: list[str], port: int, env: dict, log: Path):
    """Start a server process, wait until ``port`` accepts connections, yield its base URL, stop it."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[2:4]} exited: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    yield f"http://127.0.0.1:{port}/"
    stop_and_check(proc, port)


def stop_and_check(proc: subprocess.Popen, port: int, timeout_s: float = 30.0) -> None:
    """SIGTERM the server as a process manager would; it and every process it started (the
    kernels) must be gone and the port free within ``timeout_s``, else they are killed and the
    test fails."""
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    proc.terminate()
    gone, alive = psutil.wait_procs(family, timeout=timeout_s)
    for p in alive:
        p.kill()
    assert not alive, f"outlived SIGTERM: {[(p.pid, p.name()) for p in alive]}"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still bound"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "STATARB_HISTORY_MIN": "6"}
    env.pop("STATARB_PREVIEW_S", None)  # the served app keeps running
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    yield from serve([sys.executable, "-m", "statarb_kit.cli", "dashboard", "--port", str(port)], port, env, log)


def serve_notebook(name: str, tmp_path_factory):
    """A notebook of notebooks/ served by Voila (with its default parameters)."""
    port = free_port()
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / name
    log = tmp_path_factory.mktemp("voila") / f"voila-{name}.log"
    yield from serve([sys.executable, "-m", "statarb_kit.server", str(notebook), "--no-browser", f"--port={port}",
                      "--Voila.ip=127.0.0.1"], port, dict(os.environ), log)


@pytest.fixture(scope="module")
def backtest_server(tmp_path_factory):
    """The backtest notebook, as a report reads (its default: 24 h synthetic)."""
    yield from serve_notebook("backtest.ipynb", tmp_path_factory)


@pytest.fixture(scope="module")
def sweep_server(tmp_path_factory):
    yield from serve_notebook("sweep.ipynb", tmp_path_factory)


@pytest.fixture(scope="module")
def scan_server(tmp_path_factory):
    yield from serve_notebook("scan.ipynb", tmp_path_factory)


@pytest.fixture(scope="module")
def portfolio_server(tmp_path_factory):
    yield from serve_notebook("portfolio.ipynb", tmp_path_factory)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    out = Path(os.environ.get("STATARB_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    return out


def watch_outside(page) -> list[str]:
    """The URLs a page requests from anywhere but this machine (a page must need none)."""
    urls: list[str] = []
    page.on("request", lambda r: urlparse(r.url).scheme in ("http", "https", "ws", "wss")
            and urlparse(r.url).hostname not in ("127.0.0.1", "localhost") and urls.append(r.url))
    return urls


def kernels_of(pid: int) -> list[psutil.Process]:
    """The running kernel processes a server has started (an ended one not yet reaped is not)."""
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:  # ended meanwhile
            pass
    return found


class App:
    """A browser page on the app, collecting JavaScript errors and requests that leave the machine."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1366, "height": 768}, accept_downloads=True)
        self.errors: list[str] = []
        self.outside = watch_outside(self.page)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", lambda m: m.type == "error" and not OUTSIDE.search(m.text)
                     and self.errors.append(f"console: {m.text}"))
        self.page.goto(url, timeout=120_000)
        self.page.wait_for_selector("#sak-pair, #sak-error", timeout=120_000)

    def points(self, title: str) -> int:
        """Points drawn by the line marks of the chart whose title starts with ``title``."""
        return self.page.evaluate("""(title) => {
            const fig = [...document.querySelectorAll('.bqplot')].find(
                f => (f.querySelector('.mainheading') || {}).textContent?.startsWith(title));
            if (!fig) return -1;
            return [...fig.querySelectorAll('path.line')].map(p => (p.getAttribute('d') || '').split('L').length - 1)
                .reduce((a, b) => a + b, 0);
        }""", title)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def wait_for(self, predicate, timeout_s: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            self.page.wait_for_timeout(250)
        raise AssertionError(f"timed out waiting for {what}")


def rows_stored(app: App) -> int:
    return int(re.search(r"rows stored ([\d,]+)", app.text("#sak-status")).group(1).replace(",", ""))


def test_dashboard_renders_live_charts_without_javascript_errors(server, browser, shots):
    app = App(browser, server)
    assert "BTCUSDT/ETHUSDT" in app.text("#sak-pair")
    first = app.wait_for(lambda: app.points("z-score"), what="z points")
    stored = rows_stored(app)
    app.page.screenshot(path=str(shots / "dashboard.png"))
    app.wait_for(lambda: app.points("z-score") > first and rows_stored(app) > stored, 20, "growing charts")
    for title in ("BTCUSDT (left)", "spread", "rolling correlation"):
        assert app.points(title) > 100, title
    # the planted quotes: each leg's quoted spread per bar (about 1 and 3 bps)
    app.wait_for(lambda: app.points("quoted spread at each bar's close") > 100, 30, "the quoted spreads")
    assert "quoted spreads about 1 bps (BTCUSDT) and 3 bps (ETHUSDT)" in app.text("#sak-synthetic")
    assert "warming up" not in app.text("body")  # six minutes of history fill a 180-bar warm-up
    # generated data says so, with its planted relation
    assert "generated prices, not market data" in app.text("#sak-synthetic") and "20 * y" in app.text("#sak-synthetic")
    for title in ("hedge ratio beta (rolling, window 120)", "distribution of the spread"):
        assert app.points(title) >= 0, title  # the figure exists (points() is -1 for a missing title)
    legend = app.page.evaluate("""[...document.querySelectorAll('.bqplot')].find(f =>
        (f.querySelector('.mainheading') || {}).textContent?.startsWith('z-score'))
        .querySelector('.g_legend').textContent""")
    assert "LONG_SPREAD bar" in legend and "SHORT_SPREAD bar" in legend and "event: entered the condition" in legend
    hidden, seen = covered_by_legend(app, "z-score")  # the legend sits in room kept above the data
    assert seen > 100 and hidden == 0, (hidden, seen)
    assert crowded_ticks(app.page) == []  # round ticks clear of the corners
    # the planted truth beside the estimates, and why a short window cannot recover it
    planted = app.text("#sak-planted")
    assert "planted: beta 20, half-life 300 s" in planted and "spans 0.4 half-lives" in planted, planted
    assert app.errors == [] and app.outside == [], (app.errors, app.outside)
    app.page.close()


def crowded_ticks(page) -> list[tuple[str, int, int, list[str]]]:
    """(title, tick labels that overlap a label of another axis, labels cut by the figure's edge,
    the time or value axis's labels) of each figure with such a label: a date tick centred on
    the origin ran under the value axis's lowest label ("59,720" over "12-05 23:54") and the
    last was cut ("12-05 23:5")."""
    figures = page.evaluate("""() => [...document.querySelectorAll('.bqplot')].map(f => {
        const svg = f.querySelector('svg').getBoundingClientRect();
        const axes = [...f.querySelectorAll('.axis')].map(a => [...a.querySelectorAll('.tick text')]
            .filter(t => t.getBoundingClientRect().width > 0));
        const box = t => t.getBoundingClientRect();
        let hits = 0;
        for (let i = 0; i < axes.length; i++) for (let j = i + 1; j < axes.length; j++)
            for (const a of axes[i].map(box)) for (const b of axes[j].map(box))
                if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) hits++;
        const cut = axes.flat().map(box).filter(r => r.left < svg.left - 0.5 || r.right > svg.right + 0.5).length;
        return [(f.querySelector('.mainheading') || {}).textContent || '', hits, cut,
                (axes[0] || []).map(t => t.textContent)];
    })""")
    return [tuple(f) for f in figures if f[1] or f[2]]


def covered_by_legend(app: App, title: str) -> tuple[int, int]:
    """(points of the lines and markers of the chart titled ``title`` that its legend box covers,
    points looked at): 200 points along each line, the centre of each marker."""
    return tuple(app.page.evaluate("""(title) => {
        const fig = [...document.querySelectorAll('.bqplot')].find(
            f => (f.querySelector('.mainheading') || {}).textContent?.startsWith(title));
        const legend = fig.querySelector('.g_legend');
        const box = legend.getBoundingClientRect();
        const inside = (x, y) => x >= box.left && x <= box.right && y >= box.top && y <= box.bottom;
        let hidden = 0, seen = 0;
        for (const p of fig.querySelectorAll('path.line')) {
            if (legend.contains(p)) continue;
            const n = p.getTotalLength(), m = p.getScreenCTM();
            if (!n || !m) continue;
            for (let i = 0; i <= 200; i++) {
                const pt = p.getPointAtLength(n * i / 200).matrixTransform(m);
                seen++; if (inside(pt.x, pt.y)) hidden++;
            }
        }
        for (const d of fig.querySelectorAll('.dot')) {
            if (legend.contains(d)) continue;
            const r = d.getBoundingClientRect();
            seen++; if (inside(r.left + r.width / 2, r.top + r.height / 2)) hidden++;
        }
        return [hidden, seen];
    }""", title))


def test_the_pair_page_backtests_its_rule(server, browser, shots):
    app = App(browser, server + "?z_entry=1.5&corr_min=0")
    app.wait_for(lambda: app.points("z-score") > 100, 60, "z points")
    app.page.get_by_role("button", name="Backtest this rule on the bars shown").click()
    app.page.wait_for_selector("#sak-backtest-result", timeout=60_000)
    result = app.text("#sak-backtest-result")
    assert re.search(r"BTCUSDT/ETHUSDT, [\d,]+ 1s bars shown: \d+ trades, total [+-]", result)
    assert re.search(r"no annual Sharpe from \d+ min of data", result)  # minutes of 1s bars: no yearly figure
    app.page.wait_for_function("""[...document.querySelectorAll('.bqplot .mainheading')]
        .some(e => e.textContent.startsWith('Net PnL per trade'))""", timeout=60_000)
    titles = app.page.evaluate("[...document.querySelectorAll('.bqplot .mainheading')].map(e => e.textContent)")
    assert any(t.startswith("Equity: ") for t in titles) and any(t.startswith("Drawdown from the running peak")
                                                                 for t in titles)
    app.page.screenshot(path=str(shots / "dashboard_backtest.png"), full_page=True)
    assert app.errors == [] and app.outside == []
    app.page.close()


def test_the_pair_page_trades_its_rule_on_paper(server, browser, shots):
    """``paper=true``: the page follows its rule on paper from its start; the panel shows the
    position and trades as they close, each trade's net PnL with its costs."""
    app = App(browser, server + "?z_entry=1&corr_min=-1&z_exit=0&paper=true")
    app.page.wait_for_selector("#sak-paper", timeout=60_000)
    app.wait_for(lambda: int(app.text("#sak-paper-trades")) >= 1, 90, "a closed paper trade")
    assert app.text("#sak-paper-position") in ("LONG_SPREAD", "SHORT_SPREAD", "FLAT")
    log = app.text("#sak-paper-log")
    assert re.search(r"(long|short)\s+(exit|open)\s+[+-]\d", log), log
    assert re.search(r"[+-]\d+\.\d{4}%", app.text("#sak-paper-realised"))
    app.page.locator("#sak-paper").scroll_into_view_if_needed()
    app.page.screenshot(path=str(shots / "dashboard_paper.png"))
    assert app.errors == [] and app.outside == []
    app.page.close()


def test_slider_changes_the_z_chart(server, browser, shots):
    app = App(browser, server)
    before = app.wait_for(lambda: app.points("z-score"), what="z points")
    handle = app.page.locator(".widget-slider", has_text="z window").locator(".noUi-handle")
    handle.focus()
    for _ in range(4):  # the window ladder: 60 -> 70, 80, 90, 100
        handle.press("ArrowRight")
    app.wait_for(lambda: "z-score (window 100" in app.text("body"), 15, "z window 100 in the z chart title")
    # z needs 40 more bars of history now: the redrawn line is ~40 points shorter, live growth aside
    app.wait_for(lambda: 0 < app.points("z-score") < before - 20, 15, "a shorter z line")
    app.page.screenshot(path=str(shots / "dashboard_z_window_100.png"))
    assert app.errors == []
    app.page.close()


def test_adf_button_shows_a_result(server, browser, shots):
    app = App(browser, server)
    app.page.get_by_role("button", name="Run ADF / Engle-Granger").click()
    app.page.wait_for_selector("#sak-adf-result", timeout=60_000)
    result = app.text("#sak-adf-result")
    for words in ("ADF", "Engle-Granger", "p-value", "critical (MacKinnon, applies)"):
        assert words in result
    assert re.search(r"(not )?(stationary|cointegrated) at 5%", result)
    app.page.screenshot(path=str(shots / "dashboard_adf.png"), full_page=True)
    # another timeframe: the 1s bars' results go; the page says how long the windows take to fill
    app.page.locator("button", has_text="1m").first.click()
    app.wait_for(lambda: app.page.locator("#sak-adf-result").count() == 0, 15, "the 1s results cleared")
    warm = app.wait_for(lambda: app.page.locator("#sak-warmup").count() and app.text("#sak-warmup"), 15, "warm-up")
    assert re.search(r"warming up: \d+ of 181 bars; the windows fill in about \d+ (h|min) of 1m bars", warm), warm
    assert "Tests run on demand" in app.text("body")
    app.page.screenshot(path=str(shots / "dashboard_1m.png"), full_page=True)
    assert app.errors == []
    app.page.close()


def test_alerts_appear_with_a_low_threshold_and_csv_downloads(server, browser, shots, tmp_path):
    app = App(browser, server + "?z_entry=0.5&corr_min=-1&timeframe=1s")
    count = app.wait_for(lambda: int(app.text("#sak-alert-count")), 30, "alerts")
    assert count > 0 and "SPREAD" in app.text("#sak-alerts")
    app.page.screenshot(path=str(shots / "dashboard_alerts.png"))
    app.page.get_by_role("button", name="Export CSV").click()
    app.page.wait_for_selector("a.sak-download", timeout=30_000)
    links = app.page.locator("a.sak-download")
    assert links.count() == 3
    for i in range(3):
        with app.page.expect_download() as info:
            links.nth(i).click()
        download = info.value
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        lines = path.read_text().splitlines()
        assert lines[0].startswith("time,") and len(lines) > 1, download.suggested_filename
    assert app.errors == []
    app.page.close()


def test_two_tabs_at_once_each_have_their_own_session(server, browser):
    a, b = App(browser, server), App(browser, server + "?symbols=ethusdt,btcusdt&timeframe=1m")
    assert "BTCUSDT/ETHUSDT" in a.text("#sak-pair") and "ETHUSDT/BTCUSDT" in b.text("#sak-pair")
    for app in (a, b):
        stored = rows_stored(app)
        app.wait_for(lambda app=app: rows_stored(app) > stored, 20, "ticks flowing")
        assert app.page.query_selector("#sak-error") is None and app.errors == []
    a.page.close()
    b.page.close()


def test_a_bad_url_setting_shows_a_clear_message(server, browser):
    app = App(browser, server + "?timeframe=7q")
    assert "timeframe '7q' is not one of 1s, 1m, 5m" in app.text("#sak-error")
    app.page.close()


class Report:
    """A notebook page served by Voila, fully drawn, its screenshot saved, JavaScript errors kept."""

    def __init__(self, browser, url: str, shot: Path, height: int, wait_s: float = 120.0) -> None:
        self.page = browser.new_page(viewport={"width": 1366, "height": height})
        self.errors: list[str] = []
        self.outside = watch_outside(self.page)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url, timeout=wait_s * 1000)
        self.page.wait_for_selector(".bqplot", timeout=wait_s * 1000)
        self.page.wait_for_timeout(1500)
        self.page.screenshot(path=str(shot), full_page=True)
        self.titles = self.page.evaluate(
            "[...document.querySelectorAll('.bqplot .mainheading')].map(e => e.textContent)")


def test_backtest_report_shows_metrics_equity_and_trades(backtest_server, browser, shots):
    r = Report(browser, backtest_server, shots / "backtest.png", 2200)
    # one rule for annualised figures, in the chart's title as in the table (it printed "Sharpe -43.45")
    assert r.titles[0].startswith("Equity: ") and " trades, no annual Sharpe from 1.0 days of data (needs 30 days)" \
        in r.titles[0], r.titles[0]
    assert r.titles[1].startswith("Drawdown from the running peak (deepest ")
    assert r.titles[2].startswith("z-score: entries at |z| >= 2 (dashed)")
    assert r.titles[3].startswith("Net PnL per trade: ")
    # a day's return is not annualised (it was -234.82% a year: -0.64% times 365)
    body = r.page.inner_text("body")
    assert "no annual return from 1.0 days of data (needs 30 days)" in body
    assert "no annual Sharpe from 1.0 days of data (needs 30 days)" in body
    assert "generated prices, not market data" in r.page.inner_text("body") and r.outside == []
    # the equity axis spans the data's UTC day (2026-01-01), as the z axis does
    ticks = r.page.evaluate("""[...document.querySelectorAll('.bqplot')].map(f =>
        [...f.querySelectorAll('.axis text')].map(t => t.textContent).join(' '))""")
    assert "01-01" in ticks[0] and "01-01" in ticks[1]
    assert crowded_ticks(r.page) == []  # no date or value label on the origin or cut at an end
    lines = r.page.evaluate("[...document.querySelectorAll('.bqplot path.line')].map(p => (p.getAttribute('d') || '').length)")
    assert min(lines[:2]) > 100
    body = r.page.inner_text("body")
    assert "total return" in body and "LONG_SPREAD" in body and "SHORT_SPREAD" in body
    assert r.errors == []
    r.page.close()


def test_sweep_notebook_shows_best_combinations_and_a_heatmap(sweep_server, browser, shots):
    r = Report(browser, sweep_server, shots / "sweep.png", 2000)
    assert r.titles[0] == "sharpe: best over the other parameters, of rows with >= 5 trades"  # as the table's best
    assert r.titles[1].startswith("Equity: ")
    labels = r.page.locator(".bqplot").first.locator("text").all_text_contents()
    assert {"1.5", "3", "-0.5", "0.5", "z_entry", "z_exit"} <= set(labels)  # the 4 x 3 grid's axes
    assert sum(1 for t in labels if re.fullmatch(r"-?\d+(\.\d+)?", t)) >= 12 + 7  # 12 cell values, 7 ticks
    assert "Best combinations" in r.page.inner_text("body") and r.errors == [] and r.outside == []
    # the "best Sharpe" figure is the best of the ranked table (min_trades applied to both)
    best_shown = r.page.evaluate("""() => {
        const table = [...document.querySelectorAll('table')].find(t => t.innerText.includes('deflated_sharpe'));
        const head = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
        const col = head.indexOf('sharpe');
        return Math.max(...[...table.querySelectorAll('tbody tr')].map(tr =>
            parseFloat(tr.children[col].textContent)));
    }""")
    summary = r.page.evaluate("""[...document.querySelectorAll('table')].map(t => t.innerText)
        .find(t => t.includes('best Sharpe (a year, of rows with >= 5 trades)'))""")
    shown = float(re.search(r"best Sharpe \(a year, of rows with >= 5 trades\)\s+(-?[\d.]+)", summary).group(1))
    assert shown == pytest.approx(best_shown, abs=0.006)
    sr0 = float(re.search(r"SR0: best expected from luck \(a year\)\s+(-?[\d.]+)", summary).group(1))
    below = re.search(r"every Sharpe below SR0 \(no sign of skill\)\s+(yes|no)", summary).group(1)
    assert best_shown < sr0 and below == "yes"  # the seeded sweep: every rule loses, SR0 is of their spread
    r.page.close()


def test_sigterm_to_the_dashboard_stops_the_server_and_every_kernel(browser, tmp_path):
    """`kill <pid of statarb dashboard>` (what systemd, Docker and CI runners send) leaves no
    server, no kernel and no bound port behind, also with a --db file being recorded."""
    port = free_port()
    env = {**os.environ, "STATARB_HISTORY_MIN": "1"}
    env.pop("STATARB_PREVIEW_S", None)
    log = tmp_path / "voila.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "statarb_kit.cli", "dashboard", "--port", str(port),
                                 "--db", str(tmp_path / "rec.duckdb")], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        app = App(browser, f"http://127.0.0.1:{port}/")
        app.wait_for(lambda: rows_stored(app) > 0, what="recording")
        assert kernels_of(proc.pid), "the page started no kernel"
        app.page.close()
    finally:
        stop_and_check(proc, port)


def test_scan_page_shows_a_sortable_grid_a_heatmap_and_a_chosen_pair(scan_server, browser, shots):
    r = Report(browser, scan_server, shots / "scan.png", 1900)
    page = r.page
    page.wait_for_selector("#sak-scan-pair", timeout=60_000)
    summary = page.inner_text("#sak-scan-summary")
    assert re.search(r"1,770 pairs of 60 symbols tested; \d+ selected", summary), summary
    assert page.locator(".ipydatagrid-widget, .p-DataGrid, .lm-DataGrid").count() >= 1  # the grid is drawn
    assert r.titles[0].startswith("pairwise evidence") and page.locator(".bqplot").first.locator("rect").count() > 100
    first = page.inner_text("#sak-scan-pair")
    assert "generated prices, not market data" in page.inner_text("body") and r.outside == []
    # the pair's charts mark where validation starts, and their multi-day axes show dates
    legends = page.evaluate("[...document.querySelectorAll('.bqplot .g_legend')].map(l => l.textContent)")
    assert sum("validation starts" in t for t in legends) == 3, legends
    ticks = page.evaluate("""[...document.querySelectorAll('.bqplot')].filter(f =>
        (f.querySelector('.mainheading') || {}).textContent?.includes('(left) and'))
        .map(f => [...f.querySelectorAll('.axis text')].map(t => t.textContent).join(' '))""")
    assert re.search(r"\d\d-\d\d \d\d:\d\d", ticks[0]), ticks
    heat = page.locator(".bqplot").first.locator(".axis text").all_text_contents()
    assert "S029" in heat and all(not t.endswith("US") for t in heat)  # whole names, USDT dropped to fit
    page.get_by_role("button", name="Backtest this pair on the validation bars").click()
    page.wait_for_selector("#sak-backtest-result", timeout=30_000)
    assert "on the 900 validation bars" in page.inner_text("#sak-backtest-result")
    # the synthetic universe is not market data: no link to a dashboard that would show other prices
    assert page.locator("#sak-open-dashboard").count() == 0
    assert "exists only in the synthetic universe" in page.inner_text("#sak-no-dashboard")
    # another selected pair, chosen from the list, redraws the charts with its symbols
    options = page.locator("select").first.locator("option").all_text_contents()
    assert len(options) >= 2
    page.locator("select").first.select_option(index=1)
    page.wait_for_function("(t) => document.querySelector('#sak-scan-pair').innerText.split(':')[0] !== t",
                           arg=first.split(":")[0], timeout=30_000)
    second = page.inner_text("#sak-scan-pair").split(":")[0]
    x, y = second.split(" / ")
    titles = page.evaluate("[...document.querySelectorAll('.bqplot .mainheading')].map(e => e.textContent)")
    assert f"{x} (left) and {y} (right), close" in titles
    page.screenshot(path=str(shots / "scan-pair.png"), full_page=True)
    assert crowded_ticks(page) == []  # multi-day time axes: round dates clear of the corners
    assert r.errors == []
    page.close()


@pytest.fixture
def page_of(browser):
    """A new page, closed after the test whatever happens (an open page keeps its kernel, which
    would load the machine for every later test)."""
    pages = []

    def new(**kw):
        pages.append(browser.new_page(**kw))
        return pages[-1]

    yield new
    for page in pages:
        if not page.is_closed():
            page.goto("about:blank")  # the shutdown beacon ends the kernel at once
            page.close()


@pytest.mark.timeout(600)  # a loaded machine can take minutes to show a snapshot between two refreshes
def test_watchlist_rows_reorder_with_z_show_events_and_open_their_pair(server, page_of, shots):
    page = page_of(viewport={"width": 1366, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "?pairs=synthetic&z_entry=1&corr_min=-1&timeframe=1s", timeout=120_000)
    page.wait_for_selector("#sak-wl-status", timeout=120_000)

    def rows() -> list[tuple[str, str]]:
        """The rows as shown, top to bottom (the rows keep their place in the DOM; CSS orders them)."""
        return page.evaluate("""[...document.querySelectorAll('.sak-wl-row[data-pair]')]
            .map(r => [r.getBoundingClientRect().top, r.dataset.pair, r.querySelector('.sak-wl-z').textContent])
            .sort((a, b) => a[0] - b[0]).map(r => [r[1], r[2]])""")

    first = rows()
    assert len(first) == 200 and "200</b> pairs" in page.inner_html("#sak-wl-status")
    assert "every pair inside a group is cointegrated" in page.inner_text("#sak-synthetic")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not page.locator(".sak-wl-event").count():
        page.wait_for_timeout(500)
    assert page.locator(".sak-wl-event").count() > 0  # an event marker (a pair entered the condition)
    def settled() -> list[tuple[str, str]] | None:
        """A snapshot ordered by |z|: between two refreshes, or nearly so (a loaded browser may be
        part way through applying one refresh's row messages: at most 4 of 199 neighbours out of order)."""
        snap = rows()
        zs = [abs(float(z)) for _, z in snap if z != "-"]
        return snap if len(zs) > 150 and sum(a < b for a, b in zip(zs, zs[1:])) <= 4 else None

    def wait_settled(unlike: list[str] | None = None, timeout_s: float = 150.0) -> list[tuple[str, str]] | None:
        """A settled snapshot (whose order differs from ``unlike``): the warm-up keeps the kernel busy
        for a few seconds (longer on a loaded machine) before live bars flow."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            snap = settled()
            if snap and (unlike is None or [p for p, _ in snap] != unlike):
                return snap
            page.wait_for_timeout(250)
        return None

    before = wait_settled()
    assert before is not None, "the rows were never shown ordered by |z|"
    later = wait_settled(unlike=[p for p, _ in before])
    assert later is not None, "the order never changed: z did not move"  # reordered by |z| as z moves
    page.screenshot(path=str(shots / "watchlist.png"))
    top = later[0][0]  # rows keep moving: click this pair's own button, wherever its row is shown now
    page.locator(f".sak-wl-row[data-pair='{top}']").locator("xpath=../../..").locator("button").click()
    page.wait_for_selector("#sak-pair", timeout=120_000)
    assert page.inner_text("#sak-pair") == top
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shots / "watchlist-pair.png"), full_page=True)
    assert errors == []
    page.close()


@pytest.mark.timeout(900)  # ten page loads: about 80 s here, minutes on a loaded machine
def test_ten_pages_opened_and_closed_leave_no_kernel_and_the_recording_stopped_cleanly(browser, tmp_path):
    """Ten pages on one server, recording into a --db file: five leave for another page (the page's
    shutdown beacon ends the kernel at once), five are closed with no word to the server, and
    one kernel is started by a plain HTTP GET that never connects. Within the cull time and one
    check, no kernel is left, and the file opens with the recorded ticks (the kernels' sessions
    wrote what they held)."""
    import httpx

    from statarb_kit import TickStore

    port, cull_s, db = free_port(), 6.0, tmp_path / "rec.duckdb"
    env = {**os.environ, "STATARB_HISTORY_MIN": "1"}
    env.pop("STATARB_PREVIEW_S", None)
    log = tmp_path / "voila.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "statarb_kit.cli", "dashboard", "--port", str(port),
                                 "--db", str(db), "--cull-after", f"{cull_s:g}"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        httpx.get(f"http://127.0.0.1:{port}/", timeout=120)  # a kernel no browser ever connects to
        started, at_once = 1, 0
        for i in range(10):
            app = App(browser, f"http://127.0.0.1:{port}/")
            started += 1
            assert app.outside == [], app.outside
            if i % 2 == 0:
                app.page.goto("about:blank")  # leaving the page sends its shutdown beacon
                gone = lambda: len(kernels_of(proc.pid)) <= 1 + (i // 2)  # noqa: E731 (the GET's and the closed ones')
                app.wait_for(gone, 10, "the left page's kernel to end")
                at_once += 1
            app.page.close()
        assert len(kernels_of(proc.pid)) >= 1, "the closed pages' kernels should outlive the close until culled"
        deadline = time.monotonic() + cull_s + 2 * max(1, cull_s / 4) + 15
        while kernels_of(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = kernels_of(proc.pid)
        assert not left, f"{len(left)} of {started} kernels still running {cull_s:g} s after their pages closed"
        text = log.read_text()
        assert text.count("no page connected to it") >= 5 and "403 POST /voila/api/shutdown" not in text
        assert "never retrieved" not in text and "Traceback" not in text, text[-3000:]  # closing is no error
        assert at_once == 5
        store = TickStore(db, read_only=True)  # no kernel holds the file
        assert store.tick_count() > 0
        store.close()
    finally:
        stop_and_check(proc, port)


@pytest.mark.timeout(900)  # the page scans 60 symbols and backtests 10 pairs before it draws
def test_portfolio_page_shows_a_readable_correlation_of_enough_points(portfolio_server, browser, shots):
    r = Report(browser, portfolio_server, shots / "portfolio.png", 2400, wait_s=600)
    r.page.wait_for_function("[...document.querySelectorAll('.bqplot .mainheading')].length >= 2", timeout=600_000)
    titles = r.page.evaluate("[...document.querySelectorAll('.bqplot .mainheading')].map(e => e.textContent)")
    heat = next(t for t in titles if t.startswith("Correlation of"))
    points = int(re.search(r"\((\d+) (daily|hourly) sums", heat).group(1))
    assert points >= 20, heat  # 3 daily points made cells of 1.00 and 0.99: too few for a correlation
    figure = r.page.locator(".bqplot").nth(titles.index(heat))
    labels = figure.locator(".axis text").all_text_contents()
    pairs = [t for t in labels if "/" in t]
    assert len(pairs) >= 2 * 2 and not any("USDT" in t for t in labels), labels  # rows and columns, short names
    figure.screenshot(path=str(shots / "portfolio-correlation.png"))
    body = r.page.inner_text("body")
    assert "no annual return from " in body and "no annual Sharpe from " in body  # 2.1 days: not annualised
    assert "generated prices, not market data" in body
    assert crowded_ticks(r.page) == []
    assert r.errors == [] and r.outside == []
    r.page.close()
