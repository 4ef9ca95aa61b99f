"""The ledger routes on the real PostgreSQL, over a log the pipeline's stages wrote: logs,
checkpoints, blocks, RFC 9162 proofs (the store's own, and they verify), entries behind the
vehicle's access rules, keys, and witnesses' cosignatures verified before they are kept."""

from __future__ import annotations

import base64
import time

import asyncpg
import httpx
import pytest

from chain.blocks import BlockHeader, verify_block_chain
from chain.checkpoint import SignedCheckpoint
from chain.cosignature import CosignatureSigner, cosign, verify_cosignatures
from chain.encoding import b64_decode
from chain.hashing import leaf_hash
from chain.merkle import verify_consistency, verify_inclusion
from chain.note_signers import Ed25519Verifier
from chain.witness import MemoryWitnessStateStore, Witness
from contracts.access import OrgKind, Role
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from roadledger.settings import Settings
from tests.integration.api.conftest import PASSWORD, bearer
from tests.integration.api.ledger_support import (
    HOUR_MS,
    Ledger,
    api_settings,
    drive,
    telemetry_vkey,
)
from tests.unit.ingest.fleet import Device

pytestmark = [pytest.mark.postgres]
__all__ = ["api_settings"]  # a fixture used here: the log key in the test's directory

DAY_MS = 24 * HOUR_MS


@pytest.fixture
async def car(api_pool: asyncpg.Pool, api_settings: Settings) -> tuple[Device, list[bytes]]:
    """veh-a1 of fleet-a with 40 messages of the last hour in the log (after its key)."""
    ledger = Ledger(api_pool, api_settings)
    device = Device("veh-a1")
    await ledger.register(device.records)
    sent = drive(device, 40, int(time.time() * 1000) - HOUR_MS)
    # two rounds: two blocks at least, and an older checkpoint to prove consistency from
    await ledger.sequence(sent[:15], device.device_id)
    assert await ledger.sequence(sent[15:], device.device_id) == 41
    return device, sent


async def witnesses(pool: asyncpg.Pool) -> None:
    """A witness organisation with an admin and a witness bot."""
    async with pool.acquire() as conn:
        await create_organisation(conn, "witness-w", "Witness W", OrgKind.WITNESS)
        await create_member(conn, "witness-w", "witness-w-admin", PASSWORD, (Role.ADMIN,))
        await create_member(conn, "witness-w", "witness-w-bot", PASSWORD, (Role.WITNESS,))


