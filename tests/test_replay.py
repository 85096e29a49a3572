"""Replay and download of Binance history dumps, in Binance's exact file formats."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from statarb_kit import Session, TickStore
from statarb_kit.errors import InvalidParameter
from statarb_kit.exchange.binance.history import HistoryFile, HistoryFileError, download, read_history
from statarb_kit.sources import Replay
from tests.fake_binance import FakeBinance

T0 = 1_700_000_000_000


def trades_rows(n: int, first_id: int = 100, t0: int = T0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = np.round(30000 + np.cumsum(rng.normal(0, 1, n)), 1)
    qty = np.round(rng.uniform(0.001, 3, n), 3)
    return pd.DataFrame({"id": first_id + np.arange(n), "price": price, "qty": qty,
                         "quote_qty": np.round(price * qty, 4), "time": t0 + np.arange(n) * 37,
                         "is_buyer_maker": rng.random(n) < 0.5})


def write(path, frame: pd.DataFrame, header: bool = True, zipped: bool = False, micros: bool = False) -> str:
    frame = frame.copy()
    tcol = "time" if "time" in frame else "transact_time"
    if micros:
        frame[tcol] = frame[tcol] * 1000
    text = frame.to_csv(index=False, header=header).replace("True", "true").replace("False", "false")
    if zipped:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(path.name.replace(".zip", ".csv"), text)
    else:
        path.write_text(text)
    return text


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("zipped", [True, False])
@pytest.mark.parametrize("micros", [True, False])
def test_trades_files_in_every_variant(tmp_path, header, zipped, micros):
    rows = trades_rows(500)
    path = tmp_path / f"BTCUSDT-trades-2023-11-14.{'zip' if zipped else 'csv'}"
    write(path, rows, header, zipped, micros)
    got = read_history(HistoryFile.of(path)).frame
    assert got["trade_id"].tolist() == rows["id"].tolist()
    assert got["ts"].tolist() == rows["time"].tolist()  # microseconds detected and converted
    np.testing.assert_array_equal(got["price"], rows["price"])
    np.testing.assert_array_equal(got["qty"], rows["qty"])
    assert got["is_buyer_maker"].tolist() == rows["is_buyer_maker"].tolist()


def test_agg_trades_expand_into_their_trades(tmp_path):
    agg = pd.DataFrame({"agg_trade_id": [1, 2, 3], "price": [10.5, 10.6, 10.4], "quantity": [3.0, 1.0, 0.5],
                        "first_trade_id": [100, 103, 104], "last_trade_id": [102, 103, 105],
                        "transact_time": [T0, T0 + 5, T0 + 9], "is_buyer_maker": [True, False, True]})
    path = tmp_path / "ETHUSDT-aggTrades-2023-11-14.zip"
    write(path, agg, header=False, zipped=True)
    got = read_history(HistoryFile.of(path)).frame
    assert got["trade_id"].tolist() == [100, 101, 102, 103, 104, 105]
    assert got["qty"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.25, 0.25]
    assert got["price"].tolist() == [10.5] * 3 + [10.6, 10.4, 10.4]
    assert got["ts"].tolist() == [T0] * 3 + [T0 + 5, T0 + 9, T0 + 9]


@pytest.mark.parametrize("kind", ["trades", "aggTrades"])
def test_spot_dumps_with_is_best_match_are_read(tmp_path, kind):
    """Spot dumps: no header, a seventh (eighth) column is_best_match as True/False, µs times."""
    rows = trades_rows(300)
    if kind == "aggTrades":
        rows = pd.DataFrame({"agg_trade_id": np.arange(300), "price": rows["price"], "quantity": rows["qty"],
                             "first_trade_id": rows["id"], "last_trade_id": rows["id"],
                             "transact_time": rows["time"], "is_buyer_maker": rows["is_buyer_maker"]})
    rows["is_best_match"] = True
    path = tmp_path / f"BTCUSDT-{kind}-2025-01-02.zip"
    tcol = "time" if kind == "trades" else "transact_time"  # spot: True/False capitalised, µs times
    text = rows.assign(**{tcol: rows[tcol] * 1000}).to_csv(index=False, header=False)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(path.name.replace(".zip", ".csv"), text)
    got = read_history(HistoryFile.of(path)).frame
    assert got["trade_id"].tolist() == trades_rows(300)["id"].tolist()
    np.testing.assert_array_equal(got["price"], rows["price"])
    assert got["ts"].tolist() == trades_rows(300)["time"].tolist()
    assert got["is_buyer_maker"].tolist() == rows["is_buyer_maker"].tolist()


def test_a_wrong_column_count_names_the_expected_columns(tmp_path):
    path = tmp_path / "BTCUSDT-trades-2025-01-02.csv"
    path.write_text("1,30000.5,0.1,3000.05\n2,30000.6,0.1,3000.06\n")
    with pytest.raises(HistoryFileError, match=r"4 columns.*id, price, qty, quote_qty, time, is_buyer_maker.*spot"):
        read_history(HistoryFile.of(path))


@pytest.mark.parametrize("header", [True, False])
def test_a_corrupt_line_names_file_and_line_or_is_skipped(tmp_path, header):
    path = tmp_path / "BTCUSDT-trades-2023-11-14.csv"
    text = write(path, trades_rows(50), header=header)
    lines = text.splitlines()
    lines[10] = lines[10].replace(",", ",x", 1)  # a bad price on file line 11
    lines[20] = "1,2,3"  # too few fields on file line 21
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryFileError, match=r"BTCUSDT-trades-2023-11-14.csv, line (11|21)"):
        read_history(HistoryFile.of(path))
    result = read_history(HistoryFile.of(path), skip_bad=True)
    assert result.skipped == 2 and len(result.frame) == 48


def test_bad_names_and_kinds():
    with pytest.raises(InvalidParameter, match="not a Binance dump name"):
        HistoryFile.of("prices.csv")
    f = HistoryFile.of("prices.csv", symbol="btcusdt", kind="trades")
    assert f.symbol == "BTCUSDT"
    with pytest.raises(InvalidParameter):
        Replay(["BTCUSDT-trades-2023-11-14.zip"], speed=0)


def replay_into(db, files, **kw):
    async def go():
        src = Replay(files, progress=False, **kw)
        async with Session(source=src, db=db) as s:
            await s.wait()
        return s, src

    return asyncio.run(go())


def test_replay_merges_symbols_by_time_and_twice_stores_once(tmp_path):
    a = tmp_path / "BTCUSDT-trades-2023-11-14.zip"
    b = tmp_path / "ETHUSDT-trades-2023-11-14.csv"
    c = tmp_path / "BTCUSDT-trades-2023-11-15.zip"
    write(a, trades_rows(3_000, seed=1), zipped=True)
    write(b, trades_rows(2_000, first_id=9_000, t0=T0 + 11, seed=2))
    write(c, trades_rows(1_000, first_id=3_100, t0=T0 + 86_400_000, seed=3), zipped=True)
    db = tmp_path / "r.duckdb"
    seen = []

    class Spy(Replay):
        async def stream(self):
            async for batch in super().stream():
                seen.append(batch.ts.copy())
                yield batch

    async def go():
        async with Session(source=Spy([a, b, c], progress=False, batch_rows=700), db=db) as s:
            await s.wait()
        return s

    s = asyncio.run(go())
    ts = np.concatenate(seen)
    assert (np.diff(ts) >= 0).all()  # one stream, in time order across symbols and files
    assert s.status().ticks_stored == 6_000
    s2, _ = replay_into(db, [a, b, c])  # the same files again: nothing new
    assert s2.status().ticks_stored == 0 and s2.status().duplicates == 6_000
    assert TickStore(db, read_only=True).tick_count() == 6_000


def test_a_corrupt_file_stops_with_a_clear_error_and_keeps_stored_data(tmp_path):
    good = tmp_path / "BTCUSDT-trades-2023-11-14.csv"
    bad = tmp_path / "BTCUSDT-trades-2023-11-15.csv"
    write(good, trades_rows(400))
    text = write(bad, trades_rows(400, first_id=1_000, t0=T0 + 86_400_000))
    bad.write_text(text.replace("\n", "\nnot,a,trade,row,at,all\n", 1))
    db = tmp_path / "c.duckdb"
    s, src = replay_into(db, [good, bad])
    assert "BTCUSDT-trades-2023-11-15.csv, line 2" in s.status().last_error
    assert TickStore(db, read_only=True).tick_count() == 400  # the good day is stored
    s, src = replay_into(tmp_path / "d.duckdb", [good, bad], skip_bad=True)
    assert s.status().ticks_stored == 800 and src.status.malformed == 1


def test_paced_replay_follows_market_time(tmp_path):
    path = tmp_path / "BTCUSDT-trades-2023-11-14.csv"
    write(path, trades_rows(200))  # 200 trades over 7.4 s of market time
    src = Replay([path], speed=20.0, progress=False)  # -> ~0.37 s of wall time

    async def go():
        stamps = []
        async for batch in src.stream():
            stamps.append((batch.ts[-1], asyncio.get_running_loop().time()))
        return stamps

    stamps = asyncio.run(go())
    market = (stamps[-1][0] - stamps[0][0]) / 1000
    wall = stamps[-1][1] - stamps[0][1]
    assert len(stamps) >= 4 and wall >= market / 20 * 0.9  # a slice per 100 ms of wall time


def test_download_checks_checksums_and_skips_files_it_has(tmp_path):
    async def go():
        async with FakeBinance(n=10) as fake:
            for day in ("2023-11-14", "2023-11-15"):
                name = f"BTCUSDT-trades-{day}.zip"
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as z:
                    z.writestr(name.replace(".zip", ".csv"), trades_rows(50).to_csv(index=False))
                data = buf.getvalue()
                path = f"/data/futures/um/daily/trades/BTCUSDT/{name}"
                fake.files[path] = data
                fake.files[path + ".CHECKSUM"] = f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()
            first = await download(["btcusdt"], dt.date(2023, 11, 14), dt.date(2023, 11, 16), tmp_path / "dl",
                                   base_url=fake.http_url, progress=False)
            calls = len(fake.rest_calls)
            second = await download(["BTCUSDT"], dt.date(2023, 11, 14), dt.date(2023, 11, 15), tmp_path / "dl",
                                    base_url=fake.http_url, progress=False)
            zips_again = [c for c in fake.rest_calls[calls:] if c.endswith(".zip")]
            fake.files["/data/futures/um/daily/trades/BTCUSDT/BTCUSDT-trades-2023-11-14.zip"] = b"tampered"
            (tmp_path / "dl" / "BTCUSDT-trades-2023-11-14.zip").unlink()
            with pytest.raises(HistoryFileError, match="does not match"):
                await download(["BTCUSDT"], dt.date(2023, 11, 14), dt.date(2023, 11, 14), tmp_path / "dl",
                               base_url=fake.http_url, progress=False)
            return first, second, zips_again

    first, second, zips_again = asyncio.run(go())
    assert [p.name for p in first.downloaded] == ["BTCUSDT-trades-2023-11-14.zip", "BTCUSDT-trades-2023-11-15.zip"]
    assert first.missing == ["BTCUSDT-trades-2023-11-16.zip"]
    assert len(second.skipped) == 2 and not second.downloaded and zips_again == []
    assert not (tmp_path / "dl" / "BTCUSDT-trades-2023-11-14.zip").exists()
    frame = read_history(HistoryFile.of(first.downloaded[1])).frame
    assert len(frame) == 50
