"""amqtt 0.12 adjusted to the delivery guarantees the bridge relies on (MQTT 3.1.1, QoS 1).

Stock amqtt 0.12.1, measured with paho-mqtt 2.2 clients, falls short in four ways:

1. Its anonymous authentication marks sessions anonymous, and it then drops an anonymous
   persistent session (``clean_session=False``) a second after it disconnects, together with
   the QoS 1 messages published meanwhile. :class:`LoopbackAuthPlugin` accepts every client
   without marking it anonymous (the broker listens on loopback only).
2. A QoS 1 message sent to a subscriber leaves the session's in-flight set when the PUBACK has
   not come within 5 s, or when the subscriber disconnects first; it is then never sent again
   (MQTT-4.4.0-1 says: resend on reconnect). A bridge that acks only after Kafka acked, and
   that restarts, would lose it. :class:`RedeliveringHandler` keeps it in flight until its
   PUBACK, however late, and amqtt's own reconnect path then resends it with DUP set.
3. Messages queued for an offline session are delivered with RETAIN set (MQTT-3.3.1-9 says
   clear it); :class:`RedeliveringBroker` clears it.
4. When a client reconnects before the broker has seen its old connection close (a session
   take-over), the old connection's clean-up marks the session disconnected although the new
   connection is live: the session's messages are then queued instead of sent, until it
   reconnects once more. :class:`RedeliveringBroker` leaves a taken-over session connected.
   (The old connection's Will is not published on a take-over; the project sets no Will.)

The changes override amqtt methods, private ones included, so they are tied to amqtt 0.12
(pyproject pins it); tests/integration/test_embedded.py fails if any of them stops working.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.mqtt.constants import QOS_1  # type: ignore[import-untyped]
from amqtt.mqtt.protocol.broker_handler import (  # type: ignore[import-untyped]
    BrokerProtocolHandler,
)
from amqtt.plugins.base import BaseAuthPlugin  # type: ignore[import-untyped]
from amqtt.session import OUTGOING  # type: ignore[import-untyped]

__all__ = ["LoopbackAuthPlugin", "RedeliveringBroker", "RedeliveringHandler"]

# Session attribute: the handler of the session's newest connection.
_CONNECTION: Final = "runtime.embedded.connection"


class LoopbackAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Accepts every client, with or without credentials, as a non-anonymous session."""

    async def authenticate(self, *, session: Any) -> bool:
        del session
        return True


class RedeliveringHandler(BrokerProtocolHandler):  # type: ignore[misc]
    """A QoS 1 message to a subscriber stays in flight until its PUBACK (see module doc)."""

    # Set by stop(): a message sent after it stays in flight instead of waiting for a PUBACK
    # that can no longer come (stop() has already cancelled the waiters it knew of).
    _stopping = False

    async def start(self) -> None:
        self._stopping = False
        await super().start()

    async def stop(self) -> None:
        self._stopping = True
        await super().stop()  # cancels every PUBACK waiter registered so far

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        session = self.session
        packet_id = app_message.packet_id
        if (
            app_message.direction != OUTGOING
            or app_message.qos != QOS_1
            or session is None
            or packet_id is None
        ):
            await super()._handle_qos1_message_flow(app_message)
            return
        # In flight before it is sent: whatever happens next, a reconnect resends it.
        session.inflight_out[packet_id] = app_message
        packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._puback_waiters[packet_id] = waiter
        try:
            if self._stopping:
                return  # this connection is going away: still in flight for the next one
            await self._send_packet(packet)
            app_message.publish_packet = packet
            # No deadline. stop() cancels the waiter when the connection goes (the message
            # stays in flight, resent when the session returns).
            app_message.puback_packet = await waiter
        finally:
            self._puback_waiters.pop(packet_id, None)
        session.inflight_out.pop(packet_id, None)

    async def handle_puback(self, puback: Any) -> None:
        packet_id = puback.variable_header.packet_id
        waiter = self._puback_waiters.get(packet_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(puback)
        elif self.session is not None:
            # Nobody waits any more (amqtt's resend on reconnect gives up after 10 s): the
            # acknowledgement still completes the delivery.
            self.session.inflight_out.pop(packet_id, None)


class RedeliveringBroker(Broker):  # type: ignore[misc]
    """amqtt's broker with :class:`RedeliveringHandler` for every client (see module doc)."""

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Any]:
        unattached, session = await super()._initialize_client_session(
            reader, writer, remote_address, remote_port
        )
        del unattached  # created by amqtt, not yet attached or started: replace it
        handler = RedeliveringHandler(self.plugins_manager, loop=self._loop)
        session.attributes[_CONNECTION] = handler
        return handler, session

    async def _handle_disconnect(
        self, client_session: Any, handler: Any, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        if client_session.attributes.get(_CONNECTION) is handler:
            await super()._handle_disconnect(client_session, handler, disconnect_waiter)
            return
        # Taken over: a newer connection of this client owns the session. amqtt would mark
        # the session disconnected, and queue its messages instead of sending them.
        await self._stop_handler(handler)

    async def _publish_session_retained_messages(self, session: Any) -> None:
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = []
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            sends.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
                )
            )
        # Failures (the client went away) leave the messages in flight for the next reconnect.
        await asyncio.gather(*sends, return_exceptions=True)
