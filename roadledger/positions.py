"""Live vehicle positions: the latest stored message of each vehicle a caller may track.

Who may see a vehicle's position is who may read its ``track``
(:func:`roadledger.identity.grants.authorize`): its owner, or an organisation holding a grant
of ``track`` on it valid now. An authority sees no vehicle's position by jurisdiction (that is
raw track data); it sees them only through such a grant. :func:`trackable` gathers the answer
for a whole fleet at once, with what allowed each vehicle (for the audit log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from contracts.access import Scope
from roadledger.audit.events import EventKind, by_principal
from roadledger.audit.record import record
from roadledger.identity.principal import Principal
from roadledger.identity.visibility import visibility

__all__ = ["Position", "Trackable", "latest_positions", "record_tracked", "trackable"]


@dataclass(frozen=True, slots=True)
class Trackable:
    """A vehicle the caller may track: its owner and ``allowed_by`` (``owner`` or a grant)."""

    device_id: str
    owner_org: str
    allowed_by: str


@dataclass(frozen=True, slots=True)
class Position:
    """A vehicle's latest stored message (device time)."""

    device_id: str
    seq: int
    ts_ms: int
    lat_e7: int
    lon_e7: int
    spd_cms: int | None
    hdg_cdeg: int | None
    segment_id: int | None


async def trackable(pool: asyncpg.Pool, principal: Principal) -> dict[str, Trackable]:
    """The vehicles ``principal`` may track now, by device id; ``NotPermitted`` when its
    role or API key scope allows no track read at all."""
    seen = await visibility(pool, principal, Scope.TRACK)  # the role and key-scope checks
    rows = await pool.fetch(
        # Own vehicles first, then a grant for each granted one (the one lasting longest).
        "SELECT device_id, owner_org, 'owner' AS allowed_by FROM devices "
        "WHERE owner_org = $1 AND kind = 'vehicle' "
        "UNION ALL (SELECT DISTINCT ON (d.device_id) d.device_id, d.owner_org, g.grant_id "
        "FROM access_grants g CROSS JOIN unnest(g.device_ids) AS x (device_id) "
        "JOIN devices d ON d.device_id = x.device_id AND d.owner_org = g.owner_org "
        "WHERE g.grantee_org = $1 AND d.device_id = ANY ($2::text[]) AND d.kind = 'vehicle' "
        "AND $3 = ANY (g.scopes) AND g.revoked_at IS NULL "
        "AND g.valid_from <= now() AND now() < g.valid_until "
        "ORDER BY d.device_id, g.valid_until DESC)",
        seen.org_id,
        list(seen.granted),
        str(Scope.TRACK),
    )
    return {
        r["device_id"]: Trackable(r["device_id"], r["owner_org"], r["allowed_by"]) for r in rows
    }


async def latest_positions(
    pool: asyncpg.Pool, device_ids: list[str], since_ms: int
) -> list[Position]:
    """The latest message of each of ``device_ids`` stored with a device time at or after
    ``since_ms`` (the time bound keeps the read to the newest day partitions)."""
    if not device_ids:
        return []
    since = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=since_ms)
    rows = await pool.fetch(
        "SELECT DISTINCT ON (device_id) device_id, seq, "
        "(extract(epoch FROM ts) * 1000)::bigint AS ts_ms, lat_e7, lon_e7, spd_cms, hdg_cdeg, "
        "segment_id FROM telemetry WHERE device_id = ANY ($1::text[]) AND ts >= $2 "
        "AND lat_e7 IS NOT NULL ORDER BY device_id, ts DESC, seq DESC",
        device_ids,
        since,
    )
    return [Position(**dict(r)) for r in rows]


async def record_tracked(
    pool: asyncpg.Pool, principal: Principal, vehicles: list[Trackable], action: str
) -> None:
    """The audit log's ``data_access`` entries (scope ``track``) of ``vehicles``' positions,
    one append for all, committed before the positions are sent."""
    if vehicles:
        await record(pool, *[
            by_principal(principal, EventKind.DATA_ACCESS, owner_org=v.owner_org,
                         device_id=v.device_id, scope=str(Scope.TRACK), grant_id=v.allowed_by,
                         action=action)
            for v in vehicles
        ])  # fmt: skip
