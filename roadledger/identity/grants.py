"""Grants: the owner of devices opens scopes on them to another organisation, and the one
question every data read asks, :func:`authorize`.

Access to a device's data for a scope is allowed when the caller reads for a data role
(``contracts.access.DATA_ROLES``), an API key's scopes include it, and either

- the caller's organisation owns the device (``"owner"``), or
- a grant to the caller's organisation names the device and the scope, is not revoked, and
  ``valid_from <= now < valid_until`` (the grant's id).

Otherwise: :class:`UnknownDevice` (404) when the device does not exist or was never granted to
the caller's organisation (its existence is not revealed), :class:`NotPermitted` (403) naming
why when a grant exists but does not open it now (expired, revoked, not yet valid, another
scope), or when the role or key scope does not allow it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from contracts.access import DATA_ROLES, Role, Scope
from contracts.errors import NotFound
from roadledger.identity.credentials import new_id
from roadledger.identity.errors import BadIdentity, IdentityError, NotPermitted, UnknownGrant
from roadledger.identity.organisations import get_organisation
from roadledger.identity.principal import Principal

__all__ = [
    "Grant",
    "UnknownDevice",
    "authorize",
    "create_grant",
    "list_grants",
    "revoke_grant",
]

_COLUMNS = (
    "grant_id, owner_org, grantee_org, scopes, device_ids, valid_from, valid_until, purpose, "
    "created_by, created_at, revoked_at, revoked_by"
)
MAX_DEVICES = 10_000


class UnknownDevice(IdentityError, NotFound):
    """No such device visible to the caller."""


def _ms(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant as stored."""

    grant_id: str
    owner_org: str
    grantee_org: str
    scopes: frozenset[Scope]
    device_ids: tuple[str, ...]
    valid_from_ms: int
    valid_until_ms: int
    purpose: str
    created_by: str
    created_at_ms: int
    revoked_at_ms: int | None
    revoked_by: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Grant:
        return cls(
            row["grant_id"],
            row["owner_org"],
            row["grantee_org"],
            frozenset(Scope(s) for s in row["scopes"]),
            tuple(row["device_ids"]),
            int(row["valid_from"].timestamp() * 1000),
            int(row["valid_until"].timestamp() * 1000),
            row["purpose"],
            row["created_by"],
            int(row["created_at"].timestamp() * 1000),
            _ms(row["revoked_at"]),
            row["revoked_by"],
        )

    def status(self, now_ms: int) -> str:
        """``active``, ``revoked``, ``expired`` or ``pending`` (not yet valid) at ``now_ms``."""
        if self.revoked_at_ms is not None:
            return "revoked"
        if now_ms >= self.valid_until_ms:
            return "expired"
        if now_ms < self.valid_from_ms:
            return "pending"
        return "active"


def _scopes(values: Iterable[str]) -> list[str]:
    found = set()
    for value in values:
        try:
            found.add(Scope(value))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise BadIdentity(f"scopes: {value!r} is not one of {known}") from None
    if not found:
        raise BadIdentity("scopes: at least one")
    return sorted(found)


