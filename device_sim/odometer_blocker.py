"""TODO(odometer_blocker): scenario effect (skeleton; being written)."""

from __future__ import annotations

from device_sim.effects import Effect
from device_sim.scenarios import ScenarioType

__all__ = ["ODOMETER_BLOCKER_EFFECTS", "OdometerBlocker"]


class OdometerBlocker(Effect):
    """Placeholder: no effect yet."""


ODOMETER_BLOCKER_EFFECTS: dict[ScenarioType, type[Effect]] = {
    ScenarioType.ODOMETER_BLOCKER: OdometerBlocker
}
