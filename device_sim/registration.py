"""Writing a run's fleet and road network to PostgreSQL before it publishes.

Organisations first, then every key record (``DeviceRegistry.register_many``, idempotent),
then the revocations of ``revoked_key`` scenarios (at their scenario time, so the outcome of
each message is fixed before anything is sent), then the road segments, then the traffic
authority's rules (its simulation signing key, registered once; its jurisdiction widened to
cover the city, since rules apply only inside their authority's jurisdiction; the zones
published as the next version unless the latest version already has exactly these zones).

Re-running the same seed is fine as long as the registry already holds the same keys valid
for the whole run. A device registered by another run with another key, a key that became
valid later, or one revoked at another time would make the truth file wrong: such a conflict
is refused with :class:`~device_sim.errors.RegistrationError` naming the way out
(``--id-prefix`` or another ``--seed``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import asyncpg

from chain.device_keys import DeviceKey
from contracts.roads import RoadSegment, save_segments
from contracts.rules.errors import RulesConflict, RulesError
from contracts.rules.model import RuleVersion
from device_sim.errors import RegistrationError
from device_sim.geofencing import RULES_KEY_ID, rules_key, signed_city_rules
from device_sim.simulation import RegistrationPlan
from roadledger.registry import DeviceRegistry, RegistryError
from roadledger.rules_areas import publishers, set_jurisdiction
from roadledger.rules_store import add_organisation_key, list_rule_versions, publish_rules

__all__ = [
    "CityRules",
    "RegistrationReport",
    "Registry",
    "RulesPublisher",
    "plan_registration",
    "register_simulation",
]


class Registry(Protocol):
    """The part of ``roadledger.registry.DeviceRegistry`` the simulator uses."""

    async def ensure_organisation(self, org_id: str, name: str, kind: str) -> None: ...

    async def register_many(self, records: Sequence[DeviceKey]) -> int: ...

    async def revoke(self, device_id: str, at_ms: int) -> object: ...

    async def keys_for(self, device_ids: Iterable[str]) -> dict[str, list[DeviceKey]]: ...


@dataclass(frozen=True, slots=True)
class RegistrationReport:
    """What :func:`register_simulation` wrote."""

    organisations: int
    new_keys: int
    already_registered: int
    revocations: int
    segments: int
    rules_version: int | None  # the version published, None when already in force


def plan_registration(
    plan: RegistrationPlan, existing: Mapping[str, list[DeviceKey]], end_ms: int
) -> tuple[list[DeviceKey], list[str]]:
    """Split ``plan.records`` against the registry's ``existing`` keys: the records still to
    register, and the conflicts that would make this run's truth wrong."""
    revoked_at = dict(plan.revocations)
    fresh, problems = [], []
    for record in plan.records:
        keys = existing.get(record.device_id)
        if not keys:
            fresh.append(record)
            continue
        same = [key for key in keys if key.public_key == record.public_key]
        device = record.device_id
        if not same:
            problems.append(f"{device} is registered with another key (another --seed?)")
        elif same[0].valid_from_ms > record.valid_from_ms:
            problems.append(f"{device}'s key is valid only from {same[0].valid_from_ms}")
        elif (
            (ended := same[0].revoked_at_ms) is not None
            and ended < end_ms
            and ended != revoked_at.get(device)
        ):
            problems.append(f"{device}'s key was revoked at {ended} by an earlier run")
    return fresh, problems


class RulesPublisher(Protocol):
    async def publish(self, rules: RuleVersion) -> int | None:
        """Publish ``rules`` unless in force already; the version published, or None."""
        ...


