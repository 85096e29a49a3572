"""Ports a server is about to listen on, checked before anything starts: a port another program
holds is refused in one line that names the option, not found after the server has begun."""

from __future__ import annotations

import errno
import socket

from .errors import InvalidParameter


def check_ports(host: str, ports: list[int], option: str = "--port") -> None:
    """Refuse when a port of ``ports`` cannot be bound on ``host`` (in use, or not allowed)."""
    for port in ports:
        if not 0 < port < 65_536:
            raise InvalidParameter(f"{option} {ports[0]}: ports are 1..65535")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no owner
            try:
                s.bind((host, port))
            except OSError as exc:
                why = "in use by another program" if exc.errno == errno.EADDRINUSE else exc.strerror
                used = f" (this server needs {', '.join(map(str, ports))})" if len(ports) > 1 else ""
                raise InvalidParameter(f"{option} {ports[0]}: {host}:{port} is {why}{used}; choose another {option}") \
                    from None
