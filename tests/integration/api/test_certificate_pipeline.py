"""A certificate from the running pipeline: signed messages on ``telemetry.raw`` (the real
Kafka), verified and stored by a `roadledger ingest` process, sequenced with the vehicle's
key record (outbox relay) by a `roadledger sequencer` process, then fetched through the API
and checked by `roadledger verify` with the log key the API publishes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from chain.hashing import leaf_hash
from contracts.access import OrgKind, Role
from contracts.topics import HEADER_RECV_MS, RAW
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings
from roadledger.stream.kafka import KafkaStream
from tests.integration.api.conftest import PASSWORD, bearer
from tests.integration.api.ledger_support import HOUR_MS, drive
from tests.integration.api.test_certificates import roadledger_verify_log_only
from tests.support.pipeline import pipeline_env, wait_until
from tests.unit.ingest.fleet import Device

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]


async def test_a_certificate_of_messages_the_running_pipeline_sequenced(
    kafka: Settings, postgres: Settings, tmp_path: Path
) -> None:
    async with pipeline_env(postgres, tmp_path) as pipeline:
        pool = pipeline.pool
        async with pool.acquire() as conn:
            await create_organisation(conn, "fleet-a", "Fleet A", OrgKind.FLEET_OWNER)
            await create_member(conn, "fleet-a", "fleet-a-admin", PASSWORD, (Role.ADMIN,))
        car = Device("veh-p1")
        await DeviceRegistry(pool).register_many(car.records)
        start = int(time.time() * 1000) - HOUR_MS
        sent = drive(car, 50, start)
        producer = KafkaStream(pipeline.settings).producer(client_id="test-bridge")
        await producer.start()
        recv = [(HEADER_RECV_MS, str(int(time.time() * 1000)).encode())]
        for raw in sent:
            await producer.send(pipeline.settings.topic(RAW), raw, key=b"veh-p1", headers=recv)
        await producer.stop()
        for name in ("ingest", "sequencer"):
            pipeline.component(name).start()

        wanted = [leaf_hash(raw) for raw in sent]

        async def sequenced() -> bool:
            pipeline.check_alive()
            stored: int = await pool.fetchval(
                "SELECT count(*) FROM telemetry t JOIN ledger_entries e USING (leaf_hash) "
                "WHERE t.leaf_hash = ANY($1::bytea[])",
                wanted,
            )
            keys: int = await pool.fetchval(
                "SELECT count(*) FROM ledger_outbox o JOIN ledger_entries e "
                "ON e.leaf_hash = sha256('\\x00'::bytea || o.entry)"
            )
            return stored == len(sent) and keys == 1

        await wait_until(sequenced, "50 messages and the key record in the ledger", 180)

        app = create_app(pipeline.settings, pool)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
                headers = await bearer(api, "fleet-a-admin")
                keys = (await api.get("/v1/ledger/keys", headers=headers)).json()
                answer = await api.post(
                    "/v1/vehicles/veh-p1/certificates",
                    json={"from_ms": start, "to_ms": start + 60_000},
                    headers=headers,
                )
        assert answer.status_code == 201, answer.text
        assert answer.json()["summary"]["message_count"] == 50
        path = tmp_path / "veh-p1.json"
        path.write_bytes(answer.content)
        (log,) = [k for k in keys["logs"] if k["origin"] in answer.json()["checkpoint"]]
        output = roadledger_verify_log_only(path, log["vkey"], "veh-p1")
        assert "OK mileage certificate for veh-p1" in output
