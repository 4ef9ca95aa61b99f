"""The audit log as a transparency log, on the real PostgreSQL: checkpoints signed and stored
as entries are appended (no request needed), served by size through the audit and the ledger
routes, RFC 9162 consistency proofs between two stored checkpoints (checked with ``chain``,
whose proofs are checked against the RFC 9162 vectors), and a witness (``roadledger witness``)
that follows and cosigns the log, whose cosignature is served with the checkpoint and backs an
owner's proof of its own audit entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.access import require_access
from app import cli
from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.cosignature import CosignatureSigner, verify_cosignatures
from chain.encoding import b64_decode
from chain.errors import ChainError
from chain.hashing import leaf_hash
from chain.merkle import compute_root, verify_consistency, verify_inclusion
from chain.note_signers import Ed25519Verifier
from chain.witness import format_proof_lines
from contracts.access import Scope
from roadledger.audit.log import audit_origin
from roadledger.log_key import load_log_key
from roadledger.settings import Settings
from tests.integration.api.access_support import AUDIT_LEAVES, add_devices, principal
from tests.integration.api.conftest import bearer
from tests.integration.api.test_ledger_routes import witnesses
from tests.support.pipeline import wait_until

pytestmark = [pytest.mark.postgres]

ROUTE = "GET /v1/vehicles/{device_id}/track"


@pytest.fixture
def api_settings(postgres: Settings) -> Settings:
    """Checkpoints every 20 ms, so the test sees the log signed as it grows."""
    return postgres.model_copy(update={"audit_checkpoint_interval_ms": 20})


def _verifier(settings: Settings) -> Ed25519Verifier:
    origin = audit_origin(settings.origin_prefix)
    return Ed25519Verifier.from_vkey(load_log_key(settings).vkey(origin))


async def _stored(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    """The audit log's stored checkpoints (size, note), by size."""
    rows = await pool.fetch(
        "SELECT tree_size, note FROM ledger_checkpoints "
        "WHERE log_id = (SELECT log_id FROM audit_head) ORDER BY tree_size"
    )
    return [(row[0], row[1]) for row in rows]


async def _signed_up_to_head(pool: asyncpg.Pool) -> bool:
    row = await pool.fetchrow(
        "SELECT h.tree_size = l.tree_size FROM audit_head h JOIN ledger_logs l USING (log_id)"
    )
    return bool(row[0])


