"""GET /v1/warnings and /v1/warnings/{id} on the real PostgreSQL: content, filters, pages,
the ledger position of the evidence, and who sees which warning (owner, grantee, authority
inside and outside its jurisdiction, parent authority, stranger)."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
import pytest

from analytics.warnings.model import Severity, WarningType
from tests.integration.api.conftest import bearer
from tests.integration.api.places import (
    CITY,
    COUNTY,
    NORTH,
    NOWHERE,
    T0,
    add_places,
    add_telemetry,
    add_warnings,
    leaf,
    middle,
    walk_pages,
    warning,
)

pytestmark = [pytest.mark.postgres]

WARNINGS = [
    warning("w-city", WarningType.SPEEDING, "veh-a1", [1], T0 + 1000),
    warning("w-north", WarningType.ODOMETER_ROLLBACK, "veh-a1", [2, 3], T0 + 2000,
            severity=Severity.CRITICAL),
    warning("w-county", WarningType.TELEPORT, "veh-b1", [1], T0 + 3000),
    warning("w-jam", WarningType.CONGESTION, None, [10], T0 + 4000, segment_id=7),
    warning("w-jam-far", WarningType.CONGESTION, None, [11], T0 + 5000, segment_id=8),
    warning("w-unlocated", WarningType.UNKNOWN_DEVICE, "veh-b2", [99], T0 + 6000),
    warning("w-nowhere", WarningType.DRIFT_OFF_ROAD, "veh-b1", [5], T0 + 7000),
]  # fmt: skip

# Who sees what, newest first.
SEES = {
    "fleet-a-analyst": ["w-north", "w-city"],
    "fleet-b-admin": ["w-nowhere", "w-unlocated", "w-county"],
    "insurer-x-agent": ["w-nowhere", "w-county"],  # granted veh-b1
    "police-analyst": ["w-jam", "w-north", "w-city"],  # its city and its unit's north
    "north-analyst": ["w-north"],
    "county-analyst": ["w-jam-far", "w-county"],
    "ops": [],  # an operator owns no vehicle and has no jurisdiction
}


async def grant_warnings(api: httpx.AsyncClient, device_id: str = "veh-b1") -> str:
    now = int(time.time() * 1000)
    answer = await api.post(
        "/v1/grants",
        headers=await bearer(api, "fleet-b-admin"),
        json={"grantee_org": "insurer-x", "scopes": ["warnings"], "device_ids": [device_id],
              "valid_from_ms": now - 60_000, "valid_until_ms": now + 86_400_000,
              "purpose": "claim 42"},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    grant_id: str = answer.json()["grant_id"]
    return grant_id


@pytest.fixture
async def placed(api: httpx.AsyncClient, api_pool: asyncpg.Pool) -> str:
    """The places, telemetry locating the warnings, the warnings, a grant; its id."""
    await add_places(api_pool)
    await add_telemetry(
        api_pool,
        [
            ("veh-a1", 1, T0 + 1000, middle(CITY), 7, 1500),
            ("veh-a1", 2, T0 + 2000, middle(NORTH), 9, 1500),
            ("veh-a1", 3, T0 + 2500, middle(NORTH), 9, 1500),
            ("veh-b1", 1, T0 + 3000, middle(COUNTY), 8, 1500),
            ("veh-b1", 5, T0 + 7000, NOWHERE, None, 1500),
            ("veh-a2", 10, T0 + 4000, middle(CITY), 7, 100),
        ],
    )
    await add_warnings(api_pool, WARNINGS)
    log_id = await api_pool.fetchval(
        "INSERT INTO ledger_logs (origin, epoch) VALUES ('test.example/log', 1) RETURNING log_id"
    )
    await api_pool.execute(
        "INSERT INTO ledger_entries (log_id, leaf_index, leaf_hash, entry) VALUES ($1, 41, $2, '')",
        log_id,
        leaf("veh-a1", 2),
    )
    return await grant_warnings(api)


async def ids(api: httpx.AsyncClient, username: str, **params: Any) -> list[str]:
    answer = await api.get("/v1/warnings", headers=await bearer(api, username), params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_cursor"] is None
    return [w["warning_id"] for w in answer.json()["items"]]


@pytest.mark.parametrize("username", sorted(SEES))
async def test_each_caller_lists_exactly_what_it_may_see(
    api: httpx.AsyncClient, placed: str, username: str
) -> None:
    assert await ids(api, username) == SEES[username]


async def test_a_listed_warning_says_what_was_stored(api: httpx.AsyncClient, placed: str) -> None:
    answer = await api.get("/v1/warnings", headers=await bearer(api, "fleet-a-analyst"),
                           params={"type": "odometer_rollback"})  # fmt: skip
    assert answer.json()["items"] == [
        {
            "warning_id": "w-north",
            "type": "odometer_rollback",
            "severity": "critical",
            "device_id": "veh-a1",
            "segment_id": None,
            "from_ts_ms": T0 + 2000,
            "to_ts_ms": T0 + 7000,
            "rule_version": "builtin@0",
            "evidence": [
                {
                    "device_id": "veh-a1",
                    "seq": s,
                    "leaf_hash": leaf("veh-a1", s).hex(),
                    "src": f"raw:0:{s}",
                }
                for s in (2, 3)
            ],
            "detail": {"n": 2},
        }
    ]


async def test_filters_narrow_the_list(api: httpx.AsyncClient, placed: str) -> None:
    police = "police-analyst"
    assert await ids(api, police, type="congestion") == ["w-jam"]
    assert await ids(api, police, severity="critical") == ["w-north"]
    assert await ids(api, police, device_id="veh-a1") == ["w-north", "w-city"]
    assert await ids(api, police, segment=7) == ["w-jam"]
    # Spans overlapping [from_ms, to_ms): w-city spans T0+1000..T0+6000.
    assert await ids(api, police, from_ms=T0 + 5500, to_ms=T0 + 5600) == [
        "w-jam",
        "w-north",
        "w-city",
    ]
    assert await ids(api, police, from_ms=T0 + 6500) == ["w-jam", "w-north"]
    assert await ids(api, police, to_ms=T0 + 2000) == ["w-city"]
    assert await ids(api, "fleet-b-admin", type="teleport", device_id="veh-b2") == []


async def test_pages_follow_the_cursor_without_repeats(api: httpx.AsyncClient, placed: str) -> None:
    walked = await walk_pages(api, "fleet-b-admin", "/v1/warnings", "warning_id")
    assert walked == SEES["fleet-b-admin"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "meteor"}, "query.type"),
        ({"severity": "bad"}, "query.severity"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": "WzFd"}, "cursor"),  # [1]: a cursor of another list
        ({"from_ms": 10, "to_ms": 10}, "to_ms"),
        ({"limit": 0}, "query.limit"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    api: httpx.AsyncClient, placed: str, params: dict[str, Any], field: str
) -> None:
    answer = await api.get("/v1/warnings", headers=await bearer(api, "police-analyst"),
                           params=params)  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(field), answer.text


async def test_one_warning_cites_where_its_evidence_is_in_the_ledger(
    api: httpx.AsyncClient, placed: str
) -> None:
    answer = await api.get("/v1/warnings/w-north", headers=await bearer(api, "fleet-a-analyst"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["warning_id"] == "w-north"
    assert [(e["seq"], e["leaf_hash"], e["log"], e["leaf_index"]) for e in body["evidence"]] == [
        (2, leaf("veh-a1", 2).hex(), "test.example/log", 41),
        (3, leaf("veh-a1", 3).hex(), None, None),  # not sequenced yet
    ]


@pytest.mark.parametrize("username", sorted(SEES))
async def test_one_warning_is_there_exactly_for_those_who_list_it(
    api: httpx.AsyncClient, placed: str, username: str
) -> None:
    headers = await bearer(api, username)
    for w in WARNINGS:
        answer = await api.get(f"/v1/warnings/{w.warning_id}", headers=headers)
        expected = 200 if w.warning_id in SEES[username] else 404
        assert answer.status_code == expected, (w.warning_id, answer.text)
        if expected == 404:
            assert "veh-" not in answer.json()["detail"]  # the device is not revealed


async def test_a_revoked_grant_closes_the_warnings(api: httpx.AsyncClient, placed: str) -> None:
    revoked = await api.post(f"/v1/grants/{placed}/revoke",
                             headers=await bearer(api, "fleet-b-admin"))  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    assert await ids(api, "insurer-x-agent") == []
    answer = await api.get("/v1/warnings/w-county", headers=await bearer(api, "insurer-x-agent"))
    assert answer.status_code == 403
    assert "revoked" in answer.json()["detail"]
    missing = await api.get("/v1/warnings/nope", headers=await bearer(api, "police-analyst"))
    assert missing.status_code == 404


async def test_an_api_key_reads_warnings_only_when_scoped_for_them(
    api: httpx.AsyncClient, placed: str
) -> None:
    admin = await bearer(api, "fleet-a-admin")
    keys = {}
    for scopes in (["mileage"], ["warnings"]):
        body = {"label": "k", "roles": ["admin"], "scopes": scopes}
        made = await api.post("/v1/api-keys", headers=admin, json=body)
        assert made.status_code == 201, made.text
        keys[scopes[0]] = {"X-API-Key": made.json()["key"]}
    for path in ("/v1/warnings", "/v1/warnings/w-city", "/v1/warnings/stream"):
        refused = await api.get(path, headers=keys["mileage"])
        assert refused.status_code == 403, (path, refused.text)
        assert "not scoped for warnings" in refused.json()["detail"]
    listed = await api.get("/v1/warnings", headers=keys["warnings"])
    assert [w["warning_id"] for w in listed.json()["items"]] == SEES["fleet-a-analyst"]
