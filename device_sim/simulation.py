"""A simulation run: its configuration, its city and fleet, its scenarios, its registry records.

``Simulation(config)`` builds everything that does not change during a run; the messages
themselves come from :meth:`Simulation.messages` (see :mod:`device_sim.emitter`). The whole run
is a pure function of ``(config, start_ms)``: same inputs, byte-identical messages and truth.

Time: every device reports once per ``interval_ms = (vehicles + rsus) / rate`` of simulated
time, devices spread evenly over the interval. A message's ``publish_at_ms`` is its simulated
time; a publisher pacing on the wall clock therefore runs the simulation in step with real time
from ``start_ms`` (default: now), and a ``start_ms`` in the past is a backfill that catches up
as fast as the publish rate allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from chain.device_keys import DeviceKey
from chain.telemetry import DEVICE_ID_RE, RANGES
from contracts.roads import RoadSegment
from contracts.rules.model import RuleVersion
from device_sim.assignment import ResolvedScenario, resolve_scenarios
from device_sim.emitter import Emitter, Outgoing
from device_sim.errors import ConfigError, ScenarioError
from device_sim.fleet import ORGANISATIONS, Fleet, Organisation, Vehicle, build_fleet, ghost_vehicle
from device_sim.geofencing import RESTRICTED_CLASSES, city_rules
from device_sim.network import NetworkSpec, RoadNetwork, generate_network
from device_sim.scenarios import ScenarioSpec, ScenarioType
from device_sim.truth import TruthWriter

__all__ = [
    "KEY_VALID_BEFORE_MS",
    "MIN_INTERVAL_MS",
    "Outgoing",
    "RegistrationPlan",
    "Simulation",
    "SimulationConfig",
]

MIN_INTERVAL_MS: Final = 10
KEY_VALID_BEFORE_MS: Final = 86_400_000  # keys are valid from one day before the start
_TS_MIN, _TS_MAX = RANGES["ts"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """What to simulate. ``rate`` is messages per simulated second over the whole fleet."""

    vehicles: int = 100
    rsus: int = 10
    rate: float = 100.0
    duration_s: float = 60.0
    seed: int = 1
    start_ms: int | None = None
    scenarios: tuple[ScenarioSpec, ...] = ()
    network: NetworkSpec = field(default_factory=NetworkSpec)
    id_prefix: str = ""
    utc_offset_h: float = 1.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ConfigError(f"rate: {self.rate} must be > 0 messages per second")
        if not 0 < self.duration_s <= 30 * 86_400:
            raise ConfigError(f"duration: {self.duration_s} s outside (0, 30 days]")
        if self.vehicles + self.rsus < 1:
            raise ConfigError("the fleet needs at least one vehicle or RSU")
        if self.id_prefix and (
            len(self.id_prefix) > 40 or not DEVICE_ID_RE.fullmatch(self.id_prefix)
        ):
            raise ConfigError(
                f"id prefix {self.id_prefix!r}: up to 40 characters of [A-Za-z0-9._:-]"
            )
        if not -12 <= self.utc_offset_h <= 14:
            raise ConfigError(f"utc offset: {self.utc_offset_h} h outside [-12, 14]")


@dataclass(frozen=True, slots=True)
class RegistrationPlan:
    """What the registry and the road table need for this run."""

    organisations: tuple[Organisation, ...]
    records: tuple[DeviceKey, ...]
    revocations: tuple[tuple[str, int], ...]  # (device id, revoked at ms)
    segments: tuple[RoadSegment, ...]
    rules: RuleVersion  # the authority's zones (published as the next version if new)


class Simulation:
    """A configured run; :meth:`messages` generates it (once per call, from the beginning)."""

    def __init__(self, config: SimulationConfig, *, now_ms: Callable[[], int] = _now_ms) -> None:
        self.config = config
        self.start_ms = config.start_ms if config.start_ms is not None else now_ms()
        self.duration_ms = round(config.duration_s * 1000)
        self.end_ms = self.start_ms + self.duration_ms
        if (
            self.start_ms - KEY_VALID_BEFORE_MS < 0
            or not _TS_MIN <= self.start_ms <= _TS_MAX - self.duration_ms
        ):
            raise ConfigError(f"start_ms {self.start_ms}: the run must lie between 2000 and 2100")
        self.network: RoadNetwork = generate_network(config.network)
        self.fleet: Fleet = build_fleet(
            config.seed, config.vehicles, config.rsus, self.network, config.id_prefix
        )
        devices = config.vehicles + config.rsus
        self.interval_ms = round(devices * 1000 / config.rate)
        if self.interval_ms < MIN_INTERVAL_MS:
            raise ConfigError(
                f"rate {config.rate:g}/s with {devices} devices means a report every "
                f"{devices * 1000 / config.rate:.2f} ms per device; the minimum is "
                f"{MIN_INTERVAL_MS} ms: add vehicles or lower the rate"
            )
        ghost_ids = (f"{config.id_prefix}veh-x{i:05d}" for i in range(1, 100_000))
        self.scenarios: list[ResolvedScenario] = resolve_scenarios(
            config.scenarios,
            vehicle_ids=[v.device_id for v in self.fleet.vehicles],
            rsu_ids=[r.device_id for r in self.fleet.rsus],
            ghost_ids=ghost_ids,
            start_ms=self.start_ms,
            duration_ms=self.duration_ms,
            seed=config.seed,
            eligible={
                ScenarioType.GEOFENCE_BREACH: [
                    v.device_id
                    for v in self.fleet.vehicles
                    if v.vehicle_type.unece_class in RESTRICTED_CLASSES
                ]
            },
        )
        self.ghosts: list[tuple[Vehicle, ResolvedScenario]] = [
            (ghost_vehicle(config.seed, device_id, 900_000 + k), scenario)
            for scenario in self.scenarios
            if scenario.type is ScenarioType.UNKNOWN_DEVICE
            for k, device_id in enumerate(scenario.devices, start=1)
        ]
        for scenario in self.scenarios:
            if (
                scenario.type is ScenarioType.CLOCK_SKEW
                and scenario.to_ms + scenario.param("skew_ms") > _TS_MAX
            ):
                raise ScenarioError(f"{scenario.name}: skewed timestamps would pass the year 2100")

    @property
    def rate(self) -> float:
        """The message rate the interval actually gives (registered devices, per second)."""
        return (self.config.vehicles + self.config.rsus) * 1000 / self.interval_ms

    @property
    def valid_from_ms(self) -> int:
        """When the fleet's keys become valid: one day before the start."""
        return self.start_ms - KEY_VALID_BEFORE_MS

    def expected_genuine_messages(self) -> int:
        """Messages the registered fleet signs (scenarios add, copy or hold some more)."""
        return (self.config.vehicles + self.config.rsus) * self.duration_ms // self.interval_ms

    def registration(self) -> RegistrationPlan:
        """Organisations, key records, revocations (``revoked_key`` scenarios), segments and the
        authority's rules (its no-entry zone)."""
        revocations = tuple(
            (device, scenario.from_ms)
            for scenario in self.scenarios
            if scenario.type is ScenarioType.REVOKED_KEY
            for device in scenario.devices
        )
        return RegistrationPlan(
            organisations=ORGANISATIONS,
            records=tuple(self.fleet.device_keys(self.valid_from_ms)),
            revocations=revocations,
            segments=tuple(self.network.segments),
            rules=city_rules(self.network),
        )

    def timing_problems(
        self, now_ms: int, accepted_skew_ms: int, max_age_ms: int, *, paced: bool
    ) -> list[str]:
        """Why the truth file's expectations would not hold if the run were published now.

        ``accepted_skew_ms`` / ``max_age_ms``: how far ahead of / behind its receive time the
        verifier accepts a timestamp (``Settings.clock_skew_ms`` / ``max_message_age_ms``);
        ``paced``: publishes wait for their simulated time on the wall clock.
        """
        problems = []
        if self.start_ms < now_ms - max_age_ms + 3_600_000:
            problems.append(
                f"start_ms is within an hour of the verifier's maximum message age "
                f"({max_age_ms} ms): early messages would be rejected as too old"
            )
        if not paced and self.end_ms > now_ms + accepted_skew_ms:
            problems.append(
                "the run ends in the future and publishing is not paced: late messages "
                "would be rejected as clock_skew; start earlier or pace on the wall clock"
            )
        latest_receive = max(now_ms, self.end_ms) + self.duration_ms + 600_000
        for scenario in self.scenarios:
            if scenario.type is ScenarioType.CLOCK_SKEW:
                ahead = scenario.from_ms + int(scenario.param("skew_ms")) - latest_receive
                if ahead <= accepted_skew_ms:
                    needed = int(scenario.param("skew_ms")) - ahead + accepted_skew_ms + 60_000
                    problems.append(
                        f"{scenario.name}: skew_ms is too small for this start time to be "
                        f"clock_skew when received; use skew_ms >= {needed}"
                    )
        return problems

    def run_info(self) -> dict[str, Any]:
        """The truth file's ``run`` line."""
        config = self.config
        return {
            "seed": config.seed,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "interval_ms": self.interval_ms,
            "vehicles": config.vehicles,
            "rsus": config.rsus,
            "rate": self.rate,
            "id_prefix": config.id_prefix,
            "network": asdict(config.network),
            "scenarios": [scenario.to_dict() for scenario in self.scenarios],
        }

    def messages(self, truth: TruthWriter | None = None) -> Iterator[Outgoing]:
        """Every publish of the run in publish order, writing the truth file as it goes."""
        return Emitter(self).messages(truth)
