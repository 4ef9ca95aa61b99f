"""TODO(rsu_contradiction): scenario effect and ground truth (skeleton; being written)."""

from __future__ import annotations

from device_sim.effects import Effect
from device_sim.observers import RunObserver
from device_sim.scenarios import ScenarioType

__all__ = ["RSU_EFFECTS", "RsuContradictionTruth", "RsuDisplaced"]


class RsuDisplaced(Effect):
    """Placeholder: no effect yet."""


class RsuContradictionTruth(RunObserver):
    """Placeholder: no events yet."""


RSU_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.RSU_DISPLACED: RsuDisplaced}
