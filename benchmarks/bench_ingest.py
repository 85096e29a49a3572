"""Ingest speed: live WebSocket messages and history-file replay, each into DuckDB and bars.

1. A local Binance-format server (a separate process, so it does not share the client's core)
   bursts N ``@trade`` messages on a combined stream, pre-framed, as fast as TCP takes them. The
   real client (``BinanceLive``) reads them through a real ``Session`` into a DuckDB file with
   1s/1m/5m bars; the figure is messages/s from session start until every trade is stored.
2. The naive baseline in the common style, in the same run and from the same server:
   ``json.loads`` per message, a dict per tick, one ``INSERT`` per row (no bars at all). It is
   so slow that it runs on the first ``--naive`` messages only; the ratio compares rates.
3. With quotes: the same client with ``quotes=True`` on a tape of ``@trade`` and ``@bookTicker``
   messages at the shared tape's ratio for BTCUSDT (3 quotes a trade), until every trade is
   stored and every quote taken into the quote bars (table ``quote_bars``, checked to hold them
   all after the stop); messages/s counts both, and its ratio to run 1 is printed.
4. Replay of one 1M-row ``trades`` dump (Binance's zip format) through ``Replay`` and a Session.

Ends with one JSON line: {"benchmark": "ingest", "msgs_per_s", "vs_naive_ratio", "with_quotes_msgs_per_s",
"replay_rows_per_s"}.
Usage: python benchmarks/bench_ingest.py [--messages 500000] [--naive 5000] [--replay-rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import struct
import tempfile
import time
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import websockets
from websockets.datastructures import Headers
from websockets.http11 import Response

from statarb_kit import Session
from statarb_kit.exchange.binance.live import BinanceConfig, BinanceLive
from statarb_kit.sources import Replay
from statarb_kit.exchange.binance.frames import trade_frame

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def trade_frames(n: int, seed: int = 3) -> list[bytes]:
    """``n`` combined-stream trade messages, symbols interleaved, ids consecutive per symbol."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000 + np.cumsum(rng.integers(0, 3, n))
    which = rng.integers(0, 2, n)
    price = np.where(which == 0, 60_000.0, 3_000.0) * np.exp(np.cumsum(rng.normal(0, 1e-5, n)))
    next_id = [1_000_000, 5_000_000]
    frames = []
    for i in range(n):
        k = int(which[i])
        frames.append(trade_frame(SYMBOLS[k], next_id[k], int(ts[i]), round(float(price[i]), 2),
                                  round(float(rng.uniform(0.001, 2.0)), 3), bool(i % 2)))
        next_id[k] += 1
    return frames


QUOTES_PER_TRADE = 3  # the shared tape's BTCUSDT: 66,089 @bookTicker to 21,313 @trade


def with_quotes(trades: list[bytes], per_trade: int = QUOTES_PER_TRADE) -> list[bytes]:
    """``trades`` with ``per_trade`` ``@bookTicker`` messages of the same symbol after each, the
    touch a tick around the trade's price; update ids increasing."""
    out, u = [], 1
    for raw in trades:
        d = json.loads(raw)["data"]
        price, sym = float(d["p"]), d["s"]
        out.append(raw)
        for k in range(per_trade):
            bid = round(price - 0.1 * (k + 1), 2)
            data = {"e": "bookTicker", "u": u, "s": sym, "b": f"{bid:.2f}", "B": "1.5", "a": f"{bid + 0.1:.2f}",
                    "A": "2.0", "T": d["T"], "E": d["T"]}
            out.append(json.dumps({"stream": f"{sym.lower()}@bookTicker", "data": data},
                                  separators=(",", ":")).encode())
            u += 1
    return out


def ws_frame(payload: bytes) -> bytes:
    """One unmasked server-to-client text frame (RFC 6455)."""
    n = len(payload)
    if n < 126:
        return b"\x81" + bytes([n]) + payload
    if n < 65536:
        return b"\x81\x7e" + struct.pack("!H", n) + payload
    return b"\x81\x7f" + struct.pack("!Q", n) + payload


