"""Rules sovereignty on PostgreSQL: two authorities with disjoint jurisdictions publish their
own thresholds, and the warnings engine's detector judges each vehicle by the rules of the
authority whose area it is in (neither's rules reach the other's area or the rest of the
world); a parent's rules yield to its unit's inside the unit's area."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import asyncpg
import pytest

from analytics.warnings.detectors import Point, TelemetryDetector
from analytics.warnings.model import Warning, WarningType
from chain.keys import Ed25519PrivateKey
from contracts.access import OrgKind
from contracts.rules.errors import RulesError
from contracts.rules.signing import sign_rules
from roadledger.identity.organisations import create_organisation
from roadledger.rules_store import add_organisation_key, load_rulebook, publish_rules
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

NOW = 1_790_000_000_000


def _key(org_id: str) -> Ed25519PrivateKey:
    """Each organisation's own signing key (the signer is found by the signature)."""
    return Ed25519PrivateKey.from_bytes(hashlib.sha256(org_id.encode()).digest())


def _square(lat: int, lon: int, side: int) -> list[list[int]]:
    return [[lat, lon], [lat, lon + side], [lat + side, lon + side], [lat + side, lon]]


NORTH = _square(530_000_000, 130_000_000, 10_000_000)  # 53-54 N, 13-14 E
SOUTH = _square(480_000_000, 110_000_000, 10_000_000)  # 48-49 N, 11-12 E
DISTRICT = _square(482_000_000, 112_000_000, 2_000_000)  # inside SOUTH
IN_NORTH, IN_SOUTH = (535_000_000, 135_000_000), (485_000_000, 117_000_000)
IN_DISTRICT, NOWHERE = (483_000_000, 113_000_000), (400_000_000, 30_000_000)


def _doc(org_id: str, **thresholds: int) -> bytes:
    doc: dict[str, Any] = {
        "format": "roadledger-rules/1",
        "org_id": org_id,
        "rule_set": "odometers",
        "version": 1,
        "effective_from_ms": NOW - 60_000,
        "thresholds": thresholds,
    }
    return json.dumps(doc).encode()


async def _authority(
    conn: asyncpg.Connection, org_id: str, area: list[list[int]], parent: str | None = None
) -> None:
    await create_organisation(
        conn, org_id, org_id.title(), OrgKind.AUTHORITY, parent_id=parent, jurisdiction=area
    )
    await add_organisation_key(conn, org_id, "k1", _key(org_id).public_key, 0)


def _drops(device: str, where: tuple[int, int], drop_m: int) -> list[Point]:
    """Four points at ``where``, the odometer going back ``drop_m`` at the third."""
    lat, lon = where
    odos = [10_000, 10_015, 10_015 - drop_m, 10_030]
    return [
        Point(device, s, NOW + s * 1000, NOW + s * 1000 + 50, odo, lat, lon, bytes([s]) * 32, "r")
        for s, odo in enumerate(odos, start=1)
    ]


async def test_each_authoritys_thresholds_apply_in_its_own_area_only(postgres: Settings) -> None:
    async with scratch_schema_pool(postgres) as pool:
        async with pool.acquire() as conn:
            await _authority(conn, "north", NORTH)
            await _authority(conn, "south", SOUTH)
            await _authority(conn, "south-district", DISTRICT, parent="south")
            # North is lenient (100 m), South strict (2 m), its district stricter still (0 m).
            for org_id, tolerance in (("north", 100), ("south", 2), ("south-district", 0)):
                signed = sign_rules(
                    _key(org_id), "k1", _doc(org_id, rollback_tolerance_m=tolerance)
                )
                await publish_rules(conn, signed, NOW)
        book = await load_rulebook(pool)

    detector = TelemetryDetector(book)
    trips = {
        "north-8m": _drops("north-8m", IN_NORTH, 8),  # South's 2 m would flag it
        "north-50m": _drops("north-50m", IN_NORTH, 50),  # the default 10 m would flag it
        "south-8m": _drops("south-8m", IN_SOUTH, 8),
        "district-1m": _drops("district-1m", IN_DISTRICT, 1),  # South's 2 m would not
        "nowhere-8m": _drops("nowhere-8m", NOWHERE, 8),  # the default: not flagged
        "nowhere-50m": _drops("nowhere-50m", NOWHERE, 50),  # the default: flagged
    }
    found: dict[str, list[Warning]] = {
        device: [w for p in points for w in detector.observe(p)] for device, points in trips.items()
    }
    cited = {
        device: [(w.type, w.rule_version) for w in warnings] for device, warnings in found.items()
    }
    rollback = WarningType.ODOMETER_ROLLBACK
    assert cited == {
        "north-8m": [],
        "north-50m": [],
        "south-8m": [(rollback, "south/odometers@1")],
        "district-1m": [(rollback, "south-district/odometers@1")],
        "nowhere-8m": [],
        "nowhere-50m": [(rollback, "builtin@0")],
    }


async def test_a_fleet_owner_or_an_area_outside_the_jurisdiction_is_refused(
    postgres: Settings,
) -> None:
    """The same checks as the API's, on the path `roadledger rules publish` takes."""
    outside = {"id": "far", "kind": "no_entry", "polygon": [v[:] for v in SOUTH]}
    async with scratch_schema_pool(postgres) as pool, pool.acquire() as conn:
        await _authority(conn, "north", NORTH)
        await create_organisation(conn, "fleet", "Fleet", OrgKind.FLEET_OWNER)
        await add_organisation_key(conn, "fleet", "k1", _key("fleet").public_key, 0)
        doc = json.loads(_doc("north"))
        refusals = {
            "org_id": sign_rules(_key("fleet"), "k1", _doc("fleet", rollback_tolerance_m=5)),
            "geofences[0].polygon": sign_rules(
                _key("north"), "k1", json.dumps({**doc, "geofences": [outside]}).encode()
            ),
        }
        for field, signed in refusals.items():
            with pytest.raises(RulesError) as caught:
                await publish_rules(conn, signed, NOW)
            assert caught.value.path == field
        assert await conn.fetchval("SELECT count(*) FROM rule_versions") == 0
