"""The events the API records, built from what a route knows (ids only), and written through
:func:`roadledger.audit.log.append_events`."""

from __future__ import annotations

import asyncpg

from contracts.access import Scope
from roadledger.audit.events import AuditEvent, EventKind, by_principal, username_ref
from roadledger.audit.log import append_events
from roadledger.identity.principal import Principal

__all__ = ["record", "record_data_access", "record_login", "record_login_failed", "record_refresh"]


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


async def record_login_failed(pool: asyncpg.Pool, username: str, outcome: str, action: str) -> None:
    """A refused login (``outcome``: ``bad_credentials`` or ``rate_limited``): the username
    only as a hash, and the password never."""
    event = AuditEvent(
        event=EventKind.LOGIN_FAILED, actor=username_ref(username), action=action, outcome=outcome
    )
    await record(pool, event)


async def record_data_access(
    pool: asyncpg.Pool,
    principal: Principal,
    device_id: str,
    scope: Scope,
    allowed_by: str,
    action: str,
) -> None:
    """A read of ``scope`` of ``device_id`` that ``allowed_by`` (``"owner"`` or a grant id)
    allowed, committed before the data is returned."""
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
        )
        await append_events(conn, [event])
