"""An offline Binance for the real-data path: real 1h klines served in Binance's formats on
127.0.0.1, so that universe -> download -> update -> archive -> scan -> study runs on a laptop
with no network, on real prices.

The prices are real: 1h USD-M klines of 12 perpetuals from September to December 2022, as
Binance's REST returned them (``KLINES``, from the shared data's
``binance_um_klines_1h_to_2024-05.parquet``). APTUSDT lists on 2022-10-19; FTTUSDT and RAYUSDT
settle in November 2022 and their klines go on flat with volume 0 (Binance's own behaviour):
they are delisted here (gone from exchangeInfo and REST, their files stay).

Served, as Binance does: the data site (``/data/futures/um/{monthly,daily}/klines/SYMBOL/1h/``
zips with ``.CHECKSUM``: a monthly file per month, and December's days as daily files too) and its S3
bucket listing (``/?prefix=...``), ``/fapi/v1/exchangeInfo``, ``/fapi/v1/klines`` and
``/fapi/v1/fundingRate``. Not in the source and so not invented: funding (REST answers no
settlements, no funding dumps). Also not in the source, filled so the files parse: the trade count
(1 where volume > 0, a lower bound; 0 where none), quote volume (volume x close) and taker buy
volumes (half the volume); no statistic of the kit reads the last two.
"""

from __future__ import annotations

import asyncio
import threading
from importlib.resources import files
from urllib.parse import parse_qs, urlparse

import numpy as np
import orjson
import pandas as pd
import websockets
from websockets.datastructures import Headers
from websockets.http11 import Response

from .formats import bucket_listing, checksum_file, kline_rows, kline_zip

#: The packaged klines (long format: symbol, open_time ms UTC, open, high, low, close, volume).
KLINES = "klines_1h_2022-09_2022-12.parquet"
#: Settled in November 2022: not in exchangeInfo or REST any more.
DELISTED = ("FTTUSDT", "RAYUSDT")
INTERVAL, HOUR_MS = "1h", 3_600_000


def demo_bars() -> dict[str, pd.DataFrame]:
    """The packaged klines as bars per symbol (see the module doc for the filled columns)."""
    k = pd.read_parquet(files(__package__).joinpath(KLINES))
    out = {}
    for symbol, rows in k.groupby("symbol", observed=True, sort=True):
        v = rows["volume"].to_numpy()
        close = rows["close"].to_numpy()
        start = rows["open_time"].to_numpy(np.int64)
        out[str(symbol)] = pd.DataFrame({
            "start": start, "open": rows["open"].to_numpy(), "high": rows["high"].to_numpy(),
            "low": rows["low"].to_numpy(), "close": close, "volume": v, "close_time": start + HOUR_MS - 1,
            "quote_volume": np.round(v * close, 8), "trades": (v > 0).astype(np.int64),
            "taker_buy_volume": v / 2, "taker_buy_quote_volume": np.round(v * close / 2, 8)})
    return out


class DemoSite:
    """``with DemoSite() as site:`` serves the demo at ``site.url`` (data site, listing and REST on
    one 127.0.0.1 port, ``port`` 0: any free one) from a background thread until the block ends;
    ``statarb demo-site`` runs one in the foreground."""

    def __init__(self, port: int = 0) -> None:
        self.bars = demo_bars()
        self.files: dict[str, bytes] = {}
        for symbol, bars in self.bars.items():
            self._publish(symbol, bars)
        self.port = port
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="statarb-demo-site", daemon=True)
        self._server: websockets.Server | None = None

    @property
    def symbols(self) -> list[str]:
        return sorted(self.bars)

    def __enter__(self) -> DemoSite:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def start(self) -> None:
        """Listen on 127.0.0.1 (in the running loop)."""
        self._server = await websockets.serve(self._refuse, "127.0.0.1", self.port, process_request=self._http)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def _publish(self, symbol: str, bars: pd.DataFrame) -> None:
        """A monthly file per month and, for December 2022, daily files too (the site keeps both)."""
        t = pd.to_datetime(bars["start"], unit="ms", utc=True)
        for month, rows in bars.groupby(t.dt.strftime("%Y-%m").to_numpy()):
            self._add(f"/data/futures/um/monthly/klines/{symbol}/1h/{symbol}-1h-{month}.zip", rows)
        december = bars[t.dt.strftime("%Y-%m").to_numpy() == "2022-12"]
        days = pd.to_datetime(december["start"], unit="ms", utc=True).dt.strftime("%Y-%m-%d").to_numpy()
        for day, part in december.groupby(days):
            self._add(f"/data/futures/um/daily/klines/{symbol}/1h/{symbol}-1h-{day}.zip", part)

    def _add(self, path: str, rows: pd.DataFrame) -> None:
        self.files[path] = data = kline_zip(rows, path.rsplit("/", 1)[1], header=True)
        self.files[path + ".CHECKSUM"] = checksum_file(path, data)

    async def _refuse(self, ws: websockets.ServerConnection) -> None:
        await ws.close(1008, "the demo site serves no streams")

    def _http(self, ws: websockets.ServerConnection, request: websockets.Request) -> Response | None:
        url = urlparse(request.path)
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path in self.files:
            return _reply(200, self.files[url.path], "application/octet-stream")
        if url.path == "/" and "prefix" in q:
            return _reply(200, bucket_listing(self.files, q["prefix"], q.get("delimiter", ""), q.get("marker", ""),
                                              1000), "application/xml")
        listed = [s for s in self.symbols if s not in DELISTED]
        if url.path == "/fapi/v1/exchangeInfo":
            return _json({"timezone": "UTC", "symbols": [
                {"symbol": s, "status": "TRADING", "contractType": "PERPETUAL", "underlyingType": "COIN",
                 "onboardDate": int(self.bars[s]["start"].iloc[0]), "deliveryDate": 4133404800000} for s in listed]})
        if url.path.startswith("/fapi/v1/") and q.get("symbol") not in listed:
            return _reply(400, orjson.dumps({"code": -1121, "msg": "Invalid symbol."}))
        if url.path == "/fapi/v1/klines":
            if q.get("interval") != INTERVAL:
                return _json([])
            k = self.bars[q["symbol"]]
            lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
            return _json(kline_rows(k[(k["start"] >= lo) & (k["start"] <= hi)].head(int(q.get("limit", 500)))))
        if url.path == "/fapi/v1/fundingRate":
            return _json([])  # no funding in the source: none served, none invented
        return _reply(404, b"not found")


def _json(obj: object) -> Response:
    return _reply(200, orjson.dumps(obj))


def _reply(status: int, body: bytes, ctype: str = "application/json") -> Response:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    return Response(status, reason, Headers({"Content-Type": ctype, "Content-Length": str(len(body)),
                                             "Connection": "close"}), body)
