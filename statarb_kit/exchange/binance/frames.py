"""Binance USD-M Futures message formats: WebSocket trade frames and REST trades.

Trade event (``<symbol>@trade``; combined streams wrap it as ``{"stream": ..., "data": ...}``):
    {"e": "trade", "E": 1700000000123, "T": 1700000000120, "s": "BTCUSDT", "t": 4211234567,
     "p": "37000.10", "q": "0.015", "X": "MARKET", "m": true}
Subscription replies: ``{"result": null, "id": 1}``; errors ``{"error": {"code": 2, "msg": ...}, "id": 1}``.

REST ``/fapi/v1/trades`` and ``historicalTrades`` rows: ``{"id", "price", "qty", "quoteQty", "time",
"isBuyerMaker"}``, one exact trade each. REST ``/fapi/v1/aggTrades`` rows: ``{"a": agg id, "p", "q" (summed), "f": first trade id,
"l": last trade id, "T": time, "m": buyer is maker}``: every trade of an aggregate has the same
price, side and time, so expanding it into its ``l - f + 1`` trades (the quantity not already
known spread evenly over the trades not known) keeps bar OHLC, volume, VWAP, taker volume and
trade counts exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from ...ticks import TickBatch

#: How many malformed / unknown frames a parse keeps as samples for the status.
SAMPLES = 3


@dataclass
class ParsedFrames:
    """Trades (and ``@bookTicker`` quotes: (sym, T, u, bid, bid qty, ask, ask qty)) of a list of
    frames plus what was neither."""

    batch: TickBatch
    quotes: list[tuple[int, int, int, float, float, float, float]] = field(default_factory=list)  # @bookTicker rows
    malformed: int = 0
    unknown: int = 0
    replies: list[dict] = field(default_factory=list)  # subscription replies and errors
    samples: list[str] = field(default_factory=list)  # a few malformed / unknown frames


def parse_frames(frames: list[bytes | str], code_of: dict[str, int], recv_ms: int) -> ParsedFrames:
    """Parse WebSocket frames (raw or combined-stream) into a TickBatch of trades.

    Malformed JSON, trade events with missing or bad fields and trades of symbols not in
    ``code_of`` are counted as malformed; other events as unknown; neither raises.
    """
    sym: list[int] = []
    tid: list[int] = []
    ts: list[int] = []
    px: list[float] = []
    qty: list[float] = []
    ibm: list[bool] = []
    out = ParsedFrames(TickBatch.empty())
    loads = orjson.loads
    for raw in frames:
        try:
            msg = loads(raw)
        except orjson.JSONDecodeError:
            _bad(out, raw, "malformed")
            continue
        if type(msg) is not dict:
            _bad(out, raw, "malformed")
            continue
        data = msg.get("data", msg) if "stream" in msg else msg
        if type(data) is not dict:
            _bad(out, raw, "malformed")
            continue
        if data.get("e") == "trade":
            try:
                code = code_of[data["s"]]
                row = (int(data["t"]), int(data["T"]), float(data["p"]), float(data["q"]), bool(data["m"]))
            except (KeyError, ValueError, TypeError):
                _bad(out, raw, "malformed")
                continue
            sym.append(code)
            tid.append(row[0])
            ts.append(row[1])
            px.append(row[2])
            qty.append(row[3])
            ibm.append(row[4])
        elif data.get("e") == "bookTicker":
            try:
                q = (code_of[data["s"]], int(data["T"]), int(data["u"]), float(data["b"]), float(data["B"]),
                     float(data["a"]), float(data["A"]))
                if not 0 < q[3] <= q[5]:
                    raise ValueError("crossed or non-positive quote")
            except (KeyError, ValueError, TypeError):
                _bad(out, raw, "malformed")
                continue
            out.quotes.append(q)
        elif "id" in data and ("result" in data or "error" in data):
            out.replies.append(data)
        else:
            _bad(out, raw, "unknown")
    n = len(tid)
    if n:
        out.batch = TickBatch.from_columns(sym=sym, trade_id=tid, ts=ts, price=px, qty=qty, is_buyer_maker=ibm,
                                           recv_ts=np.full(n, recv_ms, dtype=np.int64))
    return out


def _bad(out: ParsedFrames, raw: bytes | str, kind: str) -> None:
    if kind == "malformed":
        out.malformed += 1
    else:
        out.unknown += 1
    if len(out.samples) < SAMPLES:
        text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
        out.samples.append(f"{kind}: {text[:200]}")


def expand_agg_trades(rows: list[dict], code: int, lo_id: int, hi_id: int, recv_ms: int,
                      known: Mapping[int, float] | None = None) -> tuple[TickBatch, int]:
    """Individual trades with ids in [lo_id, hi_id] from REST aggregate trades (via
    ``agg_split``, a backlog batch), and how many aggregates had their size averaged.

    ``known`` maps trade ids outside [lo_id, hi_id] to the exact quantities already received
    (the stream beside a gap, REST's recent trades): an aggregate ``q`` over trades ``f..l``
    gives each of its other trades ``(q - known part) / (trades not known)``, so its stored
    trades sum to ``q`` once every part is stored; a single unknown trade gets its exact size.
    """
    known = known or {}
    ids, ts, px, qty, ibm = [], [], [], [], []
    averaged = 0
    for r in rows:
        f, last = int(r["f"]), int(r["l"])
        a, b = max(f, lo_id), min(last, hi_id)
        if b < a or last < f:
            continue
        beside = [known[i] for i in range(f, last + 1) if (i < lo_id or i > hi_id) and i in known] if known else []
        unknown = last - f + 1 - len(beside)
        averaged += unknown > 1
        k = b - a + 1
        ids.append(np.arange(a, b + 1, dtype=np.int64))
        ts.append(np.full(k, int(r["T"]), dtype=np.int64))
        px.append(np.full(k, float(r["p"])))
        qty.append(np.full(k, (float(r["q"]) - sum(beside)) / unknown))
        ibm.append(np.full(k, bool(r["m"])))
    if not ids:
        return TickBatch.empty(), 0
    n = sum(map(len, ids))
    return TickBatch.from_columns(
        sym=np.full(n, code), trade_id=np.concatenate(ids), ts=np.concatenate(ts), price=np.concatenate(px),
        qty=np.concatenate(qty), is_buyer_maker=np.concatenate(ibm), recv_ts=np.full(n, recv_ms),
        via="agg_split", backlog=True,
    ), averaged


def rest_trades_batch(rows: list[dict], code: int, lo_id: int, hi_id: int, via: str, recv_ms: int) -> TickBatch:
    """Exact trades with ids in [lo_id, hi_id] from REST ``/fapi/v1/trades`` or ``historicalTrades``
    rows (``{"id", "price", "qty", "quoteQty", "time", "isBuyerMaker"}``), marked ``via``."""
    rows = [r for r in rows if lo_id <= int(r["id"]) <= hi_id]
    n = len(rows)
    return TickBatch.from_columns(
        sym=np.full(n, code), trade_id=[int(r["id"]) for r in rows], ts=[int(r["time"]) for r in rows],
        price=[float(r["price"]) for r in rows], qty=[float(r["qty"]) for r in rows],
        is_buyer_maker=[bool(r["isBuyerMaker"]) for r in rows], recv_ts=np.full(n, recv_ms), via=via, backlog=True,
    )


def trade_frame(symbol: str, trade_id: int, ts: int, price: float, qty: float, buyer_maker: bool,
                combined: bool = True) -> bytes:
    """A trade frame in Binance's exact format (used by the local fake Binance and benchmarks)."""
    data = {"e": "trade", "E": ts + 1, "T": ts, "s": symbol, "t": trade_id, "p": f"{price:.2f}",
            "q": f"{qty:.3f}", "X": "MARKET", "m": buyer_maker}
    return orjson.dumps({"stream": f"{symbol.lower()}@trade", "data": data} if combined else data)