async def _get(api: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    answer = await api.get(path, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return (
        answer.json()
        if answer.headers["content-type"].startswith("application/json")
        else (answer.text)
    )


async def test_checkpoints_are_signed_and_stored_as_entries_are_appended(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool, api_settings: Settings
) -> None:
    verifier = _verifier(api_settings)
    sizes: list[int] = []
    for _ in range(3):
        await bearer(api, "fleet-a-admin")  # a login: one more audit entry
        await wait_until(lambda: _signed_up_to_head(api_pool), "the new head signed", 30)
        sizes.append(await api_pool.fetchval("SELECT tree_size FROM audit_head"))
    assert sizes == sorted(set(sizes)), "each login grew the log and got its checkpoint"
    stored = dict(await _stored(api_pool))
    assert set(sizes) <= set(stored)
    hashes = [bytes(row[2]) for row in await api_pool.fetch(AUDIT_LEAVES, -1)]
    headers = await bearer(api, "fleet-b-admin")  # any member reads checkpoints
    log_id = (await _get(api, "/v1/audit/checkpoint", headers))["log_id"]
    for size, note in stored.items():
        signed = SignedCheckpoint.open(note, verifier).checkpoint
        assert (signed.origin, signed.size) == (audit_origin(api_settings.origin_prefix), size)
        assert signed.root_hash == compute_root(hashes[:size])
        # the same note by size, from the audit route and from the ledger's
        by_size = await _get(api, "/v1/audit/checkpoint", headers, tree_size=size)
        assert (by_size["checkpoint"], by_size["tree_size"]) == (note, size)
        assert await _get(api, f"/v1/ledger/logs/{log_id}/checkpoint", headers,
                          tree_size=size) == note  # fmt: skip
    logs = await _get(api, "/v1/ledger/logs", headers)
    assert [log["origin"] for log in logs] == [audit_origin(api_settings.origin_prefix)]
    missing = await api.get("/v1/audit/checkpoint", params={"tree_size": 10**6}, headers=headers)
    assert missing.status_code == 404
    # its entries are shown by /v1/audit to those who may see them, not by the ledger's route
    refused = await api.get(f"/v1/ledger/logs/{log_id}/entries/0", headers=headers)
    assert refused.status_code == 403


async def test_a_consistency_proof_between_stored_checkpoints_verifies(
    api: httpx.AsyncClient, api_settings: Settings, tmp_path: Path
) -> None:
    headers = await bearer(api, "fleet-a-admin")
    first = await _get(api, "/v1/audit/checkpoint", headers)
    for username in ("fleet-b-admin", "police-admin", "insurer-x-admin"):
        await bearer(api, username)
    second = await _get(api, "/v1/audit/checkpoint", headers)
    verifier = _verifier(api_settings)
    old = SignedCheckpoint.open(first["checkpoint"], verifier).checkpoint
    new = SignedCheckpoint.open(second["checkpoint"], verifier).checkpoint
    assert old.size < new.size
    answer = await _get(api, f"/v1/ledger/logs/{first['log_id']}/proofs/consistency", headers,
                        first=old.size, second=new.size)  # fmt: skip
    proof = [b64_decode(node) for node in answer["proof"]]
    assert proof
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    forged = bytes([new.root_hash[0] ^ 1]) + new.root_hash[1:]
    with pytest.raises(ChainError):
        verify_consistency(old.size, new.size, old.root_hash, forged, proof)
    with pytest.raises(ChainError):  # nor does an old root the log never had
        verify_consistency(old.size, new.size, forged, new.root_hash, proof)
    # The same with `roadledger proof check`, the verifier checked against the RFC 9162 vectors.
    case = {"size1": old.size, "size2": new.size, "proof_hex": [p.hex() for p in proof],
            "root1_hex": old.root_hash.hex()}  # fmt: skip
    cases = {
        "consistency": [{**case, "root2_hex": new.root_hash.hex()}],
        "negative": [{**case, "root2_hex": forged.hex(), "kind": "consistency"}],
    }
    (tmp_path / "audit-proofs.json").write_text(json.dumps(cases))
    assert cli.main(["proof", "check", str(tmp_path / "audit-proofs.json")]) == 0


def _witness_adds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log_vkey: str, note: str, old: int,
    proof: list[bytes],
) -> tuple[int, str]:  # fmt: skip
    """``roadledger witness add-checkpoint``: its exit status and output."""
    (tmp_path / "checkpoint.txt").write_text(note)
    (tmp_path / "proof.txt").write_text(format_proof_lines(proof))
    argv = ["witness", "add-checkpoint", "--key", str(tmp_path / "w.key"),
            "--state", str(tmp_path / "state"), "--log-key", log_vkey,
            "--checkpoint", str(tmp_path / "checkpoint.txt"), "--old-size", str(old)]  # fmt: skip
    if proof:
        argv += ["--proof", str(tmp_path / "proof.txt")]
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out + captured.err


async def test_a_witness_follows_and_cosigns_and_an_owner_proves_its_entry(
    api: httpx.AsyncClient,
    api_pool: asyncpg.Pool,
    api_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await witnesses(api_pool)
    signer = CosignatureSigner.generate("witness.test/audit-w")
    (tmp_path / "w.key").write_text(signer.to_skey() + "\n")
    (tmp_path / "w.key").chmod(0o600)
    body = {"vkey": signer.verifier().to_vkey()}
    admin_w = await bearer(api, "witness-w-admin")
    registered = await api.post("/v1/ledger/witness-keys", json=body, headers=admin_w)
    assert registered.status_code == 201, registered.text
    bot = await bearer(api, "witness-w-bot")
    first = await _get(api, "/v1/audit/checkpoint", bot)
    log_id, log_vkey = first["log_id"], first["vkey"]

    async def cosign(size: int, line: str) -> None:
        body = {"tree_size": size, "cosignature": line}
        sent = await api.post(f"/v1/ledger/logs/{log_id}/cosignatures", json=body, headers=bot)
        assert sent.status_code == 201, sent.text

    status, line = _witness_adds(tmp_path, capsys, log_vkey, first["checkpoint"], 0, [])
    assert status == 0, line
    await cosign(first["tree_size"], line)

    # The owner's vehicle is read; the witness follows the log to a checkpoint covering it.
    await add_devices(api_pool, "fleet-a", "veh-a1")
    analyst = await principal(api, api_pool, "fleet-a-analyst")
    await require_access(api_pool, analyst, "veh-a1", Scope.TRACK, action=ROUTE)
    second = await _get(api, "/v1/audit/checkpoint", bot)
    old, size = first["tree_size"], second["tree_size"]
    consistency = await _get(api, f"/v1/ledger/logs/{log_id}/proofs/consistency", bot,
                             first=old, second=size)  # fmt: skip
    proof = [b64_decode(node) for node in consistency["proof"]]
    status, line = _witness_adds(tmp_path, capsys, log_vkey, second["checkpoint"], old, proof)
    assert status == 0, line
    await cosign(size, line)

    # Never two roots for one size: a note of the same size and another root is refused,
    # even signed with the log's own key.
    key = load_log_key(api_settings).signer(second["origin"])
    other = bytes(32) if second["root_hash"] != "00" * 32 else bytes([1] * 32)
    fork = sign_checkpoint(Checkpoint(second["origin"], size, other), key).to_text()
    status, said = _witness_adds(tmp_path, capsys, log_vkey, fork, size, [])
    assert status == 1, said
    assert "refused" in said

    # The owner's admin proves the read of its vehicle against the cosigned checkpoint.
    admin = await bearer(api, "fleet-a-admin")
    reads = (await _get(api, "/v1/audit", admin, event="data_access", device_id="veh-a1"))["items"]
    [read] = [e for e in reads if e["index"] < size]
    answer = await _get(api, f"/v1/audit/{read['index']}/proof", admin, tree_size=size)
    note = answer["checkpoint"]["checkpoint"]
    assert note == await _get(api, f"/v1/ledger/logs/{log_id}/checkpoint", admin, tree_size=size)
    cosigned = verify_cosignatures(
        note, Ed25519Verifier.from_vkey(log_vkey), [signer.verifier()], 1
    ).checkpoint
    assert (cosigned.size, answer["tree_size"]) == (size, size)
    entry = answer["entry"]["entry"].encode()
    assert b"fleet-a-analyst" not in entry  # ids only: the member id, never the username
    path = [bytes.fromhex(node) for node in answer["inclusion_path"]]
    verify_inclusion(read["index"], size, leaf_hash(entry), cosigned.root_hash, path)
    with pytest.raises(ChainError):
        verify_inclusion(read["index"], size, leaf_hash(entry + b" "), cosigned.root_hash, path)
    too_old = await api.get(f"/v1/audit/{read['index']}/proof", params={"tree_size": old},
                            headers=admin)  # fmt: skip
    assert too_old.status_code == 422
    assert "tree_size" in too_old.text
