"""Mosquitto's authentication, ACL and durability, on a PRIVATE real broker.

The broker is the project's own (``runtime.services.mosquitto``: its configuration, password
file and ACL) on a free port (``private_mosquitto``), so reloading and SIGKILLing it touches
nothing another test uses. Device credentials are issued by ``roadledger devices`` against a
scratch schema of the real PostgreSQL, exactly as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import queue
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main
from chain.keys import Ed25519PrivateKey
from contracts.topics import mqtt_telemetry_topic
from roadledger.mqtt_auth import MqttAccount, bridge_account, sim_account
from roadledger.settings import Settings
from tests.integration.mqtt_client import MqttTestClient
from tests.integration.private_mosquitto import PrivateMosquitto, private_mosquitto
from tests.support.pipeline import wait_until_sync
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres]

WAIT_S = 15.0
_ISSUED = re.compile(r"^(\S+): MQTT username (\S+) password (\S+)$", re.MULTILINE)


@dataclass
class Fleet:
    """A private broker and a scratch registry wired to it, as the CLI sees them."""

    broker: PrivateMosquitto
    env: dict[str, str]
    prefix: str

    @property
    def settings(self) -> Settings:
        return self.broker.settings

    def devices(self, *argv: str) -> str:
        """Run ``roadledger devices ARGV`` with this fleet's environment; its stdout."""
        out = io.StringIO()
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            with contextlib.redirect_stdout(out):
                code = main(["devices", *argv])
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        assert code == 0, out.getvalue()
        return out.getvalue()

    def register(self, name: str) -> tuple[str, MqttAccount]:
        """Register a new device; its id and the MQTT credential the command printed."""
        device_id = f"{self.prefix}{name}"
        key = Ed25519PrivateKey.generate().public_key.to_b64url()
        out = self.devices(
            "register", device_id, "--owner", "fleet-a", "--kind", "vehicle",
            f"--public-key={key}",
        )  # fmt: skip
        issued = _ISSUED.search(out)
        assert issued is not None, out
        assert issued.group(1) == issued.group(2) == device_id
        assert "the broker has reloaded its password file" in out
        return device_id, MqttAccount(device_id, issued.group(3))

    def client(self, account: MqttAccount | None, *, clean: bool = True) -> MqttTestClient:
        name = account.username if account else "anonymous"
        return MqttTestClient(
            self.settings.mqtt, f"{name}-{uuid.uuid4().hex[:6]}", clean_session=clean,
            account=account,
        )  # fmt: skip

    def listener(self) -> MqttTestClient:
        """The bridge's account, subscribed to this fleet's device topics."""
        client = self.client(bridge_account(self.settings)).connect()
        client.subscribe(mqtt_telemetry_topic("+"))
        return client


@pytest.fixture
async def fleet(postgres: Settings) -> AsyncIterator[Fleet]:
    async with (
        scratch_schema_pool(postgres) as pool,
        private_mosquitto(postgres) as broker,
    ):
        schema = await pool.fetchval("SELECT current_schema()")
        env = {
            "ROADLEDGER_DATABASE_URL": f"{postgres.database_url}?search_path={schema}",
            "ROADLEDGER_DATA_DIR": str(broker.settings.data_dir),
            "ROADLEDGER_MQTT_URL": broker.settings.mqtt_url,
        }
        yield Fleet(broker, env, f"t{uuid.uuid4().hex[:6]}-")


def _refused(client: MqttTestClient) -> str:
    with pytest.raises(ConnectionRefusedError) as refused:
        client.connect()
    return str(refused.value)


async def test_anonymous_and_wrong_passwords_are_refused(fleet: Fleet) -> None:
    assert "Not authorized" in _refused(fleet.client(None))
    bridge = bridge_account(fleet.settings)
    assert "Not authorized" in _refused(fleet.client(MqttAccount(bridge.username, "guess")))
    device_id, account = await asyncio.to_thread(fleet.register, "veh-1")
    wrong = MqttAccount(
        device_id, account.password[:-1] + ("x" if account.password[-1] != "x" else "y")
    )
    assert "Not authorized" in _refused(fleet.client(wrong))
    fleet.client(account).connect().disconnect()  # the issued one works


