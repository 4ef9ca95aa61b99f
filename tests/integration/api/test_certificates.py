"""Mileage certificates from the live ledger: built by the route, checked by the real
``roadledger verify`` with the published log and witness keys; access by ownership or a
certificate grant; a rolled-back odometer shown as an anomaly; the time of 10,000 messages."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from chain.cosignature import CosignatureSigner
from chain.encoding import b64_decode
from chain.note_signers import Ed25519Verifier
from chain.witness import MemoryWitnessStateStore, Witness
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
from tests.integration.api.ledger_support import (
    HOUR_MS,
    Ledger,
    api_settings,
    drive,
    telemetry_vkey,
    verified,
)
from tests.integration.api.test_ledger_routes import witnesses
from tests.support.pipeline import ROADLEDGER
from tests.unit.ingest.fleet import Device

pytestmark = [pytest.mark.postgres]
__all__ = ["api_settings"]  # a fixture used here: the log key in the test's directory


async def witnessed(
    api: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, car: Device, sent: list[bytes]
) -> list[str]:
    """``car`` registered and ``sent`` sequenced, then the log's latest checkpoint cosigned
    through the API by witness-w, as a witness would; the vkeys a verifier needs (log,
    witness)."""
    ledger = Ledger(pool, settings)
    await ledger.register(car.records)
    await ledger.sequence(sent, car.device_id)
    witness_vkey = await cosign_every_log(api, pool)
    keys = (await api.get("/v1/ledger/keys", headers=await bearer(api, "witness-w-bot"))).json()
    return [telemetry_vkey(keys), witness_vkey]


async def cosign_every_log(api: httpx.AsyncClient, pool: asyncpg.Pool) -> str:
    """witness-w (made here) registers its key through the API and its bot cosigns the latest
    checkpoint of every log that has one, checked against the published log key, as a
    witness would; the witness's vkey."""
    signer = CosignatureSigner.generate("w.t/1")
    await witnesses(pool)
    admin = await bearer(api, "witness-w-admin")
    vkey = signer.verifier().to_vkey()
    made = await api.post("/v1/ledger/witness-keys", json={"vkey": vkey}, headers=admin)
    assert made.status_code == 201, made.text
    bot = await bearer(api, "witness-w-bot")
    keys = (await api.get("/v1/ledger/keys", headers=bot)).json()
    log_vkeys = {k["origin"]: k["vkey"] for k in keys["logs"]}
    witness = Witness(signer, MemoryWitnessStateStore())
    for log in (await api.get("/v1/ledger/logs", headers=bot)).json():
        if log["tree_size"] == 0:
            continue
        base = f"/v1/ledger/logs/{log['log_id']}"
        note = (await api.get(f"{base}/checkpoint", headers=bot)).text
        proof = (await api.get(f"{base}/proofs/consistency?first=0", headers=bot)).json()
        line = witness.add_checkpoint(
            note,
            0,
            [b64_decode(h) for h in proof["proof"]],
            Ed25519Verifier.from_vkey(log_vkeys[log["origin"]]),
        )
        body = {"tree_size": log["tree_size"], "cosignature": line}
        posted = await api.post(f"{base}/cosignatures", json=body, headers=bot)
        assert posted.status_code == 201, posted.text
    return vkey


def roadledger_verify(path: Path, log_vkey: str, witness_vkey: str, device_id: str) -> str:
    """Run the real CLI on the downloaded file; its output (fails the test unless exit 0)."""
    witness = ["--witness-key", witness_vkey, "--min-witnesses", "1"]
    return roadledger_verify_log_only(path, log_vkey, device_id, witness)