class CityRules:
    """Publishes the simulation's rules in PostgreSQL (``roadledger.rules_store``), the
    authority's jurisdiction first covering the city of ``segments``."""

    def __init__(self, pool: asyncpg.Pool, segments: Sequence[RoadSegment] = ()) -> None:
        self.pool = pool
        self.segments = segments

    async def publish(self, rules: RuleVersion) -> int | None:
        key = rules_key()
        async with self.pool.acquire() as conn:
            _, area = (await publishers(conn)).get(rules.org_id, ("", None))
            held_area = [v for polygon in (area.polygons if area else ()) for v in polygon]
            ends = [(s.a_lat_e7, s.a_lon_e7) for s in self.segments] + [
                (s.b_lat_e7, s.b_lon_e7) for s in self.segments
            ]
            ends += [v for fence in rules.geofences for v in fence.polygon]
            if ends and (area is None or not all(area.contains(*v) for v in ends)):
                await set_jurisdiction(conn, rules.org_id, _box([*held_area, *ends]))
            held = await conn.fetchval(
                "SELECT public_key FROM organisation_keys WHERE org_id = $1 AND key_id = $2",
                rules.org_id,
                RULES_KEY_ID,
            )
            if held is None:
                await add_organisation_key(conn, rules.org_id, RULES_KEY_ID, key.public_key, 0)
            elif bytes(held) != key.public_key.to_bytes():
                raise RulesConflict("key_id", f"{RULES_KEY_ID!r} of {rules.org_id} is another key")
            versions = [v for v in await list_rule_versions(conn) if v.key == rules.key]
            latest = max(versions, key=lambda v: v.version) if versions else None
            if latest is not None and _zones(latest) == _zones(rules):
                return None
            version = latest.version + 1 if latest is not None else 1
            signed = signed_city_rules(replace(rules, version=version))
            await publish_rules(conn, signed, int(time.time() * 1000))
            return version


def _box(points: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """A rectangle around ``points``, 0.01 degrees (about 1 km) wider on every side."""
    margin = 100_000
    south, north = min(p[0] for p in points) - margin, max(p[0] for p in points) + margin
    west, east = min(p[1] for p in points) - margin, max(p[1] for p in points) + margin
    return [(south, west), (south, east), (north, east), (north, west)]


def _zones(rules: RuleVersion) -> tuple[object, ...]:
    """What a version says, without its label (the version number is not content)."""
    return (
        rules.effective_from_ms,
        rules.speed_limits,
        tuple(replace(g, label="") for g in rules.geofences),
        rules.thresholds,
    )


async def register_simulation(
    pool: asyncpg.Pool,
    plan: RegistrationPlan,
    end_ms: int,
    *,
    registry: Registry | None = None,
    rules: RulesPublisher | None = None,
) -> RegistrationReport:
    """Register ``plan`` (see the module docstring); ``registry`` and ``rules`` default to the
    real ones."""
    if registry is None:
        registry = DeviceRegistry(pool)
    try:
        for org in plan.organisations:
            await registry.ensure_organisation(org.org_id, org.name, org.kind)
        existing = await registry.keys_for([record.device_id for record in plan.records])
        fresh, problems = plan_registration(plan, existing, end_ms)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise RegistrationError(
                "the registry contradicts this run: " + "; ".join(problems[:3]) + more
                + "; use another --id-prefix to keep runs apart"
            )  # fmt: skip
        new_keys = await registry.register_many(fresh)
        for device_id, at_ms in plan.revocations:
            await registry.revoke(device_id, at_ms)
        async with pool.acquire() as conn:
            segments = await save_segments(conn, plan.segments)
        rules_version = await (rules or CityRules(pool, plan.segments)).publish(plan.rules)
    except RulesError as exc:
        raise RegistrationError(f"publishing the authority's rules failed: {exc}") from None
    except RegistryError as exc:
        raise RegistrationError(f"the registry refused the fleet: {exc}") from None
    except (asyncpg.PostgresError, OSError) as exc:
        raise RegistrationError(f"registering the fleet failed: {exc}") from None
    return RegistrationReport(
        organisations=len(plan.organisations),
        new_keys=new_keys,
        already_registered=len(plan.records) - len(fresh),
        revocations=len(plan.revocations),
        segments=segments,
        rules_version=rules_version,
    )
