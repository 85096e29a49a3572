"""The fake Binance data site and REST API serving a small universe of klines, in a background
thread: for notebooks and tests that run the real-data path offline (download -> universe ->
scan -> portfolio). Prices come from a synthetic universe with planted cointegrated pairs, staggered
listings and a delisted symbol; files are published monthly and daily, in both layouts.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd

from statarb_kit.scan import synthetic_universe

from .fake_binance import FakeBinance, kline_zip, publish_funding_dumps

M = 60_000


def klines_of_closes(closes: pd.Series, seed: int) -> pd.DataFrame:
    """1m klines whose closes are ``closes`` (NaN: no bar), with plausible OHLC, volume and counts."""
    c = closes.dropna()
    start = ((c.index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)
    rng = np.random.default_rng(seed)
    close = np.round(c.to_numpy(), 6)
    open_ = np.r_[close[0], close[:-1]]
    wiggle = 1 + rng.uniform(0, 2e-4, (2, len(c)))
    volume = np.round(rng.uniform(1, 50, len(c)), 3)
    vwap = (open_ + close) / 2
    taker = np.round(volume * rng.uniform(0.3, 0.7, len(c)), 3)
    return pd.DataFrame({"start": start, "open": open_, "high": np.round(np.maximum(open_, close) * wiggle[0], 6),
                         "low": np.round(np.minimum(open_, close) / wiggle[1], 6), "close": close, "volume": volume,
                         "close_time": start + M - 1, "quote_volume": np.round(volume * vwap, 5),
                         "trades": rng.integers(1, 300, len(c)), "taker_buy_volume": taker,
                         "taker_buy_quote_volume": np.round(taker * vwap, 5)})


class DemoSite:
    """``with DemoSite() as site:`` serves the universe at ``site.url`` (data site, bucket listing
    and REST on one 127.0.0.1 port) until the block ends. ``truth`` holds the planted pairs."""

    def __init__(self, n_symbols: int = 12, start: str = "2026-01-01", days: int = 40, seed: int = 5) -> None:
        self.universe = synthetic_universe(n_symbols=n_symbols, n_bars=days * 1440, n_pairs=3, n_groups=0,
                                           seed=seed, start=start, listed_late=0.25, delisted=0.1)
        self.truth = self.universe.truth()
        self.start = pd.Timestamp(start, tz="UTC")
        self.days = days
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._fake: FakeBinance | None = None
        self.url = ""

    def __enter__(self) -> DemoSite:
        self._thread.start()
        self._fake = FakeBinance(symbols=())
        asyncio.run_coroutine_threadsafe(self._fake.__aenter__(), self._loop).result(30)
        self.url = self._fake.http_url
        self._publish(self._fake)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._fake.__aexit__(None, None, None), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _publish(self, fake: FakeBinance) -> None:
        end = self.start + pd.Timedelta(days=self.days)
        last_day = self.universe.listings["last"]
        for k, symbol in enumerate(self.universe.closes.columns):
            bars = klines_of_closes(self.universe.closes[symbol], seed=k)
            fake.klines[(symbol, "1m")] = bars
            fake.info[symbol] = {"contractType": "PERPETUAL", "underlyingType": "COIN",
                                 "onboardDate": int(bars["start"].iloc[0])}
            if last_day[symbol] < self.universe.closes.index[-1]:
                fake.delisted.add(symbol)
            month = self.start
            while month < end:
                nxt = month + pd.offsets.MonthBegin(1)
                lo, hi = (month - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1), \
                    (min(nxt, end) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
                rows = bars[(bars["start"] >= lo) & (bars["start"] < hi)]
                if nxt <= end and len(rows):  # a whole month: one monthly file, headerless every other symbol
                    name = f"{symbol}-1m-{month:%Y-%m}.zip"
                    fake.publish(f"/data/futures/um/monthly/klines/{symbol}/1m/{name}",
                                 kline_zip(rows, name, header=k % 2 == 0))
                else:  # the rest as daily files
                    for day in pd.date_range(month, min(nxt, end), freq="D", inclusive="left"):
                        d0 = (day - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
                        part = rows[(rows["start"] >= d0) & (rows["start"] < d0 + 86_400_000)]
                        if len(part):
                            name = f"{symbol}-1m-{day:%Y-%m-%d}.zip"
                            fake.publish(f"/data/futures/um/daily/klines/{symbol}/1m/{name}",
                                         kline_zip(part, name, header=True))
                month = nxt
        fake.funding_span = (int(self.start.value // 1_000_000), int(end.value // 1_000_000))
        for symbol in fake.delisted:  # REST no longer has them: their funding is in the monthly dumps
            publish_funding_dumps(fake, symbol, fake.funding_span[0],
                                  int((last_day[symbol] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)))
