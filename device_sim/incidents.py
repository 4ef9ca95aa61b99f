"""TODO(incidents): scenario effect and ground truth (skeleton; being written)."""

from __future__ import annotations

from device_sim.effects import Effect
from device_sim.observers import RunObserver
from device_sim.scenarios import ScenarioType

__all__ = ["INCIDENT_EFFECTS", "CongestionTruth", "Incident"]


class Incident(Effect):
    """Placeholder: no effect yet."""


class CongestionTruth(RunObserver):
    """Placeholder: no events yet."""


INCIDENT_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.INCIDENT: Incident}
