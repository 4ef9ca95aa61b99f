"""The audit log's routes: who sees which entries, filters and pages, inclusion proofs that
verify against the checkpoint signed with the log key, and appends that stay consistent when
many requests write at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
import pytest

from api.access import require_access
from chain.checkpoint import SignedCheckpoint
from chain.hashing import leaf_hash
from chain.merkle import compute_root, verify_inclusion
from chain.note_signers import Ed25519Verifier
from contracts.access import Scope
from roadledger.audit.log import audit_origin
from roadledger.log_key import load_log_key
from roadledger.settings import Settings
from tests.integration.api.access_support import (
    AUDIT_LEAVES,
    add_devices,
    audit_entries,
    grant_body,
    principal,
)
from tests.integration.api.conftest import PASSWORD, bearer

pytestmark = [pytest.mark.postgres]

ROUTE = "GET /v1/vehicles/{device_id}/track"


async def _reads(api: httpx.AsyncClient, pool: asyncpg.Pool) -> str:
    """fleet-a's analyst reads veh-a1 and veh-a2; insurer-x reads veh-a1 through a grant;
    fleet-b reads its own veh-b1. Returns the grant id."""
    await add_devices(pool, "fleet-a", "veh-a1", "veh-a2")
    await add_devices(pool, "fleet-b", "veh-b1")
    now_ms = int(time.time() * 1000)
    answer = await api.post("/v1/grants", json=grant_body(["veh-a1"], ["mileage"], now_ms),
                            headers=await bearer(api, "fleet-a-admin"))  # fmt: skip
    analyst = await principal(api, pool, "fleet-a-analyst")
    for device in ("veh-a1", "veh-a2"):
        await require_access(pool, analyst, device, Scope.TRACK, action=ROUTE)
    insurer = await principal(api, pool, "insurer-x-agent")
    await require_access(pool, insurer, "veh-a1", Scope.MILEAGE, action=ROUTE)
    fleet_b = await principal(api, pool, "fleet-b-admin")
    await require_access(pool, fleet_b, "veh-b1", Scope.TRACK, action=ROUTE)
    grant_id: str = answer.json()["grant_id"]
    return grant_id


async def _list(api: httpx.AsyncClient, username: str, **params: Any) -> list[dict[str, Any]]:
    answer = await api.get("/v1/audit", params=params, headers=await bearer(api, username))
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_an_organisation_sees_its_vehicles_and_its_members_only(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    grant_id = await _reads(api, api_pool)
    mine = await _list(api, "fleet-a-admin", event="data_access")
    assert sorted((e["actor_org"], e["device_id"], e["grant_id"]) for e in mine) == [
        ("fleet-a", "veh-a1", "owner"),
        ("fleet-a", "veh-a2", "owner"),
        ("insurer-x", "veh-a1", grant_id),  # who read my vehicle, under which grant
    ]
    theirs = await _list(api, "fleet-b-admin", event="data_access")
    assert [(e["actor_org"], e["device_id"]) for e in theirs] == [("fleet-b", "veh-b1")]
    insurer = await _list(api, "insurer-x-admin")
    assert {e["actor_org"] for e in insurer} == {"insurer-x"}  # its own members' actions
    everything = await _list(api, "ops", event="data_access")
    assert len(everything) == 4
    # Nobody sees another organisation's logins.
    assert all(e["actor_org"] == "fleet-b" for e in await _list(api, "fleet-b-admin"))


async def test_filters_and_pages(api: httpx.AsyncClient, api_pool: asyncpg.Pool) -> None:
    await _reads(api, api_pool)
    assert [e["device_id"] for e in await _list(api, "fleet-a-admin", device_id="veh-a2")] == [
        "veh-a2"
    ]
    by_insurer = await _list(api, "fleet-a-admin", actor_org="insurer-x", event="data_access")
    assert [(e["device_id"], e["scope"]) for e in by_insurer] == [("veh-a1", "mileage")]
    assert len(await _list(api, "fleet-a-admin", scope="track")) == 2
    headers = await bearer(api, "ops")

    async def page(**params: Any) -> dict[str, Any]:
        answer = await api.get("/v1/audit", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    everything = (await page())["items"]
    middle = everything[len(everything) // 2]
    later = (await page(since_ms=middle["at_ms"]))["items"]
    earlier = (await page(until_ms=middle["at_ms"]))["items"]
    assert [e["index"] for e in later + earlier] == [e["index"] for e in everything]
    assert all(e["at_ms"] >= middle["at_ms"] for e in later)
    seen: list[int] = []
    cursor = None
    while True:
        one = await page(limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [e["index"] for e in one["items"]]
        cursor = one["next_cursor"]
        if cursor is None:
            break
    total = await api_pool.fetchval("SELECT tree_size FROM audit_head")
    assert seen == list(range(total - 1, -1, -1))  # newest first, none repeated or skipped
    bad = await api.get("/v1/audit", params={"scope": "nonsense"}, headers=headers)
    assert bad.status_code == 422
    assert "scope" in bad.text


async def test_reading_the_audit_log_needs_an_admin_or_auditor(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/audit", headers=await bearer(api, "fleet-a-analyst"))
    assert answer.status_code == 403


async def test_auditors_see_what_their_organisation_sees(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    ops = await bearer(api, "ops")
    for org_id, username in (("operator", "ops-auditor"), ("fleet-b", "fleet-b-auditor")):
        body = {"username": username, "password": PASSWORD, "roles": ["auditor"]}
        made = await api.post(f"/v1/organisations/{org_id}/members", json=body, headers=ops)
        assert made.status_code == 201, made.text
    await _reads(api, api_pool)
    reads = await _list(api, "ops-auditor", event="data_access")
    assert {(e["actor_org"], e["device_id"]) for e in reads} == {
        ("fleet-a", "veh-a1"), ("fleet-a", "veh-a2"), ("insurer-x", "veh-a1"),
        ("fleet-b", "veh-b1"),
    }  # fmt: skip
    theirs = await _list(api, "fleet-b-auditor", event="data_access")
    assert [(e["actor_org"], e["device_id"]) for e in theirs] == [("fleet-b", "veh-b1")]


async def test_a_proof_verifies_against_the_checkpoint_signed_with_the_log_key(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    await _reads(api, api_pool)
    origin = audit_origin(api_settings.origin_prefix)
    verifier = Ed25519Verifier.from_vkey(load_log_key(api_settings).vkey(origin))
    headers = await bearer(api, "fleet-a-admin")
    for item in await _list(api, "fleet-a-admin"):
        answer = await api.get(f"/v1/audit/{item['index']}/proof", headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        signed = SignedCheckpoint.open(body["checkpoint"]["checkpoint"], verifier)
        assert signed.checkpoint.origin == origin
        assert signed.checkpoint.size == body["tree_size"]
        leaf = leaf_hash(body["entry"]["entry"].encode())
        assert leaf.hex() == body["entry"]["leaf_hash"]
        path = [bytes.fromhex(h) for h in body["inclusion_path"]]
        verify_inclusion(item["index"], signed.checkpoint.size, leaf, signed.checkpoint.root_hash,
                         path)  # fmt: skip
    # The checkpoint route signs and stores the head: every entry appended so far.
    answer = await api.get("/v1/audit/checkpoint", headers=headers)
    signed = SignedCheckpoint.open(answer.json()["checkpoint"], verifier)
    assert signed.checkpoint.size == await api_pool.fetchval("SELECT tree_size FROM audit_head")
    stored = await api_pool.fetchval(
        "SELECT note FROM ledger_checkpoints WHERE tree_size = $1 AND log_id = $2",
        signed.checkpoint.size,
        answer.json()["log_id"],
    )
    assert stored == answer.json()["checkpoint"]  # no witness yet: the log's note alone


async def test_another_organisation_cannot_prove_my_entries(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    await _reads(api, api_pool)
    mine = [e for e in await _list(api, "fleet-a-admin") if e["actor_org"] == "fleet-a"]
    headers = await bearer(api, "fleet-b-admin")
    answer = await api.get(f"/v1/audit/{mine[0]['index']}/proof", headers=headers)
    assert answer.status_code == 404
    assert (await api.get("/v1/audit/999999/proof", headers=headers)).status_code == 404


async def test_fifty_parallel_reads_make_a_consistent_log(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    await add_devices(api_pool, "fleet-a", *(f"veh-{n}" for n in range(50)))
    analyst = await principal(api, api_pool, "fleet-a-analyst")
    before = await api_pool.fetchval("SELECT tree_size FROM audit_head")
    await asyncio.gather(
        *(require_access(api_pool, analyst, f"veh-{n}", Scope.TRACK, action=ROUTE)
          for n in range(50))
    )  # fmt: skip
    rows = await api_pool.fetch(AUDIT_LEAVES, -1)
    size = await api_pool.fetchval("SELECT tree_size FROM audit_head")
    assert size == before + 50 == len(rows)
    assert [r[0] for r in rows] == list(range(size))
    reads = await audit_entries(api_pool, "data_access")
    assert sorted(e["device_id"] for e in reads) == sorted(f"veh-{n}" for n in range(50))
    hashes = [bytes(r[2]) for r in rows]
    assert hashes == [leaf_hash(bytes(r[1])) for r in rows]
    root = bytes(await api_pool.fetchval("SELECT root_hash FROM audit_head"))
    assert compute_root(hashes) == root
    headers = await bearer(api, "fleet-a-admin")
    for index in range(before, size):
        body = (await api.get(f"/v1/audit/{index}/proof", headers=headers)).json()
        path = [bytes.fromhex(h) for h in body["inclusion_path"]]
        verify_inclusion(index, body["tree_size"], hashes[index], bytes.fromhex(
            body["checkpoint"]["root_hash"]), path)  # fmt: skip
