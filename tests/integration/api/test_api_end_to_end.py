"""The API end to end on the real services (issue 11): a simulated fleet with fraud goes
through the real pipeline processes (`roadledger bridge`, `ingest`, `sequencer`, `analytics
run`) on a scratch schema and private topics, and `roadledger api serve` runs on the same
schema and log key. Then, as HTTP clients of that process:

* a fleet owner's admin grants an insurer ``certificate`` and ``warnings`` on a clean vehicle
  and on the vehicle whose odometer was rolled back, ``warnings`` only on a teleported one;
* the insurer, subscribed to the warning feed before analytics starts, receives their
  warnings live, finds the same ones in ``GET /v1/warnings``, and resumes the feed after its
  first event with ``Last-Event-ID``;
* a witness cosigns every log through the API; the insurer downloads both certificates,
  which the real `roadledger verify` checks offline with the operator's log key and the
  witness's key: the clean one without an anomaly, the other naming the rollback;
* of a vehicle with nothing granted it gets nothing: certificate, track and its warning 404,
  the warning list empty; a scope it was not granted is 403;
* the owners' admins find every one of those attempts in ``GET /v1/audit`` (granted, refused
  ``forbidden`` or ``not_found``), and an entry's inclusion proof verifies.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from chain.checkpoint import SignedCheckpoint
from chain.hashing import leaf_hash
from chain.merkle import verify_inclusion
from chain.note_signers import Ed25519Verifier
from contracts.access import OrgKind, Role
from device_sim.truth import TruthFile, read_truth
from roadledger.audit.log import audit_origin
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from roadledger.log_key import load_log_key
from roadledger.settings import Settings
from tests.integration.analytics_support import wait_until_analysed
from tests.integration.api.conftest import PASSWORD, bearer
from tests.integration.api.e2e_support import (
    Attempts,
    Cast,
    FeedReader,
    Phases,
    audit_of,
    cast_of,
    registry_of,
    served,
)
from tests.integration.api.test_certificates import cosign_every_log, roadledger_verify
from tests.integration.test_pipeline_e2e import _open_front_door
from tests.support.pipeline import ROADLEDGER, KafkaProbe, PipelineEnv, pipeline_env, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.kafka, pytest.mark.slow]

INSURER = "insurer-e2e"
AGENT = "insurer-e2e-agent"
DAY_MS = 86_400_000
# 12 vehicles and 2 RSUs reporting every second for 40 s; a rollback, a teleport, forged
# messages and a replay, each on its own vehicle (the truth file says which).
SIM = ["--vehicles", "12", "--rsus", "2", "--rate", "14", "--duration", "40", "--seed", "5"]
SCENARIOS = ["odometer_rollback", "teleport", "forged_signature", "replay"]
CERTIFICATE = "POST /v1/vehicles/{device_id}/certificates"
TRACK = "GET /v1/vehicles/{device_id}/track"
WARNING = "GET /v1/warnings/{warning_id}"


async def _simulate(pipeline: PipelineEnv, tmp_path: Path) -> TruthFile:
    truth_path = tmp_path / "truth.jsonl"
    args = [ROADLEDGER, "sim", *SIM, "--truth", str(truth_path), "--quiet",
            "--id-prefix", f"a{uuid.uuid4().hex[:6]}"]  # fmt: skip
    for scenario in SCENARIOS:
        args += ["--scenario", scenario]
    sim = await asyncio.to_thread(
        subprocess.run, args, env=pipeline.env, capture_output=True, timeout=600, check=False
    )
    assert sim.returncode == 0, sim.stdout.decode() + sim.stderr.decode()
    return read_truth(truth_path)


async def _sequenced(pipeline: PipelineEnv, truth: TruthFile, cast: Cast) -> None:
    """Until every stored message of the certified vehicles, and every key record, is in the
    ledger."""
    wanted = {d: cast.stored(truth, d) for d in (cast.clean, cast.rolled_back)}

    async def done() -> bool:
        pipeline.check_alive()
        rows = await pipeline.pool.fetch(
            "SELECT t.device_id, count(*) AS n FROM telemetry t JOIN ledger_entries e "
            "USING (leaf_hash) WHERE t.device_id = ANY($1::text[]) GROUP BY t.device_id",
            list(wanted),
        )
        keys_behind: int = await pipeline.pool.fetchval(
            "SELECT count(*) FROM ledger_outbox o WHERE NOT EXISTS (SELECT 1 FROM "
            "ledger_entries e WHERE e.leaf_hash = sha256('\\x00'::bytea || o.entry))"
        )
        return {r["device_id"]: r["n"] for r in rows} == wanted and keys_behind == 0

    await wait_until(done, f"the certified vehicles' messages in the ledger ({wanted})", 300)


async def _people(pool: asyncpg.Pool, cast: Cast) -> None:
    """The insurer and its agent, and an admin of each owner (made through the kernel)."""
    async with pool.acquire() as conn:
        await create_organisation(conn, INSURER, "Insurer E2E", OrgKind.INSURER)
        await create_member(conn, INSURER, AGENT, PASSWORD, (Role.INSURER,))
        for org in {cast.owners[d] for d in _vehicles(cast)}:
            await create_member(conn, org, f"{org}-admin", PASSWORD, (Role.ADMIN,))


def _vehicles(cast: Cast) -> tuple[str, ...]:
    return cast.clean, cast.rolled_back, cast.teleported, cast.ungranted


async def _grant(client: httpx.AsyncClient, cast: Cast) -> dict[str, str]:
    """Grants of the owners' admins to the insurer; device -> grant id."""
    now = int(time.time() * 1000)
    both = ["certificate", "warnings"]
    scopes = {cast.clean: both, cast.rolled_back: both, cast.teleported: ["warnings"]}
    grants = {}
    for device_id, granted in scopes.items():
        body = {"grantee_org": INSURER, "scopes": granted, "device_ids": [device_id],
                "valid_from_ms": now - 60_000, "valid_until_ms": now + DAY_MS,
                "purpose": "policy renewal"}  # fmt: skip
        headers = await bearer(client, f"{cast.owners[device_id]}-admin")
        made = await client.post("/v1/grants", json=body, headers=headers)
        assert made.status_code == 201, made.text
        grants[device_id] = made.json()["grant_id"]
    return grants


