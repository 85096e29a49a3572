"""A bar without trades is not a price: Binance keeps printing klines for a settled contract (a flat
close, volume 0); they are stored as they are, but every statistic reads them as missing, so the
symbol ends at its last traded bar and a flat tail cannot pass for a stationary spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statarb_kit.backtest.data import bars_from_store
from statarb_kit.scan import scan_pairs
from statarb_kit.scan.data import closes_from_klines, closes_from_store
from statarb_kit.store import TickStore
from tests.fake_binance import make_klines

KLINES = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance_um_klines_1h_to_2024-05.parquet"
DEAD = ("FTTUSDT", "RAYUSDT")  # settled in November 2022; their klines go on, flat, with volume 0


def shared_klines() -> Path:
    if not KLINES.is_file():
        pytest.skip(f"the shared real klines are not at {KLINES} (see shared/data/README.md)")
    return KLINES


def test_a_settled_contracts_flat_tail_takes_no_selection_on_the_shared_klines():
    """FTTUSDT's last trade is 2022-11-14 04:00; its klines go on at a flat close with volume 0. A
    year from September 2022 (formation to March 2023): read as prices, the flat tails make the
    only 'cointegrated' pairs; read as missing, FTTUSDT ends at its last traded bar and no
    selection uses it or RAYUSDT."""
    path = shared_klines()
    k = pd.read_parquet(path)
    k = k[(k["open_time"] >= 1_661_990_400_000) & (k["open_time"] < 1_693_526_400_000)]  # 2022-09-01..2023-09-01
    raw = k.assign(symbol=k["symbol"].astype(str)).pivot_table(index="open_time", columns="symbol", values="close",
                                                                observed=True)
    raw.index = pd.to_datetime(raw.index, unit="ms", utc=True)
    fooled = scan_pairs(raw, split="2023-03-01", log_prices=True)
    chosen = fooled[fooled["selected"]]
    assert len(chosen) and (chosen["x"].isin(DEAD) | chosen["y"].isin(DEAD)).all()  # what a dead market did

    closes = closes_from_klines(path, start="2022-09-01", end="2023-09-01")
    ftt = closes["FTTUSDT"].dropna()
    assert ftt.index[-1] == pd.Timestamp("2022-11-14 04:00", tz="UTC")
    traded = k[(k["symbol"] == "FTTUSDT") & (k["volume"] > 0)]
    assert len(ftt) == len(traded) and np.array_equal(ftt.to_numpy(), traded["close"].to_numpy())
    result = scan_pairs(closes, split="2023-03-01", log_prices=True)
    used = result[result["selected"]]
    assert not (used["x"].isin(DEAD) | used["y"].isin(DEAD)).any()
    tested = result[(result["x"] == "FTTUSDT") | (result["y"] == "FTTUSDT")]
    max_stale = 3  # the scan's default carry of a missing close
    assert len(tested) and (tested["n"] <= len(ftt) + max_stale).all()  # on its traded bars only


def test_zero_volume_klines_are_stored_but_missing_for_every_statistic(tmp_path):
    """In a store and through bars_from_store: a kline with volume 0, or with a trade count of 0,
    is kept in the table and left out of closes and pair bars."""
    db = tmp_path / "k.duckdb"
    a = make_klines("AAAUSDT", 3_600_000, 0, 600 * 3_600_000, seed=1)
    b = make_klines("BBBUSDT", 3_600_000, 0, 600 * 3_600_000, seed=2)
    b.loc[400:, "volume"] = 0.0  # settled after 400 bars: flat, no trade
    b.loc[400:, ["open", "high", "low", "close"]] = b.loc[399, "close"]
    a.loc[100:109, "trades"] = 0  # ten bars with a count of 0 (and a volume, by mistake)
    store = TickStore(db)
    for s, bars in (("AAAUSDT", a), ("BBBUSDT", b)):
        store.insert_kline_bars("1h", s, bars, "kline_rest")
    assert len(store.bars("1h", "BBBUSDT")) == 600  # stored as they are
    store.close()
    closes = closes_from_store(db, "1h", ["AAAUSDT", "BBBUSDT"])
    assert closes["BBBUSDT"].notna().sum() == 400 and closes["AAAUSDT"].notna().sum() == 590
    pair = bars_from_store(db, ("AAAUSDT", "BBBUSDT"), "1h", max_stale=0)
    assert len(pair.time) == 390 and pair.time[-1] == 399 * 3_600_000


def test_the_move_filter_is_a_density_and_a_pair_needs_ten_half_lives():
    """Moves on 39 bars then the same price (trades at one price) would pass a count of 30 moves,
    not a share of 5% of the bars; a significant pair whose formation holds fewer than ten
    half-lives of its spread (a slow cycle of 300 bars: AR(1) half-life ~200 bars over 1,050) is
    not selected, with the reason."""
    rng = np.random.default_rng(5)
    n = 1_500
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    x = np.cumsum(rng.normal(0, 0.01, n))
    cycle = 0.05 * np.sin(2 * np.pi * np.arange(n) / 300) + rng.normal(0, 0.002, n)
    flat = 5 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    flat[40:] = flat[39]  # 39 moves, then the same price on the other 1,011 formation bars
    closes = pd.DataFrame({"AAAUSDT": 10 * np.exp(x), "BBBUSDT": 10 * np.exp(x + cycle),
                           "CCCUSDT": 5 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), "FLATUSDT": flat}, index=index)
    r = scan_pairs(closes, log_prices=True, min_obs=200)
    assert "changed on 39 of its 1050" in r.attrs["left_out"]["FLATUSDT"]
    row = r[(r.x == "AAAUSDT") & (r.y == "BBBUSDT")].iloc[0]
    assert row.q_value <= 0.05 and row.n < 10 * row.half_life_bars and not row.selected
    assert "fewer than 10 half-lives" in row.note
    loose = scan_pairs(closes, log_prices=True, min_obs=200, min_move_share=0.03)
    assert "FLATUSDT" not in loose.attrs["left_out"]  # the share is the only reason


def test_a_backtest_without_trades_says_why():
    """Each reason by its own cause, on a synthetic pair; a portfolio names the pairs that made none."""
    from statarb_kit.backtest import BacktestParams
    from statarb_kit.backtest.portfolio import run_portfolio
    from statarb_kit.backtest.data import backtest_bars, bars_synthetic

    bars = bars_synthetic(hours=12)
    assert backtest_bars(bars, BacktestParams()).metrics.trades > 0
    assert backtest_bars(bars, BacktestParams()).why_no_trades == ""
    cases = {"below z_entry 50": dict(z_entry=50), "below corr_min 0.999": dict(corr_min=0.999),
             "need more bars than there are": dict(z_window=5_000)}
    for text, kw in cases.items():
        r = backtest_bars(bars, BacktestParams(**kw))
        assert r.metrics.trades == 0 and text in r.why_no_trades, (kw, r.why_no_trades)
    short = bars.between(None, pd.Timestamp(int(bars.time[1]), unit="ms", tz="UTC"))
    assert "no bars to trade" in backtest_bars(short, BacktestParams()).why_no_trades
    book = run_portfolio([bars], BacktestParams(z_entry=50))
    assert book.metrics["trades"] == 0 and "below z_entry 50" in book.why_no_trades["BTCUSDT/ETHUSDT"]


def test_universe_of_a_store_shows_where_each_symbol_stopped_trading(tmp_path, capsys):
    """`statarb universe --db`, offline: FTTUSDT's klines (the shared real ones) go on for months
    after its last trade; the table shows that last traded bar and the flat bars after it, counted
    by hand; a symbol still trading has no flat tail; a store without such bars gets one line."""
    from statarb_kit.cli import main

    k = pd.read_parquet(shared_klines())
    k = k[k["symbol"].isin(["FTTUSDT", "BTCUSDT"]) & (k["open_time"] >= 1_661_990_400_000)
          & (k["open_time"] < 1_693_526_400_000)]
    db = tmp_path / "k.duckdb"
    store = TickStore(db)
    for symbol, rows in k.groupby("symbol", observed=True):
        bars = rows.rename(columns={"open_time": "start"}).assign(
            close_time=lambda f: f["start"] + 3_599_999, quote_volume=lambda f: f["volume"] * f["close"], trades=None,
            taker_buy_volume=None, taker_buy_quote_volume=None)
        store.insert_kline_bars("1h", str(symbol), bars.reset_index(drop=True), "kline_dump")
    store.close()
    out = tmp_path / "u.csv"
    assert main(["universe", "--db", str(db), "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "FTTUSDT 2022-11-14 04:00" in shown and "1 end at their last traded bar" in shown
    table = pd.read_csv(out).set_index("symbol")
    ftt = k[k["symbol"] == "FTTUSDT"]
    last = int(ftt.loc[ftt["volume"] > 0, "open_time"].max())
    assert pd.Timestamp(table.loc["FTTUSDT", "last_traded"]) == pd.Timestamp(last, unit="ms", tz="UTC")
    assert table.loc["FTTUSDT", "flat_tail"] == int((ftt["open_time"] > last).sum()) > 1_000
    assert table.loc["BTCUSDT", "flat_tail"] == 0
    assert main(["universe", "--db", str(db), "--interval", "1m"]) == 2
    assert "has no 1m bars (it has: 1h)" in capsys.readouterr().err
