"""The offline demo (``statarb_kit.demo``): the real-data path, command by command, against real
klines served in Binance's formats on 127.0.0.1 — universe, download, update, the store's last
traded bars, archive, scan and study — and the stored bars equal the packaged klines exactly."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

from statarb_kit.cli import main
from statarb_kit.demo import DemoSite
from statarb_kit.demo.site import DELISTED, KLINES
from statarb_kit.store import TickStore


@pytest.fixture(scope="module")
def site():
    with DemoSite() as s:
        yield s


def test_the_real_data_path_runs_offline_on_real_prices(site, tmp_path, capsys):
    u = site.url
    urls = ["--listing-url", u + "/", "--rest-url", u]
    out = tmp_path / "universe.csv"
    assert main(["universe", *urls, "--interval", "1h", "--start", "2022-09-01", "--end", "2022-12-31", "-q",
                 "--out", str(out)]) == 0
    universe = pd.read_csv(out).set_index("symbol")
    assert len(universe) == 12 and set(universe.index[universe["status"] == "DELISTED"]) == set(DELISTED)
    assert universe.loc["APTUSDT", "first"].startswith("2022-10-19")  # listed late: exchangeInfo's onboardDate
    db = tmp_path / "demo.duckdb"
    assert main(["download", "--kind", "klines", "--interval", "1h", "--all", "--start", "2022-09-01", "--end",
                 "2022-12-31", "--db", str(db), *urls, "--base-url", u]) == 0
    assert "did not give" not in capsys.readouterr().out  # the range asked is all there
    assert main(["update", str(db), "--base-url", u, "--rest-url", u, "-q"]) == 0
    # up to now: nothing after 2022, and the report says so per symbol ("no gaps" alone said nothing)
    report = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("BTCUSDT 1h ")]
    assert len(report) == 1 and "the newest bar opens 2022-12-31 23:00 UTC: " in report[0], report
    assert "bars to the end of the range Binance did not give (delisted, halted or not published yet)" in report[0]
    # every packaged kline stored exactly, the flat tails included, from the dumps
    k = pd.read_parquet(files("statarb_kit.demo").joinpath(KLINES))
    store = TickStore(db, read_only=True)
    try:
        for symbol, rows in k.groupby("symbol", observed=True):
            got = store.bars("1h", str(symbol))
            np.testing.assert_array_equal(got["start"].to_numpy(), rows["open_time"].to_numpy())
            np.testing.assert_array_equal(got["close"].to_numpy(), rows["close"].to_numpy())
            np.testing.assert_array_equal(got["volume"].to_numpy(), rows["volume"].to_numpy())
    finally:
        store.close()
    assert main(["universe", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "2 end at their last traded bar" in shown and "FTTUSDT 2022-11-14 04:00" in shown
    root = tmp_path / "archive"
    assert main(["archive", str(db), str(root)]) == 0
    assert main(["scan", "--db", str(root), "--all", "--timeframe", "1h", "--log-prices", "--split", "2022-11-15",
                 "-q"]) == 0
    assert "66 pairs of 12 symbols tested" in capsys.readouterr().out
    study = tmp_path / "study.json"
    assert main(["study", "--db", str(db), "--formation", "30d", "--trading", "15d", "--min-obs", "300", "-q",
                 "--json", str(study)]) == 0
    assert study.stat().st_size > 0


def test_the_demo_site_speaks_binances_formats(site):
    """A settled contract is gone from exchangeInfo and REST (-1121) while its files stay; klines
    REST pages as Binance's do; the listing pages with NextMarker; funding is not invented."""
    import httpx

    with httpx.Client(base_url=site.url) as c:
        info = c.get("/fapi/v1/exchangeInfo").json()
        assert {s["symbol"] for s in info["symbols"]} == set(site.symbols) - set(DELISTED)
        gone = c.get("/fapi/v1/klines", params={"symbol": "FTTUSDT", "interval": "1h"})
        assert gone.status_code == 400 and gone.json()["code"] == -1121
        page = c.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1h", "limit": 3,
                                                "startTime": 1_661_990_400_000}).json()
        assert [r[0] for r in page] == [1_661_990_400_000 + h * 3_600_000 for h in range(3)] and len(page[0]) == 12
        assert c.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT"}).json() == []
        listing = c.get("/", params={"prefix": "data/futures/um/monthly/klines/FTTUSDT/1h/", "delimiter": "/"}).text
        assert listing.count("<Key>") == 8  # four months, each with its .CHECKSUM
