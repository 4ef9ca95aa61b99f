"""Settings: defaults work, malformed or insecure ROADLEDGER_* values get one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from roadledger.settings import DEV_DATABASE_PASSWORD, Settings, SettingsError, load_settings


def test_defaults_are_loopback_and_valid() -> None:
    settings = Settings()
    assert settings.env == "development"
    assert settings.database.is_loopback
    assert settings.database.port == 55432
    assert (settings.mqtt.host, settings.mqtt.port) == ("127.0.0.1", 51883)
    assert [(e.host, e.port) for e in settings.kafka] == [("127.0.0.1", 59092)]
    assert settings.kafka_partitions >= 3
    assert settings.database_name == "roadledger"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ROADLEDGER_KAFKA_BOOTSTRAP", "localhost", "expected host:port"),
        ("ROADLEDGER_KAFKA_BOOTSTRAP", "localhost:ninety", "expected host:port"),
        ("ROADLEDGER_KAFKA_BOOTSTRAP", "localhost:70000", "outside 1-65535"),
        ("ROADLEDGER_DATABASE_URL", "mysql://u:p@localhost/db", "postgresql://"),
        ("ROADLEDGER_DATABASE_URL", "postgresql://u:p@localhost:99999/db", "bad port"),
        ("ROADLEDGER_DATABASE_URL", "postgresql://u:p@localhost:5432", "no database name"),
        ("ROADLEDGER_MQTT_URL", "http://localhost:1883", "mqtt://"),
        ("ROADLEDGER_KAFKA_PARTITIONS", "0", "greater than or equal to 1"),
        ("ROADLEDGER_KAFKA_PARTITIONS", "three", "valid integer"),
        ("ROADLEDGER_ENV", "staging", "'development' or 'production'"),
        ("ROADLEDGER_LOG_LEVEL", "LOUD", "DEBUG"),
        ("ROADLEDGER_NO_SUCH_SETTING", "1", "unknown setting"),
    ],
)
def test_malformed_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(variable + ":"), message
    assert expected in message
    assert "\n" not in message


def test_unknown_prefixed_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo such as ROADLEDGER_KAFKA_BOOTSTRAPS must not be silently ignored."""
    monkeypatch.setenv("ROADLEDGER_KAFKA_BOOTSTRAPS", "elsewhere:9092")
    with pytest.raises(SettingsError, match="ROADLEDGER_KAFKA_BOOTSTRAPS"):
        load_settings()


def test_production_refuses_the_development_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADLEDGER_ENV", "production")
    with pytest.raises(SettingsError, match="development password"):
        load_settings()
    monkeypatch.setenv("ROADLEDGER_DATABASE_URL", "postgresql://rl@db.internal:5432/roadledger")
    with pytest.raises(SettingsError, match="development password"):
        load_settings()
    monkeypatch.setenv(
        "ROADLEDGER_DATABASE_URL", "postgresql://rl:s3cret-from-vault@db.internal:5432/roadledger"
    )
    with pytest.raises(SettingsError, match="MQTT_BRIDGE_PASSWORD is the development password"):
        load_settings()
    monkeypatch.setenv("ROADLEDGER_MQTT_BRIDGE_PASSWORD", "bridge-s3cret")
    with pytest.raises(SettingsError, match="MQTT_SIM_PASSWORD is the development password"):
        load_settings()
    monkeypatch.setenv("ROADLEDGER_MQTT_SIM_PASSWORD", "")  # no simulator account
    assert load_settings().env == "production"


def test_password_never_appears_in_redacted_url() -> None:
    settings = Settings()
    assert DEV_DATABASE_PASSWORD in settings.database_url
    assert DEV_DATABASE_PASSWORD not in settings.redacted_database_url()
    assert "***" in settings.redacted_database_url()


def test_cli_reports_malformed_setting_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "services", "status"],
        env={"ROADLEDGER_KAFKA_BOOTSTRAP": "no-port-here", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("roadledger: configuration error: ROADLEDGER_KAFKA_BOOTSTRAP:")
