"""Which devices an organisation sees, and who may change one.

An organisation sees the devices it owns (every scope) and those a grant to it names while the
grant is active (the scopes of its active grants). Reading device details needs a data role
(``contracts.access.DATA_ROLES``); changing a device (keys, MQTT credential) needs an admin of
the owning organisation. As in :func:`roadledger.identity.grants.authorize`, a device the
caller's organisation neither owns nor was ever granted is :class:`UnknownDevice` (404, its
existence not revealed); one granted only by grants that are not active now is 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from contracts.access import DATA_ROLES, Role, Scope
from roadledger.identity.errors import AlreadyExists, NotPermitted
from roadledger.identity.grants import UnknownDevice
from roadledger.identity.principal import Principal

__all__ = [
    "VisibleDevice",
    "device_for_admin",
    "list_visible_devices",
    "refuse_taken",
    "visible_device",
]

ALL_SCOPES = tuple(sorted(Scope))

# The grants active now, one row per (device, grant, scope) they open.
_ACTIVE_GRANTS = """
    SELECT d AS device_id, g.grant_id, s AS scope
      FROM access_grants g, unnest(g.device_ids) AS d, unnest(g.scopes) AS s
     WHERE g.grantee_org = $1 AND g.revoked_at IS NULL
       AND g.valid_from <= now() AND now() < g.valid_until
"""
_VISIBLE = f"""
    WITH granted AS ({_ACTIVE_GRANTS})
    SELECT d.device_id, d.owner_org, d.kind, d.vin, d.vehicle_class, d.created_at,
           coalesce(array_agg(DISTINCT g.grant_id) FILTER (WHERE g.grant_id IS NOT NULL),
                    '{{}}') AS grant_ids,
           coalesce(array_agg(DISTINCT g.scope) FILTER (WHERE g.scope IS NOT NULL),
                    '{{}}') AS scopes
      FROM devices d LEFT JOIN granted g USING (device_id)
     WHERE (d.owner_org = $1 OR g.grant_id IS NOT NULL)
"""  # noqa: S608 - constants only


@dataclass(frozen=True, slots=True)
class VisibleDevice:
    """A device as the caller's organisation sees it: ``access`` ``"owner"`` or ``"grant"``,
    with the active grants (none for the owner) and the scopes they open."""

    device_id: str
    owner_org: str
    kind: str
    vin: str | None
    vehicle_class: str | None
    created_at_ms: int
    access: str
    grant_ids: tuple[str, ...]
    scopes: tuple[Scope, ...]

    @classmethod
    def from_row(cls, row: asyncpg.Record, org_id: str) -> VisibleDevice:
        owner = row["owner_org"] == org_id
        return cls(
            device_id=row["device_id"],
            owner_org=row["owner_org"],
            kind=row["kind"],
            vin=row["vin"],
            vehicle_class=row["vehicle_class"],
            created_at_ms=int(row["created_at"].timestamp() * 1000),
            access="owner" if owner else "grant",
            grant_ids=() if owner else tuple(sorted(row["grant_ids"])),
            scopes=ALL_SCOPES if owner else tuple(sorted(Scope(s) for s in row["scopes"])),
        )


def _require_data_role(principal: Principal) -> None:
    if not principal.has(*DATA_ROLES):
        raise NotPermitted(
            "reading devices needs one of the roles admin, analyst, auditor, insurer"
        )


async def list_visible_devices(
    conn: asyncpg.Connection | asyncpg.Pool,
    principal: Principal,
    *,
    after: str | None,
    limit: int,
) -> list[VisibleDevice]:
    """The devices the caller's organisation sees, by device id, after ``after``."""
    _require_data_role(principal)
    rows = await conn.fetch(
        f"{_VISIBLE} AND ($2::text IS NULL OR d.device_id > $2) "
        "GROUP BY d.device_id ORDER BY d.device_id LIMIT $3",
        principal.org_id,
        after,
        limit,
    )
    return [VisibleDevice.from_row(row, principal.org_id) for row in rows]


async def visible_device(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, device_id: str
) -> VisibleDevice:
    """``device_id`` as the caller's organisation sees it (refusals: module docstring)."""
    _require_data_role(principal)
    row = await conn.fetchrow(
        f"{_VISIBLE} AND d.device_id = $2 GROUP BY d.device_id", principal.org_id, device_id
    )
    if row is not None:
        return VisibleDevice.from_row(row, principal.org_id)
    await _refuse_unseen(conn, principal, device_id)
    raise AssertionError("unreachable")


async def device_for_admin(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, device_id: str
) -> str:
    """Pass (returning the owner) when the caller is an admin of ``device_id``'s owner."""
    owner: str | None = await conn.fetchval(
        "SELECT owner_org FROM devices WHERE device_id = $1", device_id
    )
    if owner is None or owner != principal.org_id:
        await _refuse_unseen(conn, principal, device_id, visible_msg="only its owner changes it")
    if not principal.has(Role.ADMIN):
        raise NotPermitted(f"only an admin of {principal.org_id!r} changes its devices")
    assert owner is not None
    return owner


async def refuse_taken(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, device_id: str
) -> None:
    """:class:`AlreadyExists` when another organisation registered ``device_id`` (without
    saying which: the registry's own refusal would name it)."""
    owner = await conn.fetchval("SELECT owner_org FROM devices WHERE device_id = $1", device_id)
    if owner is not None and owner != principal.org_id:
        raise AlreadyExists(f"device_id: {device_id!r} is taken")


async def _refuse_unseen(
    conn: asyncpg.Connection | asyncpg.Pool,
    principal: Principal,
    device_id: str,
    *,
    visible_msg: str | None = None,
) -> None:
    """Raise for a device the caller does not own: 403 when some grant to its organisation
    names it (``visible_msg``, or why none is active), else 404."""
    rows = await conn.fetch(
        "SELECT g.grant_id, g.revoked_at, g.valid_from, g.valid_until FROM access_grants g "
        "JOIN devices d ON d.device_id = $2 AND d.owner_org = g.owner_org "
        "WHERE g.grantee_org = $1 AND g.device_ids @> ARRAY[$2]::text[] ORDER BY g.grant_id",
        principal.org_id,
        device_id,
    )
    if not rows:
        raise UnknownDevice(f"no device {device_id!r} is visible to you")
    if visible_msg is not None:
        raise NotPermitted(f"device {device_id!r}: {visible_msg}")
    now = datetime.now(UTC)
    reasons = [
        f"{row['grant_id']}: "
        + ("revoked" if row["revoked_at"] is not None
           else "expired" if now >= row["valid_until"] else "pending")
        for row in rows
    ]  # fmt: skip
    raise NotPermitted(f"no grant to you is active for {device_id!r} now ({'; '.join(reasons)})")
