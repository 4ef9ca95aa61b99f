"""The ``warnings`` table (DDL in ``roadledger/db/schema.py``): store once, read back.

Also the API's reads (it may import this module, not the detectors): lists and the live feed
of the warnings a caller may see (``roadledger.identity.visibility``), and the record types
they return (re-exported from ``analytics.warnings.model``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from analytics.warnings.model import Evidence, Severity, Warning, WarningType
from roadledger.identity.visibility import Visibility

__all__ = [
    "Evidence",
    "FeedItem",
    "Severity",
    "Warning",
    "WarningFilter",
    "WarningType",
    "feed_horizon",
    "feed_warnings",
    "ledger_positions",
    "list_warnings",
    "load_warning",
    "load_warnings",
    "located_in",
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


# Where a warning happened, for an authority's jurisdiction (docs/api.md, "Warnings"): a
# segment's warning (no device) at the segment's midpoint; a device's warning at the position
# its device reported in the first of its evidence records that is stored in ``telemetry``
# (none found: no location, so no authority sees it by place). Points are (lat_e7, lon_e7).
_LOCATION = """
    CASE WHEN w.device_id IS NULL THEN
        (SELECT point((s.a_lat_e7::float8 + s.b_lat_e7) / 2, (s.a_lon_e7::float8 + s.b_lon_e7) / 2)
           FROM road_segments s WHERE s.segment_id = w.segment_id)
    ELSE
        (SELECT point(t.lat_e7, t.lon_e7)
           FROM jsonb_array_elements(w.evidence) WITH ORDINALITY AS e (item, n)
           JOIN telemetry t ON t.device_id = w.device_id AND e.item ->> 'device_id' = w.device_id
                           AND t.seq = (e.item ->> 'seq')::bigint
          ORDER BY e.n LIMIT 1)
    END
"""

# Visible to the caller ($1 its organisation, $2 devices granted to it, $3 its jurisdiction
# polygons): its own devices' warnings, its granted devices', and those located in its areas.
# CASE: the location is looked up only for a caller that has areas.
_VISIBLE = f"""
    (w.device_id IN (SELECT d.device_id FROM devices d WHERE d.owner_org = $1)
     OR w.device_id = ANY ($2::text[])
     OR CASE WHEN cardinality($3::text[]::polygon[]) = 0 THEN false ELSE
            (SELECT bool_or(a.area @> ({_LOCATION})) FROM unnest($3::text[]::polygon[]) AS a (area))
        END)
"""  # noqa: S608 - constants only


def _polygons(areas: Sequence[Sequence[tuple[int, int]]]) -> list[str]:
    """Polygon literals, ``((lat,lon),...)``: asyncpg reads nested lists as array levels."""
    return ["(" + ",".join(f"({lat},{lon})" for lat, lon in area) + ")" for area in areas]


def _visible_args(seen: Visibility) -> tuple[str, list[str], list[str]]:
    return seen.org_id, list(seen.granted), _polygons(seen.areas)


@dataclass(frozen=True, slots=True)
class WarningFilter:
    """What a list asks for (None: any). A span filter keeps warnings whose span overlaps
    ``[from_ms, to_ms)``."""

    type: str | None = None
    severity: str | None = None
    device_id: str | None = None
    segment_id: int | None = None
    from_ms: int | None = None
    to_ms: int | None = None


def _ts(ms: int | None) -> datetime | None:
    return timestamp_of(ms) if ms is not None else None


async def list_warnings(
    conn: asyncpg.Connection | asyncpg.Pool,
    seen: Visibility,
    wanted: WarningFilter,
    *,
    before: tuple[int, str] | None,
    limit: int,
) -> list[Warning]:
    """The warnings ``seen`` allows that match ``wanted``, newest first by (``from_ts``,
    ``warning_id``), those before the key ``before`` (``from_ms``, id) when it is given."""
    rows = await conn.fetch(
        f"SELECT w.* FROM warnings w WHERE {_VISIBLE} "  # noqa: S608 - constants only
        "AND ($4::text IS NULL OR w.type = $4) AND ($5::text IS NULL OR w.severity = $5) "
        "AND ($6::text IS NULL OR w.device_id = $6) AND ($7::int IS NULL OR w.segment_id = $7) "
        # The span overlaps [$8, $9) (a NULL end: unbounded), by the GiST index warnings_span.
        "AND (($8::timestamptz IS NULL AND $9::timestamptz IS NULL) "
        "OR tstzrange(w.from_ts, w.to_ts, '[]') && tstzrange($8, $9, '[)')) "
        "AND ($10::timestamptz IS NULL OR (w.from_ts, w.warning_id) < ($10, $11::text)) "
        "ORDER BY w.from_ts DESC, w.warning_id DESC LIMIT $12",
        *_visible_args(seen),
        wanted.type,
        wanted.severity,
        wanted.device_id,
        wanted.segment_id,
        _ts(wanted.from_ms),
        _ts(wanted.to_ms),
        _ts(before[0]) if before is not None else None,
        before[1] if before is not None else None,
        limit,
    )
    return [_warning(row) for row in rows]


async def located_in(
    conn: asyncpg.Connection | asyncpg.Pool,
    warning_id: str,
    areas: Sequence[Sequence[tuple[int, int]]],
) -> bool:
    """Whether the warning's location (see ``_LOCATION``) lies in one of ``areas``."""
    if not areas:
        return False
    found = await conn.fetchval(
        f"SELECT (SELECT bool_or(a.area @> ({_LOCATION})) "  # noqa: S608 - constants only
        "FROM unnest($2::text[]::polygon[]) AS a (area)) FROM warnings w WHERE w.warning_id = $1",
        warning_id,
        _polygons(areas),
    )
    return bool(found)


