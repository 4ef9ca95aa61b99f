"""The run loop: advance the fleet tick by tick, sign, apply scenarios, publish in order.

Each tick every device reports once, at its own fixed phase within the interval, so messages
come out in simulated-time order. A message goes into a heap keyed by its publish time
(scenarios may delay it); everything due by the current simulated time leaves the heap, gets
its expected outcome from :class:`~device_sim.outcomes.OutcomeModel` and its truth line, and is
yielded to the publisher.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.topics import mqtt_telemetry_topic
from device_sim.delivery import DELIVERY_EFFECTS
from device_sim.driving import DrivenVehicle, VehicleReading
from device_sim.effects import DEVICE_EFFECTS, Effect, EffectContext, Emission, Planned, reason_of
from device_sim.fleet import RoadsideUnit, Vehicle
from device_sim.geofencing import GEOFENCE_EFFECTS, GeofenceTruth
from device_sim.incidents import INCIDENT_EFFECTS, CongestionTruth
from device_sim.observers import RunObserver, VehicleReport
from device_sim.observing import RsuObserver, Sighting
from device_sim.odometer_blocker import ODOMETER_BLOCKER_EFFECTS
from device_sim.outcomes import OutcomeModel
from device_sim.rand import seeded
from device_sim.routing import Router
from device_sim.rsu_contradiction import RSU_EFFECTS, RsuContradictionTruth
from device_sim.signing import ChainedSigner
from device_sim.speeding import SPEEDING_EFFECTS, SpeedingTruth
from device_sim.traffic import RoadState
from device_sim.truth import MessageTruth, TruthWriter

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = ["Emitter", "Outgoing"]

_EFFECTS = (
    DEVICE_EFFECTS
    | DELIVERY_EFFECTS
    | SPEEDING_EFFECTS
    | ODOMETER_BLOCKER_EFFECTS
    | GEOFENCE_EFFECTS
    | RSU_EFFECTS
    | INCIDENT_EFFECTS
)
# Truth no single scenario owns; each sees every signed report.
_OBSERVERS: tuple[type[RunObserver], ...] = (
    SpeedingTruth,
    GeofenceTruth,
    CongestionTruth,
    RsuContradictionTruth,
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT publish: topic, the exact bytes, and the simulated time to publish it at."""

    topic: str
    payload: bytes
    publish_at_ms: int


class _Device:
    """One device's runtime state."""

    __slots__ = ("driven", "effects", "observer", "phase", "rsu", "signer", "topic", "window")

    def __init__(self, device_id: str, signer: ChainedSigner, phase: int) -> None:
        self.topic = mqtt_telemetry_topic(device_id)
        self.signer = signer
        self.phase = phase
        self.driven: DrivenVehicle | None = None
        self.observer: RsuObserver | None = None
        self.rsu: RoadsideUnit | None = None
        self.effects: list[Effect] = []
        self.window: tuple[int, int] | None = None  # only reports inside it (ghosts)


