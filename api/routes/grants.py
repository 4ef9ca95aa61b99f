"""Grants: an owner opens scopes on its vehicles to another organisation, and revokes them."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query

from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.models.grants import GrantCreate, GrantPublic
from roadledger.audit.events import AuditEvent, EventKind, by_principal
from roadledger.audit.record import record
from roadledger.identity.errors import UnknownGrant
from roadledger.identity.grants import Grant, create_grant, list_grants, revoke_grant
from roadledger.identity.principal import Principal

__all__ = ["router"]

router = APIRouter(prefix="/v1/grants", tags=["grants"], responses=ERROR_RESPONSES)


def _public(grant: Grant) -> GrantPublic:
    return GrantPublic(
        grant_id=grant.grant_id,
        owner_org=grant.owner_org,
        grantee_org=grant.grantee_org,
        scopes=sorted(grant.scopes),
        device_ids=list(grant.device_ids),
        valid_from_ms=grant.valid_from_ms,
        valid_until_ms=grant.valid_until_ms,
        purpose=grant.purpose,
        created_by=grant.created_by,
        created_at_ms=grant.created_at_ms,
        revoked_at_ms=grant.revoked_at_ms,
        revoked_by=grant.revoked_by,
        status=grant.status(int(time.time() * 1000)),
    )


def _event(principal: Principal, kind: EventKind, grant: Grant, action: str) -> AuditEvent:
    """The audit entry of a grant change: its owner, id, scopes and grantee."""
    return by_principal(
        principal,
        kind,
        owner_org=grant.owner_org,
        grant_id=grant.grant_id,
        scope=",".join(sorted(grant.scopes)),
        target=grant.grantee_org,
        action=action,
    )


@router.post("", status_code=201, response_model=GrantPublic)
async def grant(body: GrantCreate, principal: PrincipalDep, pool: PoolDep) -> GrantPublic:
    """Open ``scopes`` on some of the caller's vehicles to ``grantee_org`` for a period and a
    stated purpose (an admin of the owning organisation)."""
    async with pool.acquire() as conn, conn.transaction():
        created = await create_grant(
            conn,
            principal,
            body.grantee_org,
            body.scopes,
            body.device_ids,
            body.valid_from_ms,
            body.valid_until_ms,
            body.purpose,
        )
        await record(conn, _event(principal, EventKind.GRANT_CREATE, created, "POST /v1/grants"))
    return _public(created)


@router.get("", response_model=list[GrantPublic])
async def grants(
    principal: PrincipalDep,
    pool: PoolDep,
    direction: Literal["given", "received"] = Query(
        default="given", description="Grants the caller's organisation gave, or received"
    ),
) -> list[GrantPublic]:
    """The grants of the caller's organisation, newest first."""
    found = await list_grants(pool, principal.org_id, given=direction == "given")
    return [_public(g) for g in found]


@router.get("/{grant_id}", response_model=GrantPublic)
async def one_grant(grant_id: str, principal: PrincipalDep, pool: PoolDep) -> GrantPublic:
    """One grant the caller's organisation gave or received."""
    for given in (True, False):
        for found in await list_grants(pool, principal.org_id, given=given):
            if found.grant_id == grant_id:
                return _public(found)
    raise UnknownGrant(f"grant {grant_id!r} is not one of {principal.org_id!r}'s")


@router.post("/{grant_id}/revoke", response_model=GrantPublic)
async def revoke(grant_id: str, principal: PrincipalDep, pool: PoolDep) -> GrantPublic:
    """Revoke a grant now (an admin of the owning organisation); reads it allowed stop."""
    async with pool.acquire() as conn, conn.transaction():
        revoked = await revoke_grant(conn, principal, grant_id)
        action = "POST /v1/grants/{grant_id}/revoke"
        await record(conn, _event(principal, EventKind.GRANT_REVOKE, revoked, action))
    return _public(revoked)
