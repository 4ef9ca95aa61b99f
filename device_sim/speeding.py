"""TODO(speeding): scenario effect and ground truth (skeleton; being written)."""

from __future__ import annotations

from device_sim.effects import Effect
from device_sim.observers import RunObserver
from device_sim.scenarios import ScenarioType

__all__ = ["SPEEDING_EFFECTS", "Speeding", "SpeedingTruth"]


class Speeding(Effect):
    """Placeholder: no effect yet."""


class SpeedingTruth(RunObserver):
    """Placeholder: no events yet."""


SPEEDING_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.SPEEDING: Speeding}
