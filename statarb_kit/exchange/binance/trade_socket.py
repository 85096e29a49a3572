"""The trade streams' WebSocket connection: frames collected in batches, not awaited one by one.

``@trade`` streams carry tens of thousands of small messages a second at peaks. Read one message
per ``await`` through the pure-Python ``websockets`` parser they cost ~10 us each on this kind of
machine, most of it frame parsing; picows parses frames in C and calls ``on_ws_frame`` for each
frame of a read, and this listener only keeps the payload bytes. ``TradeSocket.take`` then hands
over every message received since the last call, so one wake-up of the reader covers a whole TCP
read (hundreds of messages at a burst). Pings are answered by picows (``enable_auto_pong``); it
also pings the server after ``ping_interval_s`` of silence and drops a link whose pong is late.
(The markPrice stream, ~1 message a second, keeps ``websockets``.)
"""

from __future__ import annotations

import asyncio
import logging

import picows

log = logging.getLogger(__name__)

#: Messages held unread before the socket stops reading (TCP then pushes back on the server).
MAX_PENDING = 200_000
#: What opening a connection can raise (refused, reset, a bad handshake, the open timeout).
CONNECT_FAILURES = (OSError, picows.WSError, TimeoutError)
_DATA = (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY, picows.WSMsgType.CONTINUATION)
_ECHOED = {1000, 1001}  # close codes sent back as received (others are answered with 1000)


class SocketClosed(Exception):
    """The connection ended; ``code`` is the close code received (1006: closed without one)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"connection closed ({code})")
        self.code = code


class TradeSocket(picows.WSListener):
    """One connection's messages, payload bytes in arrival order (fragments joined)."""

    def __init__(self) -> None:
        self.transport: picows.WSTransport | None = None
        self._messages: list[bytes] = []
        self._fragments: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.close_code: int | None = None  # set when the connection ended

    @classmethod
    async def open(cls, url: str, open_timeout_s: float, ping_interval_s: float | None,
                   max_message_bytes: int = 2**24) -> TradeSocket:
        """Connect to ``url`` within ``open_timeout_s``; raises one of CONNECT_FAILURES."""
        async with asyncio.timeout(open_timeout_s):
            _, sock = await picows.ws_connect(
                cls, url, websocket_handshake_timeout=open_timeout_s, max_frame_size=max_message_bytes,
                enable_auto_ping=ping_interval_s is not None, auto_ping_idle_timeout=ping_interval_s or 20.0,
                auto_ping_reply_timeout=ping_interval_s or 20.0, logger_name="statarb_kit.trade_socket")
        return sock

    # ---- picows callbacks (the loop thread, inside each read) -----------------------------

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind in _DATA:
            if frame.fin and not self._fragments:
                self._messages.append(frame.get_payload_as_bytes())
            else:
                self._fragments.append(frame.get_payload_as_bytes())
                if frame.fin:
                    self._messages.append(b"".join(self._fragments))
                    self._fragments = []
            if len(self._messages) >= MAX_PENDING and not self._paused:
                self._paused = True
                transport.underlying_transport.pause_reading()
            if self._waiter is not None:
                self._wake()
        elif kind == picows.WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(self.close_code if self.close_code in _ECHOED else picows.WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        if self.close_code is None:
            self.close_code = 1006
        self._wake()

    # ---- the reader's side ----------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages received and not taken yet."""
        return len(self._messages)

    async def take(self, until: float) -> list[bytes]:
        """Every message received since the last call; waits for one until the loop time ``until``
        (then returns []). Raises SocketClosed once the connection ended and all was taken."""
        if not self._messages and self.close_code is None:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            try:
                async with asyncio.timeout_at(until):
                    await waiter
            except TimeoutError:
                return []
            finally:
                self._waiter = None
        messages, self._messages = self._messages, []
        if self._paused:
            self._paused = False
            if self.transport is not None and self.close_code is None:
                self.transport.underlying_transport.resume_reading()
        if not messages and self.close_code is not None:
            raise SocketClosed(self.close_code)
        return messages

    async def close(self, timeout_s: float = 2.0) -> None:
        """Send a close frame and wait (at most ``timeout_s``) until the connection ended."""
        t = self.transport
        if t is None:
            return
        if self.close_code is None:
            t.send_close(picows.WSCloseCode.OK)
            t.disconnect()
        try:
            async with asyncio.timeout(timeout_s):
                await t.wait_disconnected()
        except TimeoutError:
            t.disconnect(graceful=False)
        except Exception as exc:  # a protocol error picows saw: the connection is gone all the same
            log.debug("trade socket ended with %s: %s", type(exc).__name__, exc)

    def _wake(self) -> None:
        """Resume ``take`` (once: the waiter is dropped, so later frames of the read skip this)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
