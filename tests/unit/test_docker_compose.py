"""docker-compose.yml stays consistent with the settings and scripts (Docker cannot run here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.topics import KAFKA_TOPICS
from roadledger.settings import DEV_DATABASE_PASSWORD, ENV_PREFIX, Settings
from runtime.services.kafka import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _host_port(service: dict[str, Any]) -> int:
    (mapping,) = service["ports"]
    host, published, _container = mapping.split(":")
    assert host == "127.0.0.1", "compose must publish on loopback only"
    return int(published)


def test_services_use_the_official_images(compose: dict[str, Any]) -> None:
    images = {name: svc["image"].split(":")[0] for name, svc in compose["services"].items()}
    assert images["postgres"] == "timescale/timescaledb"
    assert images["mosquitto"] == "eclipse-mosquitto"
    assert images["kafka"] == "apache/kafka"
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_ports_match_the_settings_defaults(compose: dict[str, Any]) -> None:
    defaults = Settings()
    services = compose["services"]
    assert _host_port(services["postgres"]) == defaults.database.port
    assert _host_port(services["mosquitto"]) == defaults.mqtt.port
    assert _host_port(services["kafka"]) == defaults.kafka[0].port
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{defaults.kafka_bootstrap}" in advertised


def test_roadledger_variables_are_settings_with_matching_values(compose: dict[str, Any]) -> None:
    environment = compose["x-roadledger-environment"]
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(environment) <= fields, set(environment) - fields
    resolved = {
        key: re.sub(r"\$\{ROADLEDGER_DB_PASSWORD:-([^}]*)\}", r"\1", str(value))
        for key, value in environment.items()
    }
    configured = Settings.model_validate(
        {k.removeprefix(ENV_PREFIX).lower(): v for k, v in resolved.items()}
    )
    assert configured == Settings(kafka_partitions=configured.kafka_partitions)
    assert DEV_DATABASE_PASSWORD in resolved["ROADLEDGER_DATABASE_URL"]


def test_topics_match_the_topic_list(compose: dict[str, Any]) -> None:
    script = compose["services"]["kafka-topics"]["command"][0]
    created = re.search(r"for topic in ([^;]+); do\s+\S+kafka-topics\.sh", script)
    assert created is not None
    assert created.group(1).split() == list(KAFKA_TOPICS)
    assert "--partitions 3" in script
    kept = re.search(r"for topic in ([^;]+); do\s+\S+kafka-configs\.sh", script)
    assert kept is not None
    forever = [name for name, config in KAFKA_TOPICS.items() if config.get("retention.ms") == "-1"]
    assert kept.group(1).split() == forever


def test_mosquitto_config_matches_local_broker(compose: dict[str, Any], tmp_path: Path) -> None:
    from roadledger.settings import Endpoint
    from runtime.services.mosquitto import write_config

    local = write_config(tmp_path, Endpoint("127.0.0.1", 1883), None, Settings())
    docker = (ROOT / "docker" / "mosquitto.conf").read_text().splitlines()

    def essentials(lines: list[str]) -> set[str]:
        keys = ("persistence ", "allow_anonymous", "max_queued", "max_inflight", "autosave")
        files = {line.split()[0] for line in lines if line.startswith(("password_", "acl_"))}
        return {line for line in lines if line.startswith(keys)} | files

    assert essentials(local.read_text().splitlines()) == essentials(docker)
    assert "allow_anonymous false" in docker
    # The auth files docker's broker reads are where compose mounts what broker-files writes.
    assert "password_file /mosquitto/auth/passwd" in docker
    assert "acl_file /mosquitto/auth/acl" in docker
    volumes = compose["services"]["mosquitto"]["volumes"]
    assert any(v.endswith(":/mosquitto/auth:ro") for v in volumes)
