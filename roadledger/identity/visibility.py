"""What a caller may see of many vehicles at once: the list form of :func:`authorize`.

A single-vehicle read asks :func:`roadledger.identity.grants.authorize`. A list (warnings, a
live feed) cannot ask it row by row, so :func:`visibility` gathers the same answer once per
request: the caller's own organisation (it sees its devices), the devices a grant for the
scope opens to it now, and, for an authority, the jurisdictions it speaks for (its own and its
district units', :func:`roadledger.identity.organisations.descendants`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from contracts.access import DATA_ROLES, OrgKind, Scope
from contracts.rules.geometry import Vertex
from roadledger.identity.errors import NotPermitted
from roadledger.identity.organisations import descendants
from roadledger.identity.principal import Principal

__all__ = ["Visibility", "jurisdictions", "visibility"]


@dataclass(frozen=True, slots=True)
class Visibility:
    """``org_id`` sees its own devices and ``granted`` (grants for the scope, valid now);
    ``areas`` are the jurisdiction polygons it sees located data in (empty: none)."""

    org_id: str
    granted: tuple[str, ...]
    areas: tuple[tuple[Vertex, ...], ...]


async def jurisdictions(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal
) -> tuple[tuple[Vertex, ...], ...]:
    """The polygons of the caller's authority and its units (none for other kinds)."""
    if principal.org_kind != OrgKind.AUTHORITY:
        return ()
    orgs = await descendants(conn, principal.org_id)
    rows = await conn.fetch(
        "SELECT jurisdiction FROM organisations WHERE org_id = ANY ($1::text[]) "
        "AND kind = 'authority' AND jurisdiction IS NOT NULL ORDER BY org_id",
        orgs,
    )
    return tuple(
        tuple((int(lat), int(lon)) for lat, lon in json.loads(row["jurisdiction"])) for row in rows
    )


async def visibility(
    conn: asyncpg.Connection | asyncpg.Pool,
    principal: Principal,
    scope: Scope,
    *,
    now_ms: int | None = None,
) -> Visibility:
    """What ``principal`` may read of ``scope`` now; :class:`NotPermitted` when its role or
    API key scope allows no such read at all (as ``authorize``)."""
    if not principal.has(*DATA_ROLES):
        raise NotPermitted(
            f"reading {scope} needs one of the roles admin, analyst, auditor, insurer"
        )
    if not principal.may_use(scope):
        raise NotPermitted(f"this API key is not scoped for {scope}")
    now = datetime.fromtimestamp(now_ms / 1000, UTC) if now_ms is not None else datetime.now(UTC)
    rows = await conn.fetch(
        # As authorize: a grant counts only while its owner still owns the device.
        "SELECT DISTINCT d.device_id FROM access_grants g "
        "CROSS JOIN unnest(g.device_ids) AS x (device_id) "
        "JOIN devices d ON d.device_id = x.device_id AND d.owner_org = g.owner_org "
        "WHERE g.grantee_org = $1 AND $2 = ANY (g.scopes) AND g.revoked_at IS NULL "
        "AND g.valid_from <= $3 AND $3 < g.valid_until ORDER BY 1",
        principal.org_id,
        str(scope),
        now,
    )
    return Visibility(
        principal.org_id,
        tuple(row["device_id"] for row in rows),
        await jurisdictions(conn, principal),
    )
