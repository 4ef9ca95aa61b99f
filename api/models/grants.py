"""Grants of access to an organisation's vehicles."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.models.common import EpochMs
from contracts.access import Scope

__all__ = ["GrantCreate", "GrantPublic"]


class GrantCreate(BaseModel):
    """Open scopes on some of the caller's vehicles to another organisation."""

    grantee_org: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$", examples=["insurer-acme"])
    scopes: list[Scope] = Field(min_length=1, examples=[["mileage", "certificate"]])
    device_ids: list[str] = Field(min_length=1, max_length=10_000, examples=[["veh-0001"]])
    valid_from_ms: EpochMs = Field(examples=[1_780_000_000_000])
    valid_until_ms: EpochMs = Field(examples=[1_811_536_000_000])
    purpose: str = Field(min_length=1, max_length=500, examples=["policy 88-1234 renewal"])

    model_config = ConfigDict(extra="forbid")


class GrantPublic(BaseModel):
    """A grant and its status now."""

    grant_id: str
    owner_org: str
    grantee_org: str
    scopes: list[Scope]
    device_ids: list[str]
    valid_from_ms: int
    valid_until_ms: int
    purpose: str
    created_by: str
    created_at_ms: int
    revoked_at_ms: int | None
    revoked_by: str | None
    status: Literal["active", "revoked", "expired", "pending"]
