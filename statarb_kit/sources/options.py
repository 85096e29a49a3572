"""Sources built from a command's or a page's options: the one place the live client's config,
its API key, the listing check and the resume point of a recording file are put together."""

from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import InvalidParameter
from ..exchange.binance.endpoints import REST_URL, WS_URL
from ..store import TickStore
from ..ticks import normalize_symbol
from .replay import Replay

if TYPE_CHECKING:
    from ..exchange.binance.live import BinanceLive

#: Environment variable of the Binance API key (optional: the public streams need none).
API_KEY_ENV = "STATARB_BINANCE_API_KEY"


API_KEY_HELP = (f"live: a Binance API key (or set {API_KEY_ENV}): gaps past the newest 1,000 trades are filled "
                "trade by trade from historicalTrades; without one, from aggregates (sizes averaged within them)")


def live_source(symbols: tuple[str, ...] | list[str], ws_url: str = WS_URL, ws_path: str | None = None,
                rest_url: str = REST_URL, db: str | Path | None = None,
                api_key: str | None = None, quotes: bool = False) -> BinanceLive:
    """The Binance client of ``symbols``; refuses symbols Binance does not list (InvalidParameter).
    ``db``: a recording file; the client then resumes after the trades stored in it (the outage
    is filled from REST). ``api_key`` (default: the ``STATARB_BINANCE_API_KEY`` variable) is sent
    as a header only, never in a URL or a log. ``quotes``: also record ``@bookTicker`` (table
    ``quotes``). The live client (and its WebSocket library) is loaded here, not at import: a
    command that records nothing live never loads it."""
    from ..exchange.binance.live import BinanceConfig, BinanceLive
    from ..exchange.binance.rest import refuse_unlisted

    symbols = tuple(normalize_symbol(s) for s in symbols)
    config = BinanceConfig(ws_url=ws_url, ws_path=ws_path or None, rest_url=rest_url,
                           api_key=api_key or os.environ.get(API_KEY_ENV) or None, quotes=quotes)
    refuse_unlisted(symbols, rest_url)
    resume: dict = {}
    if db is not None and str(db) != ":memory:" and Path(db).exists():
        store = TickStore(db)
        try:
            resume = {s: v for s, v in store.last_trades().items() if s in symbols}
        finally:
            store.close()
    return BinanceLive(symbols, config, resume_from=resume)


QUOTES_HELP = ("live: also record the best bid and ask (@bookTicker, on the same connections) as quote bars "
               "(table quote_bars: bid and ask at each close, mean and largest spread, updates); backtests "
               "fill at the touch where they exist")
RAW_QUOTES_HELP = ("store every quote too (table quotes; implies --quotes): for short recordings, and for fills "
                   "--latency-ms after the close")


def replay_source(files: list[str] | None, speed: float | None = None, skip_bad: bool = False) -> Replay:
    """Binance dump files played through the pipeline (``speed``: times real time; None: as fast
    as possible)."""
    if not files:
        raise InvalidParameter("--source replay needs --files (Binance dump files, zipped or not)")
    return Replay(files, speed=speed, skip_bad=skip_bad)
