"""Logins and tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.access import OrgKind, Role

__all__ = ["PrincipalPublic", "RefreshCreate", "TokenPublic"]


class TokenPublic(BaseModel):
    """A login's tokens (RFC 6749 section 5.1), shown once."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - RFC 6749 token type
    expires_in: int = Field(description="Seconds the access token lives")
    refresh_token: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "rla_Jx0...",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "refresh_token": "rlr_Q7v...",
                }
            ]
        }
    )


class RefreshCreate(BaseModel):
    """Trade a refresh token for new tokens (the old one stops working)."""

    refresh_token: str = Field(min_length=1, max_length=200)


class PrincipalPublic(BaseModel):
    """Who the caller is."""

    subject: str = Field(description="The member id, or the API key id")
    via: Literal["session", "api_key"]
    username: str | None
    org_id: str
    org_kind: OrgKind
    roles: list[Role]
