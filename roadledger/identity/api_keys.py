"""API keys: an organisation's machine credentials, scoped, expiring, revocable.

A key carries roles (never more than its creator holds) and scopes (which grant scopes its
data reads may use; empty means all its roles allow). The full key is returned once by
:func:`create_api_key`; only the SHA-256 of its secret is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from contracts.access import OrgKind, Role, Scope
from roadledger.identity.credentials import new_api_key, secret_hash, secrets_equal, split_api_key
from roadledger.identity.errors import BadCredentials, BadIdentity, NotPermitted, UnknownApiKey
from roadledger.identity.members import check_roles
from roadledger.identity.principal import Principal

__all__ = ["ApiKey", "create_api_key", "list_api_keys", "principal_of_api_key", "revoke_api_key"]

_COLUMNS = "key_id, org_id, created_by, label, roles, scopes, expires_at, created_at, revoked_at"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored (never its secret)."""

    key_id: str
    org_id: str
    created_by: str
    label: str
    roles: frozenset[Role]
    scopes: frozenset[Scope]
    expires_at_ms: int
    created_at_ms: int
    revoked: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKey:
        return cls(
            row["key_id"],
            row["org_id"],
            row["created_by"],
            row["label"],
            frozenset(Role(r) for r in row["roles"]),
            frozenset(Scope(s) for s in row["scopes"]),
            int(row["expires_at"].timestamp() * 1000),
            int(row["created_at"].timestamp() * 1000),
            row["revoked_at"] is not None,
        )


def _check_scopes(scopes: Iterable[str]) -> frozenset[Scope]:
    found = set()
    for scope in scopes:
        try:
            found.add(Scope(scope))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise BadIdentity(f"scopes: {scope!r} is not one of {known}") from None
    return frozenset(found)


async def create_api_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    creator: Principal,
    label: str,
    roles: Iterable[str],
    scopes: Iterable[str],
    days: int,
    max_days: int,
) -> tuple[ApiKey, str]:
    """Create a key of the creator's organisation: (the key, the full secret to show once)."""
    if not label.strip() or len(label) > 200:
        raise BadIdentity("label: 1-200 characters")
    if not 1 <= days <= max_days:
        raise BadIdentity(f"days: 1-{max_days}")
    wanted = check_roles(roles)
    if not wanted <= creator.roles:
        extra = ", ".join(sorted(wanted - creator.roles))
        raise NotPermitted(f"roles: a key cannot hold roles its creator lacks ({extra})")
    key_id, full, digest = new_api_key()
    row = await conn.fetchrow(
        "INSERT INTO api_keys (key_id, org_id, created_by, label, secret_hash, roles, scopes, "  # noqa: S608
        f"expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}",
        key_id,
        creator.org_id,
        creator.subject,
        label,
        digest,
        sorted(wanted),
        sorted(_check_scopes(scopes)),
        datetime.now(UTC) + timedelta(days=days),
    )
    return ApiKey.from_row(row), full


async def list_api_keys(conn: asyncpg.Connection | asyncpg.Pool, org_id: str) -> list[ApiKey]:
    """The organisation's keys, newest first (revoked and expired ones included)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC",  # noqa: S608
        org_id,
    )
    return [ApiKey.from_row(row) for row in rows]


async def revoke_api_key(conn: asyncpg.Connection | asyncpg.Pool, org_id: str, key_id: str) -> None:
    """Revoke a key of ``org_id`` now (revoking twice is fine)."""
    found = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
        "WHERE org_id = $1 AND key_id = $2 RETURNING key_id",
        org_id,
        key_id,
    )
    if found is None:
        raise UnknownApiKey(f"API key {key_id!r} is not one of {org_id!r}'s")


async def principal_of_api_key(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> Principal:
    """The organisation acting through a live API key, or :class:`BadCredentials`."""
    parts = split_api_key(key)
    if parts is None:
        raise BadCredentials("the API key is malformed")
    key_id, secret = parts
    row = await conn.fetchrow(
        "SELECT k.secret_hash, k.roles, k.scopes, k.expires_at, o.org_id, o.kind, "
        "k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' AS stale "
        "FROM api_keys k JOIN organisations o ON o.org_id = k.org_id "
        "WHERE k.key_id = $1 AND k.revoked_at IS NULL AND k.expires_at > now()",
        key_id,
    )
    if row is None or not secrets_equal(bytes(row["secret_hash"]), secret_hash(secret)):
        raise BadCredentials("the API key is unknown, expired or revoked")
    # At most one write a minute per key: a busy key must not make every request a write,
    # nor a round trip to find there is nothing to write (bench/api_load.py).
    if row["stale"]:
        await conn.execute(
            "UPDATE api_keys SET last_used_at = now() WHERE key_id = $1 "
            "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            key_id,
        )
    return Principal(
        subject=key_id,
        org_id=row["org_id"],
        org_kind=OrgKind(row["kind"]),
        roles=frozenset(Role(r) for r in row["roles"]),
        via="api_key",
        scopes=frozenset(Scope(s) for s in row["scopes"]) or None,
        expires_at=row["expires_at"],
    )
