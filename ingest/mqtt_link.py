"""The bridge's MQTT side: one paho-mqtt client driven by the asyncio event loop.

paho-mqtt 2.x, MQTT 3.1.1, a persistent session (fixed client id, ``clean_session=False``),
subscription at QoS 1 and ``manual_ack=True``: a message is acknowledged only when the bridge
calls :meth:`PahoLink.ack`.

paho runs on the event loop through its external-loop API (``loop_read`` / ``loop_write`` /
``loop_misc`` with the ``on_socket_*`` callbacks), not in its own network thread: the socket is
an ``add_reader`` / ``add_writer`` registration, so messages, acknowledgements and the Kafka
producer share one thread with no locks and no hand-off between threads. (Measured on this
machine: the threaded client reached about 10,000 messages per CPU-second before any Kafka work,
the loop-driven one 20,000-35,000, because every socket call of the network thread also traded
the GIL with the event loop.)

- Reading: each readiness callback reads PUBLISH packets until the socket has no complete one
  left (at most ``read_batch``). :meth:`pause_reading` removes the reader: the kernel buffer
  fills, TCP flow control stops the broker, and the broker keeps the rest in the session.
- Writing: PUBACKs are queued by paho and written when the socket is writable.
- Reconnecting: a lost connection is re-established with exponential backoff
  (``reconnect_min_s`` .. ``reconnect_max_s``); the blocking TCP connect runs in a worker thread.
  Every successful connection subscribes again (harmless when the session kept it).
- ``session`` numbers the connections: it changes when one is established and when it is lost.
  :meth:`ack` acknowledges only for the current one, because a packet id means nothing on another
  connection; the broker delivers unacknowledged messages again on the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from roadledger.resilience import Dependency

if TYPE_CHECKING:
    from roadledger.mqtt_auth import MqttAccount
    from roadledger.settings import Endpoint

__all__ = ["ClientFactory", "MessageHandler", "MqttLink", "PahoLink", "end_session", "paho_client"]

log = logging.getLogger(__name__)

# on_message(mid, qos, topic, payload), called on the event loop
MessageHandler = Callable[[int, int, str, bytes], None]
ClientFactory = Callable[[str], mqtt.Client]


class MqttLink(Protocol):
    """What the bridge needs from MQTT; :class:`PahoLink` is the real one."""

    session: int  # the current connection's number
    connections: int  # connections the broker accepted so far
    mqtt: Dependency  # the broker's health, as this link sees it

    async def start(self, on_message: MessageHandler) -> None: ...

    async def wait_subscribed(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def ack(self, session: int, mid: int, qos: int) -> bool:
        """PUBACK ``mid`` if ``session`` is still the current connection; else False."""
        ...

    async def close(self, grace_s: float) -> None: ...


def paho_client(client_id: str) -> mqtt.Client:
    """A paho client for the bridge: MQTT 3.1.1, persistent session, manual acknowledgements."""
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=True,
    )


def end_session(
    host: str,
    port: int,
    client_id: str,
    *,
    account: MqttAccount | None = None,
    timeout_s: float = 10.0,
) -> bool:
    """Discard the broker's persistent session of ``client_id`` (MQTT 3.1.1: a connection with
    a clean session ends the old one, and nothing is kept after it). For bridges that will
    never come back, e.g. a scratch pipeline's: the broker otherwise queues every message for
    them forever. ``account``: the bridge's credentials. True once the broker accepted the
    connection."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    if account is not None:
        client.username_pw_set(account.username, account.password)
    accepted: list[bool] = []
    client.on_connect = lambda c, u, flags, reason, props: accepted.append(not reason.is_failure)
    deadline = time.monotonic() + timeout_s
    try:
        client.connect(host, port, keepalive=10)
        while not accepted and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        return bool(accepted and accepted[0])
    finally:
        client.disconnect()


