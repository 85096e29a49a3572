"""Where Binance USD-M Futures streams are served since the 2026 WebSocket base URL split.

Binance's "Important WebSocket Change Notice — Base URL Split & Migration" (2026-03) introduced
routed paths on ``wss://fstream.binance.com``: ``/public`` (high-frequency public data:
``@bookTicker``, ``@depth`` and, as the migrated client libraries route it, ``@trade``),
``/market`` (regular market data: ``@aggTrade``, ``@markPrice``, klines, tickers) and ``/private``
(user data), each in ws mode (``/public/ws/<stream>/<stream>``) or stream mode
(``/public/stream?streams=<stream>/<stream>``, combined frames). The legacy unrouted ``/ws`` and
``/stream`` stopped carrying market-tier streams on 2026-04-23. A stream on the wrong tier is
accepted and then silent: the client tells that from a quiet market by asking REST, and tries the
other documented route (``route_candidates``).
"""

from __future__ import annotations

#: Tier of each stream kind (the part after "@").
TIERS: dict[str, str] = {"trade": "public", "bookTicker": "public", "depth": "public",
                         "aggTrade": "market", "markPrice": "market", "kline": "market", "ticker": "market",
                         "miniTicker": "market", "forceOrder": "market"}
ROUTED = ("public", "market")


def default_path(kind: str = "trade") -> str:
    """The routed stream-mode path of a stream kind, e.g. ``/public/stream`` for ``trade``."""
    return f"/{TIERS.get(kind, 'market')}/stream"


def is_ws_mode(path: str) -> bool:
    return path.rstrip("/").endswith("/ws")


def route_candidates(configured: str | None, kind: str = "trade") -> list[str]:
    """Paths to try in order: the configured one (default: the kind's tier), then the other
    routed tiers in the same mode."""
    first = configured or default_path(kind)
    mode = "ws" if is_ws_mode(first) else "stream"
    return [first, *(p for p in (f"/{tier}/{mode}" for tier in ROUTED) if p != first.rstrip("/"))]


def stream_url(ws_url: str, path: str, streams: list[str]) -> str:
    """A connection URL for ``streams`` on ``path`` (ws mode in the path, stream mode in the query)."""
    if is_ws_mode(path):
        return f"{ws_url}{path.rstrip('/')}/{'/'.join(streams)}"
    return f"{ws_url}{path}?streams={'/'.join(streams)}"
