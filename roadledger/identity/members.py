"""Members: the people who log in for an organisation, with their roles."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from contracts.access import Role
from roadledger.identity.credentials import new_id
from roadledger.identity.errors import AlreadyExists, BadIdentity, UnknownMember
from roadledger.identity.organisations import get_organisation
from roadledger.identity.passwords import MIN_PASSWORD_LENGTH, hash_password

__all__ = ["Member", "check_roles", "create_member", "get_member", "list_members"]

USERNAME = re.compile(r"^[A-Za-z0-9._@-]{3,64}$")
_COLUMNS = "member_id, org_id, username, roles, created_at, disabled_at"


@dataclass(frozen=True, slots=True)
class Member:
    """A member as stored (never the password hash)."""

    member_id: str
    org_id: str
    username: str
    roles: frozenset[Role]
    created_at_ms: int
    disabled: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Member:
        return cls(
            row["member_id"],
            row["org_id"],
            row["username"],
            frozenset(Role(r) for r in row["roles"]),
            int(row["created_at"].timestamp() * 1000),
            row["disabled_at"] is not None,
        )


def check_roles(roles: Iterable[str]) -> frozenset[Role]:
    """The roles named, or :class:`BadIdentity` naming the first unknown one."""
    found = set()
    for role in roles:
        try:
            found.add(Role(role))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise BadIdentity(f"roles: {role!r} is not one of {known}") from None
    if not found:
        raise BadIdentity("roles: at least one")
    return frozenset(found)


async def create_member(
    conn: asyncpg.Connection,
    org_id: str,
    username: str,
    password: str,
    roles: Iterable[str],
) -> Member:
    """Create a member of ``org_id``; the password is stored as its argon2id hash only."""
    if not USERNAME.match(username):
        raise BadIdentity(f"username: {username!r} is not 3-64 of A-Z a-z 0-9 . _ @ -")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadIdentity(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise BadIdentity("password: at most 1024 characters")
    checked = check_roles(roles)
    await get_organisation(conn, org_id)
    row = await conn.fetchrow(
        "INSERT INTO members (member_id, org_id, username, password_hash, roles) "  # noqa: S608
        f"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING RETURNING {_COLUMNS}",
        new_id("m"),
        org_id,
        username,
        hash_password(password),
        sorted(checked),
    )
    if row is None:
        raise AlreadyExists(f"username {username!r} is taken")
    return Member.from_row(row)


async def get_member(conn: asyncpg.Connection | asyncpg.Pool, member_id: str) -> Member:
    """The member, or :class:`UnknownMember`."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM members WHERE member_id = $1", member_id)  # noqa: S608
    if row is None:
        raise UnknownMember(f"member {member_id!r} does not exist")
    return Member.from_row(row)


async def list_members(conn: asyncpg.Connection | asyncpg.Pool, org_id: str) -> list[Member]:
    """The members of ``org_id``, by username."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM members WHERE org_id = $1 ORDER BY username",  # noqa: S608
        org_id,
    )
    return [Member.from_row(row) for row in rows]
