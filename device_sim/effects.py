"""Scenario effects on what a device measures and signs: odometer, position, clock, key.

The simulation drives each message of a device through its effects in two steps:
:meth:`Effect.before` may change the reading before it is signed (and say which rejection the
message has earned), :meth:`Effect.after` may change, delay, copy or add to what is published
once it is signed (see :mod:`device_sim.delivery`). Each effect counts the messages it touched
and afterwards describes the event as a :class:`~device_sim.truth.WarningTruth`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final

from chain.errors import RejectReason
from contracts.map_matching import SegmentIndex
from contracts.rules.thresholds import THRESHOLDS
from device_sim.assignment import ResolvedScenario
from device_sim.driving import DrivenVehicle, VehicleReading
from device_sim.geo import LocalFrame
from device_sim.network import RoadNetwork
from device_sim.observing import Sighting
from device_sim.rand import seeded
from device_sim.scenarios import ScenarioType
from device_sim.signing import ChainedSigner
from device_sim.truth import WarningTruth

__all__ = ["DEVICE_EFFECTS", "Effect", "EffectContext", "Emission", "Planned", "reason_of"]

_DRIFT_OFF_ROAD_M: Final = THRESHOLDS["drift_off_road_m"].default
_DRIFT_MIN_MESSAGES: Final = THRESHOLDS["drift_min_messages"].default

# The pipeline's check order: the first reason in this list that applies decides.
_PRECEDENCE = (
    RejectReason.MALFORMED,
    RejectReason.UNKNOWN_DEVICE,
    RejectReason.BAD_SIGNATURE,
    RejectReason.SCHEMA,
    RejectReason.REVOKED_KEY,
    RejectReason.CLOCK_SKEW,
)


def reason_of(reasons: list[RejectReason]) -> RejectReason | None:
    """The reason the pipeline reports when a message has all of ``reasons``."""
    return min(reasons, key=_PRECEDENCE.index) if reasons else None


@dataclass(frozen=True, slots=True)
class EffectContext:
    """What effects need to know about the run."""

    seed: int
    frame: LocalFrame
    end_ms: int
    network: RoadNetwork | None = None


@dataclass(slots=True)
class Planned:
    """One MQTT publish waiting for its time: bytes, metadata for the truth file, labels."""

    device: str
    raw: bytes
    digest: bytes
    seq: int | None
    ts: int | None
    publish_at: int
    intended: RejectReason | None
    labels: list[str]
    order: float = 0.0  # among publishes at the same time: 0 keeps emission order


@dataclass(slots=True)
class Emission:
    """A device's next genuine message while scenarios shape it; signed fields set later.
    ``reading``: a vehicle's measurement; ``sightings``: an RSU's observations."""

    device: str
    t: int
    ts: int
    reading: VehicleReading | None
    signer: ChainedSigner
    sightings: list[Sighting] | None = None
    labels: list[str] = field(default_factory=list)
    reasons: list[RejectReason] = field(default_factory=list)
    touched: list[Effect] = field(default_factory=list)
    seq: int = 0
    payload: bytes = b""
    raw: bytes = b""
    digest: bytes = b""


class Effect:
    """One scenario applied to one device. Subclasses override the hooks they need."""

    warning_type: ClassVar[str | None] = None

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        self.scenario = scenario
        self.name = scenario.name
        self.device = device
        self.context = context
        self.rng: random.Random = seeded(context.seed, "effect", scenario.name, device)
        self.affected = 0
        self.first: tuple[int, int | None] | None = None  # (true ms, seq)
        self.last: tuple[int, int | None] | None = None
        self.detail: dict[str, Any] = {}

    def active(self, t: int) -> bool:
        return self.scenario.from_ms <= t < self.scenario.to_ms

    def touch(self, emission: Emission) -> None:
        """Mark ``emission`` as shaped by this effect (its seq is recorded once signed)."""
        emission.labels.append(self.name)
        emission.touched.append(self)

    def note(self, t: int, seq: int | None) -> None:
        """Count one affected message."""
        self.affected += 1
        self.first = self.first or (t, seq)
        self.last = (t, seq)

    def steer(self, driven: DrivenVehicle, t: int) -> None:
        """Change how the vehicle drives before it moves on to ``t`` (vehicles only)."""

    def before(self, emission: Emission) -> None:
        """Change the reading or timestamp before signing; append rejection reasons."""

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        """Change, delay or add publishes once the genuine message is signed (``planned[0]``)."""

    def warning(self) -> WarningTruth | None:
        """The event for analytics, if this effect touched anything and warrants one."""
        if self.warning_type is None or self.first is None or self.last is None:
            return None
        return WarningTruth(
            type=self.warning_type,
            device=self.device,
            scenario=self.name,
            from_ts=self.first[0],
            to_ts=self.last[0],
            from_seq=self.first[1],
            to_seq=self.last[1],
            messages=self.affected,
            detail=self.detail,
        )


class OdometerRollback(Effect):
    """From the window start on, the odometer reads ``drop_fraction`` lower (re-flashed)."""

    warning_type = "odometer_rollback"
    _drop: int | None = None

    def before(self, emission: Emission) -> None:
        reading = emission.reading
        if reading is None or emission.t < self.scenario.from_ms:
            return
        if self._drop is None:
            self._drop = min(
                reading.odo_m,
                max(1000, round(reading.odo_m * self.scenario.param("drop_fraction"))),
            )
            self.detail = {
                "from_odo_m": reading.odo_m,
                "to_odo_m": reading.odo_m - self._drop,
                "drop_m": self._drop,
            }
        emission.reading = reading._replace(odo_m=reading.odo_m - self._drop)
        self.touch(emission)


class _Spoof(Effect):
    """Shared by the GNSS spoofing effects: move the reported position by an offset."""

    _bearing: float | None = None

    def bearing(self) -> float:
        if self._bearing is None:
            chosen = self.scenario.params.get("bearing_deg")
            self._bearing = float(chosen) if chosen is not None else self.rng.uniform(0.0, 360.0)
        return self._bearing

    def offset_m(self, emission: Emission) -> float:
        raise NotImplementedError

    def before(self, emission: Emission) -> None:
        reading = emission.reading
        if reading is None or not self.active(emission.t):
            return
        distance, bearing = self.offset_m(emission), math.radians(self.bearing())
        d_lat, d_lon = self.context.frame.shift_e7(
            distance * math.sin(bearing), distance * math.cos(bearing)
        )
        emission.reading = reading._replace(
            lat_e7=round(reading.lat_e7 + d_lat), lon_e7=round(reading.lon_e7 + d_lon)
        )
        self.detail = {"bearing_deg": round(self.bearing(), 1), "max_offset_m": round(distance, 1)}
        self.touch(emission)


class Teleport(_Spoof):
    """During the window the position is ``distance_m`` away; it jumps back afterwards."""

    warning_type = "teleport"

    def offset_m(self, emission: Emission) -> float:
        return self.scenario.param("distance_m")


class DriftOffRoad(_Spoof):
    """During the window the position drifts away at ``rate_mps``; it snaps back afterwards.

    The event exists once the drift is observable: ``drift_min_messages`` reported positions
    in a row further than ``drift_off_road_m`` from every road (analytics' defaults). A drift
    along the vehicle's own street, or too short to leave the road, is no event.
    """

    warning_type = "drift_off_road"
    _t0: int | None = None

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        self._roads = (
            SegmentIndex(context.network.segments, radius_m=_DRIFT_OFF_ROAD_M)
            if context.network is not None
            else None
        )
        self._off_road: list[Emission] = []  # the current run of off-road positions
        self._observable: Emission | None = None  # the first of the first run long enough

    def offset_m(self, emission: Emission) -> float:
        self._t0 = emission.t if self._t0 is None else self._t0
        return self.scenario.param("rate_mps") * (emission.t - self._t0) / 1000.0

    def before(self, emission: Emission) -> None:
        super().before(emission)
        reading = emission.reading
        if self._roads is None or reading is None or not self.active(emission.t):
            return
        if self._roads.nearest(reading.lat_e7, reading.lon_e7) is not None:
            self._off_road.clear()
            return
        self._off_road.append(emission)
        if self._observable is None and len(self._off_road) >= _DRIFT_MIN_MESSAGES:
            self._observable = self._off_road[0]

    def warning(self) -> WarningTruth | None:
        if self._roads is None:
            return super().warning()  # no road network given: every drift counts
        first, last = self._observable, self.last
        if last is None:
            return None
        if first is None:
            # Drifted, but never far enough from every road for long enough to be seen: a
            # warning is right (the position did drift), none is no miss.
            event = super().warning()
            return replace(event, required=False) if event is not None else None
        return WarningTruth(
            type=self.warning_type,
            device=self.device,
            scenario=self.name,
            from_ts=first.t,
            to_ts=last[0],
            from_seq=first.seq,
            to_seq=last[1],
            messages=self.affected,
            detail=self.detail,
        )


class ClockSkew(Effect):
    """During the window the device clock runs ``skew_ms`` ahead: ``clock_skew``."""

    warning_type = "clock_skew"

    def before(self, emission: Emission) -> None:
        if self.active(emission.t):
            emission.ts += int(self.scenario.param("skew_ms"))
            emission.reasons.append(RejectReason.CLOCK_SKEW)
            self.detail = {"skew_ms": int(self.scenario.param("skew_ms"))}
            self.touch(emission)


class RevokedKey(Effect):
    """The key is revoked at the window start; messages stamped at or after it are
    ``revoked_key`` (earlier ones stay valid)."""

    warning_type = "revoked_key_use"

    def before(self, emission: Emission) -> None:
        if emission.ts >= self.scenario.from_ms:
            emission.reasons.append(RejectReason.REVOKED_KEY)
            self.detail = {"revoked_at_ms": self.scenario.from_ms}
            self.touch(emission)


class UnknownDevice(Effect):
    """An unregistered device: every message it sends is ``unknown_device``."""

    warning_type = "unknown_device"

    def before(self, emission: Emission) -> None:
        emission.reasons.append(RejectReason.UNKNOWN_DEVICE)
        self.touch(emission)


DEVICE_EFFECTS: dict[ScenarioType, type[Effect]] = {
    ScenarioType.ODOMETER_ROLLBACK: OdometerRollback,
    ScenarioType.TELEPORT: Teleport,
    ScenarioType.DRIFT_OFF_ROAD: DriftOffRoad,
    ScenarioType.CLOCK_SKEW: ClockSkew,
    ScenarioType.REVOKED_KEY: RevokedKey,
    ScenarioType.UNKNOWN_DEVICE: UnknownDevice,
}
