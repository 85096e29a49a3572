"""The ``statarb`` command line (``main``): one module per command group (record, download and
funding, history, serve, monitor, sweep, scan, study), the options they share in ``options``."""

from .main import main

__all__ = ["main"]
