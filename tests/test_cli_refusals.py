"""Mistakes and failures on the command line get one line, the right exit code and leave nothing
behind: no network, an interrupted download, a range that ends before it starts, an empty store
to archive, an output path that cannot be written (refused before the work, not after)."""

from __future__ import annotations

import pytest

from statarb_kit.cli import main
from statarb_kit.store import TickStore
from tests.fake_binance import make_klines

NOWHERE = "http://127.0.0.1:9"  # nothing listens on the discard port


def one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and "%|" not in ln]  # progress bars aside
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_no_network_is_one_line_and_leaves_no_empty_store(tmp_path, capsys):
    assert main(["universe", "--listing-url", NOWHERE + "/", "--rest-url", NOWHERE, "-q"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("statarb: universe: could not reach http://127.0.0.1:9/") and "--rest-url" in line
    db = tmp_path / "new.duckdb"
    assert main(["download", "--kind", "klines", "--all", "--start", "2024-01-01", "--end", "2024-01-02", "--db",
                 str(db), "--listing-url", NOWHERE + "/", "--rest-url", NOWHERE, "--base-url", NOWHERE]) == 1
    assert "could not reach" in one_line(capsys.readouterr().err)
    assert not db.exists() and not list(tmp_path.iterdir())  # the store it would have created is not left behind


def test_an_interrupted_download_says_what_was_kept_and_keeps_the_store(tmp_path, capsys, monkeypatch):
    import statarb_kit.cli.history as history

    db = tmp_path / "k.duckdb"
    store = TickStore(db)
    store.insert_kline_bars("1m", "BTCUSDT", make_klines("BTCUSDT", 60_000, 0, 600_000, seed=1), "kline_rest")
    store.close()

    async def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(history, "update_klines", interrupted)
    assert main(["download", "--kind", "klines", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02", "--db",
                 str(db)]) == 130
    line = one_line(capsys.readouterr().err)
    assert "download interrupted" in line and "the same command again resumes" in line
    store = TickStore(db, read_only=True)
    assert len(store.bars("1m", "BTCUSDT")) == 10  # what was stored stays
    store.close()


def test_a_range_that_ends_before_it_starts_is_refused(tmp_path, capsys):
    db = tmp_path / "k.duckdb"
    for kind in ("klines", "trades"):
        assert main(["download", "--kind", kind, "BTCUSDT", "--start", "2025-01-10", "--end", "2025-01-01",
                     "--db", str(db), "--base-url", NOWHERE, "--rest-url", NOWHERE]) == 2
        assert one_line(capsys.readouterr().err) == "statarb: --end 2025-01-01 is before --start 2025-01-10"
    assert main(["universe", "--start", "2025-01-10", "--end", "2025-01-01", "--listing-url", NOWHERE + "/"]) == 2
    assert "is before" in one_line(capsys.readouterr().err)
    assert not db.exists()


def test_archiving_an_empty_store_is_refused(tmp_path, capsys):
    db = tmp_path / "empty.duckdb"
    TickStore(db).close()
    root = tmp_path / "archive"
    assert main(["archive", str(db), str(root)]) == 2
    assert "holds no bars and no funding: nothing to archive" in one_line(capsys.readouterr().err)
    assert not root.exists()
    assert main(["archive", str(tmp_path / "missing.duckdb"), str(root)]) == 2
    assert "no such store" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv", [
    ["scan", "--universe", "6", "--bars", "600", "--min-obs", "200", "-q", "--out", "{blocked}/scan.csv"],
    ["study", "--db", "{db}", "--json", "{blocked}/s.json"],
    ["study", "--db", "{db}", "--html", "{tmp}/s.txt"],
    ["universe", "--db", "{db}", "--out", "{blocked}/u.csv"],
    ["sweep", "--hours", "1", "--grid", "z_entry=1.5,2", "--out", "{blocked}/sweep.parquet"],
])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(tmp_path, capsys, argv):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    db = tmp_path / "k.duckdb"
    store = TickStore(db)
    store.insert_kline_bars("1h", "BTCUSDT", make_klines("BTCUSDT", 3_600_000, 0, 36_000_000, seed=1), "kline_rest")
    store.close()
    args = [a.format(blocked=blocked, db=db, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    both = capsys.readouterr()
    line = one_line(both.err)
    assert ("is a file, not a folder" in line or "give a .html file" in line) and line.startswith("statarb: --")
    assert both.out == ""  # nothing ran: no data line, no progress, no result


def readme_commands() -> list[tuple[str, list[str]]]:
    """Every ``statarb CMD ...`` the README shows (code blocks and inline code): CMD and its flags."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    spans = re.findall(r"`(statarb [^`]+)`", text) + re.findall(r"^\s*(?:.*&&\s*)?(statarb .+)$", text, re.M)
    out = []
    for span in spans:
        words = span.split("#")[0].split()
        if len(words) < 2 or words[1].startswith("-"):
            continue
        flags = [w.split("=")[0].rstrip(".,;:)]") for w in words[2:] if w.startswith("--")]
        out.append((words[1], [f for f in flags if len(f) > 2]))
    return out


def test_every_command_and_flag_the_readme_shows_exists(capsys):
    shown = readme_commands()
    assert len(shown) > 40 and sum(len(f) for _, f in shown) > 40
    helps: dict[str, str] = {}
    for command, flags in shown:
        if command not in helps:
            with pytest.raises(SystemExit) as stop:
                main([command, "--help"])
            assert stop.value.code == 0, command
            helps[command] = capsys.readouterr().out
        missing = [f for f in flags if f not in helps[command]]
        assert not missing, f"README shows `statarb {command}` with {missing}, which it does not take"


def taken_port() -> tuple[object, int]:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_a_port_in_use_is_refused_before_anything_starts_or_records(tmp_path, capsys):
    held, port = taken_port()
    try:
        assert main(["dashboard", "--port", str(port)]) == 2
        both = capsys.readouterr()
        assert one_line(both.err) == (f"statarb: --port {port}: 127.0.0.1:{port} is in use by another program; "
                                      "choose another --port")
        assert "open http://" not in both.out  # no address of another program's page
        db = tmp_path / "m.duckdb"  # the monitor needs port, port + 1 and port + 2: the second one is taken
        assert main(["monitor", "--db", str(db), "--port", str(port - 1), "--duration", "5"]) == 2
        line = one_line(capsys.readouterr().err)
        assert f"127.0.0.1:{port} is in use" in line and "choose another --port" in line
        assert not db.exists()  # not one tick recorded
    finally:
        held.close()


def test_the_dashboards_watchlist_and_db_are_checked_on_the_command_line(tmp_path, capsys):
    assert main(["dashboard", "--watchlist", str(tmp_path / "pairs.txt")]) == 2
    assert "does not exist" in one_line(capsys.readouterr().err)
    bad = tmp_path / "bad.txt"
    bad.write_text("BTCUSDT ETHUSDT\n")
    assert main(["dashboard", "--watchlist", str(bad)]) == 2
    one_line(capsys.readouterr().err)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["dashboard", "--db", str(blocked / "x.duckdb")]) == 2
    assert "is a file, not a folder" in one_line(capsys.readouterr().err)


def test_an_update_of_a_missing_store_is_refused_and_creates_nothing(tmp_path, capsys):
    db = tmp_path / "typo.duckdb"
    assert main(["update", str(db), "--base-url", NOWHERE, "--rest-url", NOWHERE]) == 2
    assert "no such store" in one_line(capsys.readouterr().err) and not db.exists()
