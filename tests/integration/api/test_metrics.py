"""``GET /metrics`` on the real PostgreSQL: the operator role only, every process's report
with its counters and state, the ledger's tree sizes, the API's requests; parsed by
prometheus_client (a parser we did not write)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from roadledger.health import write_health
from roadledger.metrics import Sample
from roadledger.resilience import Dependency
from roadledger.settings import Settings
from tests.integration.api.conftest import PASSWORD, bearer

pytestmark = [pytest.mark.postgres]
LOG = logging.getLogger("test.metrics")


@pytest.fixture
async def metered(
    api_settings: Settings, api_pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings.model_copy(update={"health_dir": tmp_path})
    app = create_app(settings, api_pool)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_only_operators_read_metrics(metered: httpx.AsyncClient) -> None:
    analyst = await bearer(metered, "fleet-a-analyst")
    assert (await metered.get("/metrics", headers=analyst)).status_code == 403
    assert (await metered.get("/metrics")).status_code == 401
    assert (await metered.get("/metrics", headers=await bearer(metered, "ops"))).status_code == 200


async def test_the_operator_role_of_another_organisation_does_not_read_metrics(
    metered: httpx.AsyncClient,
) -> None:
    """A fleet's admin may give its members any role: the operator role there opens nothing
    of the deployment's operations."""
    body = {"username": "fleet-a-ops", "password": PASSWORD, "roles": ["operator"]}
    made = await metered.post("/v1/organisations/fleet-a/members", json=body,
                              headers=await bearer(metered, "fleet-a-admin"))  # fmt: skip
    assert made.status_code == 201, made.text
    answer = await metered.get("/metrics", headers=await bearer(metered, "fleet-a-ops"))
    assert answer.status_code == 403
    assert "operator organisation" in answer.json()["detail"]


async def test_every_process_and_the_ledger_are_in_one_scrape(
    metered: httpx.AsyncClient, api_settings: Settings, api_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    kafka_down = Dependency("Kafka", LOG)
    kafka_down.down(RuntimeError("gone"))
    now = time.time()
    write_health(
        tmp_path / "ingest.json",
        "ingest",
        [Dependency("PostgreSQL", LOG), kafka_down],
        started=now - 60,
        samples=[
            Sample("roadledger_verifier_received_total", 1200),
            Sample("roadledger_quarantined_total", 7, (("reason", "bad_signature"),)),
        ],
    )
    write_health(tmp_path / "sequencer.json", "sequencer", [], started=now - 60, stopped=True)
    await api_pool.execute(
        "INSERT INTO ledger_logs (origin, epoch, tree_size) VALUES ('roadledger.test/0', 1, 42)"
    )
    headers = await bearer(metered, "ops")
    answer = await metered.get("/metrics", headers=headers)
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = _samples(answer.text)
    assert got[("roadledger_verifier_received_total", (("process", "ingest"),))] == 1200
    reason = (("process", "ingest"), ("reason", "bad_signature"))
    assert got[("roadledger_quarantined_total", reason)] == 7
    assert got[("roadledger_process_up", (("process", "ingest"),))] == 0  # Kafka is down
    assert got[("roadledger_process_state", (("process", "ingest"), ("state", "degraded")))] == 1
    kafka = (("dependency", "Kafka"), ("process", "ingest"))
    assert got[("roadledger_dependency_up", kafka)] == 0
    stopped = (("process", "sequencer"), ("state", "stopped"))
    assert got[("roadledger_process_state", stopped)] == 1
    assert got[("roadledger_log_tree_size", (("log", "roadledger.test/0"),))] == 42
    # The API's own requests, by route template (never by raw path).
    again = _samples((await metered.get("/metrics", headers=headers)).text)
    route = (("method", "GET"), ("route", "/metrics"), ("status", "200"))
    assert again[("roadledger_api_requests_total", route)] == 1
    for org in ("fleet-a", "fleet-b", "nowhere"):
        await metered.get(f"/v1/organisations/{org}", headers=headers)
    last = _samples((await metered.get("/metrics", headers=headers)).text)
    one = (("method", "GET"), ("route", "/v1/organisations/{org_id}"))
    assert last[("roadledger_api_requests_total", (*one, ("status", "200")))] == 2
    assert last[("roadledger_api_requests_total", (*one, ("status", "404")))] == 1
    assert not any("fleet-a" in str(labels) for _, labels in last)
