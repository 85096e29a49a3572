"""An always-on monitor (``statarb monitor``) and the viewers that attach to it.

``service.Monitor`` runs one Session with a watchlist, its event log and notifications, and
serves them over ZeroMQ (``wire`` holds the versioned messages); ``remote.RemoteSession`` is a
viewer's side, with the Session interface the pages use (``Session.attach(address)``).
"""

from __future__ import annotations

import ipaddress

#: The monitor's port: HTTP /health there, updates on the next, requests on the one after.
DEFAULT_PORT = 8870


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost`` (no token needed there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
