"""scripts/services: idempotent up, clean down, and one-line errors for a bad environment.

These tests run private instances (their own data directory and free ports) so that the
services the rest of the suite uses are never disturbed.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from roadledger.settings import Settings
from runtime.services import all_services
from runtime.services import kafka as kafka_module
from runtime.services.kafka import KafkaService
from runtime.services.mosquitto import MosquittoService
from runtime.services.postgres import PostgresService
from runtime.services.process import ServiceError
from tests.integration.conftest import free_port


def private_settings(settings: Settings, data_dir: Path) -> Settings:
    """Settings for a private set of services: same caches, fresh data, free ports."""
    return Settings(
        data_dir=data_dir,
        cache_dir=settings.cache.resolve(),
        database_url=f"postgresql://roadledger:pw-{free_port()}@127.0.0.1:{free_port()}/roadledger",
        mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("service", "field", "variable"),
    [
        (PostgresService, "database_url", "ROADLEDGER_DATABASE_URL"),
        (MosquittoService, "mqtt_url", "ROADLEDGER_MQTT_URL"),
        (KafkaService, "kafka_bootstrap", "ROADLEDGER_KAFKA_BOOTSTRAP"),
    ],
)
def test_port_already_taken_is_named(
    tmp_path: Path, taken_port: int, service: type, field: str, variable: str
) -> None:
    values = {
        "database_url": f"postgresql://u:p@127.0.0.1:{taken_port}/db",
        "mqtt_url": f"mqtt://127.0.0.1:{taken_port}",
        "kafka_bootstrap": f"127.0.0.1:{taken_port}",
    }
    settings = Settings.model_validate({"data_dir": tmp_path, field: values[field]})
    with pytest.raises(ServiceError) as caught:
        service(settings).up()
    message = str(caught.value)
    assert f"port {taken_port}" in message
    assert "already in use" in message
    assert variable in message
    assert "\n" not in message


def test_missing_java_is_named(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ServiceError, match=r"^Java not found: Kafka .* needs Java 17"):
        KafkaService(private_settings(settings, tmp_path / "data")).up()


def test_too_old_java_is_named(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old_java = bin_dir / "java"
    old_java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    old_java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(ServiceError, match=r"^Java 11 found at .*needs Java 17\+"):
        KafkaService(private_settings(settings, tmp_path / "data")).up()


@pytest.mark.kafka
def test_unresolvable_kafka_version_names_maven_cause(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_m2 = settings.cache.resolve() / "kafka" / "m2"
    if not real_m2.is_dir():
        pytest.fail("no Maven cache yet; run `scripts/services up` first")
    cache = tmp_path / "cache" / "kafka"
    cache.mkdir(parents=True)
    (cache / "m2").symlink_to(real_m2)  # reuse the cached Maven plugins; only Kafka is missing
    monkeypatch.setattr(kafka_module, "KAFKA_VERSION", "0.0.0-no-such-release")
    private = private_settings(settings, tmp_path / "data").model_copy(
        update={"cache_dir": tmp_path / "cache"}
    )
    with pytest.raises(ServiceError) as caught:
        KafkaService(private).up()
    message = str(caught.value)
    assert message.startswith("Maven could not resolve Kafka 0.0.0-no-such-release: ")
    assert "kafka_2.13" in message
    assert "\n" not in message


def _our_processes(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(proc.name))
    return found


@pytest.mark.postgres
@pytest.mark.mqtt
@pytest.mark.kafka
@pytest.mark.slow
def test_up_is_idempotent_and_down_leaves_nothing_behind(
    tmp_path: Path, settings: Settings
) -> None:
    data_dir = tmp_path / "data"
    private = private_settings(settings, data_dir)
    services = all_services(private)
    real_dirs: list[Path] = []
    try:
        first = [service.up() for service in services]
        assert [s.state for s in first] == ["running"] * 3, first
        real_dirs = [(data_dir / name).resolve() for name in ("postgres", "mosquitto", "kafka")]
        assert "plain PostgreSQL" in first[0].detail or "timescaledb" in first[0].detail
        assert "topics telemetry.quarantine, telemetry.raw" in first[2].detail

        again = [service.up() for service in all_services(private)]
        assert [s.detail for s in again] == [s.detail for s in first], "up must reuse, not restart"
    finally:
        down = [service.down() for service in reversed(services)]
    assert {s.state for s in down} == {"stopped"}
    leftovers = [pid for d in real_dirs for pid in _our_processes(str(d))]
    assert leftovers == [], f"processes left behind: {leftovers}"
    for directory in real_dirs:
        if directory.parent.name.startswith("roadledger-"):
            shutil.rmtree(directory.parent, ignore_errors=True)
