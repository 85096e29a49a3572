"""Binance USD-M in one wing: endpoints (``endpoints``), stream routes and tiers (``routes``), one
parser per channel (``frames``), the live client (``live``: ``trade_socket``, ``sequencer``,
``rates``, exact REST fills in ``rest``; ``mark_price`` for funding), the public dumps
(``dumps``: the zip container; ``history``: trades, aggTrades and bookTicker; ``klines`` and
``kline_history``; funding dumps in ``funding_files``) and the symbol listing (``symbols``).
Import the modules themselves: importing this package loads none of them (a replay needs no
socket library)."""
