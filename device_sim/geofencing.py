"""TODO(geofencing): scenario effect and ground truth (skeleton; being written)."""

from __future__ import annotations

from device_sim.effects import Effect
from device_sim.observers import RunObserver
from device_sim.scenarios import ScenarioType

__all__ = ["GEOFENCE_EFFECTS", "GeofenceBreach", "GeofenceTruth"]


class GeofenceBreach(Effect):
    """Placeholder: no effect yet."""


class GeofenceTruth(RunObserver):
    """Placeholder: no events yet."""


GEOFENCE_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.GEOFENCE_BREACH: GeofenceBreach}