def serve(n: int, ports: mp.Queue, quotes: bool = False) -> None:
    """The burst server (runs in its own process until terminated): ``n`` trades, each followed by
    QUOTES_PER_TRADE quotes when ``quotes``."""
    frames = trade_frames(n)
    wire = b"".join(ws_frame(f) for f in (with_quotes(frames) if quotes else frames))
    info = json.dumps({"symbols": [{"symbol": s, "status": "TRADING"} for s in SYMBOLS]}).encode()

    def http(conn, request):
        if request.path.startswith("/fapi/v1/exchangeInfo"):
            return Response(200, "OK", Headers([("Content-Type", "application/json")]), info)
        if request.path.startswith("/fapi/v1/trades"):  # nothing printed before the burst
            return Response(200, "OK", Headers([("Content-Type", "application/json")]), b"[]")
        if not request.path.split("?")[0].endswith("/stream"):  # /public/stream (the client), /stream (naive)
            return Response(404, "Not Found", Headers(), b"")
        return None

    async def handler(ws) -> None:
        if ws.request.path.startswith("/market/"):  # the client's markPrice (funding) connection: as on
            await ws.wait_closed()  # Binance, not the trade tape (about 1 message a second, none here)
            return
        # the whole tape, already framed, written straight to the socket in 1 MB chunks
        transport = ws.transport
        for lo in range(0, len(wire), 1 << 20):
            transport.write(wire[lo : lo + (1 << 20)])
            while transport.get_write_buffer_size() > 4 << 20:
                await asyncio.sleep(0.001)
        await ws.wait_closed()

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", 0, process_request=http, ping_interval=None) as server:
            ports.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def client_rate(port: int, n: int, db: Path, quotes: bool = False) -> tuple[float, dict]:
    """Messages/s (trades and, with ``quotes``, quotes) from start until all are stored."""
    url = f"http://127.0.0.1:{port}"
    cfg = BinanceConfig(ws_url=f"ws://127.0.0.1:{port}", rest_url=url, ping_interval_s=None, stall_timeout_s=60.0,
                        quotes=quotes)
    q = n * QUOTES_PER_TRADE if quotes else 0

    async def go():
        session = Session(source=BinanceLive(SYMBOLS, cfg), db=db)
        t = time.perf_counter()
        session.start()
        while session.status().ticks_stored < n or session.quotes_received < q:
            if time.perf_counter() - t > 300:
                raise TimeoutError(f"only {session.status().ticks_stored:,} of {n:,} trades and "
                                   f"{session.quotes_received:,} of {q:,} quotes taken")
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - t
        await session.stop()
        return elapsed, session.status(), session.quotes_received

    elapsed, st, stored = asyncio.run(go())
    assert st.ticks_stored == n and st.overwritten == 0 and st.malformed == 0 and st.gaps_found == 0, st
    assert stored == q, (stored, q)
    with duckdb.connect(str(db), read_only=True) as con:
        bars = con.execute("SELECT sum(trades) FROM bars_1s").fetchone()[0]
        rows = con.execute("SELECT coalesce(sum(updates), 0) FROM quote_bars WHERE timeframe = '1s'").fetchone()[0]
    assert bars == n and rows == q, (bars, n, rows, q)  # every trade in a final 1s bar, every quote in a quote bar
    return (n + q) / elapsed, {"reconnects": st.reconnects}


def naive_rate(port: int, n: int, db: Path) -> float:
    """The common style: json.loads, a dict per tick, one INSERT per row."""

    async def go() -> float:
        con = duckdb.connect(str(db))
        con.execute("CREATE TABLE ticks (symbol VARCHAR, trade_id BIGINT, ts BIGINT, price DOUBLE, qty DOUBLE, "
                    "is_buyer_maker BOOLEAN)")
        streams = "/".join(f"{s.lower()}@trade" for s in SYMBOLS)
        t = time.perf_counter()
        async with websockets.connect(f"ws://127.0.0.1:{port}/stream?streams={streams}", ping_interval=None) as ws:
            for _ in range(n):
                d = json.loads(await ws.recv())["data"]
                tick = {"symbol": d["s"], "trade_id": d["t"], "ts": d["T"], "price": float(d["p"]),
                        "qty": float(d["q"]), "is_buyer_maker": d["m"]}
                con.execute("INSERT INTO ticks VALUES (?, ?, ?, ?, ?, ?)", list(tick.values()))
        elapsed = time.perf_counter() - t
        assert con.execute("SELECT count(*) FROM ticks").fetchone()[0] == n
        con.close()
        return n / elapsed

    return asyncio.run(go())


