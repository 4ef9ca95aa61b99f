"""Organisations in a hierarchy: create, read, and the subtree an authority speaks for.

An organisation has a kind (``contracts.access.OrgKind``), may have a parent (a district unit
under its authority) and, when it is an authority, a jurisdiction: a simple polygon of
``[lat_e7, lon_e7]`` vertices (the rules' geometry). A parent sees what its descendants see.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts.access import OrgKind
from contracts.rules.geometry import Vertex, polygon_problem
from roadledger.identity.errors import AlreadyExists, BadIdentity, UnknownOrganisation

__all__ = [
    "Organisation",
    "create_organisation",
    "descendants",
    "get_organisation",
    "list_organisations",
]

ORG_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_COLUMNS = "org_id, name, kind, parent_id, jurisdiction, created_at"


@dataclass(frozen=True, slots=True)
class Organisation:
    """One organisation as stored."""

    org_id: str
    name: str
    kind: str
    parent_id: str | None
    jurisdiction: tuple[Vertex, ...] | None
    created_at_ms: int

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Organisation:
        area = json.loads(row["jurisdiction"]) if row["jurisdiction"] is not None else None
        return cls(
            row["org_id"],
            row["name"],
            row["kind"],
            row["parent_id"],
            tuple((int(a), int(b)) for a, b in area) if area is not None else None,
            int(row["created_at"].timestamp() * 1000),
        )


def _check_jurisdiction(kind: OrgKind, jurisdiction: Any) -> tuple[Vertex, ...] | None:
    if jurisdiction is None:
        return None
    if kind != OrgKind.AUTHORITY:
        raise BadIdentity("jurisdiction: only an authority has one")
    if not isinstance(jurisdiction, list | tuple) or not all(
        isinstance(v, list | tuple) and len(v) == 2 and all(type(c) is int for c in v)
        for v in jurisdiction
    ):
        raise BadIdentity("jurisdiction: expected a list of [lat_e7, lon_e7] integer pairs")
    vertices = tuple((int(v[0]), int(v[1])) for v in jurisdiction)
    problem = polygon_problem(vertices)
    if problem is not None:
        raise BadIdentity(f"jurisdiction: {problem}")
    return vertices


async def create_organisation(
    conn: asyncpg.Connection,
    org_id: str,
    name: str,
    kind: OrgKind,
    *,
    parent_id: str | None = None,
    jurisdiction: Any = None,
) -> Organisation:
    """Create an organisation; a parent must exist and be an authority when this one is."""
    if not ORG_ID.match(org_id):
        raise BadIdentity(f"org_id: {org_id!r} is not 1-64 of A-Z a-z 0-9 . _ : -")
    if not name.strip() or len(name) > 200:
        raise BadIdentity("name: 1-200 characters")
    vertices = _check_jurisdiction(kind, jurisdiction)
    if parent_id is not None:
        parent = await get_organisation(conn, parent_id)
        if kind == OrgKind.AUTHORITY and parent.kind != OrgKind.AUTHORITY:
            raise BadIdentity(f"parent_id: {parent_id!r} is not an authority")
    row = await conn.fetchrow(
        "INSERT INTO organisations (org_id, name, kind, parent_id, jurisdiction) "  # noqa: S608
        f"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO NOTHING RETURNING {_COLUMNS}",
        org_id,
        name,
        str(kind),
        parent_id,
        json.dumps([list(v) for v in vertices]) if vertices is not None else None,
    )
    if row is None:
        raise AlreadyExists(f"organisation {org_id!r} exists")
    return Organisation.from_row(row)


async def get_organisation(conn: asyncpg.Connection | asyncpg.Pool, org_id: str) -> Organisation:
    """The organisation, or :class:`UnknownOrganisation`."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM organisations WHERE org_id = $1", org_id)  # noqa: S608
    if row is None:
        raise UnknownOrganisation(f"organisation {org_id!r} is not registered")
    return Organisation.from_row(row)


async def list_organisations(conn: asyncpg.Connection | asyncpg.Pool) -> list[Organisation]:
    """Every organisation, by id."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM organisations ORDER BY org_id")  # noqa: S608
    return [Organisation.from_row(row) for row in rows]


async def descendants(conn: asyncpg.Connection | asyncpg.Pool, org_id: str) -> list[str]:
    """``org_id`` and every organisation below it, depth first by id."""
    rows = await conn.fetch(
        "WITH RECURSIVE tree (org_id, path) AS ("
        " SELECT org_id, ARRAY[org_id] FROM organisations WHERE org_id = $1"
        " UNION ALL"
        " SELECT o.org_id, t.path || o.org_id FROM organisations o"
        " JOIN tree t ON o.parent_id = t.org_id WHERE NOT o.org_id = ANY (t.path))"
        " SELECT org_id FROM tree ORDER BY path",
        org_id,
    )
    return [row["org_id"] for row in rows]
