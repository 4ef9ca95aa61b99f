"""Reading the audit log back: the entries an organisation may see, filtered and paged.

An organisation sees the entries about its own vehicles and grants (``owner_org``) and those
of its own members and keys (``actor_org``); the operator's admins and auditors see all
(``viewer_org=None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from chain.strict_json import loads_object
from roadledger.audit.log import UnknownAuditEntry

__all__ = ["AuditFilter", "AuditRow", "get_entry", "list_entries"]


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One stored entry: its index, leaf hash, verbatim bytes and their fields."""

    leaf_index: int
    leaf_hash: bytes
    entry: bytes
    fields: dict[str, Any]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AuditRow:
        entry = bytes(row["entry"])
        return cls(row["leaf_index"], bytes(row["leaf_hash"]), entry, loads_object(entry, "audit"))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What ``GET /v1/audit`` narrows by (None: any)."""

    device_id: str | None = None
    actor_org: str | None = None
    scope: str | None = None
    event: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


_VISIBLE = "($1::text IS NULL OR a.owner_org = $1 OR a.actor_org = $1)"
# The leaf's bytes are the ledger's (the audit log is a ledger log, roadledger.audit.log).
_ROWS = (
    "SELECT a.leaf_index, e.leaf_hash, e.entry FROM audit_entries a JOIN ledger_entries e "
    "ON e.log_id = (SELECT log_id FROM audit_head) AND e.leaf_index = a.leaf_index "
)


async def list_entries(
    conn: asyncpg.Connection | asyncpg.Pool,
    viewer_org: str | None,
    where: AuditFilter,
    before: int | None,
    limit: int,
) -> list[AuditRow]:
    """Entries ``viewer_org`` may see that match ``where``, newest first, with an index below
    ``before`` (the page cursor)."""
    rows = await conn.fetch(
        f"{_ROWS} WHERE {_VISIBLE} AND ($2::text IS NULL OR a.device_id = $2) "
        "AND ($3::text IS NULL OR a.actor_org = $3) AND ($4::text IS NULL OR a.scope = $4) "
        "AND ($5::text IS NULL OR a.event = $5) AND ($6::timestamptz IS NULL OR a.at >= $6) "
        "AND ($7::timestamptz IS NULL OR a.at < $7) "
        "AND ($8::bigint IS NULL OR a.leaf_index < $8) "
        "ORDER BY a.leaf_index DESC LIMIT $9",
        viewer_org,
        where.device_id,
        where.actor_org,
        where.scope,
        where.event,
        _time(where.since_ms),
        _time(where.until_ms),
        before,
        limit,
    )
    return [AuditRow.from_row(row) for row in rows]


async def get_entry(
    conn: asyncpg.Connection | asyncpg.Pool, viewer_org: str | None, index: int
) -> AuditRow:
    """Entry ``index`` if ``viewer_org`` may see it, else :class:`UnknownAuditEntry`."""
    row = await conn.fetchrow(
        f"{_ROWS} WHERE {_VISIBLE} AND a.leaf_index = $2",
        viewer_org,
        index,
    )
    if row is None:
        raise UnknownAuditEntry(f"index: no audit entry {index} is visible to you")
    return AuditRow.from_row(row)
