"""/v1/rules on the real PostgreSQL: an authority's admin publishes signed versions inside its
jurisdiction; absurd values, other kinds of organisation and areas outside are refused;
every member lists and reads versions with their signed bytes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import asyncpg
import httpx
import pytest

from chain.encoding import b64url_encode
from chain.jws import JwsHeader
from chain.keys import Ed25519PrivateKey
from roadledger.rules_areas import set_jurisdiction
from roadledger.rules_store import add_organisation_key
from tests.integration.api.conftest import bearer

pytestmark = pytest.mark.postgres

JOSE = {"Content-Type": "application/jose"}
AREA = [
    (524000000, 132000000),
    (524000000, 136000000),
    (527000000, 136000000),
    (527000000, 132000000),
]
INSIDE = [[525000000, 133000000], [525000000, 134000000], [526000000, 133500000]]
OUTSIDE = [[100000000, 100000000], [100000000, 100100000], [100100000, 100050000]]


def _key(org_id: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_bytes(hashlib.sha256(org_id.encode()).digest())


def _signed(org_id: str = "police", version: int = 1, **extra: Any) -> bytes:
    """A rules document signed with ``org_id``'s key, valid or not (the server must check)."""
    doc = {
        "format": "roadledger-rules/1",
        "org_id": org_id,
        "rule_set": "city",
        "version": version,
        "effective_from_ms": 0,
        "thresholds": {"speeding_tolerance_kmh": 3},
        **extra,
    }
    header = JwsHeader(kid="k1", typ="roadledger-rules").to_json()
    signing_input = f"{b64url_encode(header)}.{b64url_encode(json.dumps(doc).encode())}"
    signature = _key(org_id).sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}".encode("ascii")


@pytest.fixture
async def keys(api_pool: asyncpg.Pool) -> None:
    """The police get a jurisdiction; police, fleet-a and insurer-x each a signing key."""
    await set_jurisdiction(api_pool, "police", AREA)
    for org_id in ("police", "fleet-a", "insurer-x"):
        await add_organisation_key(api_pool, org_id, "k1", _key(org_id).public_key, 0)


async def _publish(api: httpx.AsyncClient, user: str, body: bytes) -> httpx.Response:
    return await api.post("/v1/rules", content=body, headers={**JOSE, **await bearer(api, user)})


async def test_publish_list_and_read_a_version(api: httpx.AsyncClient, keys: None) -> None:
    zone = {"id": "old-town", "kind": "no_entry", "polygon": INSIDE}
    signed = _signed(geofences=[zone])
    answer = await _publish(api, "police-admin", signed)
    assert answer.status_code == 201, answer.text
    assert answer.json()["label"] == "police/city@1"
    assert (await _publish(api, "police-admin", _signed(version=2))).status_code == 201
    again = await _publish(api, "police-admin", signed)
    assert again.status_code == 409
    assert "version: must be greater than 2" in again.text

    reader = await bearer(api, "fleet-a-analyst")  # any member reads the law
    listed = await api.get("/v1/rules", params={"org_id": "police", "limit": 1}, headers=reader)
    assert listed.status_code == 200, listed.text
    assert [v["label"] for v in listed.json()["items"]] == ["police/city@1"]
    cursor = listed.json()["next_cursor"]
    rest = await api.get("/v1/rules", params={"cursor": cursor}, headers=reader)
    assert [v["label"] for v in rest.json()["items"]] == ["police/city@2"]
    assert rest.json()["next_cursor"] is None
    none = await api.get("/v1/rules", params={"org_id": "fleet-a"}, headers=reader)
    assert none.json()["items"] == []

    one = await api.get("/v1/rules/police/city@1", headers=reader)
    assert one.status_code == 200, one.text
    assert one.json()["signed"].encode() == signed
    assert one.json()["document"]["geofences"][0]["id"] == "old-town"
    by_number = await api.get("/v1/rules/police/2", headers=reader)
    assert by_number.json()["label"] == "police/city@2"
    assert (await api.get("/v1/rules/police/city@9", headers=reader)).status_code == 404
    bad = await api.get("/v1/rules/police/city@x", headers=reader)
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("version:")


@pytest.mark.parametrize(
    ("extra", "field"),
    [  # the two absurd values
        ({"thresholds": {"rollback_tolerance_m": 10**10}}, "thresholds.rollback_tolerance_m"),
        ({"speed_limits": [{"road_class": "motorway", "max_kmh": 400}]}, "speed_limits[0].max_kmh"),
    ],
)
async def test_absurd_values_are_refused(
    api: httpx.AsyncClient, keys: None, extra: dict[str, Any], field: str
) -> None:
    answer = await _publish(api, "police-admin", _signed(**extra))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}: must be in [")


@pytest.mark.parametrize("user", ["fleet-a-admin", "insurer-x-admin", "police-analyst"])
async def test_only_an_authoritys_admin_publishes(
    api: httpx.AsyncClient, keys: None, user: str
) -> None:
    org = {"fleet-a-admin": "fleet-a", "insurer-x-admin": "insurer-x"}.get(user, "police")
    answer = await _publish(api, user, _signed(org))
    assert answer.status_code == 403, answer.text
    reader = await bearer(api, "police-analyst")
    assert (await api.get("/v1/rules", headers=reader)).json()["items"] == []


async def test_an_authority_publishes_inside_its_jurisdiction_for_itself_only(
    api: httpx.AsyncClient, keys: None, api_pool: asyncpg.Pool
) -> None:
    zone = {"id": "far-away", "kind": "no_entry", "polygon": OUTSIDE}
    outside = await _publish(api, "police-admin", _signed(geofences=[zone]))
    assert outside.status_code == 403, outside.text
    assert outside.json()["detail"].startswith("geofences[0].polygon: geofence 'far-away'")
    # Another organisation's document, however well signed, is not the police's to publish.
    foreign = await _publish(api, "police-admin", _signed("fleet-a"))
    assert foreign.status_code == 403
    assert "publishes for 'police' only" in foreign.text
    assert await api_pool.fetchval("SELECT count(*) FROM rule_versions") == 0
    # An authority without a jurisdiction: its rules would apply nowhere.
    await api_pool.execute("UPDATE organisations SET jurisdiction = NULL WHERE org_id = 'police'")
    nowhere = await _publish(api, "police-admin", _signed())
    assert nowhere.status_code == 403
    assert "has no jurisdiction" in nowhere.text
    unsigned = await _publish(api, "police-admin", b'{"format": "roadledger-rules/1"}')
    assert unsigned.status_code == 422
    assert "not a compact JWS" in unsigned.text
