"""Registering a run against an in-memory registry: idempotent, and loud about conflicts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from chain.device_keys import DeviceKey
from contracts.rules.model import RuleVersion
from device_sim.errors import RegistrationError
from device_sim.registration import plan_registration, register_simulation
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import Simulation

from .conftest import START_MS, plain_config


class MemoryRegistry:
    """The registry contract of roadledger.registry.DeviceRegistry, in a dict."""

    def __init__(self) -> None:
        self.organisations: dict[str, tuple[str, str]] = {}
        self.keys: dict[str, list[DeviceKey]] = {}

    async def ensure_organisation(self, org_id: str, name: str, kind: str) -> None:
        self.organisations.setdefault(org_id, (name, kind))

    async def register_many(self, records: Sequence[DeviceKey]) -> int:
        new = 0
        for record in records:
            assert record.owner_org in self.organisations
            keys = self.keys.setdefault(record.device_id, [])
            if record not in keys:
                keys.append(record)
                new += 1
        return new

    async def revoke(self, device_id: str, at_ms: int) -> list[DeviceKey]:
        self.keys[device_id] = [key.revoke(at_ms) for key in self.keys[device_id]]
        return self.keys[device_id]

    async def keys_for(self, device_ids: Iterable[str]) -> dict[str, list[DeviceKey]]:
        return {d: list(self.keys[d]) for d in device_ids if d in self.keys}


class MemoryPool:
    """Enough of an asyncpg pool for save_segments."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[MemoryPool]:
        yield self

    async def executemany(self, query: str, rows: list[Any]) -> None:
        assert "road_segments" in query
        self.rows.extend(rows)


class MemoryRules:
    """Records what would be published (the real publisher is tested on PostgreSQL)."""

    def __init__(self) -> None:
        self.published: list[RuleVersion] = []

    async def publish(self, rules: RuleVersion) -> int | None:
        self.published.append(rules)
        return len(self.published)


def simulation(**changes: Any) -> Simulation:
    return Simulation(plain_config(scenarios=tuple(parse_scenario_flag("revoked_key")), **changes))


async def test_registers_organisations_keys_revocations_and_roads() -> None:
    sim, registry, pool = simulation(), MemoryRegistry(), MemoryPool()
    report = await register_simulation(
        pool, sim.registration(), sim.end_ms, registry=registry, rules=MemoryRules()
    )
    assert report.new_keys == 66
    assert report.revocations == 1
    assert report.segments == len(sim.network.links) == len(pool.rows)
    assert set(registry.organisations) >= {r.owner_org for r in sim.registration().records}
    (device,) = sim.scenarios[0].devices
    assert registry.keys[device][0].revoked_at_ms == sim.scenarios[0].from_ms
    again = await register_simulation(
        pool, sim.registration(), sim.end_ms, registry=registry, rules=MemoryRules()
    )
    assert (again.new_keys, again.already_registered) == (0, 66)


async def test_a_later_start_of_the_same_seed_reuses_the_keys() -> None:
    registry, pool = MemoryRegistry(), MemoryPool()
    first = Simulation(plain_config())
    await register_simulation(
        pool, first.registration(), first.end_ms, registry=registry, rules=MemoryRules()
    )
    later = Simulation(plain_config(start_ms=first.start_ms + 3_600_000))
    report = await register_simulation(
        pool, later.registration(), later.end_ms, registry=registry, rules=MemoryRules()
    )
    assert (report.new_keys, report.already_registered) == (0, 66)
    revoking = simulation(start_ms=first.start_ms + 7_200_000)
    report = await register_simulation(
        pool, revoking.registration(), revoking.end_ms, registry=registry, rules=MemoryRules()
    )
    assert report.revocations == 1
    overlapping = Simulation(plain_config(start_ms=revoking.start_ms))
    with pytest.raises(RegistrationError, match=r"revoked at .* by an earlier run"):
        await register_simulation(
            pool,
            overlapping.registration(),
            overlapping.end_ms,
            registry=registry,
            rules=MemoryRules(),
        )


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"seed": 99}, "registered with another key"),
        ({"start_ms": START_MS - 3 * 86_400_000}, "valid only from"),
    ],
)
async def test_contradictions_are_refused_before_anything_is_written(
    changes: dict[str, Any], problem: str
) -> None:
    registry, pool = MemoryRegistry(), MemoryPool()
    first = simulation()
    await register_simulation(
        pool, first.registration(), first.end_ms, registry=registry, rules=MemoryRules()
    )
    before = {d: list(k) for d, k in registry.keys.items()}
    other = Simulation(replace(plain_config(), **changes))
    with pytest.raises(RegistrationError, match=problem):
        await register_simulation(
            pool, other.registration(), other.end_ms, registry=registry, rules=MemoryRules()
        )
    assert registry.keys == before


def test_a_key_revoked_by_an_earlier_run_is_a_conflict() -> None:
    sim = Simulation(plain_config())
    plan = sim.registration()
    record = plan.records[0]
    existing = {record.device_id: [record.revoke(sim.start_ms + 1000)]}
    fresh, problems = plan_registration(plan, existing, sim.end_ms)
    assert record not in fresh
    assert problems == [
        f"{record.device_id}'s key was revoked at {sim.start_ms + 1000} by an earlier run"
    ]
    ended_before = {record.device_id: [record.revoke(sim.end_ms)]}
    assert plan_registration(plan, ended_before, sim.end_ms)[1] == []
