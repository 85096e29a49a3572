"""Kline history from the (fake) data site and REST: files in every layout, checksums, delisted
symbols, gaps, and an incremental update that fetches nothing the second time."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from statarb_kit.exchange.binance.kline_history import store_targets, update_klines
from statarb_kit.exchange.binance.rest import kline_weight
from statarb_kit.exchange.binance.history import HistoryFileError
from statarb_kit.exchange.binance.klines import KlineFile, kline_jobs, read_klines
from statarb_kit.store import TickStore

from .fake_binance import FakeBinance, kline_zip, make_klines, publish_funding_dumps
from .test_cli import _run_cli

M = 60_000
DAY = 86_400_000


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


NOW = ms("2026-02-03 12:00:30")
MAINTENANCE = (ms("2026-01-15 02:00"), ms("2026-01-15 02:30"))  # Binance had no bars: never invented
DELISTED_AT = ms("2026-01-20 08:00")


def _truth() -> dict[str, pd.DataFrame]:
    t = {s: make_klines(s, M, ms("2026-01-01"), ms("2026-02-03 12:00"), seed=k, holes=[MAINTENANCE])
         for k, s in enumerate(("AAAUSDT", "BBBUSDT"))}
    t["CCCUSDT"] = make_klines("CCCUSDT", M, ms("2026-01-01"), DELISTED_AT, seed=9, holes=[MAINTENANCE])
    return t


def _day(k: pd.DataFrame, day: str) -> pd.DataFrame:
    return k[(k["start"] >= ms(day)) & (k["start"] < ms(day) + DAY)]


def _publish(fake: FakeBinance, truth: dict[str, pd.DataFrame], bad: bool) -> None:
    """Last month as monthly files, this month's days as daily files, in both layouts; today's
    bars only on REST. CCCUSDT was delisted on Jan 20: files only, no REST."""
    layouts = {"AAAUSDT": {"2026-01": False, "2026-02-01": True, "2026-02-02": True},  # headerless, then headed
               "BBBUSDT": {"2026-01": True, "2026-02-01": False, "2026-02-02": True},
               "CCCUSDT": {"2026-01": True}}
    for s, files in layouts.items():
        for date, header in files.items():
            name = f"{s}-1m-{date}.zip"
            kind = "monthly" if len(date) == 7 else "daily"
            rows = truth[s][truth[s]["start"] < ms("2026-02-01")] if kind == "monthly" else _day(truth[s], date)
            data = kline_zip(rows, name, header=header, microseconds=(s, date) == ("BBBUSDT", "2026-02-01"))
            fake.publish(f"/data/futures/um/{kind}/klines/{s}/1m/{name}", data)
            if bad and (s, date) == ("BBBUSDT", "2026-02-02"):
                fake.files[f"/data/futures/um/{kind}/klines/{s}/1m/{name}"] = data[:-10] + b"0123456789"
    for s in ("AAAUSDT", "BBBUSDT", "CCCUSDT"):
        fake.klines[(s, "1m")] = truth[s]
    fake.delisted = {"CCCUSDT"}
    fake.funding_span = (ms("2026-01-01"), NOW)
    publish_funding_dumps(fake, "CCCUSDT", ms("2026-01-01"), DELISTED_AT)


def _stored(store: TickStore, symbol: str) -> pd.DataFrame:
    got = store.bars("1m", symbol)
    return got.reset_index(drop=True)


def _assert_equal_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got["start"].tolist() == want["start"].tolist()
    for c in ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume"):
        np.testing.assert_array_equal(got[c].to_numpy(float), want[c].to_numpy(float), err_msg=c)
    np.testing.assert_array_equal(got["trades"].to_numpy(np.int64), want["trades"].to_numpy(np.int64))
    np.testing.assert_allclose(got["vwap"].to_numpy(float), (want["quote_volume"] / want["volume"]).to_numpy(),
                               rtol=1e-15)


def test_klines_from_files_and_rest_equal_the_truth_and_a_second_update_fetches_nothing(tmp_path):
    truth = _truth()

    async def go():
        async with FakeBinance(symbols=()) as fake:
            _publish(fake, truth, bad=True)
            store = TickStore(tmp_path / "k.duckdb")
            try:
                targets = store_targets(store, symbols=list(truth), timeframes=["1m"], start=dt.date(2026, 1, 1))
                first = await update_klines(store, targets, dest=tmp_path / "files", base_url=fake.http_url,
                                            rest_url=fake.http_url, now=NOW, progress=False)
                bbb_after_first = _stored(store, "BBBUSDT")
                fake.publish("/data/futures/um/daily/klines/BBBUSDT/1m/BBBUSDT-1m-2026-02-02.zip",
                             kline_zip(_day(truth["BBBUSDT"], "2026-02-02"), "BBBUSDT-1m-2026-02-02.zip", header=True))
                calls = len(fake.rest_calls)
                second = await update_klines(store, store_targets(store), dest=tmp_path / "files",
                                             base_url=fake.http_url, rest_url=fake.http_url, now=NOW, progress=False)
                second_calls = fake.rest_calls[calls:]
                calls = len(fake.rest_calls)
                third = await update_klines(store, store_targets(store), dest=tmp_path / "files",
                                            base_url=fake.http_url, rest_url=fake.http_url, now=NOW, progress=False)
                third_calls = fake.rest_calls[calls:]
                stored = {s: _stored(store, s) for s in truth}
                gaps = store.bar_gaps("1m")
                funding = {s: store.funding(s).time for s in truth}
                return first, second, third, second_calls, third_calls, bbb_after_first, stored, gaps, funding
            finally:
                store.close()

    first, second, third, second_calls, third_calls, bbb_first, stored, gaps, funding = asyncio.run(go())
    rows = {r.symbol: r for r in first.rows}
    # the bad file is named; its days are neither stored nor filled from REST, and left unasked
    assert len(first.corrupt) == 1 and "BBBUSDT-1m-2026-02-02.zip" in first.corrupt[0]
    assert "does not match" in first.corrupt[0]
    _assert_equal_rows(bbb_first, truth["BBBUSDT"][truth["BBBUSDT"]["start"] < ms("2026-02-02")])
    # AAAUSDT: monthly file (no header), two daily files (headed), today's bars from REST
    assert (rows["AAAUSDT"].files, rows["AAAUSDT"].dump_bars) == (3, len(truth["AAAUSDT"][truth["AAAUSDT"]["start"]
                                                                                           < ms("2026-02-03")]))
    assert rows["AAAUSDT"].rest_bars == 12 * 60 and rows["AAAUSDT"].rest_calls == 1
    # the delisted symbol: its file is all there is, REST says invalid symbol, stated
    assert rows["CCCUSDT"].dump_bars == len(truth["CCCUSDT"]) and "delisted" in rows["CCCUSDT"].note
    # after the second update, every stored bar equals the truth (files' rows and REST's), no more, no fewer
    for s, want in truth.items():
        _assert_equal_rows(stored[s], want)
    assert set(stored["AAAUSDT"]["origin"]) == {"kline_dump", "kline_rest"}
    assert stored["AAAUSDT"]["first_trade_id"].isna().all()
    # the second update asked only for BBBUSDT's repaired day and what came after it
    assert [c for c in second_calls if c.endswith(".zip")] == [
        "/data/futures/um/daily/klines/BBBUSDT/1m/BBBUSDT-1m-2026-02-02.zip"]
    assert {r.symbol for r in second.rows if r.files or r.rest_calls} == {"BBBUSDT"}
    assert third.fetched == 0 and third_calls == [] and not third.corrupt
    # the maintenance window is a gap of 30 bars in each symbol, reported, not filled
    assert gaps.groupby("symbol")["missing"].sum().to_dict() == {s: 30 for s in truth}
    assert {r.symbol: r.missing_bars for r in third.rows} == {s: 30 for s in truth}
    # funding came along for the listed perpetuals; the delisted one is stated
    every_8h = np.arange(ms("2026-01-01 08:00"), NOW, 8 * 3_600_000)
    np.testing.assert_array_equal(funding["AAAUSDT"] - 3, every_8h)  # the fake stamps settlements 3 ms late
    assert len(funding["BBBUSDT"]) == len(every_8h)
    # the delisted one: REST no longer lists it, its funding comes from the monthly funding dumps
    np.testing.assert_array_equal(funding["CCCUSDT"] - 3, every_8h[every_8h < DELISTED_AT])
    assert "from the monthly funding dumps" in first.funding_notes["CCCUSDT"] and not third.funding


def test_each_file_layout_is_detected_from_the_file(tmp_path):
    k = make_klines("XUSDT", M, ms("2021-03-01"), ms("2021-03-01 02:00"), seed=1)
    cases = {"plain": (False, False), "headed": (True, False), "micro": (False, True), "both": (True, True)}
    for name, (header, micro) in cases.items():
        path = tmp_path / name / "XUSDT-1m-2021-03-01.zip"
        path.parent.mkdir()
        path.write_bytes(kline_zip(k, path.name, header=header, microseconds=micro))
        got = read_klines(KlineFile.of(path))
        assert (got.header, got.microseconds, got.skipped) == (header, micro, 0)
        _assert_equal_rows(got.bars.assign(vwap=got.bars["quote_volume"] / got.bars["volume"]), k)


def test_a_corrupt_line_or_a_file_of_another_interval_is_named(tmp_path):
    k = make_klines("XUSDT", M, ms("2024-06-01"), ms("2024-06-01 01:00"), seed=2)
    path = tmp_path / "XUSDT-1m-2024-06-01.zip"
    data = kline_zip(k, path.name, header=True)
    import io
    import zipfile

    text = zipfile.ZipFile(io.BytesIO(data)).read("XUSDT-1m-2024-06-01.csv").decode().splitlines()
    text[5] = text[5].replace(text[5].split(",")[4], "oops", 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("XUSDT-1m-2024-06-01.csv", "\n".join(text) + "\n")
    path.write_bytes(buf.getvalue())
    with pytest.raises(HistoryFileError, match=r"XUSDT-1m-2024-06-01.zip, line 6"):
        read_klines(KlineFile.of(path))
    assert read_klines(KlineFile.of(path), skip_bad=True).skipped == 1
    other = tmp_path / "XUSDT-5m-2024-06-01.zip"
    other.write_bytes(kline_zip(k, other.name, header=False))
    with pytest.raises(HistoryFileError, match="not a 5m bar"):
        read_klines(KlineFile.of(other))
    (tmp_path / "XUSDT-1m-2024-06-02.zip").write_bytes(b"not a zip")
    with pytest.raises(HistoryFileError, match="cannot read"):
        read_klines(KlineFile.of(tmp_path / "XUSDT-1m-2024-06-02.zip"))


def test_monthly_files_for_whole_past_months_daily_for_the_rest():
    jobs = kline_jobs("BTCUSDT", "1m", dt.date(2025, 11, 20), dt.date(2026, 2, 10), today=dt.date(2026, 2, 5))
    names = [j.name for j in jobs]
    assert names[:11] == [f"BTCUSDT-1m-2025-11-{d}.zip" for d in range(20, 31)]
    assert names[11:13] == ["BTCUSDT-1m-2025-12.zip", "BTCUSDT-1m-2026-01.zip"]
    assert names[13:] == [f"BTCUSDT-1m-2026-02-0{d}.zip" for d in range(1, 5)]  # up to yesterday
    assert jobs[11].path == "/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-12.zip"
    assert [kline_weight(n) for n in (99, 100, 499, 500, 1000, 1001, 1500)] == [1, 2, 2, 5, 5, 10, 10]


def _site_with_a_universe(fake: FakeBinance, truth: dict[str, pd.DataFrame]) -> None:
    """The three symbols of ``_publish`` and others the exclusions and the point in time must see."""
    _publish(fake, truth, bad=False)
    fake.info = {"AAAUSDT": {"contractType": "PERPETUAL", "onboardDate": ms("2025-06-01"), "underlyingType": "COIN",
                             "deliveryDate": 4133404800000},
                 "BBBUSDT": {"contractType": "PERPETUAL", "onboardDate": ms("2025-09-01"), "underlyingType": "COIN"},
                 "AAAUSDT_260327": {"contractType": "CURRENT_QUARTER", "onboardDate": ms("2025-12-01"),
                                    "deliveryDate": ms("2026-03-27 08:00"), "underlyingType": "COIN"},
                 "USDCUSDT": {"contractType": "PERPETUAL", "onboardDate": ms("2024-01-01"), "underlyingType": "COIN"},
                 "TSLAUSDT": {"contractType": "PERPETUAL", "onboardDate": ms("2025-12-15"), "underlyingType": "EQUITY"},
                 "DDDUSDT": {"contractType": "PERPETUAL", "onboardDate": ms("2026-02-02"), "underlyingType": "COIN"}}
    for s, day in (("USDCUSDT", "2026-01-05"), ("TSLAUSDT", "2026-01-05"), ("AAAUSDT_260327", "2026-01-05"),
                   ("DDDUSDT", "2026-02-02")):
        k = make_klines(s, M, ms(day), ms(day) + DAY, seed=5)
        fake.publish(f"/data/futures/um/daily/klines/{s}/1m/{s}-1m-{day}.zip", kline_zip(k, f"{s}-1m-{day}.zip", True))
    fake.list_page = 3  # the listing comes in pages: NextMarker is followed


def test_universe_lists_delisted_symbols_and_is_point_in_time():
    from statarb_kit.exchange.binance.symbols import fetch_universe, point_in_time

    async def go():
        async with FakeBinance(symbols=()) as fake:
            _site_with_a_universe(fake, _truth())
            return await fetch_universe(listing_url=fake.http_url, rest_url=fake.http_url, progress=False)

    u = asyncio.run(go()).set_index("symbol")
    assert len(u) == 7
    assert u.loc["CCCUSDT", "status"] == "DELISTED" and not u.loc["CCCUSDT", "on_exchange_info"]
    assert (u.loc["CCCUSDT", "first"], u.loc["CCCUSDT", "last"]) == (pd.Timestamp("2026-01-01", tz="UTC"),
                                                                    pd.Timestamp("2026-01-31", tz="UTC"))
    assert u.loc["AAAUSDT", "last"] == pd.Timestamp("2026-02-02", tz="UTC") and pd.isna(u.loc["AAAUSDT", "delivery"])
    assert u.loc["AAAUSDT_260327", "delivery"] == pd.Timestamp("2026-03-27 08:00", tz="UTC")
    # January 2026: the symbol delisted on Jan 20 is in, the one listed in February is not; exclusions stated
    kept, out = point_in_time(u.reset_index(), dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert kept == ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
    assert dict(zip(out.symbol, out.why)) == {"AAAUSDT_260327": "delivery contract (expires)",
                                              "TSLAUSDT": "tokenised stock or equity index (underlyingType)",
                                              "USDCUSDT": "stablecoin base asset"}
    kept, out = point_in_time(u.reset_index(), dt.date(2026, 2, 1), dt.date(2026, 2, 3), exclude=())
    assert kept == ["AAAUSDT", "AAAUSDT_260327", "BBBUSDT", "DDDUSDT", "TSLAUSDT", "USDCUSDT"] and out.empty


@pytest.mark.skipif(shutil.which("statarb") is None, reason="package not installed with pip")
def test_cli_download_all_then_update_twice(tmp_path):
    db = str(tmp_path / "u.duckdb")
    truth = _truth()

    async def go():
        async with FakeBinance(symbols=()) as fake:
            _site_with_a_universe(fake, truth)
            urls = ("--base-url", fake.http_url, "--rest-url", fake.http_url)
            first = await _run_cli("download", "--kind", "klines", "--interval", "1m", "--all", "--start", "2026-01-01",
                                   "--end", "2026-01-31", "--db", db, "--dir", str(tmp_path / "files"),
                                   "--listing-url", fake.http_url, *urls)
            second = await _run_cli("update", db, "-q", *urls, timeout=120)
            calls = len(fake.rest_calls)
            third = await _run_cli("update", db, "-q", *urls)
            third_calls = fake.rest_calls[calls:]
            arch = await _run_cli("archive", db, str(tmp_path / "arch"))
            scan = await _run_cli("scan", "--db", str(tmp_path / "arch"), "--all", "--split", "2026-01-25",
                                  "--min-obs", "300", "-q")
            return first, second, third, third_calls, arch, scan

    (rc1, out1, err1), (rc2, out2, err2), (rc3, out3, err3), third_calls, arch, scan = asyncio.run(go())
    assert rc1 == 0 and rc2 == 0 and rc3 == 0, (err1, err2, err3)
    assert arch[0] == 0 and "file(s) written" in arch[1], arch
    # the scan reads the archive: 3 symbols, each pair on its own bars, validated from the split
    assert scan[0] == 0 and "3 pairs of 3 symbols tested" in scan[1] and "validation from 2026-01-25" in scan[1], scan
    assert "--all: 3 symbols traded between 2026-01-01 and 2026-01-31" in out1
    assert "excluded, stablecoin base asset: 1 (USDCUSDT)" in out1
    assert "CCCUSDT 1m 2026-01-01 00:00 to 2026-02-01 00:00 UTC: 1 file(s) downloaded" in out1
    assert "1 gap(s), 30 bars Binance does not have" in out1
    # February has no monthly file on this site (it stopped on Feb 3): REST fills it, 1,500 bars a call
    assert "AAAUSDT 1m 2026-02-01 00:00" in out2 and "3 REST call(s); 0 new bars from dumps, 3,600 from REST" in out2
    assert "CCCUSDT: not listed on REST now: 0 settlements from the monthly funding dumps" in out2
    assert not [c for c in third_calls if c.endswith(".zip") or "CHECKSUM" in c]
    store = TickStore(db, read_only=True)
    try:
        for s in ("AAAUSDT", "BBBUSDT", "CCCUSDT"):
            _assert_equal_rows(_stored(store, s), truth[s])
    finally:
        store.close()