async def feed_horizon(conn: asyncpg.Connection | asyncpg.Pool) -> datetime:
    """The newest ``stored_at`` below which no warning can still appear.

    ``stored_at`` is the clock at insert time, not at commit, so a slow transaction can commit
    a row older than one already read. A row not committed yet was stored by a transaction
    that has a transaction id now (its start bounds ``stored_at``) or by a statement running
    now (its start bounds it; ``stored_at`` is evaluated before the id is assigned), or it
    will be stored later than now. So every row stored before the earliest of those is
    committed. Call it *before* the read it bounds. Needs the writers visible in
    ``pg_stat_activity`` (the same database role, or ``pg_read_all_stats``); a long-running
    statement holds the feed back (never makes it skip).
    """
    horizon: datetime = await conn.fetchval(
        "SELECT least(clock_timestamp(), min(CASE WHEN backend_xid IS NOT NULL THEN xact_start "
        "WHEN state = 'active' THEN query_start END)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid()"
    )
    return horizon


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A warning in the order it was stored: the feed's key is (``stored_at``, id).
    ``visible``: the caller may see it; otherwise it is a device's warning not located yet
    (its telemetry may still be on its way) that the caller's areas might see later."""

    stored_at: datetime
    warning: Warning
    visible: bool = True


async def feed_warnings(
    conn: asyncpg.Connection | asyncpg.Pool,
    seen: Visibility,
    *,
    after: tuple[datetime, str],
    until: datetime,
    limit: int,
) -> list[FeedItem]:
    """Warnings stored after the key ``after`` and before ``until`` (a :func:`feed_horizon`),
    in stored order: those ``seen`` allows and, when it has areas, the device warnings without
    a location yet (``visible`` False)."""
    rows = await conn.fetch(
        f"SELECT * FROM (SELECT w.*, {_VISIBLE} AS visible, "  # noqa: S608 - constants only
        f"cardinality($3::text[]) > 0 AND w.device_id IS NOT NULL AND ({_LOCATION}) IS NULL "
        "AS unlocated FROM warnings w "
        "WHERE (w.stored_at, w.warning_id) > ($4, $5::text) AND w.stored_at < $6) AS f "
        "WHERE f.visible OR f.unlocated ORDER BY f.stored_at, f.warning_id LIMIT $7",
        *_visible_args(seen),
        after[0],
        after[1],
        until,
        limit,
    )
    return [FeedItem(row["stored_at"], _warning(row), bool(row["visible"])) for row in rows]