async def create_grant(
    conn: asyncpg.Connection,
    owner: Principal,
    grantee_org: str,
    scopes: Iterable[str],
    device_ids: Sequence[str],
    valid_from_ms: int,
    valid_until_ms: int,
    purpose: str,
) -> Grant:
    """Open ``scopes`` on the owner's ``device_ids`` to ``grantee_org`` for the period."""
    if not owner.has(Role.ADMIN):
        raise NotPermitted("only an admin of the owning organisation grants access")
    checked = _scopes(scopes)
    devices = sorted(set(device_ids))
    if not devices or len(devices) > MAX_DEVICES:
        raise BadIdentity(f"device_ids: 1-{MAX_DEVICES} devices")
    if valid_until_ms <= valid_from_ms:
        raise BadIdentity("valid_until: must be after valid_from")
    if not purpose.strip() or len(purpose) > 500:
        raise BadIdentity("purpose: 1-500 characters")
    if grantee_org == owner.org_id:
        raise BadIdentity("grantee_org: an organisation already sees its own devices")
    await get_organisation(conn, grantee_org)
    owned = await conn.fetch(
        "SELECT device_id FROM devices WHERE device_id = ANY ($1) AND owner_org = $2",
        devices,
        owner.org_id,
    )
    missing = sorted(set(devices) - {row["device_id"] for row in owned})
    if missing:
        raise UnknownDevice(f"device_ids: {missing[0]!r} is not a device of {owner.org_id!r}")
    row = await conn.fetchrow(
        "INSERT INTO access_grants (grant_id, owner_org, grantee_org, scopes, device_ids, "  # noqa: S608
        "valid_from, valid_until, purpose, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        f"RETURNING {_COLUMNS}",
        new_id("g"),
        owner.org_id,
        grantee_org,
        checked,
        devices,
        datetime.fromtimestamp(valid_from_ms / 1000, UTC),
        datetime.fromtimestamp(valid_until_ms / 1000, UTC),
        purpose,
        owner.subject,
    )
    return Grant.from_row(row)


async def revoke_grant(conn: asyncpg.Connection, owner: Principal, grant_id: str) -> Grant:
    """Revoke one of the owner's grants now (again: unchanged)."""
    if not owner.has(Role.ADMIN):
        raise NotPermitted("only an admin of the owning organisation revokes access")
    row = await conn.fetchrow(
        "UPDATE access_grants SET revoked_at = coalesce(revoked_at, now()), "  # noqa: S608
        "revoked_by = coalesce(revoked_by, $3) WHERE grant_id = $1 AND owner_org = $2 "
        f"RETURNING {_COLUMNS}",
        grant_id,
        owner.org_id,
        owner.subject,
    )
    if row is None:
        raise UnknownGrant(f"grant {grant_id!r} is not one of {owner.org_id!r}'s")
    return Grant.from_row(row)


async def list_grants(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: str, *, given: bool = True
) -> list[Grant]:
    """The grants ``org_id`` gave (``given``) or received, newest first."""
    column = "owner_org" if given else "grantee_org"
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM access_grants WHERE {column} = $1 "  # noqa: S608
        "ORDER BY created_at DESC, grant_id",
        org_id,
    )
    return [Grant.from_row(row) for row in rows]


async def authorize(
    conn: asyncpg.Connection | asyncpg.Pool,
    principal: Principal,
    device_id: str,
    scope: Scope,
    *,
    now_ms: int | None = None,
) -> str:
    """What allows ``principal`` to read ``scope`` of ``device_id`` now: ``"owner"`` or the
    grant id. Raises as the module docstring says."""
    if not principal.has(*DATA_ROLES):
        raise NotPermitted(
            f"reading {scope} needs one of the roles admin, analyst, auditor, insurer"
        )
    if not principal.may_use(scope):
        raise NotPermitted(f"this API key is not scoped for {scope}")
    owner = await conn.fetchval("SELECT owner_org FROM devices WHERE device_id = $1", device_id)
    if owner is None:
        raise UnknownDevice(f"no device {device_id!r} is visible to you")
    if owner == principal.org_id:
        return "owner"
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM access_grants WHERE grantee_org = $1 AND owner_org = $2 "  # noqa: S608
        "AND device_ids @> ARRAY[$3]::text[]",
        principal.org_id,
        owner,
        device_id,
    )
    if not rows:
        raise UnknownDevice(f"no device {device_id!r} is visible to you")
    now = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    grants = [Grant.from_row(row) for row in rows]
    for grant in grants:
        if grant.status(now) == "active" and scope in grant.scopes:
            return grant.grant_id
    reasons = sorted({f"{g.grant_id}: {g.status(now)}" if g.status(now) != "active"
                      else f"{g.grant_id}: not for {scope}" for g in grants})  # fmt: skip
    raise NotPermitted(f"no grant opens {scope} of {device_id!r} now ({'; '.join(reasons)})")
