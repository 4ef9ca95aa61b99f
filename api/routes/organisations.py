"""Organisations, their members and their API keys."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.access import is_operator_admin, require_org_admin
from api.deps import PoolDep, PrincipalDep, SettingsDep
from api.errors import ERROR_RESPONSES
from api.models.organisations import (
    ApiKeyCreate,
    ApiKeyCreatedPublic,
    ApiKeyPublic,
    MemberCreate,
    MemberPublic,
    OrganisationCreate,
    OrganisationPublic,
)
from contracts.access import OrgKind, Role
from roadledger.audit.events import EventKind, by_principal
from roadledger.audit.record import record
from roadledger.identity.api_keys import ApiKey, create_api_key, list_api_keys, revoke_api_key
from roadledger.identity.errors import NotPermitted
from roadledger.identity.members import Member, create_member, list_members
from roadledger.identity.organisations import (
    Organisation,
    create_organisation,
    descendants,
    get_organisation,
    list_organisations,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["organisations"], responses=ERROR_RESPONSES)


def _org(org: Organisation) -> OrganisationPublic:
    area = [tuple(v) for v in org.jurisdiction] if org.jurisdiction is not None else None
    return OrganisationPublic(
        org_id=org.org_id,
        name=org.name,
        kind=org.kind,
        parent_id=org.parent_id,
        jurisdiction=area,
        created_at_ms=org.created_at_ms,
    )


def _member(member: Member) -> MemberPublic:
    return MemberPublic(
        member_id=member.member_id,
        org_id=member.org_id,
        username=member.username,
        roles=sorted(member.roles),
        created_at_ms=member.created_at_ms,
        disabled=member.disabled,
    )


def _key(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        key_id=key.key_id,
        org_id=key.org_id,
        created_by=key.created_by,
        label=key.label,
        roles=sorted(key.roles),
        scopes=sorted(key.scopes),
        expires_at_ms=key.expires_at_ms,
        created_at_ms=key.created_at_ms,
        revoked=key.revoked,
    )


@router.post("/organisations", status_code=201, response_model=OrganisationPublic)
async def create_org(
    body: OrganisationCreate, principal: PrincipalDep, pool: PoolDep
) -> OrganisationPublic:
    """Register an organisation. An operator admin registers any; an authority's admin
    registers district units (authorities) under itself or its units."""
    if not is_operator_admin(principal):
        if not (principal.org_kind == OrgKind.AUTHORITY and principal.has(Role.ADMIN)):
            raise NotPermitted("only an operator admin (or an authority admin, for its units)")
        if body.kind != OrgKind.AUTHORITY or body.parent_id is None:
            raise NotPermitted("an authority admin registers district units: kind authority, "
                               "parent_id one of its own")  # fmt: skip
        if body.parent_id not in await descendants(pool, principal.org_id):
            raise NotPermitted(f"parent_id: {body.parent_id!r} is not under {principal.org_id!r}")
    async with pool.acquire() as conn:
        org = await create_organisation(
            conn,
            body.org_id,
            body.name,
            body.kind,
            parent_id=body.parent_id,
            jurisdiction=[list(v) for v in body.jurisdiction] if body.jurisdiction else None,
        )
    return _org(org)


@router.get("/organisations", response_model=list[OrganisationPublic])
async def list_orgs(principal: PrincipalDep, pool: PoolDep) -> list[OrganisationPublic]:
    """Every organisation (the directory a grant is addressed from)."""
    del principal
    return [_org(org) for org in await list_organisations(pool)]


@router.get("/organisations/{org_id}", response_model=OrganisationPublic)
async def get_org(org_id: str, principal: PrincipalDep, pool: PoolDep) -> OrganisationPublic:
    """One organisation."""
    del principal
    return _org(await get_organisation(pool, org_id))


@router.post("/organisations/{org_id}/members", status_code=201, response_model=MemberPublic)
async def add_member(
    org_id: str, body: MemberCreate, principal: PrincipalDep, pool: PoolDep
) -> MemberPublic:
    """Add a member to ``org_id`` (its admin, or an operator admin, logged in)."""
    require_org_admin(principal, org_id)
    if principal.via != "session":
        # A member is a credential: a key making one would outlive its scopes and expiry.
        raise NotPermitted("members are added by a logged-in admin, not an API key")
    async with pool.acquire() as conn:
        member = await create_member(conn, org_id, body.username, body.password, body.roles)
    return _member(member)


@router.get("/organisations/{org_id}/members", response_model=list[MemberPublic])
async def members(org_id: str, principal: PrincipalDep, pool: PoolDep) -> list[MemberPublic]:
    """The members of ``org_id`` (its admin, or an operator admin)."""
    require_org_admin(principal, org_id)
    await get_organisation(pool, org_id)
    return [_member(m) for m in await list_members(pool, org_id)]


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreatedPublic)
async def create_key(
    body: ApiKeyCreate, principal: PrincipalDep, pool: PoolDep, settings: SettingsDep
) -> ApiKeyCreatedPublic:
    """Create an API key of the caller's organisation (an admin, logged in). The key is in
    the answer and never shown again."""
    if principal.via != "session" or not principal.has(Role.ADMIN):
        raise NotPermitted("API keys are created by a logged-in admin")
    async with pool.acquire() as conn, conn.transaction():
        key, full = await create_api_key(
            conn, principal, body.label, body.roles, body.scopes, body.days,
            settings.api_key_max_days,
        )  # fmt: skip
        event = by_principal(
            principal, EventKind.API_KEY_CREATE, target=key.key_id, action="POST /v1/api-keys"
        )
        await record(conn, event)
    return ApiKeyCreatedPublic(**_key(key).model_dump(), key=full)


@router.get("/api-keys", response_model=list[ApiKeyPublic])
async def keys(principal: PrincipalDep, pool: PoolDep) -> list[ApiKeyPublic]:
    """The API keys of the caller's organisation (an admin)."""
    require_org_admin(principal, principal.org_id)
    return [_key(k) for k in await list_api_keys(pool, principal.org_id)]


@router.post("/api-keys/{key_id}/revoke", status_code=204)
async def revoke_key(key_id: str, principal: PrincipalDep, pool: PoolDep) -> Response:
    """Revoke an API key of the caller's organisation now (an admin)."""
    require_org_admin(principal, principal.org_id)
    async with pool.acquire() as conn, conn.transaction():
        await revoke_api_key(conn, principal.org_id, key_id)
        action = "POST /v1/api-keys/{key_id}/revoke"
        await record(conn, by_principal(principal, EventKind.API_KEY_REVOKE, target=key_id,
                                        action=action))  # fmt: skip
    return Response(status_code=204)
