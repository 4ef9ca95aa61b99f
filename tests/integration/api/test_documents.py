"""Off-ledger documents: the owner registers a hash, the pipeline's stages put its entry in
the vehicle's log, and the proof route proves it against the log's signed checkpoint."""

from __future__ import annotations

import hashlib
import time

import asyncpg
import httpx
import pytest

from chain.checkpoint import SignedCheckpoint
from chain.documents import parse_document_entry
from chain.encoding import b64_decode
from chain.hashing import leaf_hash
from chain.merkle import verify_inclusion
from chain.note_signers import Ed25519Verifier
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
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

REPORT = b"%PDF-1.7 annual inspection of veh-d1, odometer 48,211 km"


async def test_a_documents_hash_is_proven_in_the_vehicles_log(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    ledger = Ledger(api_pool, api_settings)
    car = Device("veh-d1")
    await ledger.register(car.records)
    await ledger.sequence(drive(car, 5, int(time.time() * 1000) - HOUR_MS), car.device_id)
    digest = hashlib.sha256(REPORT).hexdigest()
    body = {"sha256": digest, "kind": "inspection", "description": "TÜV, photo of the odometer"}
    url = f"/v1/vehicles/{car.device_id}/documents"

    # only an admin of the owner registers; another fleet's admin is told nothing
    assert (
        await api.post(url, json=body, headers=await bearer(api, "fleet-b-admin"))
    ).status_code == 404
    assert (
        await api.post(url, json=body, headers=await bearer(api, "fleet-a-analyst"))
    ).status_code == 403
    admin = await bearer(api, "fleet-a-admin")
    bad = await api.post(url, json=body | {"sha256": "12ab"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("body.sha256")
    made = await api.post(url, json=body, headers=admin)
    assert made.status_code == 201, made.text
    document = made.json()
    assert (document["sha256"], document["kind"]) == (digest, "inspection")
    assert (await api.post(url, json=body, headers=admin)).status_code == 409
    proof_url = f"{url}/{document['document_id']}/proof"
    waiting = await api.get(proof_url, headers=admin)
    assert waiting.status_code == 409, "not sequenced yet"

    await ledger.sequence([], car.device_id)  # the outbox relay and the ledger writer run
    analyst = await bearer(api, "fleet-a-analyst")
    listed = await api.get(url, headers=analyst)
    assert [d["document_id"] for d in listed.json()] == [document["document_id"]]
    answer = await api.get(proof_url, headers=analyst)
    assert answer.status_code == 200, answer.text
    proven = answer.json()
    entry = b64_decode(proven["document"]["entry"])
    record = parse_document_entry(entry)
    assert (record.sha256, record.device_id) == (hashlib.sha256(REPORT).hexdigest(), "veh-d1")
    assert "TÜV" not in entry.decode(), "the description stays off the ledger"
    keys = (await api.get("/v1/ledger/keys", headers=analyst)).json()
    signed = SignedCheckpoint.open(
        proven["checkpoint"], Ed25519Verifier.from_vkey(telemetry_vkey(keys))
    )
    assert signed.checkpoint.size == proven["tree_size"]
    verify_inclusion(
        proven["leaf_index"], proven["tree_size"], leaf_hash(entry), signed.checkpoint.root_hash,
        [b64_decode(h) for h in proven["proof"]],
    )  # fmt: skip

    # readers need the certificate scope on the vehicle
    insurer = await bearer(api, "insurer-x-agent")
    assert (await api.get(url, headers=insurer)).status_code == 404
    assert (await api.get(proof_url, headers=insurer)).status_code == 404
    unknown = await api.get(f"{url}/doc_nothing/proof", headers=analyst)
    assert unknown.status_code == 404
