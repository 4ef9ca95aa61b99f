"""End to end on the real services: simulator -> Mosquitto -> bridge -> Kafka -> verifier ->
store writer + ledger writer, with every scenario enabled and the bridge and the verifier
SIGKILLed mid-run.

Judged against the simulator's ground truth: every message expected "stored" is in the
telemetry table exactly once and in its partition's log exactly once with an inclusion proof
that verifies against the log's signed checkpoint; every message expected
"quarantine:<reason>" is in telemetry.quarantine with that reason; duplicates are stored once;
nothing else is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from chain.checkpoint import SignedCheckpoint
from chain.hashing import leaf_hash
from chain.merkle import verify_inclusion
from chain.note_signers import Ed25519Verifier
from contracts.topics import QUARANTINE, RAW, mqtt_telemetry_topic
from device_sim.truth import read_truth
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.log_key import load_log_key
from roadledger.mqtt_auth import sim_account
from roadledger.settings import Settings
from tests.integration.mqtt_client import MqttTestClient
from tests.support.pipeline import (
    ROADLEDGER,
    KafkaProbe,
    PipelineEnv,
    pipeline_env,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.kafka, pytest.mark.slow]


async def _open_front_door(pipeline: PipelineEnv, kafka: KafkaProbe) -> None:
    """Publish a probe until it reaches telemetry.raw: the bridge's session is subscribed."""
    raw = pipeline.settings.topic(RAW)
    probe = MqttTestClient(
        pipeline.settings.mqtt, f"probe-{uuid.uuid4().hex[:8]}", clean_session=True,
        account=sim_account(pipeline.settings),
    ).connect()  # fmt: skip
    try:

        async def arrived() -> bool:
            pipeline.check_alive()
            probe.publish(mqtt_telemetry_topic("probe-device"), b"probe")
            return await kafka.end_offsets(raw) > 0

        await wait_until(arrived, "the bridge to forward a probe into telemetry.raw", 60)
    finally:
        probe.disconnect()


async def test_pipeline_end_to_end_with_sigkills(settings: Settings, tmp_path: Path) -> None:
    async with pipeline_env(settings, tmp_path) as pipeline:
        kafka = KafkaProbe(settings)
        await kafka.start()
        try:
            await _run(pipeline, kafka, tmp_path)
        finally:
            await kafka.stop()


async def _run(pipeline: PipelineEnv, kafka: KafkaProbe, tmp_path: Path) -> None:
    env = pipeline.settings
    for name in ("bridge", "ingest", "sequencer"):
        pipeline.component(name).start()
    await _open_front_door(pipeline, kafka)

    truth_path = tmp_path / "truth.jsonl"
    sim = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the wait runs in a thread
        [ROADLEDGER, "sim", "--vehicles", "30", "--rsus", "4", "--rate", "150",
         "--duration", "20", "--seed", "11", "--scenario", "all", "--truth",
         str(truth_path), "--id-prefix", f"e2e{uuid.uuid4().hex[:6]}", "--quiet"],
        env=pipeline.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip

    # Kill the bridge and the verifier while the fleet is publishing, then restart them.
    raw = env.topic(RAW)

    async def busy() -> bool:
        return await kafka.end_offsets(raw) > 400

    await wait_until(busy, "a few hundred messages in telemetry.raw", 120)
    for name in ("bridge", "ingest"):
        pipeline.component(name).kill()
    for name in ("bridge", "ingest"):
        pipeline.component(name).start()

    sim_output, _ = await asyncio.to_thread(sim.communicate, timeout=300)
    assert sim.returncode == 0, sim_output.decode(errors="replace")
    truth = read_truth(truth_path)
    assert truth.summary is not None
    assert truth.summary["complete"], "every publish was acknowledged by the broker"
    expected = truth.expected_counts()
    assert set(expected) >= {"stored", "duplicate"}
    assert any(o.startswith("quarantine:") for o in expected)

    stored = [m for m in truth.messages if m.expected == "stored"]
    quarantined = {m.sha256: m.expected.split(":", 1)[1] for m in truth.messages
                   if m.expected.startswith("quarantine:")}  # fmt: skip

    async def telemetry_rows() -> int:
        pipeline.check_alive()
        count: int = await pipeline.pool.fetchval("SELECT count(*) FROM telemetry")
        return count

    async def all_stored() -> bool:
        return await telemetry_rows() >= len(stored)

    await wait_until(all_stored, f"{len(stored)} telemetry rows", 180)

    async def all_sequenced() -> bool:
        pipeline.check_alive()
        hashes = await pipeline.pool.fetch("SELECT leaf_hash FROM telemetry")
        found: int = await pipeline.pool.fetchval(
            "SELECT count(DISTINCT leaf_hash) FROM ledger_entries "
            "WHERE leaf_hash = ANY($1::bytea[])",
            [row["leaf_hash"] for row in hashes],
        )
        return found >= len(stored)

    await wait_until(all_sequenced, "every stored message in the ledger", 180)

    # Stored exactly once, nothing else stored.
    rows = await pipeline.pool.fetch(
        "SELECT device_id, seq, leaf_hash FROM telemetry ORDER BY device_id, seq"
    )
    assert len(rows) == len(stored)
    assert {(r["device_id"], r["seq"]) for r in rows} == {(m.device, m.seq) for m in stored}

    # In the ledger exactly once, bytes as published, inclusion proof to a signed checkpoint.
    store = PostgresLedgerStore(pipeline.pool)
    key = load_log_key(env)
    entries = await pipeline.pool.fetch(
        "SELECT l.origin, e.leaf_index, e.leaf_hash, e.entry, l.tree_size, l.checkpoint "
        "FROM ledger_entries e JOIN ledger_logs l USING (log_id) "
        "WHERE e.leaf_hash = ANY($1::bytea[])",
        [r["leaf_hash"] for r in rows],
    )
    assert len(entries) == len(stored), "one leaf per stored message"
    assert {hashlib.sha256(e["entry"]).hexdigest() for e in entries} == {m.sha256 for m in stored}
    checkpoints: dict[str, SignedCheckpoint] = {}
    for entry in entries:
        origin = entry["origin"]
        if origin not in checkpoints:
            checkpoints[origin] = SignedCheckpoint.from_text(entry["checkpoint"])
            checkpoints[origin].verify_log_signature(Ed25519Verifier.from_vkey(key.vkey(origin)))
        checkpoint = checkpoints[origin].checkpoint
        proof = await store.inclusion_proof(origin, entry["leaf_index"], checkpoint.size)
        verify_inclusion(
            entry["leaf_index"], checkpoint.size, leaf_hash(bytes(entry["entry"])),
            checkpoint.root_hash, proof,
        )  # fmt: skip

    # Every invalid message in quarantine with the expected reason.
    async def all_quarantined() -> bool:
        seen = {
            hashlib.sha256(value).hexdigest()
            for value, _ in await kafka.read(env.topic(QUARANTINE))
        }
        return set(quarantined) <= seen

    await wait_until(all_quarantined, "every invalid message in quarantine", 120)
    reasons: dict[str, set[str]] = defaultdict(set)
    for value, headers in await kafka.read(env.topic(QUARANTINE)):
        reasons[hashlib.sha256(value).hexdigest()].add(headers["reason"].decode())
    wrong = {
        sha: (want, reasons[sha]) for sha, want in quarantined.items() if reasons[sha] != {want}
    }
    assert not wrong, f"quarantined with the wrong reason: {list(wrong.values())[:5]}"
    assert pipeline.component("bridge").starts == 2
    assert pipeline.component("ingest").starts == 2