class PahoLink:
    """A persistent MQTT subscription on the running event loop (see the module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        client_id: str,
        topic_filter: str,
        account: MqttAccount | None = None,
        tls: bool = False,
        keepalive: int = 60,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        read_batch: int = 512,
        client_factory: ClientFactory = paho_client,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.topic_filter = topic_filter
        self._account = account  # the broker refuses anonymous clients
        self._tls = tls
        self._keepalive = keepalive
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._read_batch = read_batch
        self._client_factory = client_factory
        self.session = 0  # changes on every connect and every loss
        self.connections = 0  # connections the broker accepted
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._sock: Any = None  # the socket registered with the loop
        self._paused = False
        self._received = 0
        self._on_message: MessageHandler | None = None
        self._connected = False
        self._connecting = False
        self._established = False
        self._closing = False
        self._lost = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._suback = asyncio.Event()  # any SUBACK: the broker read everything sent before
        self._connector: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        # Broker outages: one line when the connection is lost or refused, one when it is back.
        self.mqtt = Dependency("MQTT", log)

    # --- public -------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def closing(self) -> bool:
        return self._closing

    async def start(self, on_message: MessageHandler) -> None:
        """Begin connecting (in the background); ``on_message`` hears every PUBLISH."""
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        client = self._client = self._client_factory(self.client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_paho_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        if self._account is not None:
            client.username_pw_set(self._account.username, self._account.password)
        if self._tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=self._keepalive)
        self._connector = asyncio.create_task(
            self._stay_connected(), name=f"{self.client_id}-connect"
        )
        self._pinger = asyncio.create_task(self._keep_alive(), name=f"{self.client_id}-keepalive")

    async def wait_subscribed(self) -> None:
        """Wait until the broker confirmed the subscription (bound it with asyncio.timeout)."""
        await self._subscribed.wait()

    def pause_reading(self) -> None:
        """Read nothing more from the broker until :meth:`resume_reading`."""
        if not self._paused:
            self._paused = True
            if self._sock is not None and self._loop is not None:
                self._loop.remove_reader(self._sock)

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._sock is not None and self._loop is not None and not self._closing:
                self._loop.add_reader(self._sock, self._readable)

    def ack(self, session: int, mid: int, qos: int) -> bool:
        """PUBACK ``mid`` if it arrived on the current connection ``session``; else False."""
        client = self._client
        if client is None or session != self.session or not self._connected:
            return False
        if qos:
            client.ack(mid, qos)
        return True

    async def close(self, grace_s: float) -> None:
        """Write the queued PUBACKs and disconnect (the session stays on the broker), waiting
        at most ``grace_s`` for the socket to drain; then stop."""
        self._closing = True
        self.pause_reading()
        self._lost.set()  # wakes the connection task, which then ends
        tasks = [t for t in (self._connector, self._pinger) if t is not None]
        for task in tasks:
            if task is not self._connector or not self._connecting:
                task.cancel()  # a connect under way in its thread is let finish instead
        await asyncio.gather(*tasks, return_exceptions=True)
        client = self._client
        if client is None or self._sock is None:
            return
        await self._round_trip(client, grace_s)
        self._lost.clear()
        client.disconnect()  # queued after the PUBACKs; paho closes once it is written
        try:
            async with asyncio.timeout(grace_s):
                await self._lost.wait()
        except TimeoutError:
            log.warning("bridge %s: MQTT DISCONNECT not written in time", self.client_id)
        if self._sock is not None:  # the socket never drained: drop it
            sock = self._sock
            self._forget(sock, sock.fileno())
            with contextlib.suppress(OSError):
                sock.close()

    async def _round_trip(self, client: mqtt.Client, grace_s: float) -> None:
        """Subscribe again (a no-op for the session) and wait for the SUBACK: the broker reads
        a connection's packets in order, so by then it has processed every PUBACK written
        before. Without it, a next connection of this client id can take the session over
        while PUBACKs still wait unread in the old socket, and the broker hands those messages
        out again (it reads one packet per turn of its loop, and saving after every change
        makes each turn slow)."""
        sock, loop = self._sock, self._loop
        if not self._connected or sock is None or loop is None:
            return
        self._suback.clear()
        client.subscribe(self.topic_filter, qos=1)
        loop.add_reader(sock, self._readable)  # messages read now are never acknowledged
        try:
            async with asyncio.timeout(grace_s):
                await self._suback.wait()
        except TimeoutError:
            log.warning("bridge %s: no SUBACK before closing; some PUBACKs may be lost "
                        "and their messages delivered again", self.client_id)  # fmt: skip
        finally:
            if self._sock is sock:
                loop.remove_reader(sock)

    # --- connection management (event loop) ---------------------------------------------------

    async def _stay_connected(self) -> None:
        client = self._client
        assert client is not None
        delay = self._reconnect_min_s
        while not self._closing:
            self._lost.clear()
            self._established = False
            self._connecting = True
            try:
                await asyncio.to_thread(client.reconnect)  # the blocking TCP (and TLS) connect
                opened = True
            except (OSError, ssl.SSLError) as exc:
                opened = False
                # One line per outage, not one per attempt.
                self.mqtt.down(ConnectionError(f"cannot connect to {self.endpoint}: {exc}"))
            finally:
                self._connecting = False
            if opened and not self._closing:
                await self._lost.wait()  # until this connection ends
            if self.closing:  # (a property: mypy would take the loop condition as still true)
                return
            if self._established:  # it worked for a while: start the backoff over
                delay = self._reconnect_min_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max_s)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self._connecting and self._client is not None:
                self._client.loop_misc()  # PINGREQ when due; drops a dead connection

    # --- paho callbacks (event loop, or the connect thread where noted) -----------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning(
                "bridge %s: MQTT broker %s refused the connection as %s: %s",
                self.client_id,
                self.endpoint,
                self._account.username if self._account else "anonymous",
                reason,
            )
            return
        self.session += 1
        self.connections += 1
        self._connected = True
        self._established = True
        self.mqtt.up()
        log.info(
            "bridge %s: connected to MQTT %s (session present: %s); subscribing %s",
            self.client_id,
            self.endpoint,
            flags.session_present,
            self.topic_filter,
        )
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error(
                "bridge %s: broker refused subscription %s: %s",
                self.client_id,
                self.topic_filter,
                refused,
            )
            return
        self._suback.set()
        if self._subscribed.is_set():
            return  # the round trip of close(), or a reconnect's: said once
        log.info("bridge %s: subscribed to %s", self.client_id, self.topic_filter)
        self._subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self._connected:
            self.session += 1  # nothing received so far may be acknowledged any more
        self._connected = False
        if not self._closing:
            self.mqtt.down(
                ConnectionError(f"bridge {self.client_id} lost the connection: {reason}")
            )
        self._lost.set()

    def _on_paho_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._received += 1
        if self._on_message is not None and not self._closing:
            self._on_message(msg.mid, msg.qos, msg.topic, bytes(msg.payload))

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # In the connect thread: register on the loop (reads wait for it; nothing is lost).
        self._in_loop(lambda: self._register(sock))

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # paho closes the socket right after this returns. On the loop thread the fd is
        # unregistered at once; from the connect thread the removal is queued ahead of the
        # next socket's registration, so a reused fd number is never mixed up.
        fd: int = sock.fileno()
        self._in_loop(lambda: self._forget(sock, fd))

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(lambda: self._watch_writable(sock))

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        fd: int = sock.fileno()
        self._in_loop(lambda: self._unwatch_writable(fd))

    # --- socket registration (event loop) -----------------------------------------------------

    def _in_loop(self, action: Callable[[], None]) -> None:
        if threading.get_ident() == self._loop_thread:
            action()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(action)

    def _register(self, sock: Any) -> None:
        fd: int = sock.fileno()
        if self._client is None or self._client.socket() is not sock:
            return  # already closed again
        self._sock = sock
        if not self._paused and self._loop is not None:
            self._loop.add_reader(fd, self._readable)

    def _forget(self, sock: Any, fd: int) -> None:
        if self._sock is sock:
            self._sock = None
        if self._loop is not None and fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)

    def _watch_writable(self, sock: Any) -> None:
        fd: int = sock.fileno()
        client = self._client
        if client is not None and client.socket() is sock and self._loop is not None:
            self._loop.add_writer(fd, self._writable)

    def _unwatch_writable(self, fd: int) -> None:
        if self._loop is not None and fd >= 0:
            self._loop.remove_writer(fd)

    def _readable(self) -> None:
        client = self._client
        assert client is not None
        for _ in range(self._read_batch):
            before = self._received
            rc = client.loop_read()
            if (
                rc != MQTTErrorCode.MQTT_ERR_SUCCESS
                or self._received == before  # no complete PUBLISH left (or another packet)
                or self._paused
                or self._sock is None
            ):
                return

    def _writable(self) -> None:
        client = self._client
        assert client is not None
        client.loop_write()
