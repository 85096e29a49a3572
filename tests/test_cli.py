import asyncio
import shutil
import signal
import subprocess

import pytest

from statarb_kit import TickStore


@pytest.mark.skipif(shutil.which("statarb") is None, reason="package not installed with pip")
def test_record_prints_live_bars_and_stores_ticks(tmp_path):
    db = tmp_path / "rec.duckdb"
    # 10 s: a loaded machine spends seconds generating the warm-up history before both symbols have bars
    out = subprocess.run(["statarb", "record", "--db", str(db), "--duration", "10", "--every", "0.5"],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("recording BTCUSDT, ETHUSDT from synthetic")
    assert sum("ticks/s" in ln and "BTCUSDT" in ln and "ETHUSDT" in ln for ln in lines) >= 3
    store = TickStore(db, read_only=True)
    n = store.tick_count()
    assert n > 20 and lines[-1] == f"stopped: {n:,} new ticks, {n:,} in {db}"


def test_record_reports_a_locked_file_without_a_traceback(tmp_path):
    db = tmp_path / "rec.duckdb"
    holder = TickStore(db)
    try:
        out = subprocess.run(["statarb", "record", "--db", str(db), "--duration", "1"],
                             capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert out.returncode == 2
    assert "locked by" in out.stderr and "Traceback" not in out.stderr


def test_bad_symbol_is_a_clear_error(tmp_path):
    out = subprocess.run(["statarb", "record", "--db", str(tmp_path / "x.duckdb"), "--symbols", "BTC-USDT,ETHUSDT",
                          "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not a valid symbol" in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_kill_stops_cleanly_and_keeps_every_tick(tmp_path, sig):
    db = tmp_path / "rec.duckdb"
    # a terminal delivers Ctrl-C; background jobs inherit SIGINT ignored, so restore the default
    proc = subprocess.Popen(["statarb", "record", "--db", str(db), "--every", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # signal once it has printed two status lines (its handlers are set by then), not after a fixed
    # sleep: a loaded CI machine took over 3 s to start it, and the default SIGTERM then killed it
    head = [proc.stdout.readline() for _ in range(3)]
    assert head[0].startswith("recording") and all("ticks/s" in line for line in head[1:]), head
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    out = "".join(head) + out
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    n = TickStore(db, read_only=True).tick_count()
    assert n > 20 and out.splitlines()[-1] == f"stopped: {n:,} new ticks, {n:,} in {db}"


def _run_cli(*argv, timeout=60):
    async def go():
        proc = await asyncio.create_subprocess_exec("statarb", *argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            raise AssertionError(f"statarb {' '.join(argv)} still running after {timeout} s:\n"
                                 f"{out.decode()}\n{err.decode()}") from None
        return proc.returncode, out.decode(), err.decode()
    return go()


@pytest.mark.skipif(shutil.which("statarb") is None, reason="package not installed with pip")
def test_record_live_against_local_binance_then_resume_with_backfill(tmp_path):
    from tests.fake_binance import FakeBinance

    db = tmp_path / "live.duckdb"

    async def go():
        # the tape prints from 0.5 s after run 1 subscribes, for 4.5 s (however slowly a loaded machine
        # starts the command): run 1 records its start, run 2 outlives its end
        async with FakeBinance(n=900, rate=200.0, start_delay_s=0.5, wait_for_client=True) as fake:
            urls = ["--ws-url", fake.ws_url, "--rest-url", fake.http_url]
            rc1, out1, err1 = await _run_cli("record", "--source", "live", "--db", str(db), "--duration", "3",
                                             "--every", "0.5", *urls)
            await asyncio.sleep(1.0)  # trades print while nothing records
            rc2, out2, err2 = await _run_cli("record", "--source", "live", "--db", str(db), "--duration", "6",
                                             "--every", "0.5", *urls)
            assert fake.done
            truth = fake.truth()
        return (rc1, out1, err1), (rc2, out2, err2), truth

    (rc1, out1, err1), (rc2, out2, err2), truth = asyncio.run(go())
    assert rc1 == 0 and rc2 == 0, (err1, err2)
    assert "from binance" in out1
    stored = TickStore(db, read_only=True).con.execute(
        "SELECT symbol, trade_id, via FROM ticks ORDER BY symbol, trade_id").df()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = stored[stored["symbol"] == symbol]["trade_id"].to_numpy()
        want = truth[truth["symbol"] == symbol]["trade_id"].to_numpy()
        # continuous from the first trade recorded to the last printed, across the two runs
        assert ids.tolist() == want[want >= ids[0]].tolist()
    assert (stored["via"] == "recent_trades").any()  # the second run filled the time nothing recorded, exactly


@pytest.mark.skipif(shutil.which("statarb") is None, reason="package not installed with pip")
def test_download_then_load_and_replay_errors(tmp_path):
    import hashlib
    import io
    import zipfile

    from tests.fake_binance import FakeBinance
    from tests.test_replay import trades_rows

    async def go():
        async with FakeBinance(n=10) as fake:
            name = "BTCUSDT-trades-2023-11-14.zip"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr(name.replace(".zip", ".csv"), trades_rows(300).to_csv(index=False))
            path = f"/data/futures/um/daily/trades/BTCUSDT/{name}"
            fake.files[path] = buf.getvalue()
            fake.files[path + ".CHECKSUM"] = f"{hashlib.sha256(buf.getvalue()).hexdigest()}  {name}".encode()
            return await _run_cli("download", "BTCUSDT", "--start", "2023-11-14", "--dir", str(tmp_path / "d"),
                                  "--db", str(tmp_path / "h.duckdb"), "--base-url", fake.http_url)

    rc, out, err = asyncio.run(go())
    assert rc == 0, err
    assert "1 downloaded" in out and "300 new ticks" in out
    assert TickStore(tmp_path / "h.duckdb", read_only=True).tick_count() == 300
    bad = tmp_path / "ETHUSDT-trades-2023-11-14.csv"
    bad.write_text("1,2,3\n")
    out = subprocess.run(["statarb", "record", "--source", "replay", "--files", str(bad), "--db",
                          str(tmp_path / "b.duckdb")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "ETHUSDT-trades-2023-11-14.csv" in out.stderr and "Traceback" not in out.stderr
