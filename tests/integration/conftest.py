"""Integration fixtures: the real services started by ``scripts/services up``.

A test that needs a service fails (never skips) when it is not reachable: the test command
starts them, so an unreachable service is a broken environment, not a reason to pass.
"""

from __future__ import annotations

import socket

import pytest

from roadledger.settings import Settings


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _require(host: str, port: int, what: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"{what} is not reachable at {host}:{port} ({exc}); run `scripts/services up`")


@pytest.fixture
def postgres(settings: Settings) -> Settings:
    _require(settings.database.host, settings.database.port, "PostgreSQL")
    return settings


@pytest.fixture
def mqtt(settings: Settings) -> Settings:
    _require(settings.mqtt.host, settings.mqtt.port, "Mosquitto")
    return settings


@pytest.fixture
def kafka(settings: Settings) -> Settings:
    endpoint = settings.kafka[0]
    _require(endpoint.host, endpoint.port, "Kafka")
    return settings