async def test_a_device_publishes_only_to_its_own_topic(fleet: Fleet) -> None:
    a, account_a = await asyncio.to_thread(fleet.register, "veh-a")
    b, _ = await asyncio.to_thread(fleet.register, "veh-b")
    listener = fleet.listener()
    device = fleet.client(account_a).connect()
    try:
        # MQTT 3.1.1 has no negative PUBACK: the broker acknowledges and drops it.
        device.publish(mqtt_telemetry_topic(b), b"A posing as B")
        device.publish(mqtt_telemetry_topic(f"{b}/sub"), b"A under B's tree")
        device.publish(mqtt_telemetry_topic(a), b"A as itself")
        # One connection is delivered in order: had either impostor passed, it came first.
        assert listener.receive(1) == [(mqtt_telemetry_topic(a), b"A as itself", 1)]
        assert listener.messages.empty()
    finally:
        device.disconnect()
        listener.disconnect()


async def test_new_device_is_accepted_without_a_broker_restart(fleet: Fleet) -> None:
    pid = fleet.broker.service._pid()
    device_id, account = await asyncio.to_thread(fleet.register, "veh-new")
    listener = fleet.listener()
    device = fleet.client(account).connect()
    try:
        device.publish(mqtt_telemetry_topic(device_id), b"hello")
        assert listener.receive(1) == [(mqtt_telemetry_topic(device_id), b"hello", 1)]
    finally:
        device.disconnect()
        listener.disconnect()
    assert fleet.broker.service._pid() == pid, "the same broker process, never restarted"


def _wait_disconnected(client: MqttTestClient) -> None:
    # paho sets the flag from its own thread
    wait_until_sync(
        lambda: not client.client.is_connected(),
        "the revoked device to be disconnected",
        WAIT_S,
        every_s=0.05,
    )


async def test_revocation_and_rotation_end_the_mqtt_credential(fleet: Fleet) -> None:
    device_id, old = await asyncio.to_thread(fleet.register, "veh-r")
    connected = fleet.client(old).connect()
    try:
        key = Ed25519PrivateKey.generate().public_key.to_b64url()
        out = await asyncio.to_thread(fleet.devices, "rotate", device_id, f"--public-key={key}")
        issued = _ISSUED.search(out)
        assert issued is not None, out
        new = MqttAccount(device_id, issued.group(3))
        # The reload cut off the connection made with the old password, and it is refused.
        await asyncio.to_thread(_wait_disconnected, connected)
        assert "Not authorized" in _refused(fleet.client(old))
        current = fleet.client(new).connect()

        out = await asyncio.to_thread(fleet.devices, "revoke", device_id)
        assert f"{device_id}: MQTT credential removed" in out
        await asyncio.to_thread(_wait_disconnected, current)
        assert "Not authorized" in _refused(fleet.client(new))
    finally:
        connected.client.loop_stop()


async def test_a_revoked_device_cannot_get_a_credential_again(fleet: Fleet) -> None:
    device_id, _ = await asyncio.to_thread(fleet.register, "veh-x")
    await asyncio.to_thread(fleet.devices, "revoke", device_id)
    env = {**os.environ, **fleet.env}
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "roadledger"), "devices", "mqtt-credentials", device_id],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "has no key valid now" in done.stderr


async def test_an_acknowledged_qos1_message_survives_kill_9(fleet: Fleet) -> None:
    """N messages published and PUBACKed while the bridge's persistent session is offline,
    then the broker SIGKILLed and started again: the session receives exactly those N.

    Mosquitto PUBACKs a message before it saves it (every ``mqtt_autosave_s``; publishers keep
    what it acknowledged since: docs/pipeline.md), so the kill comes once the broker has saved
    its store after the last PUBACK."""
    settings = fleet.settings
    count = 200
    topic_root = f"roadledger/v1/telemetry/{fleet.prefix}durable"
    session = f"bridge-{uuid.uuid4().hex[:8]}"
    bridge = MqttTestClient(
        settings.mqtt, session, clean_session=False, account=bridge_account(settings)
    ).connect()
    bridge.subscribe(f"{topic_root}/+")
    bridge.disconnect()

    publisher = fleet.client(sim_account(settings)).connect()
    sent = [(f"{topic_root}/veh-{i % 7}", b"durable %d" % i) for i in range(count)]
    for topic, payload in sent:
        publisher.publish(topic, payload)  # returns once PUBACKed
    await fleet.broker.wait_saved()
    fleet.broker.kill()
    publisher.client.loop_stop()
    await asyncio.to_thread(fleet.broker.start)

    returning = MqttTestClient(
        settings.mqtt, session, clean_session=False, account=bridge_account(settings)
    ).connect()
    try:
        assert returning.session_present is True
        received = returning.receive(count, timeout=WAIT_S)
        assert [(t, p) for t, p, _ in received] == sent
        with pytest.raises(queue.Empty):
            returning.messages.get(timeout=0.5)  # exactly N: nothing more
    finally:
        returning.disconnect()
