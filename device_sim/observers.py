"""Run observers: ground truth that no single scenario owns (speeding, congestion, ...).

A scenario's :class:`~device_sim.effects.Effect` describes the event it causes. Some events
also happen without any scenario (a driver who speeds, a jam at rush hour, a truck entering a
restricted zone) or involve two devices (an RSU sighting that contradicts a vehicle's report).
A :class:`RunObserver` sees every signed report of the run, in simulated-time order, and
describes those events as :class:`~device_sim.truth.WarningTruth` at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chain.errors import RejectReason
from device_sim.driving import DrivenVehicle, VehicleReading
from device_sim.observing import Sighting
from device_sim.truth import WarningTruth

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = ["RunObserver", "VehicleReport"]


@dataclass(frozen=True, slots=True)
class VehicleReport:
    """One vehicle message as signed. ``reading``: what it reports (after scenarios);
    ``driven``: the vehicle's true state now; ``stored``: the pipeline should accept it (no
    rejection reason, not replaced in transit), so analytics will see it."""

    device: str
    t: int
    seq: int
    reading: VehicleReading
    driven: DrivenVehicle
    intended: RejectReason | None
    labels: Sequence[str]

    @property
    def stored(self) -> bool:
        return self.intended is None


class RunObserver:
    """Sees every signed report of a run; subclasses override what they need."""

    def __init__(self, simulation: Simulation) -> None:
        self.simulation = simulation

    def vehicle_report(self, report: VehicleReport) -> None:
        """A vehicle signed ``report`` (called in simulated-time order)."""

    def rsu_report(
        self, device: str, t: int, seq: int, sightings: Sequence[Sighting], stored: bool
    ) -> None:
        """An RSU signed its ``sightings`` (as published, after scenarios); ``stored``: the
        pipeline should accept the message."""

    def warnings(self) -> list[WarningTruth]:
        """The events seen, once the run is over."""
        return []
