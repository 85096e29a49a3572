"""The trade streams' socket (picows) against a websockets server on 127.0.0.1: every message in
order (fragmented ones joined, bursts past the read-pause mark), pings answered, close codes."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from statarb_kit.exchange.binance import trade_socket
from statarb_kit.exchange.binance.trade_socket import SocketClosed, TradeSocket


async def _serve(handler):
    server = await websockets.serve(handler, "127.0.0.1", 0, ping_interval=None)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/public/stream"


async def _take_all(sock: TradeSocket, timeout_s: float = 10.0) -> tuple[list[bytes], int]:
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            got.extend(await sock.take(deadline))
        except SocketClosed as exc:
            return got, exc.code
    raise AssertionError(f"no close within {timeout_s} s ({len(got)} messages)")


def test_messages_arrive_in_order_fragments_joined_pings_answered_and_the_close_code_kept():
    pongs = []

    async def handler(ws):
        for k in range(3):
            await ws.send(f'{{"k":{k}}}')
        await ws.send(iter(['{"frag', 'mented":', "true}"]))  # one message in three frames
        pongs.append(await asyncio.wait_for(await ws.ping(), 5))  # picows answers by itself
        await ws.send(b'{"binary":1}')
        await ws.close(1011, "server error")

    async def go():
        server, url = await _serve(handler)
        async with server:
            sock = await TradeSocket.open(url, 5.0, None)
            got, code = await _take_all(sock)
            await sock.close()
            return got, code

    got, code = asyncio.run(go())
    assert got == [b'{"k":0}', b'{"k":1}', b'{"k":2}', b'{"fragmented":true}', b'{"binary":1}']
    assert code == 1011 and len(pongs) == 1


def test_a_burst_past_the_pause_mark_loses_nothing(monkeypatch):
    """The socket stops reading at MAX_PENDING unread messages and resumes when they are taken."""
    monkeypatch.setattr(trade_socket, "MAX_PENDING", 50)
    n = 5_000

    async def handler(ws):
        for k in range(n):
            await ws.send(str(k))
        await ws.close()

    async def go():
        server, url = await _serve(handler)
        async with server:
            sock = await TradeSocket.open(url, 5.0, None)
            for _ in range(200):  # a busy reader: the socket pauses at 50
                if sock.pending >= 50:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            held = sock.pending
            got, code = await _take_all(sock)
            return held, got, code

    held, got, code = asyncio.run(go())
    assert 50 <= held < n  # paused (a read past the mark still completes)
    assert got == [str(k).encode() for k in range(n)] and code == 1000


def test_a_refused_connection_and_a_bad_handshake_raise_connect_failures():
    async def refused():
        server, url = await _serve(lambda ws: ws.close())
        server.close()
        await server.wait_closed()
        await TradeSocket.open(url, 2.0, None)

    async def not_found():
        def reject(conn, request):
            return conn.respond(404, "no such stream\n")

        server = await websockets.serve(lambda ws: ws.close(), "127.0.0.1", 0, process_request=reject)
        async with server:
            await TradeSocket.open(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/x", 2.0, None)

    for attempt in (refused, not_found):
        with pytest.raises(trade_socket.CONNECT_FAILURES):
            asyncio.run(attempt())
