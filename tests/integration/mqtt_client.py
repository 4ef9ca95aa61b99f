"""A small synchronous paho-mqtt test client that waits on events, never on sleeps."""

from __future__ import annotations

import queue
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from roadledger.mqtt_auth import MqttAccount
from roadledger.settings import Endpoint


class MqttTestClient:
    """Connects, subscribes and collects messages into a queue."""

    def __init__(
        self,
        endpoint: Endpoint,
        client_id: str,
        *,
        clean_session: bool,
        account: MqttAccount | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.refused: str | None = None
        self.messages: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.session_present: bool | None = None
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if account is not None:
            self.client.username_pw_set(account.username, account.password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.session_present = bool(flags.session_present)
        if rc.is_failure:
            self.refused = str(rc)
        self._connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, rcs: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put((msg.topic, bytes(msg.payload), msg.qos))

    def connect(self, timeout: float = 10) -> MqttTestClient:
        self.client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"no CONNACK from {self.endpoint} within {timeout}s")
        if self.refused is not None:
            self.client.loop_stop()
            raise ConnectionRefusedError(f"{self.endpoint} refused the connection: {self.refused}")
        return self

    def subscribe(self, topic: str, timeout: float = 10) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"no SUBACK for {topic} within {timeout}s")

    def publish(self, topic: str, payload: bytes, timeout: float = 10) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"PUBACK for {topic} not received within {timeout}s")

    def receive(self, count: int, timeout: float = 10) -> list[tuple[str, bytes, int]]:
        return [self.messages.get(timeout=timeout) for _ in range(count)]

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
