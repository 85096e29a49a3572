"""Binance USD-M's addresses, written once (tests and mirrors point the options elsewhere)."""

#: REST base URL (``/fapi/v1/...``: exchangeInfo, aggTrades, klines, fundingRate).
REST_URL = "https://fapi.binance.com"
#: WebSocket base URL; the routed paths and tiers are in ``routes``.
WS_URL = "wss://fstream.binance.com"
#: The public data site (daily and monthly dumps, with their .CHECKSUM files).
DATA_URL = "https://data.binance.vision"
#: The data site's S3 bucket listing (it keeps delisted symbols).
LISTING_URL = "https://s3-ap-northeast-1.amazonaws.com/data.binance.vision"
