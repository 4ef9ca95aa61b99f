"""The events the API records, built from what a route knows (ids only), and written through
:func:`roadledger.audit.log.append_events`."""

from __future__ import annotations

from dataclasses import replace

import asyncpg

from contracts.access import Scope
from roadledger.audit.events import AuditEvent, EventKind, by_principal, username_ref
from roadledger.audit.log import append_events
from roadledger.identity.credentials import secret_hash
from roadledger.identity.principal import Principal

__all__ = [
    "record",
    "record_data_access",
    "record_login",
    "record_login_failed",
    "record_refresh",
    "record_refresh_refused",
]


async def record(conn: asyncpg.Connection | asyncpg.Pool, *events: AuditEvent) -> list[int]:
    """Append ``events`` (in ``conn``'s transaction when it has one); their leaf indexes."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as own:
            return await append_events(own, events)
    return await append_events(conn, events)


async def _member_event(
    pool: asyncpg.Pool, event: EventKind, session_id: str, action: str
) -> AuditEvent:
    row = await pool.fetchrow(
        "SELECT m.member_id, m.org_id FROM api_sessions s JOIN members m USING (member_id) "
        "WHERE s.session_id = $1",
        session_id,
    )
    return AuditEvent(
        event=event,
        actor=row["member_id"],
        actor_org=row["org_id"],
        via="session",
        target=session_id,
        action=action,
    )


async def record_login(pool: asyncpg.Pool, session_id: str, action: str) -> None:
    """A successful login that opened ``session_id``."""
    await record(pool, await _member_event(pool, EventKind.LOGIN, session_id, action))


async def record_refresh(pool: asyncpg.Pool, session_id: str, action: str) -> None:
    """A refresh that rotated the tokens of ``session_id``."""
    await record(pool, await _member_event(pool, EventKind.TOKEN_REFRESH, session_id, action))


async def record_refresh_refused(pool: asyncpg.Pool, refresh_token: str, action: str) -> None:
    """A refused refresh. A token rotated away and presented again (its session was revoked
    for it: it was copied) names its session and member, outcome ``reused``; any other names
    no one, outcome ``bad_credentials``."""
    session_id = await pool.fetchval(
        "SELECT session_id FROM api_refresh_used WHERE refresh_hash = $1",
        secret_hash(refresh_token),
    )
    if session_id is None:
        event = AuditEvent(
            event=EventKind.TOKEN_REFRESH, actor="unknown", action=action,
            outcome="bad_credentials",
        )  # fmt: skip
    else:
        known = await _member_event(pool, EventKind.TOKEN_REFRESH, session_id, action)
        event = replace(known, outcome="reused")
    await record(pool, event)


async def record_login_failed(pool: asyncpg.Pool, username: str, outcome: str, action: str) -> None:
    """A refused login (``outcome``: ``bad_credentials`` or ``rate_limited``). The password
    never; the member id when the username is a member's (so its organisation sees attempts
    on its members), else only a hash of the username."""
    row = await pool.fetchrow("SELECT member_id, org_id FROM members WHERE username = $1", username)
    event = AuditEvent(
        event=EventKind.LOGIN_FAILED,
        actor=row["member_id"] if row is not None else username_ref(username),
        actor_org=row["org_id"] if row is not None else None,
        action=action,
        outcome=outcome,
    )
    await record(pool, event)


async def record_data_access(
    pool: asyncpg.Pool,
    principal: Principal,
    device_id: str,
    scope: Scope,
    allowed_by: str | None,
    action: str,
    *,
    outcome: str = "ok",
) -> None:
    """A read of ``scope`` of ``device_id`` that ``allowed_by`` (``"owner"`` or a grant id)
    allowed, committed before the data is returned; or a refused one (``allowed_by`` None,
    ``outcome`` ``forbidden`` or ``not_found``), so the owner sees every attempt."""
    async with pool.acquire() as conn, conn.transaction():
        owner = await conn.fetchval("SELECT owner_org FROM devices WHERE device_id = $1", device_id)
        event = by_principal(
            principal,
            EventKind.DATA_ACCESS,
            owner_org=owner,
            device_id=device_id,
            scope=str(scope),
            grant_id=allowed_by,
            action=action,
            outcome=outcome,
        )
        await append_events(conn, [event])
