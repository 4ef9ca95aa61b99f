"""TCP probes of the services: is something (not the probe itself) listening on a port?

Used by ``roadledger services`` to wait for a server and by :func:`roadledger.stream.opening.
require_broker` to tell a command at once that Kafka is down.
"""

from __future__ import annotations

import contextlib
import socket
import struct

__all__ = ["connect_tcp", "port_open"]


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host:port``; ``ConnectionRefusedError`` when it is only to itself.

    Our ports lie in Linux's ephemeral range (32768-60999). With nothing listening on loopback,
    a probe whose own ephemeral port happens to equal the target port connects to itself (TCP
    simultaneous open), sees "something" listening, and then holds the port in TIME_WAIT so the
    starting server cannot bind it (Kafka waited ~60 s for it). Such a socket is reset (no
    TIME_WAIT) and the attempt counts as refused."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        is_self = sock.getsockname() == sock.getpeername()
    except OSError:
        sock.close()
        raise
    if is_self:
        _reset_close(sock)
        raise ConnectionRefusedError(f"{host}:{port}: connected to itself, nothing listens")
    return sock


def _reset_close(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0): the port is not left in TIME_WAIT."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something (not this probe itself) accepts TCP connections on ``host:port``."""
    try:
        with connect_tcp(host, port, timeout):
            return True
    except OSError:
        return False
