"""Warnings and the ledger records they rest on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["EvidenceInLedgerPublic", "EvidencePublic", "WarningDetailPublic", "WarningPublic"]


class EvidencePublic(BaseModel):
    """A record a warning rests on: its device and seq, its RFC 9162 leaf hash (hex) and the
    raw record it came from (``raw:<partition>:<offset>``)."""

    device_id: str = Field(examples=["veh-0001"])
    seq: int | None = Field(examples=[1234])
    leaf_hash: str | None = Field(examples=["9f2c" + "0" * 60])
    src: str | None = Field(examples=["raw:3:88120"])


class EvidenceInLedgerPublic(EvidencePublic):
    """Evidence and where its leaf is in the ledger (null: not sequenced yet): fetch its
    inclusion proof with ``log`` and ``leaf_index``."""

    log: str | None = Field(examples=["roadledger.example/log"])
    leaf_index: int | None = Field(examples=[40211])


class WarningPublic(BaseModel):
    """A warning (docs/warnings.md): a device's (``device_id``) or a segment's
    (``segment_id``, no device)."""

    warning_id: str = Field(examples=["5b0e8f7d1c2a4e6f8a9b0c1d2e3f4a5b"])
    type: str = Field(examples=["speeding"])
    severity: str = Field(examples=["warning"])
    device_id: str | None = Field(examples=["veh-0001"])
    segment_id: int | None = Field(examples=[None])
    from_ts_ms: int = Field(examples=[1_780_000_000_000])
    to_ts_ms: int = Field(examples=[1_780_000_012_000])
    rule_version: str = Field(examples=["builtin@0"])
    evidence: list[EvidencePublic]
    detail: dict[str, Any] = Field(examples=[{"limit_kmh": 50, "max_speed_kmh": 71}])


class WarningDetailPublic(WarningPublic):
    """A warning with the ledger position of each record it cites."""

    evidence: list[EvidenceInLedgerPublic]  # type: ignore[assignment]