async def _listed(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[Any]:
    answer = await client.get("/v1/warnings", params={"limit": "500", **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_cursor"] is None
    items: list[Any] = answer.json()["items"]
    return items


async def _warnings_live(
    pipeline: PipelineEnv, client: httpx.AsyncClient, truth: TruthFile, cast: Cast, phases: Phases
) -> list[dict[str, Any]]:
    """Analytics starts while the insurer's feed is open: the warnings it may see arrive live,
    the list shows the same, and a resumed feed repeats what followed the first event."""
    must = {("odometer_rollback", cast.rolled_back), ("teleport", cast.teleported)}
    async with FeedReader.reading(client, AGENT) as feed:
        pipeline.component("analytics", command="analytics run").start()

        def arrived() -> bool:
            pipeline.check_alive()
            return must <= {(w["type"], w["device_id"]) for w in feed.warnings()}

        def got() -> list[tuple[str, str]]:
            return [(w["type"], w["device_id"]) for w in feed.warnings()]

        await wait_until(arrived, f"{sorted(must)} on the insurer's feed", 300, observed=got)
        phases.done("analytics started -> rollback and teleport on the insurer's SSE feed")
        await wait_until_analysed(pipeline, len(truth.messages))
        phases.done("analytics committed the whole run")
        headers = await bearer(client, AGENT)
        listed: list[dict[str, Any]] = []

        async def same() -> bool:
            listed[:] = await _listed(client, headers)
            return {w["warning_id"] for w in listed} == {w["warning_id"] for w in feed.warnings()}

        await wait_until(same, "the feed to carry every warning the list shows", 60,
                         observed=lambda: (len(listed), len(feed.events)))  # fmt: skip
        first = feed.ids()
    assert {w["device_id"] for w in listed} <= {cast.clean, cast.rolled_back, cast.teleported}
    assert len(first) == len(set(first)) >= 2, "no event twice; at least two to resume after"

    async with FeedReader.reading(client, AGENT, last_event_id=first[0]) as resumed:
        await wait_until(lambda: len(resumed.events) >= len(first) - 1,
                         "the resumed feed to repeat what followed its first event", 60,
                         observed=resumed.ids)  # fmt: skip
        assert resumed.ids()[: len(first) - 1] == first[1:]
    phases.done("GET /v1/warnings equals the feed; Last-Event-ID resume")
    return listed


async def _certificate(
    client: httpx.AsyncClient, device_id: str, truth: TruthFile, headers: dict[str, str]
) -> httpx.Response:
    span = {"from_ms": truth.run["start_ms"], "to_ms": truth.run["end_ms"] + 60_000}
    return await client.post(f"/v1/vehicles/{device_id}/certificates", json=span, headers=headers)


def _verified_offline(
    settings: Settings, document: dict[str, Any], path: Path, witness_vkey: str
) -> str:
    """`roadledger verify` on the downloaded file with the operator's log key and the
    witness's key (policy: it cosigned); its output."""
    origin = document["checkpoint"].splitlines()[0]
    vkey = load_log_key(settings).vkey(origin)
    return roadledger_verify(path, vkey, witness_vkey, document["device_id"])


@pytest.mark.timeout(1200)
async def test_fraud_warnings_certificates_and_every_attempt_audited(
    kafka: Settings, mqtt: Settings, postgres: Settings, tmp_path: Path
) -> None:
    settings = postgres  # the same settings: each fixture checks its service is up
    phases = Phases()
    try:
        async with pipeline_env(settings, tmp_path) as pipeline:
            probe = KafkaProbe(settings)
            await probe.start()
            try:
                for name in ("bridge", "ingest", "sequencer"):
                    pipeline.component(name).start()
                await _open_front_door(pipeline, probe)
            finally:
                await probe.stop()
            phases.done("pipeline up (bridge, ingest, sequencer)")
            truth = await _simulate(pipeline, tmp_path)
            phases.done("roadledger sim: 12 vehicles, 2 RSUs, 40 s, 4 fraud scenarios")
            cast = cast_of(truth, await registry_of(pipeline.pool))
            await _sequenced(pipeline, truth, cast)
            phases.done("the certified vehicles' messages sequenced")
            async with (
                served(pipeline) as url,
                httpx.AsyncClient(base_url=url, timeout=60) as client,
            ):
                phases.done("roadledger api serve answers")
                await _story(pipeline, client, truth, cast, tmp_path, phases)
    finally:
        print("\n" + phases.table())


async def _story(
    pipeline: PipelineEnv,
    client: httpx.AsyncClient,
    truth: TruthFile,
    cast: Cast,
    tmp_path: Path,
    phases: Phases,
) -> None:
    await _people(pipeline.pool, cast)
    grants = await _grant(client, cast)
    listed = await _warnings_live(pipeline, client, truth, cast, phases)
    agent = await bearer(client, AGENT)
    attempts = Attempts()

    # Granted: each warning of its vehicles, with where its evidence is in the ledger.
    for warning in listed:
        answer = await client.get(f"/v1/warnings/{warning['warning_id']}", headers=agent)
        assert answer.status_code == 200, answer.text
        attempts.expect(answer, warning["device_id"], "warnings", WARNING)
    rollback = next(w for w in listed if w["type"] == "odometer_rollback")
    assert rollback["device_id"] == cast.rolled_back

    # Granted: both certificates, of checkpoints a witness cosigned, checked offline by the
    # real CLI.
    witness_vkey = await cosign_every_log(client, pipeline.pool)
    for device_id in (cast.clean, cast.rolled_back):
        answer = await _certificate(client, device_id, truth, agent)
        assert answer.status_code == 201, answer.text
        attempts.expect(answer, device_id, "certificate", CERTIFICATE)
        document = answer.json()
        assert document["summary"]["message_count"] == cast.stored(truth, device_id)
        path = tmp_path / f"{device_id}.json"
        path.write_bytes(answer.content)
        output = _verified_offline(pipeline.settings, document, path, witness_vkey)
        assert f"OK mileage certificate for {device_id}" in output, output
        assert "1 of 1 cosigned" in output, output
        anomalies = document["summary"]["anomalies"]
        if device_id == cast.clean:
            assert anomalies == [], document["summary"]
        else:  # at the first message the simulator wound back, as its truth file says
            (wound,) = [w for w in truth.warnings if w.type == "odometer_rollback"]
            rolled = [a["seq"] for a in anomalies if a["kind"] == "odometer_rollback"]
            assert rolled == [wound.from_seq], document["summary"]
            assert "odometer_rollback" in output, output
    phases.done("every log cosigned; two certificates downloaded and verified offline")

    # Refused: nothing at all of the vehicle without a grant; a scope not granted.
    theirs = await pipeline.pool.fetchval(
        "SELECT warning_id FROM warnings WHERE device_id = $1 LIMIT 1", cast.ungranted
    )
    assert theirs is not None, "the forged messages' vehicle has a warning"
    window = {"from_ms": truth.run["start_ms"], "to_ms": truth.run["end_ms"] + 60_000}
    refused = [
        (await _certificate(client, cast.ungranted, truth, agent), cast.ungranted,
         "certificate", CERTIFICATE, 404),
        (await client.get(f"/v1/vehicles/{cast.ungranted}/track", params=window, headers=agent),
         cast.ungranted, "track", TRACK, 404),
        (await client.get(f"/v1/warnings/{theirs}", headers=agent), cast.ungranted, "warnings",
         WARNING, 404),
        (await client.get(f"/v1/vehicles/{cast.rolled_back}/track", params=window,
                          headers=agent), cast.rolled_back, "track", TRACK, 403),
        (await _certificate(client, cast.teleported, truth, agent), cast.teleported,
         "certificate", CERTIFICATE, 403),
    ]  # fmt: skip
    for answer, device_id, scope, action, status in refused:
        assert answer.status_code == status, (action, device_id, answer.text)
        assert set(answer.json()) == {"detail"}, answer.text  # the reason, and no data
        attempts.expect(answer, device_id, scope, action)
    assert await _listed(client, agent, device_id=cast.ungranted) == []
    phases.done("refusals: 404 without a grant, 403 outside its scopes")

    await _audited(pipeline, client, cast, grants, attempts)
    phases.done("the owners' audit logs show every attempt; a proof verifies")
    seen = sorted((w["type"], w["device_id"]) for w in listed)
    print(f"\ncast: {cast}\nthe insurer's warnings: {seen}")
    print(f"its audited attempts: {sum(attempts.made.values())}")


async def _audited(
    pipeline: PipelineEnv,
    client: httpx.AsyncClient,
    cast: Cast,
    grants: dict[str, str],
    attempts: Attempts,
) -> None:
    """Each owner's admin finds exactly the insurer's attempts on its vehicles, granted ones
    naming their grant; one refused entry's inclusion proof verifies with the log key."""
    refused_entry: tuple[dict[str, Any], dict[str, str]] | None = None
    for org in sorted({cast.owners[d] for d in _vehicles(cast)}):
        headers = await bearer(client, f"{org}-admin")
        seen = await audit_of(client, headers, actor_org=INSURER, event="data_access")
        found: dict[tuple[str, str, str, str], int] = {}
        for entry in seen:
            key = (entry["device_id"], entry["scope"], entry["action"], entry["outcome"])
            found[key] = found.get(key, 0) + 1
            assert entry["owner_org"] == org
            if entry["outcome"] == "ok":
                assert entry["grant_id"] == grants[entry["device_id"]], entry
            else:
                assert entry["grant_id"] is None, entry
                refused_entry = refused_entry or (entry, headers)
        theirs = {k: n for k, n in attempts.made.items() if cast.owners[k[0]] == org}
        assert found == theirs, f"{org} sees {found}, the insurer made {theirs}"
    outcomes = {k[3] for k in attempts.made}
    assert outcomes == {"ok", "forbidden", "not_found"}, attempts.made

    assert refused_entry is not None
    entry, headers = refused_entry
    answer = await client.get(f"/v1/audit/{entry['index']}/proof", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    origin = audit_origin(pipeline.settings.origin_prefix)
    verifier = Ed25519Verifier.from_vkey(load_log_key(pipeline.settings).vkey(origin))
    signed = SignedCheckpoint.open(body["checkpoint"]["checkpoint"], verifier)
    assert signed.checkpoint.size == body["tree_size"] > entry["index"]
    leaf = leaf_hash(body["entry"]["entry"].encode())
    assert leaf.hex() == entry["leaf_hash"]
    path = [bytes.fromhex(h) for h in body["inclusion_path"]]
    verify_inclusion(entry["index"], signed.checkpoint.size, leaf, signed.checkpoint.root_hash,
                     path)  # fmt: skip
