"""Quotes: @bookTicker frames parsed, and quote bars equal to a pandas computation on the shared
tape's real quotes."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from statarb_kit.errors import InvalidParameter
from statarb_kit.quotes import parse_book_tickers, quote_bars
from tests.fake_binance import read_tape_quotes, recorded_files


def bars_by_pandas(q, tf: str, until_ms: int) -> pd.DataFrame:
    """Quote bars by pandas: the quote in force on a 1 ms grid is too large, so a step function
    over quote times and bar starts (merge_asof), weighted by how long each step lasts."""
    quotes = pd.DataFrame({"time": q.time_ms, "bid": q.bid, "ask": q.ask})
    quotes["rel"] = (quotes.ask - quotes.bid) / ((quotes.ask + quotes.bid) / 2)
    quotes = quotes.drop_duplicates("time", keep="last")  # the last of a millisecond is the one in force
    tf_ms = int(pd.Timedelta(tf).total_seconds() * 1000)
    first = q.time_ms[0] // tf_ms * tf_ms
    starts = np.arange(first, until_ms, tf_ms)
    steps = pd.DataFrame({"time": np.union1d(quotes.time, starts[starts > q.time_ms[0]])})
    steps = pd.merge_asof(steps, quotes, on="time")
    steps["dur"] = steps.time.shift(-1, fill_value=until_ms) - steps.time
    steps["bar"] = (steps.time - first) // tf_ms * tf_ms + first
    g = steps.groupby("bar")
    out = pd.DataFrame({"mean_spread": (steps.rel * steps.dur).groupby(steps.bar).sum() / g.dur.sum(),
                        "max_spread": g.rel.max()})
    idx = pd.to_datetime(quotes.time, unit="ms")
    closes = quotes.set_index(idx)[["bid", "ask"]].resample(tf).last().ffill()
    out["bid"], out["ask"] = closes.bid.to_numpy()[: len(out)], closes.ask.to_numpy()[: len(out)]
    out["updates"] = pd.Series(1, index=pd.to_datetime(q.time_ms, unit="ms")).resample(tf).count().to_numpy()[: len(out)]
    return out


@pytest.mark.parametrize("tf", ["1s", "1min", "5min"])
def test_quote_bars_equal_pandas_on_the_shared_tape(tf):
    for path in recorded_files():
        q = read_tape_quotes(path)
        assert len(q) > 50_000 and q.malformed == 0
        until = int(q.time_ms[-1]) + 1
        tf_ms = int(pd.Timedelta(tf).total_seconds() * 1000)
        got = quote_bars(q, tf_ms, until)
        want = bars_by_pandas(q, tf, until)
        assert len(got) == len(want) and (got.start == want.index.to_numpy()).all()
        np.testing.assert_allclose(got.mean_spread, want.mean_spread, rtol=1e-9)
        np.testing.assert_array_equal(got.max_spread, want.max_spread)
        np.testing.assert_array_equal(got.bid, want.bid)
        np.testing.assert_array_equal(got.ask, want.ask)
        np.testing.assert_array_equal(got.updates, want.updates)
        assert got.updates.sum() == len(q)
        if tf == "1s" and q.symbol == "BTCUSDT":  # the README's figures: about 190 updates a second, 0.016 bps median
            assert 180 < got.updates.mean() < 200
            assert np.median(q.relative_spread) * 1e4 == pytest.approx(0.016, abs=0.001)


def test_malformed_and_crossed_book_tickers_are_counted_and_skipped():
    good = {"e": "bookTicker", "u": 2, "s": "BTCUSDT", "b": "100.0", "B": "1", "a": "100.1", "A": "2",
            "T": 1_000, "E": 1_001}
    frames = [orjson.dumps({"stream": "btcusdt@bookTicker", "data": good}),
              b"{not json", orjson.dumps({**good, "b": "101.0"}),  # crossed
              orjson.dumps({k: v for k, v in good.items() if k != "a"}),  # no ask
              orjson.dumps({**good, "s": "ETHUSDT"}),  # another symbol: ignored
              orjson.dumps({"e": "trade", "s": "BTCUSDT"}),  # another stream: ignored
              {**good, "u": 1, "T": 500}]
    q = parse_book_tickers("BTCUSDT", frames)
    assert q.malformed == 3 and q.time_ms.tolist() == [500, 1_000] and q.update_id.tolist() == [1, 2]
    bars = quote_bars(q, 1_000, 1_500)
    assert bars.start.tolist() == [0, 1_000] and bars.updates.tolist() == [1, 1]
    assert bars.mean_spread[0] == pytest.approx(0.1 / 100.05)
    with pytest.raises(InvalidParameter, match="tf_ms"):
        quote_bars(q, 0)
