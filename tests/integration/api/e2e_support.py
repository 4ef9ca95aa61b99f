"""The parts of the API end-to-end test (``test_api_end_to_end.py``) that are not its story:
which simulated vehicles play which role, ``roadledger api serve`` as one more process of the
private pipeline, a warning feed read by a task, the attempts an insurer made and the audit
log's pages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from device_sim.scenarios import ScenarioType
from device_sim.truth import TruthFile
from tests.integration.api.sse import opened
from tests.integration.conftest import free_port
from tests.support.pipeline import PipelineEnv, wait_until

__all__ = [
    "Attempts",
    "Cast",
    "FeedReader",
    "Phases",
    "audit_of",
    "cast_of",
    "registry_of",
    "served",
]


@dataclass(frozen=True)
class Cast:
    """The simulated vehicles the story needs and their owners (as the registry has them)."""

    clean: str  # no scenario, no warning, every message stored
    rolled_back: str  # the odometer_rollback scenario's vehicle
    teleported: str  # the teleport scenario's: granted for warnings only
    ungranted: str  # the forged_signature scenario's: nothing is granted on it
    owners: dict[str, str]  # device id -> owning organisation

    def stored(self, truth: TruthFile, device_id: str) -> int:
        return sum(1 for m in truth.messages if m.device == device_id and m.expected == "stored")


def _scenario_device(truth: TruthFile, kind: ScenarioType) -> str:
    (device,) = next(s["devices"] for s in truth.run["scenarios"] if s["type"] == kind.value)
    assert isinstance(device, str)
    return device


def cast_of(truth: TruthFile, registry: dict[str, tuple[str, str]]) -> Cast:
    """The cast of a run's ``truth`` (``registry``: device -> (kind, owner)): a clean vehicle
    is picked among those with no scenario, no expected warning (natural ones included) and
    nothing but stored messages, preferring one of the rolled-back vehicle's owner."""
    rolled_back = _scenario_device(truth, ScenarioType.ODOMETER_ROLLBACK)
    busy = {m.device for m in truth.messages if m.scenario is not None or m.expected != "stored"}
    busy |= {w.device for w in [*truth.warnings, *truth.optional]}
    busy |= {d for s in truth.run["scenarios"] for d in s["devices"]}
    sent = {m.device for m in truth.messages}
    clean = [d for d, (kind, _) in registry.items() if kind == "vehicle" and d in sent - busy]
    assert clean, "the run has no clean vehicle"
    clean.sort(key=lambda d: (registry[d][1] != registry[rolled_back][1], d))
    return Cast(
        clean=clean[0],
        rolled_back=rolled_back,
        teleported=_scenario_device(truth, ScenarioType.TELEPORT),
        ungranted=_scenario_device(truth, ScenarioType.FORGED_SIGNATURE),
        owners={d: owner for d, (_, owner) in registry.items()},
    )


async def registry_of(pool: asyncpg.Pool) -> dict[str, tuple[str, str]]:
    """``device -> (kind, owner)`` of every registered device."""
    rows = await pool.fetch("SELECT device_id, kind, owner_org FROM devices")
    return {r["device_id"]: (r["kind"], r["owner_org"]) for r in rows}


@asynccontextmanager
async def served(pipeline: PipelineEnv) -> AsyncIterator[str]:
    """``roadledger api serve`` on the pipeline's schema and log key (a component of the
    pipeline, stopped with it); its base URL once it answers /health."""
    port = free_port()
    api = pipeline.component("api", command=f"api serve --host 127.0.0.1 --port {port}")
    api.start()
    url = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        pipeline.check_alive()
        try:
            async with httpx.AsyncClient(base_url=url) as client:
                return (await client.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(healthy, "roadledger api answers /health", 60)
    try:
        yield url
    finally:
        assert api.stop() == 0, api.log_tail()


@dataclass
class FeedReader:
    """The events of ``username``'s warning stream, appended by a task as they come."""

    events: list[dict[str, str]] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]

    def warnings(self) -> list[dict[str, Any]]:
        return [json.loads(e["data"]) for e in self.events]

    @classmethod
    @asynccontextmanager
    async def reading(
        cls, client: httpx.AsyncClient, username: str, last_event_id: str | None = None
    ) -> AsyncIterator[FeedReader]:
        """Subscribed when entered (the stream's first comment read); closed on exit."""
        reader = cls()
        async with opened(client, username, last_event_id) as feed:

            async def read() -> None:
                async for event in feed.events():
                    reader.events.append(event)

            task = asyncio.create_task(read())
            try:
                yield reader
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@dataclass
class Attempts:
    """What the insurer asked for that the audit log must show: (device, scope, action,
    outcome) of every read that went through ``require_access``."""

    made: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def expect(self, answer: httpx.Response, device_id: str, scope: str, action: str) -> None:
        outcome = {403: "forbidden", 404: "not_found"}.get(answer.status_code, "ok")
        assert answer.status_code in (200, 201, 403, 404), answer.text
        self.made[(device_id, scope, action, outcome)] += 1


async def audit_of(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    """Every audit entry the caller sees with ``params``, all pages."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {}) | {"limit": "200"}
        answer = await client.get("/v1/audit", params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


@dataclass
class Phases:
    """Wall time of each phase of a run, printed at the end."""

    began: float = field(default_factory=time.perf_counter)
    took: list[tuple[str, float]] = field(default_factory=list)

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.took.append((phase, now - self.began))
        self.began = now

    def table(self) -> str:
        lines = [f"  {name:<70} {seconds:7.1f} s" for name, seconds in self.took]
        total = sum(s for _, s in self.took)
        return "\n".join(["phases:", *lines, f"  {'total':<70} {total:7.1f} s"])