class Emitter:
    """Generates one run of a :class:`~device_sim.simulation.Simulation`."""

    def __init__(self, simulation: Simulation) -> None:
        self._sim = simulation
        self.expected: Counter[str] = Counter()
        self.published = 0
        self._devices: dict[str, _Device] = {}
        self._observers = [observer(simulation) for observer in _OBSERVERS]
        self._build()
        tracked = [device_id for device_id, device in self._devices.items() if device.effects]
        self._model = OutcomeModel(tracked)

    def _build(self) -> None:
        sim, seed = self._sim, self._sim.config.seed
        network, start = sim.network, sim.start_ms
        roads: RoadState[DrivenVehicle] = RoadState(network, sim.config.utc_offset_h)
        router = Router(network)
        fleet_ids = sim.fleet.device_ids
        slots = list(range(len(fleet_ids)))
        seeded(seed, "phases").shuffle(slots)
        phase_of = {
            d: slot * sim.interval_ms // len(fleet_ids)
            for d, slot in zip(fleet_ids, slots, strict=True)
        }

        def drive(vehicle: Vehicle, state: RoadState[DrivenVehicle], phase: int) -> _Device:
            device = _Device(
                vehicle.device_id, ChainedSigner(vehicle.device_id, vehicle.key), phase
            )
            rng = seeded(seed, "drive", vehicle.device_id)
            device.driven = DrivenVehicle(vehicle, network, router, state, rng, start)
            return device

        for vehicle in sim.fleet.vehicles:
            self._devices[vehicle.device_id] = drive(vehicle, roads, phase_of[vehicle.device_id])
        for rsu in sim.fleet.rsus:
            device = _Device(
                rsu.device_id, ChainedSigner(rsu.device_id, rsu.key), phase_of[rsu.device_id]
            )
            device.rsu = rsu
            device.observer = RsuObserver(rsu, roads, seeded(seed, "observe", rsu.device_id))
            self._devices[rsu.device_id] = device
        # Ghosts (unregistered devices) drive on roads of their own: they add no congestion.
        ghost_roads: RoadState[DrivenVehicle] = RoadState(network, sim.config.utc_offset_h)
        for ghost, scenario in sim.ghosts:
            phase = seeded(seed, "phase", ghost.device_id).randrange(sim.interval_ms)
            device = drive(ghost, ghost_roads, phase)
            device.window = (scenario.from_ms, scenario.to_ms)
            self._devices[ghost.device_id] = device
        context = EffectContext(seed=seed, frame=network.frame, end_ms=sim.end_ms, network=network)
        for scenario in sim.scenarios:
            for device_id in scenario.devices:
                effect = _EFFECTS[scenario.type](scenario, device_id, context)
                self._devices[device_id].effects.append(effect)

    def _emit(self, device_id: str, device: _Device, t: int) -> list[Planned]:
        signer, driven = device.signer, device.driven
        if driven is not None:
            for effect in device.effects:
                effect.steer(driven, t)
        reading = driven.report(t) if driven is not None else None
        sightings = device.observer.observe() if device.observer is not None else None
        if not device.effects:
            # VehicleReading's fields are next_vehicle's arguments, in order.
            raw = (
                signer.next_vehicle(*reading)
                if reading is not None
                else self._sign_rsu(device, t, sightings or [])
            )
            planned = [Planned(device_id, raw, signer.last_digest, signer.seq, t, t, None, [])]
        else:
            emission = Emission(device_id, t, t, reading, signer, sightings)
            for effect in device.effects:
                effect.before(emission)
            if emission.reading is not None:
                raw = signer.next_vehicle(emission.ts, *emission.reading[1:])
            else:
                raw = self._sign_rsu(device, emission.ts, emission.sightings or [])
            emission.seq, emission.raw = signer.seq, raw
            emission.digest, emission.payload = signer.last_digest, signer.last_payload
            for effect in emission.touched:
                effect.note(t, emission.seq)
            intended = reason_of(emission.reasons)
            labels = list(emission.labels)
            planned = [
                Planned(
                    device_id, raw, emission.digest, emission.seq, emission.ts, t, intended, labels
                )
            ]
            for effect in device.effects:
                effect.after(emission, planned)
            reading, sightings = emission.reading, emission.sightings
        self._observe(device_id, device, t, planned[0], reading, sightings)
        return planned

    def _observe(
        self,
        device_id: str,
        device: _Device,
        t: int,
        genuine: Planned,
        reading: VehicleReading | None,
        sightings: list[Sighting] | None,
    ) -> None:
        """Show the observers what was signed (``genuine``: the device's own message)."""
        assert genuine.seq is not None
        if device.driven is not None and reading is not None:
            report = VehicleReport(
                device_id, t, genuine.seq, reading, device.driven, genuine.intended,
                genuine.labels,
            )  # fmt: skip
            for observer in self._observers:
                observer.vehicle_report(report)
        elif sightings is not None:
            for observer in self._observers:
                observer.rsu_report(device_id, t, genuine.seq, sightings, genuine.intended is None)

    @staticmethod
    def _sign_rsu(device: _Device, ts: int, sightings: list[Sighting]) -> bytes:
        assert device.rsu is not None
        return device.signer.next_rsu(ts, device.rsu.lat_e7, device.rsu.lon_e7, sightings)

    def _release(self, planned: Planned, truth: TruthWriter | None) -> Outgoing:
        expected = self._model.decide(planned.device, planned.seq, planned.digest, planned.intended)
        self.expected[expected] += 1
        if truth is not None:
            scenario = "+".join(dict.fromkeys(planned.labels)) or None
            truth.message(
                MessageTruth(
                    self.published, planned.device, planned.seq, planned.ts, planned.digest.hex(),
                    planned.publish_at, scenario, expected,
                )
            )  # fmt: skip
        self.published += 1
        return Outgoing(self._devices[planned.device].topic, planned.raw, planned.publish_at)

    def messages(self, truth: TruthWriter | None = None) -> Iterator[Outgoing]:
        """The run's publishes in order; writes the truth's run, message and warning lines."""
        sim = self._sim
        if truth is not None:
            truth.run(sim.run_info())
        schedule = sorted(self._devices.items(), key=lambda item: (item[1].phase, item[0]))
        heap: list[tuple[int, float, int, Planned]] = []
        counter = 0
        base = sim.start_ms
        while base < sim.end_ms:
            for device_id, device in schedule:
                t = base + device.phase
                if t >= sim.end_ms:
                    break
                if device.window is not None and not device.window[0] <= t < device.window[1]:
                    continue
                for planned in self._emit(device_id, device, t):
                    heapq.heappush(heap, (planned.publish_at, planned.order, counter, planned))
                    counter += 1
                while heap and heap[0][0] <= t:
                    yield self._release(heapq.heappop(heap)[3], truth)
            base += sim.interval_ms
        while heap:
            yield self._release(heapq.heappop(heap)[3], truth)
        if truth is not None:
            for device in self._devices.values():
                for effect in device.effects:
                    if (warning := effect.warning()) is not None:
                        truth.warning(warning)
            for observer in self._observers:
                for warning in observer.warnings():
                    truth.warning(warning)
