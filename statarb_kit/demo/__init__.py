"""The offline demo: real klines served in Binance's formats on 127.0.0.1 (``DemoSite``,
``statarb demo-site``), and the formats themselves (``formats``)."""

from .site import DemoSite

__all__ = ["DemoSite"]
