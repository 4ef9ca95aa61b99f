"""What the route's one verification of a certificate guarantees: a stored message or a proof
node changed in the database after ingest makes no certificate (409 naming the message), and
the signature worker's answers change nothing in what is served."""

from __future__ import annotations

import time
from collections.abc import Awaitable

import asyncpg
import httpx
import pytest

from chain.hashing import leaf_hash
from chain.note_signers import Ed25519Verifier
from roadledger.certificates import issue_certificate
from roadledger.log_key import existing_log_key
from roadledger.settings import Settings
from roadledger.signer_pool import SignerPool
from tests.integration.api.ledger_support import HOUR_MS, Ledger, api_settings, drive
from tests.integration.api.test_certificates import request
from tests.unit.ingest.fleet import Device

pytestmark = [pytest.mark.postgres]
__all__ = ["api_settings"]  # a fixture used here: the log key in the test's directory

MESSAGES = 24  # leaves past 16: their proofs read a stored node (levels 4 and up)


async def _sequenced(
    pool: asyncpg.Pool, settings: Settings, name: str
) -> tuple[Device, list[bytes], int]:
    ledger = Ledger(pool, settings)
    car = Device(name)
    await ledger.register(car.records)
    start = int(time.time() * 1000) - HOUR_MS
    sent = drive(car, MESSAGES, start)
    await ledger.sequence(sent, car.device_id)
    return car, sent, start


async def _refused_after(
    api: httpx.AsyncClient, period: tuple[str, int, int], change: Awaitable[str]
) -> str:
    """The 409 detail of the certificate of ``period``, issued (201) before ``change``."""
    assert (await request(api, "fleet-a-admin", *period)).status_code == 201
    assert await change != "UPDATE 0"
    refused = await request(api, "fleet-a-admin", *period)
    assert refused.status_code == 409, refused.text
    detail: str = refused.json()["detail"]
    return detail


async def test_a_message_changed_in_the_database_is_refused(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    car, sent, start = await _sequenced(api_pool, api_settings, "veh-t1")
    # seq 6's stored bytes altered after ingest (its signature), its leaf hash kept
    raw = sent[5]
    tampered = raw[:-2] + (b"AA" if raw[-2:] != b"AA" else b"BA")
    change = api_pool.execute(
        "UPDATE ledger_entries SET entry = $1 WHERE leaf_hash = $2", tampered, leaf_hash(raw)
    )
    detail = await _refused_after(api, (car.device_id, start, start + HOUR_MS), change)
    assert detail.startswith(
        "the ledger's data makes no valid certificate: messages[5]: bad_signature"
    )


async def test_a_proof_node_changed_in_the_database_is_refused(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    car, _, start = await _sequenced(api_pool, api_settings, "veh-t2")
    change = api_pool.execute("UPDATE ledger_nodes SET hash = $1", bytes(32))
    detail = await _refused_after(api, (car.device_id, start, start + HOUR_MS), change)
    assert "messages[" in detail
    assert "inclusion proof of leaf" in detail


async def test_the_signature_worker_changes_nothing_served(
    api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    car, _, start = await _sequenced(api_pool, api_settings, "veh-t3")
    key = existing_log_key(api_settings)

    def log_verifier(origin: str) -> Ed25519Verifier:
        return Ed25519Verifier.from_vkey(key.vkey(origin))

    alone = await issue_certificate(api_pool, car.device_id, start, start + HOUR_MS, log_verifier)
    signers = SignerPool()
    try:
        helped = await issue_certificate(
            api_pool, car.device_id, start, start + HOUR_MS, log_verifier, signers
        )
        assert signers.answered == 1, "the worker answered"
    finally:
        await signers.close()
    assert helped.certificate.to_json() == alone.certificate.to_json()
