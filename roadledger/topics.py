"""Topic names of DESIGN.md: the one place that spells them."""

from __future__ import annotations

from typing import Final

__all__ = [
    "KAFKA_TOPICS",
    "MQTT_TELEMETRY_FILTER",
    "QUARANTINE",
    "RAW",
    "VERIFIED",
    "WARNINGS",
    "mqtt_telemetry_topic",
]

RAW: Final = "telemetry.raw"
VERIFIED: Final = "telemetry.verified"
QUARANTINE: Final = "telemetry.quarantine"
WARNINGS: Final = "warnings"

# Topic -> extra topic configuration. telemetry.raw keeps every byte that arrived, forever.
KAFKA_TOPICS: Final[dict[str, dict[str, str]]] = {
    RAW: {"retention.ms": "-1", "retention.bytes": "-1"},
    VERIFIED: {},
    QUARANTINE: {"retention.ms": "-1", "retention.bytes": "-1"},
    WARNINGS: {},
}

MQTT_TELEMETRY_PREFIX: Final = "roadledger/v1/telemetry/"
MQTT_TELEMETRY_FILTER: Final = MQTT_TELEMETRY_PREFIX + "+"


def mqtt_telemetry_topic(device_id: str) -> str:
    """The MQTT topic a device publishes its signed telemetry on."""
    return MQTT_TELEMETRY_PREFIX + device_id
