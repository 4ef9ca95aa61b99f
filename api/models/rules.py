"""Rules versions: as listed, and one with its signed bytes and document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["RuleVersionCreatedPublic", "RuleVersionDetailPublic", "RuleVersionPublic"]


class RuleVersionPublic(BaseModel):
    """A published rules version (what a warning's ``rule_version`` names)."""

    label: str = Field(examples=["metro-police/city@3"])
    org_id: str = Field(examples=["metro-police"])
    rule_set: str = Field(examples=["city"])
    version: int = Field(examples=[3])
    effective_from_ms: int = Field(examples=[1764547200000])
    key_id: str = Field(description="The organisation key that signed it", examples=["k1"])
    published_at_ms: int = Field(examples=[1764500000000])


class RuleVersionCreatedPublic(RuleVersionPublic):
    """A version just published: stored, and its ledger entry queued."""


class RuleVersionDetailPublic(RuleVersionPublic):
    """One version: the signed bytes as published (verify them with the organisation's key)
    and the document they carry, verified again before it was read."""

    signed: str = Field(description="The compact JWS, verbatim (docs/rules.md)")
    document: dict[str, Any] = Field(description="The signed payload: the rules document")
