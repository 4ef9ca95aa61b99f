"""Authorisation checks the routes share: who administers an organisation, and data access.

Data reads go through :func:`require_access`, which asks the kernel's
:func:`roadledger.identity.grants.authorize` (ownership or a live grant, role, key scope),
writes the read to the audit log (committed before the route returns any data) and returns
what allowed it.
"""

from __future__ import annotations

import asyncpg

from contracts.access import OrgKind, Role, Scope
from roadledger.audit.record import record_data_access
from roadledger.identity.errors import NotPermitted
from roadledger.identity.grants import UnknownDevice, authorize
from roadledger.identity.principal import Principal

__all__ = ["is_operator_admin", "require_access", "require_org_admin"]


def is_operator_admin(principal: Principal) -> bool:
    """An admin of an operator organisation: manages every organisation."""
    return principal.org_kind == OrgKind.OPERATOR and principal.has(Role.ADMIN)


def require_org_admin(principal: Principal, org_id: str) -> None:
    """Pass when the caller administers ``org_id`` (its admin, or an operator admin)."""
    if is_operator_admin(principal):
        return
    if principal.org_id == org_id and principal.has(Role.ADMIN):
        return
    raise NotPermitted(f"only an admin of {org_id!r} (or of the operator) may do this")


async def require_access(
    pool: asyncpg.Pool, principal: Principal, device_id: str, scope: Scope, *, action: str
) -> str:
    """``"owner"`` or the id of the grant that lets ``principal`` read ``scope`` of
    ``device_id`` now; raises 404/403 kinds otherwise (see ``authorize``). ``action`` names
    what is read (the route, e.g. ``"GET /v1/vehicles/{device_id}/track"``); the read is in
    the audit log when this returns. A refused attempt is in the audit log too (outcome
    ``forbidden`` or ``not_found``, for the owner to see), before the refusal is raised."""
    try:
        allowed_by = await authorize(pool, principal, device_id, scope)
    except (NotPermitted, UnknownDevice) as refused:
        outcome = "forbidden" if isinstance(refused, NotPermitted) else "not_found"
        await record_data_access(pool, principal, device_id, scope, None, action, outcome=outcome)
        raise
    await record_data_access(pool, principal, device_id, scope, allowed_by, action)
    return allowed_by
