"""The warning record: type, severity, subject, time span, evidence, and the rule that fired.

A warning's id is a hash of what identifies the event (type, subject and a key the detector
derives from the evidence, e.g. the two seqs between which an odometer went back), never of
when it was computed: reprocessing the same records yields the same ids, so storing is
idempotent (``INSERT ... ON CONFLICT (warning_id) DO NOTHING``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Evidence", "Severity", "Warning", "WarningType", "warning_id"]


class WarningType(StrEnum):
    """Every kind of warning; the simulator's truth file uses the same names."""

    ODOMETER_ROLLBACK = "odometer_rollback"
    ODO_GNSS_MISMATCH = "odo_gnss_mismatch"
    TELEPORT = "teleport"
    DRIFT_OFF_ROAD = "drift_off_road"
    RSU_CONTRADICTION = "rsu_contradiction"
    SPEEDING = "speeding"
    GEOFENCE = "geofence"
    CONGESTION = "congestion"
    SILENT_DEVICE = "silent_device"
    FORGED_SIGNATURE = "forged_signature"
    TAMPERED_PAYLOAD = "tampered_payload"
    REPLAY = "replay"
    CONFLICT = "conflict"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_KEY_USE = "revoked_key_use"
    CLOCK_SKEW = "clock_skew"
    CHAIN_BROKEN = "chain_broken"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One record a warning rests on. ``leaf_hash``: its RFC 9162 leaf hash when it is in the
    ledger (join ``ledger_entries.leaf_hash`` for the leaf index); ``src``: the raw record it
    came from, ``raw:<partition>:<offset>`` of ``telemetry.raw``."""

    device_id: str
    seq: int | None
    leaf_hash: bytes | None
    src: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "seq": self.seq,
            "leaf_hash": self.leaf_hash.hex() if self.leaf_hash is not None else None,
            "src": self.src,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Evidence:
        leaf = obj.get("leaf_hash")
        return cls(obj["device_id"], obj.get("seq"), bytes.fromhex(leaf) if leaf else None,
                   obj.get("src"))  # fmt: skip


def warning_id(kind: WarningType, subject: str, key: str) -> str:
    """The deterministic id of the event ``key`` of ``kind`` about ``subject``."""
    return hashlib.sha256(f"{kind.value}\n{subject}\n{key}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Warning:
    """One warning. ``device_id`` or ``segment_id`` names its subject; ``rule_version`` is the
    label of the rules version whose threshold or limit produced it."""

    warning_id: str
    type: WarningType
    severity: Severity
    device_id: str | None
    segment_id: int | None
    from_ts_ms: int
    to_ts_ms: int
    rule_version: str
    evidence: tuple[Evidence, ...]
    detail: Mapping[str, int | str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The record published on the ``warnings`` topic (compact JSON, UTF-8)."""
        obj = {
            "warning_id": self.warning_id,
            "type": self.type.value,
            "severity": self.severity.value,
            "device_id": self.device_id,
            "segment_id": self.segment_id,
            "from_ts_ms": self.from_ts_ms,
            "to_ts_ms": self.to_ts_ms,
            "rule_version": self.rule_version,
            "evidence": [e.to_json() for e in self.evidence],
            "detail": dict(self.detail),
        }
        return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Warning:
        obj = json.loads(data)
        return cls(
            warning_id=obj["warning_id"],
            type=WarningType(obj["type"]),
            severity=Severity(obj["severity"]),
            device_id=obj["device_id"],
            segment_id=obj["segment_id"],
            from_ts_ms=obj["from_ts_ms"],
            to_ts_ms=obj["to_ts_ms"],
            rule_version=obj["rule_version"],
            evidence=tuple(Evidence.from_json(e) for e in obj["evidence"]),
            detail=obj["detail"],
        )