def roadledger_verify_log_only(
    path: Path, log_vkey: str, device_id: str, more: list[str] | None = None
) -> str:
    """``roadledger verify`` with the log key (and ``more`` arguments); its output."""
    done = subprocess.run(
        [ROADLEDGER, "verify", str(path), "--log-key", log_vkey, "--device", device_id,
         *(more or [])],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def request(
    api: httpx.AsyncClient, username: str, device_id: str, from_ms: int, to_ms: int
) -> httpx.Response:
    return await api.post(
        f"/v1/vehicles/{device_id}/certificates",
        json={"from_ms": from_ms, "to_ms": to_ms},
        headers=await bearer(api, username),
    )


async def test_a_certificate_verifies_with_the_published_keys_and_needs_access(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings, tmp_path: Path
) -> None:
    car = Device("veh-c1")
    start = int(time.time() * 1000) - 2 * HOUR_MS
    sent = drive(car, 60, start, step_ms=10_000)
    log_vkey, witness_vkey = await witnessed(api, api_pool, api_settings, car, sent)

    # seq 11..40: the predecessor (seq 10) chains to it, so the range stays as asked
    from_ms, to_ms = start + 100_000, start + 400_000
    answer = await request(api, "fleet-a-analyst", car.device_id, from_ms, to_ms)
    assert answer.status_code == 201, answer.text
    document: dict[str, Any] = answer.json()
    assert (document["from_ms"], document["to_ms"]) == (from_ms, to_ms)
    assert document["summary"]["first_seq"] == 11
    assert document["summary"]["message_count"] == 30
    assert document["summary"]["anomalies"] == []
    assert "w.t/1" in document["checkpoint"]
    path = tmp_path / "certificate.json"
    path.write_bytes(answer.content)
    output = roadledger_verify(path, log_vkey, witness_vkey, car.device_id)
    assert "OK mileage certificate for veh-c1" in output
    assert "1 of 1 cosigned" in output

    # an insurer sees nothing without a grant, is refused with the wrong scope, served with it
    assert (await request(api, "insurer-x-agent", car.device_id, from_ms, to_ms)).status_code == 404
    assert (await request(api, "fleet-b-admin", car.device_id, from_ms, to_ms)).status_code == 404
    now = int(time.time() * 1000)
    grant = {"grantee_org": "insurer-x", "device_ids": [car.device_id], "purpose": "policy 1",
             "valid_from_ms": now - 1000, "valid_until_ms": now + 24 * HOUR_MS}  # fmt: skip
    admin = await bearer(api, "fleet-a-admin")
    made = await api.post("/v1/grants", json=grant | {"scopes": ["track"]}, headers=admin)
    assert made.status_code == 201, made.text
    assert (await request(api, "insurer-x-agent", car.device_id, from_ms, to_ms)).status_code == 403
    made = await api.post("/v1/grants", json=grant | {"scopes": ["certificate"]}, headers=admin)
    assert made.status_code == 201, made.text
    granted = await request(api, "insurer-x-agent", car.device_id, from_ms, to_ms)
    assert granted.status_code == 201, granted.text
    assert granted.json()["messages"] == document["messages"]

    # bad periods name the field; a period without messages is 404
    backwards = await request(api, "fleet-a-analyst", car.device_id, to_ms, from_ms)
    assert backwards.status_code == 422
    assert backwards.json()["detail"].startswith("to_ms")
    empty = await request(api, "fleet-a-analyst", car.device_id, start - 10_000, start - 5_000)
    assert empty.status_code == 404


async def test_a_rolled_back_odometer_is_an_anomaly_of_the_certificate(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings, tmp_path: Path
) -> None:
    car = Device("veh-r1")
    start = int(time.time() * 1000) - HOUR_MS
    sent = drive(car, 10, start)
    # from seq 11 on the odometer reads from 1 km: wound back, and counting on from there
    sent += [car.message(start + 10_000 + i * 1000, odo_m=1_000 + i * 14) for i in range(6)]
    log_vkey, witness_vkey = await witnessed(api, api_pool, api_settings, car, sent)
    answer = await request(api, "fleet-a-admin", car.device_id, start, start + 60_000)
    assert answer.status_code == 201, answer.text
    anomalies = answer.json()["summary"]["anomalies"]
    assert [(a["seq"], a["kind"]) for a in anomalies] == [(11, "odometer_rollback")]
    assert answer.json()["summary"]["distance_m"] < 0
    path = tmp_path / "rolled-back.json"
    path.write_bytes(answer.content)
    output = roadledger_verify(path, log_vkey, witness_vkey, car.device_id)
    assert "odometer_rollback" in output


async def test_a_certificate_of_ten_thousand_messages(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings, tmp_path: Path
) -> None:
    car = Device("veh-big")
    start = int(time.time() * 1000) - 3 * HOUR_MS
    sent = drive(car, 10_000, start, step_ms=1000)
    log_vkey, witness_vkey = await witnessed(api, api_pool, api_settings, car, sent)
    began = time.perf_counter()
    answer = await request(api, "fleet-a-analyst", car.device_id, start, start + 3 * HOUR_MS)
    took = time.perf_counter() - began
    assert answer.status_code == 201, answer.text
    document = json.loads(answer.content)
    assert document["summary"]["message_count"] == 10_000
    print(f"\n10,000-message certificate through the route: {took:.2f} s, "
          f"{len(answer.content) / 1e6:.1f} MB")  # fmt: skip
    path = tmp_path / "big.json"
    path.write_bytes(answer.content)
    roadledger_verify(path, log_vkey, witness_vkey, car.device_id)


async def test_a_certificate_that_would_not_verify_is_not_handed_out(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    # A message signed after its key's revocation reached the log (here past the verifier,
    # which would have quarantined it): the builder does not check validity windows, the
    # route's own verification does.
    ledger = Ledger(api_pool, api_settings)
    car = Device("veh-x1")
    await ledger.register(car.records)
    start = int(time.time() * 1000) - HOUR_MS
    sent = drive(car, 5, start)
    await ledger.registry.revoke(car.device_id, start + 10_000)
    sent.append(car.message(start + 20_000))
    await ledger.sequence(sent, car.device_id)
    refused = await request(api, "fleet-a-admin", car.device_id, start, start + 60_000)
    assert refused.status_code == 409, refused.text
    assert "revoked_key" in refused.json()["detail"]
    before = await request(api, "fleet-a-admin", car.device_id, start, start + 10_000)
    assert before.status_code == 201, before.text
    assert len(before.json()["device_keys"]) == 2, "registration and revocation"


async def test_a_message_stored_but_not_yet_sequenced_is_left_out(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    ledger = Ledger(api_pool, api_settings)
    car = Device("veh-s1")
    await ledger.register(car.records)
    start = int(time.time() * 1000) - HOUR_MS
    first = drive(car, 5, start)
    late = car.message(start + 5_000)  # seq 6: stored, still on its way to the sequencer
    rest = drive(car, 4, start + 6_000)
    await ledger.sequence([*first, *rest], car.device_id)
    await ledger.store(verified([late]))
    answer = await request(api, "fleet-a-admin", car.device_id, start + 5_000, start + 60_000)
    assert answer.status_code == 201, answer.text
    summary = answer.json()["summary"]
    assert (summary["first_seq"], summary["last_seq"], summary["message_count"]) == (7, 10, 4)