def dump_file(rows: int, directory: Path) -> Path:
    """A Binance USD-M ``trades`` daily dump (zip, header row) of ``rows`` trades."""
    rng = np.random.default_rng(5)
    ts = 1_700_006_400_000 + np.sort(rng.integers(0, 86_400_000, rows))
    price = np.round(60_000 * np.exp(np.cumsum(rng.normal(0, 1e-5, rows))), 1)
    qty = np.round(rng.uniform(0.001, 2.0, rows), 3)
    frame = pd.DataFrame({"id": 4_000_000_000 + np.arange(rows), "price": price, "qty": qty,
                          "quote_qty": np.round(price * qty, 5), "time": ts, "is_buyer_maker": rng.random(rows) < 0.5})
    frame["is_buyer_maker"] = frame["is_buyer_maker"].map({True: "true", False: "false"})
    path = directory / "BTCUSDT-trades-2023-11-15.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("BTCUSDT-trades-2023-11-15.csv", frame.to_csv(index=False))
    return path


def replay_rate(path: Path, rows: int, db: Path) -> float:
    async def go():
        t = time.perf_counter()
        async with Session(source=Replay([path], progress=False), db=db) as s:
            await s.wait()
        return time.perf_counter() - t, s.status()

    elapsed, st = asyncio.run(go())
    assert st.ticks_stored == rows and st.malformed == 0, st
    return rows / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--naive", type=int, default=5_000)
    ap.add_argument("--replay-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rates = {}
        quoted_trades = args.messages // (1 + QUOTES_PER_TRADE)
        for name, n in (("client", args.messages), ("naive", args.naive), ("quotes", quoted_trades)):
            ports = ctx.Queue()
            server = ctx.Process(target=serve, args=(n, ports, name == "quotes"), daemon=True)
            server.start()
            try:
                port = ports.get(timeout=300)
                if name == "client":
                    rates[name], _ = client_rate(port, n, tmp / "live.duckdb")
                elif name == "quotes":
                    rates[name], _ = client_rate(port, n, tmp / "quotes.duckdb", quotes=True)
                else:
                    rates[name] = naive_rate(port, n, tmp / "naive.duckdb")
            finally:
                server.terminate()
                server.join()
        ratio = rates["client"] / rates["naive"]
        print(f"live client: {args.messages:,} @trade messages -> BinanceLive -> Session -> DuckDB + 1s/1m/5m bars: "
              f"{rates['client']:,.0f} msgs/s")
        print(f"naive baseline (json.loads, dict per tick, INSERT per row, no bars; first {args.naive:,} messages): "
              f"{rates['naive']:,.0f} msgs/s -> client is {ratio:,.0f}x faster")
        print(f"with quotes: {quoted_trades:,} @trade + {quoted_trades * QUOTES_PER_TRADE:,} @bookTicker messages -> "
              f"trades, bars and quote bars: {rates['quotes']:,.0f} msgs/s "
              f"({rates['quotes'] / rates['client']:.2f}x the trades-only rate)")
        path = dump_file(args.replay_rows, tmp)
        replay = replay_rate(path, args.replay_rows, tmp / "replay.duckdb")
        print(f"replay: {args.replay_rows:,}-row trades dump ({path.stat().st_size / 1e6:.1f} MB zip) -> "
              f"Session -> DuckDB + bars: {replay:,.0f} rows/s")
    print(json.dumps({"benchmark": "ingest", "msgs_per_s": round(rates["client"]),
                      "vs_naive_ratio": round(ratio, 1), "with_quotes_msgs_per_s": round(rates["quotes"]),
                      "replay_rows_per_s": round(replay)}))


if __name__ == "__main__":
    main()