async def only_log(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    """The one telemetry log (the audit log is the other)."""
    answer = await api.get("/v1/ledger/logs", headers=headers)
    assert answer.status_code == 200, answer.text
    (log,) = [log for log in answer.json() if "/telemetry/" in log["origin"]]
    assert isinstance(log, dict)
    return log


async def test_the_checkpoint_is_the_logs_and_its_key_is_published(
    api: httpx.AsyncClient, car: tuple[Device, list[bytes]]
) -> None:
    headers = await bearer(api, "insurer-x-agent")  # any member: hashes only
    log = await only_log(api, headers)
    assert log["tree_size"] == 41
    keys = (await api.get("/v1/ledger/keys", headers=headers)).json()
    vkeys = {k["origin"]: k["vkey"] for k in keys["logs"]}
    prefix = str(log["origin"]).rsplit("/telemetry/", 1)[0]
    assert set(vkeys) == {log["origin"], f"{prefix}/audit"}  # the audit log is a log too
    answer = await api.get(f"/v1/ledger/logs/{log['log_id']}/checkpoint", headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    signed = SignedCheckpoint.open(answer.text, Ed25519Verifier.from_vkey(vkeys[log["origin"]]))
    assert signed.checkpoint.size == 41
    assert signed.checkpoint.root_hash == b64_decode(str(log["root_hash"]))
    older = await api.get(
        f"/v1/ledger/logs/{log['log_id']}/checkpoint", params={"tree_size": 500}, headers=headers
    )
    assert older.status_code == 404
    assert "tree_size" in older.json()["detail"]


async def test_proofs_are_the_stores_and_verify(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, car: tuple[Device, list[bytes]]
) -> None:
    headers = await bearer(api, "police-analyst")
    log = await only_log(api, headers)
    base = f"/v1/ledger/logs/{log['log_id']}"
    store = PostgresLedgerStore(api_pool)
    origin = str(log["origin"])
    _, sent = car
    for index, size in ((0, 41), (7, 41), (40, 41), (3, 16), (15, 16)):
        answer = await api.get(
            f"{base}/proofs/inclusion", params={"leaf_index": index, "tree_size": size},
            headers=headers,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        body = answer.json()
        proof = [b64_decode(h) for h in body["proof"]]
        assert proof == await store.inclusion_proof(origin, index, size)
        root = b64_decode(body["root_hash"])
        assert root == await store.root_at(origin, size)
        verify_inclusion(index, size, b64_decode(body["leaf_hash"]), root, proof)
    # by leaf hash: the message's own hash finds its leaf (after the key record: leaf 1 + i)
    digest = leaf_hash(sent[9])
    answer = await api.get(
        f"{base}/proofs/inclusion", params={"leaf_hash": base64.b64encode(digest).decode()},
        headers=headers,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert (answer.json()["leaf_index"], answer.json()["tree_size"]) == (10, 41)
    for first, second in ((16, 41), (1, 41), (0, 16), (41, 41), (5, 16)):
        answer = await api.get(
            f"{base}/proofs/consistency", params={"first": first, "second": second},
            headers=headers,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        body = answer.json()
        proof = [b64_decode(h) for h in body["proof"]]
        assert proof == await store.consistency_proof(origin, first, second)
        verify_consistency(
            first, second, b64_decode(body["first_root"]), b64_decode(body["second_root"]), proof
        )


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("proofs/inclusion", {"leaf_index": 41}, 422, "leaf_index"),
        ("proofs/inclusion", {"leaf_index": 1, "tree_size": 42}, 422, "tree_size"),
        ("proofs/inclusion", {}, 422, "leaf_index"),
        ("proofs/inclusion", {"leaf_index": 1, "leaf_hash": "AAAA"}, 422, "leaf_index"),
        ("proofs/inclusion", {"leaf_hash": "not base64!"}, 422, "leaf_hash"),
        ("proofs/inclusion", {"leaf_hash": "A" * 43 + "="}, 404, "leaf_hash"),
        ("proofs/consistency", {"first": 20, "second": 10}, 422, "first"),
        ("proofs/consistency", {"first": 1, "second": 99}, 422, "second"),
        ("entries/41", {}, 404, "index"),
    ],
)
async def test_bad_proof_requests_name_the_field(
    api: httpx.AsyncClient,
    car: tuple[Device, list[bytes]],
    path: str,
    params: dict[str, int | str],
    status: int,
    field: str,
) -> None:
    headers = await bearer(api, "fleet-a-analyst")
    log = await only_log(api, headers)
    answer = await api.get(
        f"/v1/ledger/logs/{log['log_id']}/{path}", params=params, headers=headers
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"].startswith(field), answer.json()
    unknown = await api.get("/v1/ledger/logs/999999/proofs/consistency?first=0", headers=headers)
    assert unknown.status_code == 404


async def test_blocks_page_through_a_valid_chain(
    api: httpx.AsyncClient, car: tuple[Device, list[bytes]]
) -> None:
    headers = await bearer(api, "insurer-x-agent")
    log = await only_log(api, headers)
    headers_seen: list[BlockHeader] = []
    cursor: str | None = None
    while True:
        params: dict[str, int | str] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = await api.get(f"/v1/ledger/logs/{log['log_id']}/blocks", params=params,
                             headers=headers)  # fmt: skip
        assert page.status_code == 200, page.text
        headers_seen += [BlockHeader.from_json(item) for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(headers_seen) >= 2
    verify_block_chain(headers_seen)
    assert headers_seen[-1].tree_size == 41
    bad = await api.get(f"/v1/ledger/logs/{log['log_id']}/blocks?cursor=xyz", headers=headers)
    assert bad.status_code == 422


async def test_an_entry_needs_access_to_its_vehicle(
    api: httpx.AsyncClient, car: tuple[Device, list[bytes]]
) -> None:
    device, sent = car
    owner = await bearer(api, "fleet-a-analyst")
    log = await only_log(api, owner)
    entry = f"/v1/ledger/logs/{log['log_id']}/entries/5"
    answer = await api.get(entry, headers=owner)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["kind"], body["device_id"]) == ("telemetry", device.device_id)
    assert b64_decode(body["entry"]) == sent[4]
    key_record = (await api.get(f"/v1/ledger/logs/{log['log_id']}/entries/0", headers=owner)).json()
    assert (key_record["kind"], key_record["device_id"]) == ("device-key", device.device_id)
    # another fleet, an insurer without a grant: the vehicle is not theirs to see
    for username in ("fleet-b-admin", "insurer-x-agent"):
        assert (await api.get(entry, headers=await bearer(api, username))).status_code == 404
    admin = await bearer(api, "fleet-a-admin")
    now = int(time.time() * 1000)
    grant = {
        "grantee_org": "insurer-x",
        "device_ids": [device.device_id],
        "valid_from_ms": now - 1000,
        "valid_until_ms": now + DAY_MS,
        "purpose": "claim 7",
    }
    made = await api.post("/v1/grants", json=grant | {"scopes": ["certificate"]}, headers=admin)
    assert made.status_code == 201, made.text
    insurer = await bearer(api, "insurer-x-agent")
    assert (await api.get(entry, headers=insurer)).status_code == 403, "another scope"
    made = await api.post("/v1/grants", json=grant | {"scopes": ["track"]}, headers=admin)
    assert made.status_code == 201, made.text
    assert (await api.get(entry, headers=insurer)).status_code == 200


async def test_a_witness_cosignature_is_verified_kept_and_served(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, car: tuple[Device, list[bytes]]
) -> None:
    await witnesses(api_pool)
    signer = CosignatureSigner.generate("witness.test/w1")
    admin = await bearer(api, "witness-w-admin")
    registered = await api.post(
        "/v1/ledger/witness-keys", json={"vkey": signer.verifier().to_vkey()}, headers=admin
    )
    assert registered.status_code == 201, registered.text
    again = await api.post(
        "/v1/ledger/witness-keys", json={"vkey": signer.verifier().to_vkey()}, headers=admin
    )
    assert again.status_code == 409
    other = CosignatureSigner.generate("witness.test/w2")
    refused = await api.post("/v1/ledger/witness-keys", json={"vkey": other.verifier().to_vkey()},
                             headers=await bearer(api, "fleet-a-admin"))  # fmt: skip
    assert refused.status_code == 403, "not a witness organisation"

    bot = await bearer(api, "witness-w-bot")
    log = await only_log(api, bot)
    base = f"/v1/ledger/logs/{log['log_id']}"
    keys = (await api.get("/v1/ledger/keys", headers=bot)).json()
    assert [w["name"] for w in keys["witnesses"]] == ["witness.test/w1"]
    log_verifier = Ed25519Verifier.from_vkey(telemetry_vkey(keys))
    # the witness checks consistency from what it cosigned before (nothing: size 0)
    note = (await api.get(f"{base}/checkpoint", headers=bot)).text
    proof = (await api.get(f"{base}/proofs/consistency?first=0", headers=bot)).json()["proof"]
    witness = Witness(signer, MemoryWitnessStateStore())
    line = witness.add_checkpoint(note, 0, [b64_decode(h) for h in proof], log_verifier)
    sent = await api.post(f"{base}/cosignatures", json={"tree_size": 41, "cosignature": line},
                          headers=bot)  # fmt: skip
    assert sent.status_code == 201, sent.text
    assert sent.json()["witness_name"] == "witness.test/w1"
    served = (await api.get(f"{base}/checkpoint", headers=bot)).text
    assert served.endswith(line)
    verify_cosignatures(served, log_verifier, [signer.verifier()], 1)

    # refused: a line over another checkpoint, one by an unregistered key, one by a non-witness
    older = cosign(SignedCheckpoint.from_text(note).checkpoint, signer).to_line()
    wrong_size = await api.post(
        f"{base}/cosignatures", json={"tree_size": 16, "cosignature": older}, headers=bot
    )
    assert wrong_size.status_code == 422, wrong_size.text
    forged = cosign(SignedCheckpoint.from_text(note).checkpoint, other).to_line()
    unknown = await api.post(f"{base}/cosignatures", json={"tree_size": 41, "cosignature": forged},
                             headers=bot)  # fmt: skip
    assert unknown.status_code == 403, unknown.text
    fleet = await api.post(f"{base}/cosignatures", json={"tree_size": 41, "cosignature": line},
                           headers=await bearer(api, "fleet-a-admin"))  # fmt: skip
    assert fleet.status_code == 403
