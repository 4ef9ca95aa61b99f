"""Where each organisation's rules apply: its kind and jurisdiction area, from ``organisations``.

An authority's :class:`~contracts.rules.jurisdiction.Area` is its own jurisdiction polygon
together with those of the units below it (a parent authority's jurisdiction covers its
units'), at its depth in the hierarchy (the number of organisations above it). An
organisation that is not an authority, or an authority without a jurisdiction of its own, has
no area. Read whole: organisations are few, and both publishing and loading the book need it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from contracts.access import OrgKind
from contracts.rules.errors import RulesInvalid, RulesNotFound
from contracts.rules.geometry import Vertex, polygon_problem
from contracts.rules.jurisdiction import Area

__all__ = ["Area", "publishers", "segment_ends", "set_jurisdiction"]


async def publishers(
    conn: asyncpg.Connection | asyncpg.Pool,
) -> dict[str, tuple[str, Area | None]]:
    """Every organisation's kind and area (None: it has none), by id."""
    rows = await conn.fetch("SELECT org_id, kind, parent_id, jurisdiction FROM organisations")
    parent = {r["org_id"]: r["parent_id"] for r in rows}
    own: dict[str, tuple[Vertex, ...]] = {
        r["org_id"]: tuple((int(a), int(b)) for a, b in json.loads(r["jurisdiction"]))
        for r in rows
        if r["jurisdiction"] is not None
    }
    # Each organisation's ancestors, nearest first (a cycle, which creation prevents, ends it).
    above: dict[str, list[str]] = {}
    for org in parent:
        chain, up = [], parent[org]
        while up is not None and up in parent and up not in chain and up != org:
            chain.append(up)
            up = parent[up]
        above[org] = chain
    covered: dict[str, list[tuple[Vertex, ...]]] = {org: [] for org in parent}
    for org, polygon in sorted(own.items()):
        for holder in (org, *above[org]):
            covered[holder].append(polygon)
    out: dict[str, tuple[str, Area | None]] = {}
    for r in rows:
        org, kind = r["org_id"], r["kind"]
        area = None
        if kind == OrgKind.AUTHORITY and org in own:
            area = Area(org, tuple(covered[org]), depth=len(above[org]))
        out[org] = (kind, area)
    return out


async def segment_ends(
    conn: asyncpg.Connection | asyncpg.Pool, segment_ids: Sequence[int]
) -> dict[int, tuple[Vertex, Vertex]]:
    """The end points of those of ``segment_ids`` the road network has."""
    if not segment_ids:
        return {}
    rows = await conn.fetch(
        "SELECT segment_id, a_lat_e7, a_lon_e7, b_lat_e7, b_lon_e7 FROM road_segments "
        "WHERE segment_id = ANY ($1::bigint[])",
        sorted(set(segment_ids)),
    )
    return {
        r["segment_id"]: ((r["a_lat_e7"], r["a_lon_e7"]), (r["b_lat_e7"], r["b_lon_e7"]))
        for r in rows
    }


async def set_jurisdiction(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: str, polygon: Sequence[Vertex]
) -> None:
    """Give the authority ``org_id`` the jurisdiction ``polygon`` (checked like a geofence's).

    :class:`RulesInvalid` for a polygon that is not simple, :class:`RulesNotFound` for an
    organisation that is not a registered authority.
    """
    vertices = [(int(lat), int(lon)) for lat, lon in polygon]
    if problem := polygon_problem(vertices):
        raise RulesInvalid("jurisdiction", problem)
    done = await conn.execute(
        "UPDATE organisations SET jurisdiction = $2::jsonb WHERE org_id = $1 AND kind = $3",
        org_id,
        json.dumps([list(v) for v in vertices]),
        str(OrgKind.AUTHORITY),
    )
    if done != "UPDATE 1":
        raise RulesNotFound("org_id", f"{org_id!r} is not a registered authority")
