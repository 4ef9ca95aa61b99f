"""Topic names of DESIGN.md and the headers of their records: the one place that spells them."""

from __future__ import annotations

from typing import Final, NamedTuple, Protocol

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
    "HeaderedRecord",
    "Source",
    "chain_link",
    "mqtt_telemetry_topic",
    "parse_links",
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
HEADER_SRC: Final = "src"  # "raw:<partition>:<offset>", see Source
HEADER_REASON: Final = "reason"
HEADER_DETAIL: Final = "detail"
# On a forwarded record: the hash-chain links through it that are broken ("9->10,10->11"),
# with the explanation in HEADER_DETAIL (ingest/chain_links.py).
HEADER_CHAIN_BROKEN: Final = "chain_broken"


class Source(NamedTuple):
    """Where a message came in: its ``telemetry.raw`` partition and offset (the ``src``
    header's value is its ``str``)."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"raw:{self.partition}:{self.offset}"


def chain_link(from_seq: int) -> str:
    """One link of a ``chain_broken`` header value: ``"<from_seq>-><from_seq + 1>"``."""
    return f"{from_seq}->{from_seq + 1}"


def parse_links(value: str) -> list[int]:
    """The ``from_seq`` of each link of a ``chain_broken`` header value (links are
    comma-separated; malformed parts are left out)."""
    found = []
    for part in value.split(","):
        before, sep, after = part.partition("->")
        if sep and before.isdigit() and after.isdigit() and int(after) == int(before) + 1:
            found.append(int(before))
    return found


class HeaderedRecord(Protocol):
    """What :func:`recv_ms_of` reads of a stream record."""

    @property
    def timestamp_ms(self) -> int: ...

    def header(self, name: str) -> bytes | None: ...


def recv_ms_of(record: HeaderedRecord) -> int:
    """When the bridge received the message: its ``recv_ms`` header (decimal ms), else the
    record timestamp."""
    header = record.header(HEADER_RECV_MS)
    if header is not None and 0 < len(header) <= 16 and header.isdigit():
        return int(header)
    return record.timestamp_ms
