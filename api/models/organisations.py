"""Organisations, members and API keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contracts.access import OrgKind, Role, Scope

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreatedPublic",
    "ApiKeyPublic",
    "MemberCreate",
    "MemberPublic",
    "OrganisationCreate",
    "OrganisationPublic",
]


class OrganisationCreate(BaseModel):
    """A new organisation (by an operator admin)."""

    org_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$", examples=["police-north"])
    name: str = Field(min_length=1, max_length=200, examples=["Northern District Traffic Police"])
    kind: OrgKind
    parent_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="Its parent authority"
    )
    jurisdiction: list[tuple[int, int]] | None = Field(
        default=None,
        description="An authority's area: polygon vertices [lat_e7, lon_e7]",
        examples=[[[523000000, 133000000], [523000000, 135000000], [525000000, 134000000]]],
    )


class OrganisationPublic(BaseModel):
    """An organisation."""

    org_id: str
    name: str
    kind: str
    parent_id: str | None
    jurisdiction: list[tuple[int, int]] | None
    created_at_ms: int


class MemberCreate(BaseModel):
    """A new member of an organisation (by its admin, or an operator admin)."""

    username: str = Field(pattern=r"^[A-Za-z0-9._@-]{3,64}$", examples=["a.insurer"])
    password: str = Field(min_length=12, max_length=1024)
    roles: list[Role] = Field(min_length=1, examples=[["analyst"]])


class MemberPublic(BaseModel):
    """A member (never the password or its hash)."""

    member_id: str
    org_id: str
    username: str
    roles: list[Role]
    created_at_ms: int
    disabled: bool


class ApiKeyCreate(BaseModel):
    """A new API key of the caller's organisation."""

    label: str = Field(min_length=1, max_length=200, examples=["nightly export"])
    roles: list[Role] = Field(min_length=1, examples=[["analyst"]])
    scopes: list[Scope] = Field(
        default_factory=list, description="Limit data reads to these scopes (empty: no limit)"
    )
    days: int = Field(default=90, ge=1, description="Lifetime in days (at most the server's max)")

    model_config = ConfigDict(extra="forbid")


class ApiKeyPublic(BaseModel):
    """An API key (never its secret)."""

    key_id: str
    org_id: str
    created_by: str
    label: str
    roles: list[Role]
    scopes: list[Scope]
    expires_at_ms: int
    created_at_ms: int
    revoked: bool


class ApiKeyCreatedPublic(ApiKeyPublic):
    """A new API key with its secret, shown this once."""

    key: str = Field(description="Send as X-API-Key or as a bearer token; it is not shown again")
