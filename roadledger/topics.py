"""Topic names of DESIGN.md and the headers of their records: the one place that spells them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from roadledger.stream.base import StreamRecord

__all__ = [
    "HEADER_CHAIN_BROKEN",
    "HEADER_DETAIL",
    "HEADER_MQTT_TOPIC",
    "HEADER_OVERSIZE",
    "HEADER_PAYLOAD_SHA256",
    "HEADER_REASON",
    "HEADER_RECV_MS",
    "HEADER_SRC",
    "KAFKA_TOPICS",
    "MQTT_TELEMETRY_FILTER",
    "QUARANTINE",
    "RAW",
    "VERIFIED",
    "WARNINGS",
    "mqtt_telemetry_topic",
    "recv_ms_of",
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


# Record headers. The bridge sets these two on telemetry.raw:
HEADER_MQTT_TOPIC: Final = "mqtt_topic"
HEADER_RECV_MS: Final = "recv_ms"  # when the bridge received the message, decimal ms
# ... and these when it dropped a payload too large for a Kafka record:
HEADER_OVERSIZE: Final = "oversize"
HEADER_PAYLOAD_SHA256: Final = "payload_sha256"
# The verifier sets these: where a record came from (its raw partition and offset), and on
# telemetry.quarantine the reason code with its explanation.
HEADER_SRC: Final = "src"
HEADER_REASON: Final = "reason"
HEADER_DETAIL: Final = "detail"
# On a forwarded record: the hash-chain links through it that are broken ("9->10,10->11"),
# with the explanation in HEADER_DETAIL (ingest/chain_links.py).
HEADER_CHAIN_BROKEN: Final = "chain_broken"


def recv_ms_of(record: StreamRecord) -> int:
    """When the bridge received the message: its ``recv_ms`` header (decimal ms), else the
    record timestamp."""
    header = record.header(HEADER_RECV_MS)
    if header is not None and 0 < len(header) <= 16 and header.isdigit():
        return int(header)
    return record.timestamp_ms
