"""Helpers of the access and audit tests: devices owned by the cast, principals of the cast
(through a real login), and the audit log's rows as the database holds them."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from chain.strict_json import loads_object
from roadledger.identity.logins import principal_of_token
from roadledger.identity.principal import Principal
from tests.integration.api.conftest import login

DAY_MS = 86_400_000


async def add_devices(pool: asyncpg.Pool, owner_org: str, *device_ids: str) -> None:
    """Register vehicles of ``owner_org`` (rows only: no keys are needed to read them)."""
    await pool.executemany(
        "INSERT INTO devices (device_id, owner_org, kind) VALUES ($1, $2, 'vehicle')",
        [(device_id, owner_org) for device_id in device_ids],
    )


async def principal(api: httpx.AsyncClient, pool: asyncpg.Pool, username: str) -> Principal:
    """The principal of a fresh login of ``username``."""
    return await principal_of_token(pool, (await login(api, username))["access_token"])


async def member_id(pool: asyncpg.Pool, username: str) -> str:
    found: str = await pool.fetchval("SELECT member_id FROM members WHERE username = $1", username)
    return found


# The audit log's leaves after an index: a ledger log's entries (roadledger/audit/log.py).
AUDIT_LEAVES = (
    "SELECT leaf_index, entry, leaf_hash FROM ledger_entries "
    "WHERE log_id = (SELECT log_id FROM audit_head) AND leaf_index > $1 ORDER BY leaf_index"
)


async def audit_entries(
    pool: asyncpg.Pool, event: str | None = None, *, after: int = -1
) -> list[dict[str, Any]]:
    """Every audit leaf after index ``after`` (decoded, with its ``index``), oldest first;
    only ``event`` if given."""
    rows = await pool.fetch(AUDIT_LEAVES, after)
    found = [{"index": r[0], **loads_object(bytes(r[1]), "audit")} for r in rows]
    return [e for e in found if event is None or e["event"] == event]


async def raw_entries(pool: asyncpg.Pool) -> bytes:
    """Every audit leaf's bytes, concatenated (to look for what must never be there)."""
    return b"".join(bytes(r[1]) for r in await pool.fetch(AUDIT_LEAVES, -1))


def grant_body(
    device_ids: list[str], scopes: list[str], now_ms: int, **extra: Any
) -> dict[str, Any]:
    """A grant request to insurer-x, valid from an hour ago for a day."""
    return {
        "grantee_org": "insurer-x",
        "scopes": scopes,
        "device_ids": device_ids,
        "valid_from_ms": now_ms - 3_600_000,
        "valid_until_ms": now_ms + DAY_MS,
        "purpose": "policy renewal",
        **extra,
    }
