import shutil
import signal
import subprocess
import time

import pytest

from statarb_kit import TickStore


@pytest.mark.skipif(shutil.which("statarb") is None, reason="package not installed with pip")
def test_record_prints_live_bars_and_stores_ticks(tmp_path):
    db = tmp_path / "rec.duckdb"
    out = subprocess.run(["statarb", "record", "--db", str(db), "--duration", "2.5", "--every", "0.5"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("recording BTCUSDT, ETHUSDT from synthetic")
    assert sum("ticks/s" in ln and "BTCUSDT" in ln and "ETHUSDT" in ln for ln in lines) >= 3
    store = TickStore(db, read_only=True)
    n = store.tick_count()
    assert n > 20 and f"stopped: {n:,} ticks" in lines[-1]


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
    time.sleep(3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    n = TickStore(db, read_only=True).tick_count()
    assert n > 20 and out.splitlines()[-1] == f"stopped: {n:,} ticks in {db}"
