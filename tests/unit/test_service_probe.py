"""Readiness probes of the local services never mistake a connection to themselves for a server.

On loopback, a client bound to port P that connects to P with nothing listening succeeds (TCP
simultaneous open): exactly what a probe meets when its ephemeral port equals the service's.
"""

from __future__ import annotations

import socket

import pytest

from roadledger.tcp_probe import connect_tcp, port_open


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _self_connected(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.connect(("127.0.0.1", port))
    return sock


def test_a_self_connection_is_what_the_kernel_gives_without_a_listener() -> None:
    port = _free_port()
    with _self_connected(port) as sock:  # the hazard the probe guards against, shown real
        assert sock.getsockname() == sock.getpeername()


def test_a_listening_server_is_found() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_open("127.0.0.1", port)
        with connect_tcp("127.0.0.1", port, 1.0) as sock:
            assert sock.getpeername() != sock.getsockname()


def test_nothing_listening_is_refused() -> None:
    assert not port_open("127.0.0.1", _free_port())


def test_a_self_connection_is_refused_and_leaves_the_port_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _free_port()
    # create_connection picks an ephemeral port; make it pick the target port, as bad luck does.
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: _self_connected(port))
    with pytest.raises(ConnectionRefusedError, match="connected to itself"):
        connect_tcp("127.0.0.1", port, 1.0)
    assert not port_open("127.0.0.1", port)
    monkeypatch.undo()
    # Reset, not closed politely: no TIME_WAIT holds the port, a server binds it at once
    # (without SO_REUSEADDR, as a server that does not set it would).
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert port_open("127.0.0.1", port)
