"""The ``warnings`` table (DDL in ``roadledger/db/schema.py``): store once, read back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from analytics.warnings.model import Evidence, Severity, Warning, WarningType

__all__ = [
    "ledger_positions",
    "load_warning",
    "load_warnings",
    "ms_of",
    "store_warnings",
    "timestamp_of",
]

_INSERT = """
    INSERT INTO warnings (warning_id, type, severity, device_id, segment_id, from_ts, to_ts,
                          rule_version, evidence, detail)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[],
                         $6::timestamptz[], $7::timestamptz[], $8::text[], $9::jsonb[],
                         $10::jsonb[])
    ON CONFLICT (warning_id) DO NOTHING
    RETURNING warning_id
"""


def timestamp_of(ms: int) -> datetime:
    """Epoch milliseconds as a UTC timestamp (the table's timestamptz columns)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def ms_of(value: datetime) -> int:
    """A timestamptz column's value as epoch milliseconds."""
    return round(value.timestamp() * 1000)


async def store_warnings(
    conn: asyncpg.Connection | asyncpg.Pool, warnings: Sequence[Warning]
) -> set[str]:
    """Insert the warnings not stored yet (one statement); the ids that were new."""
    if not warnings:
        return set()
    unique = list({w.warning_id: w for w in warnings}.values())
    columns: list[list[Any]] = [[] for _ in range(10)]
    for w in unique:
        row = (
            w.warning_id,
            w.type.value,
            w.severity.value,
            w.device_id,
            w.segment_id,
            timestamp_of(w.from_ts_ms),
            timestamp_of(w.to_ts_ms),
            w.rule_version,
            json.dumps([e.to_json() for e in w.evidence]),
            json.dumps(dict(w.detail), sort_keys=True),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    rows = await conn.fetch(_INSERT, *columns)
    return {row["warning_id"] for row in rows}


async def load_warnings(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    since_ms: int | None = None,
    device_id: str | None = None,
) -> list[Warning]:
    """Stored warnings, oldest first; optionally from ``since_ms`` on, or of one device."""
    rows = await conn.fetch(
        "SELECT * FROM warnings WHERE ($1::timestamptz IS NULL OR to_ts >= $1) "
        "AND ($2::text IS NULL OR device_id = $2) ORDER BY from_ts, warning_id",
        timestamp_of(since_ms) if since_ms is not None else None,
        device_id,
    )
    return [_warning(row) for row in rows]


async def load_warning(conn: asyncpg.Connection | asyncpg.Pool, warning_id: str) -> Warning | None:
    """One stored warning by id (None: no such warning)."""
    row = await conn.fetchrow("SELECT * FROM warnings WHERE warning_id = $1", warning_id)
    return _warning(row) if row is not None else None


def _warning(row: asyncpg.Record) -> Warning:
    return Warning(
        warning_id=row["warning_id"],
        type=WarningType(row["type"]),
        severity=Severity(row["severity"]),
        device_id=row["device_id"],
        segment_id=row["segment_id"],
        from_ts_ms=ms_of(row["from_ts"]),
        to_ts_ms=ms_of(row["to_ts"]),
        rule_version=row["rule_version"],
        evidence=tuple(Evidence.from_json(e) for e in json.loads(row["evidence"])),
        detail=json.loads(row["detail"]),
    )


async def ledger_positions(
    conn: asyncpg.Connection | asyncpg.Pool, leaf_hashes: Sequence[bytes]
) -> dict[bytes, tuple[str, int]]:
    """Where each leaf hash is in the ledger: (log origin, leaf index). A hash not sequenced
    yet (the sequencer runs behind analytics by up to a block) is absent."""
    rows = await conn.fetch(
        "SELECT e.leaf_hash, l.origin, e.leaf_index FROM ledger_entries e "
        "JOIN ledger_logs l USING (log_id) WHERE e.leaf_hash = ANY($1::bytea[])",
        list(leaf_hashes),
    )
    return {bytes(r["leaf_hash"]): (r["origin"], r["leaf_index"]) for r in rows}
