"""Logins: password to session tokens, refresh with rotation, revoke, and who a token is.

A login checks the rate limit first: a username with ``max_failures`` failed logins in the
window, or a client with four times as many, gets :class:`TooManyLogins` with the seconds until
the oldest failure ages out, before the password is even checked (so guessing stays slow even
for the right password). Failures are recorded whether or not the username exists, and an
unknown username costs one argon2 verification like a known one.

A refresh token is single use: refreshing rotates both tokens. Presenting a refresh token that
was already rotated away is a sign it was stolen: the whole session is revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from contracts.access import OrgKind, Role
from roadledger.identity.credentials import (
    ACCESS_PREFIX,
    REFRESH_PREFIX,
    new_id,
    new_token,
    secret_hash,
)
from roadledger.identity.errors import BadCredentials, TooManyLogins
from roadledger.identity.passwords import hash_password, needs_rehash, verify_password
from roadledger.identity.principal import Principal

__all__ = ["LoginPolicy", "Tokens", "login", "principal_of_token", "refresh", "revoke"]


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """Token lifetimes and the failed-login limit (from the settings)."""

    access_s: int = 900
    refresh_s: int = 30 * 86_400
    max_failures: int = 5
    window_s: int = 900


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a login or a refresh hands out, once."""

    session_id: str
    access_token: str
    access_expires_in_s: int
    refresh_token: str


def _now() -> datetime:
    return datetime.now(UTC)


async def _check_rate(
    conn: asyncpg.Connection, username: str, client: str, policy: LoginPolicy
) -> None:
    since = _now() - timedelta(seconds=policy.window_s)
    await conn.execute("DELETE FROM login_failures WHERE failed_at < $1", since)
    for column, value, limit in (
        ("username", username, policy.max_failures),
        ("client", client, policy.max_failures * 4),
    ):
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, min(failed_at) AS oldest FROM login_failures "  # noqa: S608
            f"WHERE {column} = $1 AND failed_at >= $2",
            value,
            since,
        )
        if row["n"] >= limit:
            wait = row["oldest"] + timedelta(seconds=policy.window_s) - _now()
            raise TooManyLogins(
                f"too many failed logins for this {column}; try again later",
                max(1, int(wait.total_seconds()) + 1),
            )


async def _open_session(conn: asyncpg.Connection, member_id: str, policy: LoginPolicy) -> Tokens:
    session_id = new_id("s")
    access, access_hash = new_token(ACCESS_PREFIX)
    refresh_token, refresh_hash = new_token(REFRESH_PREFIX)
    now = _now()
    await conn.execute(
        "INSERT INTO api_sessions (session_id, member_id, access_hash, access_expires_at, "
        "refresh_hash, refresh_expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        session_id,
        member_id,
        access_hash,
        now + timedelta(seconds=policy.access_s),
        refresh_hash,
        now + timedelta(seconds=policy.refresh_s),
    )
    return Tokens(session_id, access, policy.access_s, refresh_token)


async def login(
    pool: asyncpg.Pool, username: str, password: str, client: str, policy: LoginPolicy
) -> tuple[Tokens, str]:
    """Check the password and open a session: (its tokens, the member id).

    Raises :class:`TooManyLogins` or :class:`BadCredentials` (which part was wrong is not
    said)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await _check_rate(conn, username, client, policy)
        row = await conn.fetchrow(
            "SELECT m.member_id, m.password_hash FROM members m "
            "WHERE m.username = $1 AND m.disabled_at IS NULL",
            username,
        )
        stored: str | None = row["password_hash"] if row is not None else None
        matched = verify_password(stored, password)  # as slow for an unknown username
        if row is None or stored is None or not matched:
            await conn.execute(
                "INSERT INTO login_failures (username, client) VALUES ($1, $2)",
                username,
                client,
            )
            raise BadCredentials("wrong username or password")
        async with conn.transaction():
            if needs_rehash(stored):
                await conn.execute(
                    "UPDATE members SET password_hash = $2 WHERE member_id = $1",
                    row["member_id"],
                    hash_password(password),
                )
            await conn.execute("DELETE FROM login_failures WHERE username = $1", username)
            return await _open_session(conn, row["member_id"], policy), row["member_id"]


async def refresh(pool: asyncpg.Pool, refresh_token: str, policy: LoginPolicy) -> Tokens:
    """Rotate a session's tokens. A refresh token used before revokes its session (it was
    copied); one that opens nothing now is :class:`BadCredentials`."""
    digest = secret_hash(refresh_token)
    async with pool.acquire() as conn:
        reused = await conn.fetchval(
            "SELECT session_id FROM api_refresh_used WHERE refresh_hash = $1", digest
        )
        if reused is not None:
            await revoke(conn, reused)  # committed before the refusal
            raise BadCredentials("the refresh token was used before: the session is revoked")
        async with conn.transaction():
            return await _rotate(conn, digest, policy)


async def _rotate(conn: asyncpg.Connection, digest: bytes, policy: LoginPolicy) -> Tokens:
    """Give the session holding refresh hash ``digest`` new tokens; remember the old hash."""
    access, access_hash = new_token(ACCESS_PREFIX)
    new_refresh, refresh_hash = new_token(REFRESH_PREFIX)
    now = _now()
    row = await conn.fetchrow(
        "UPDATE api_sessions s SET access_hash = $2, access_expires_at = $3, "
        "refresh_hash = $4, refresh_expires_at = $5 "
        "FROM members m WHERE s.refresh_hash = $1 AND s.revoked_at IS NULL "
        "AND s.refresh_expires_at > $6 AND m.member_id = s.member_id "
        "AND m.disabled_at IS NULL RETURNING s.session_id",
        digest,
        access_hash,
        now + timedelta(seconds=policy.access_s),
        refresh_hash,
        now + timedelta(seconds=policy.refresh_s),
        now,
    )
    if row is None:
        raise BadCredentials("the refresh token is unknown, expired or revoked")
    await conn.execute(
        "INSERT INTO api_refresh_used (refresh_hash, session_id) VALUES ($1, $2)",
        digest,
        row["session_id"],
    )
    return Tokens(row["session_id"], access, policy.access_s, new_refresh)


async def revoke(conn: asyncpg.Connection | asyncpg.Pool, session_id: str) -> None:
    """End a session now (its access and refresh tokens stop working)."""
    await conn.execute(
        "UPDATE api_sessions SET revoked_at = now() WHERE session_id = $1 AND revoked_at IS NULL",
        session_id,
    )


async def principal_of_token(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> Principal:
    """The member behind a live access token, or :class:`BadCredentials`."""
    row = await conn.fetchrow(
        "SELECT s.session_id, s.access_expires_at, m.member_id, m.username, m.roles, "
        "o.org_id, o.kind "
        "FROM api_sessions s JOIN members m ON m.member_id = s.member_id "
        "JOIN organisations o ON o.org_id = m.org_id "
        "WHERE s.access_hash = $1 AND s.revoked_at IS NULL AND s.access_expires_at > now() "
        "AND m.disabled_at IS NULL",
        secret_hash(token),
    )
    if row is None:
        raise BadCredentials("the access token is unknown, expired or revoked")
    return Principal(
        subject=row["member_id"],
        org_id=row["org_id"],
        org_kind=OrgKind(row["kind"]),
        roles=frozenset(Role(r) for r in row["roles"]),
        via="session",
        username=row["username"],
        session_id=row["session_id"],
        expires_at=row["access_expires_at"],
    )
