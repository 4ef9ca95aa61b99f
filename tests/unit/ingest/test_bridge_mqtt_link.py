"""ingest.mqtt_link.PahoLink's bookkeeping, with paho's network calls stubbed out (the socket
plumbing runs against the real broker in tests/integration/test_bridge.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from ingest.mqtt_link import PahoLink, paho_client
from roadledger.settings import Endpoint

WAIT_S = 5


class OfflineClient(mqtt.Client):
    """paho's client whose connects fail and whose acks and subscribes are only recorded."""

    def __init__(self, client_id: str) -> None:
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.acked: list[int] = []
        self.subscribed: list[tuple[str, int]] = []
        self.attempts = 0
        self.retried = threading.Event()  # set at the third attempt

    def reconnect(self) -> MQTTErrorCode:  # runs in the link's connect thread
        self.attempts += 1
        if self.attempts >= 3:
            self.retried.set()
        raise ConnectionRefusedError("offline (test)")

    def subscribe(self, topic: Any, qos: int = 0, *a: Any, **k: Any) -> Any:
        self.subscribed.append((topic, qos))
        return MQTTErrorCode.MQTT_ERR_SUCCESS, 1

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        self.acked.append(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # the broker's side
    def connack(self, *, refused: bool = False) -> None:
        reason = ReasonCode(PacketTypes.CONNACK, "Not authorized" if refused else "Success")
        self._call("on_connect", ConnectFlags(session_present=True), reason, None)

    def drop(self) -> None:
        reason = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
        self._call("on_disconnect", DisconnectFlags(False), reason, None)

    def publish_to_us(self, mid: int, topic: str, payload: bytes) -> None:
        message = mqtt.MQTTMessage(mid, topic.encode())
        message.payload, message.qos = payload, 1
        self._call("on_message", message)

    def _call(self, name: str, *args: Any) -> None:
        callback = getattr(self, name)
        assert callback is not None
        callback(self, None, *args)


@pytest.fixture
async def link_and_client() -> Any:
    clients: list[OfflineClient] = []

    def factory(client_id: str) -> mqtt.Client:
        clients.append(OfflineClient(client_id))
        return clients[-1]

    link = PahoLink(
        Endpoint("127.0.0.1", 1),
        client_id="link-test",
        topic_filter="fleet/+",
        reconnect_min_s=0.01,
        reconnect_max_s=0.02,
        client_factory=factory,
    )
    received: list[tuple[int, int, str, bytes]] = []
    await link.start(lambda *message: received.append(message))
    yield link, clients[0], received
    await link.close(grace_s=1)


def test_the_default_client_is_a_persistent_mqtt311_session_with_manual_acks() -> None:
    client = paho_client("bridge-x")
    assert client._client_id == b"bridge-x"
    assert client._clean_session is False
    assert client._protocol == mqtt.MQTTv311
    assert client._manual_ack is True


async def test_acks_only_for_the_connection_a_message_arrived_on(link_and_client: Any) -> None:
    link, client, _ = link_and_client
    assert link.ack(link.session, 1, 1) is False, "not connected: nothing to acknowledge on"

    client.connack()
    assert client.subscribed == [("fleet/+", 1)], "subscribes at QoS 1 on every connection"
    first = link.session
    assert link.ack(first, 7, 1) is True
    assert link.ack(first, 8, 0) is True, "QoS 0 needs no PUBACK"
    assert client.acked == [7]

    client.drop()
    assert link.session != first
    assert link.ack(first, 9, 1) is False, "a packet id of a lost connection"
    client.connack()
    assert link.ack(first, 9, 1) is False
    assert link.ack(link.session, 9, 1) is True
    assert client.acked == [7, 9]
    assert client.subscribed == [("fleet/+", 1)] * 2
    assert link.connections == 2


async def test_a_refused_connection_changes_nothing(link_and_client: Any) -> None:
    link, client, _ = link_and_client
    client.connack(refused=True)
    assert (link.session, link.connections, client.subscribed) == (0, 0, [])


async def test_messages_reach_the_handler_until_close(link_and_client: Any) -> None:
    link, client, received = link_and_client
    client.connack()
    client.publish_to_us(3, "fleet/veh-1", b"\x00payload")
    assert received == [(3, 1, "fleet/veh-1", b"\x00payload")]
    await link.close(grace_s=1)
    client.publish_to_us(4, "fleet/veh-1", b"late")
    assert len(received) == 1, "nothing is handed over once closing"


async def test_failed_connects_are_retried_with_backoff_until_close(
    link_and_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    link, client, _ = link_and_client
    assert await asyncio.to_thread(client.retried.wait, WAIT_S), "no retries"
    await link.close(grace_s=1)
    attempts = client.attempts
    outage = [r.message for r in caplog.records if r.message.startswith("MQTT unavailable")]
    assert attempts >= 2
    assert len(outage) == 1, "one line for the outage, not one per attempt"
    assert "cannot connect to 127.0.0.1:1" in outage[0]
    assert client.attempts == attempts, "closed: no more attempts"
