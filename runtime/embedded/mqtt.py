"""An MQTT 3.1.1 broker inside this process (amqtt), for the embedded default.

One TCP listener on a loopback address, no TLS, no websockets, no ``$SYS`` topics. Every
client is accepted without credentials (nothing off this machine can connect) and QoS 1
behaves as the bridge needs it: persistent sessions keep their subscriptions and queue QoS 1
messages while offline, and a message not yet acknowledged when its subscriber disconnects is
sent again, with DUP set, when that session reconnects (``runtime/embedded/_amqtt.py``).

State is in memory only: sessions and queued messages do not survive the broker (unlike the
project's Mosquitto, which persists them to disk).
"""

from __future__ import annotations

import ipaddress
from types import TracebackType
from typing import Any, Final

from runtime.embedded.errors import EmbeddedError

__all__ = ["EmbeddedBroker"]

_AUTH_PLUGIN: Final = "runtime.embedded._amqtt.LoopbackAuthPlugin"


def _is_ipv4_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # amqtt 0.12 keeps the brackets of an IPv6 bind address, so it cannot listen on ::1.
    return address.version == 4 and address.is_loopback


class EmbeddedBroker:
    """An amqtt broker on ``host`` (an IPv4 loopback address) and ``port`` (0: any free port).

    ``start`` returns the broker's ``mqtt://host:port`` URL; ``stop`` closes the listener,
    every client connection and every session. Used as an async context manager, the block
    receives the URL. The broker runs on the event loop that calls ``start``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not _is_ipv4_loopback(host):
            raise ValueError(
                f"the embedded broker accepts any client: bind it to an IPv4 loopback address "
                f"(127.x.x.x), not {host!r}"
            )
        if not 0 <= port < 65536:
            raise ValueError(f"port {port} is outside 0-65535")
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.url: str | None = None
        self._broker: Any = None

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> str:
        """Start listening; return the URL. Calling it again while started returns the same.

        Raises:
            EmbeddedError: the port is in use, or amqtt failed to start.
        """
        if self.url is not None:
            return self.url
        # Imported here: amqtt takes ~0.2 s to import, and only the demo needs it.
        from amqtt.contexts import (  # type: ignore[import-untyped]
            BrokerConfig,
            ListenerConfig,
            ListenerType,
        )
        from amqtt.errors import BrokerError  # type: ignore[import-untyped]

        from runtime.embedded._amqtt import RedeliveringBroker

        bind = f"{self.host}:{self.requested_port}"
        config = BrokerConfig(
            listeners={"default": ListenerConfig(type=ListenerType.TCP, bind=bind)},
            # Only our authentication: no $SYS plugin (deprecated, and it publishes every
            # 20 s), no packet or event logging.
            plugins={_AUTH_PLUGIN: {}},
        )
        broker = RedeliveringBroker(config)
        try:
            await broker.start()
        except BrokerError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if isinstance(cause, OSError):
                raise EmbeddedError(
                    f"port {self.requested_port} on {self.host} (embedded MQTT broker) is not "
                    f"available: {cause.strerror or cause}; stop what uses it or choose another"
                ) from exc
            raise EmbeddedError(f"the embedded MQTT broker did not start: {cause}") from exc
        self._broker = broker
        # amqtt does not say which port it bound when asked for port 0: ask the socket.
        sockets = broker._servers["default"].instance.sockets
        self.port = int(sockets[0].getsockname()[1])
        self.url = f"mqtt://{self.host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        """Stop the broker: the listener, every connection and session. Idempotent."""
        broker, self._broker = self._broker, None
        self.url = None
        self.port = None
        if broker is not None:
            await broker.shutdown()
