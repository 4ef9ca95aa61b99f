"""The odometer blocker: during the window the odometer counts only part of the distance.

A "mileage stopper" interrupts the odometer's pulses: while it is on, the odometer advances by
``counted_fraction`` of the distance driven. Afterwards it counts normally again from where it
stood, so the lost distance stays lost and the reading never goes back (no rollback).

The truth of the event (``odo_gnss_mismatch``) is stated on its own, from what the simulator
knows: the distance the vehicle truly drove in the blocker's window and what its odometer
counted of it.

    A blocker is an event when, during its window, the vehicle truly drove at least
    ``odo_gnss_min_distance_m`` and its odometer counted less than
    ``100 - odo_gnss_mismatch_pct`` % of that distance.

Only those two published thresholds (:mod:`contracts.rules.thresholds`) are shared with the
detector, which judges the rule on what it can see (the latest ``odo_gnss_min_distance_m`` of
GNSS track, wherever it starts). Any other blocker (parked for most of the window, a window
too short for the distance, or a mild blocker counting at least that share) is injected all
the same: the truth keeps it as an optional event (``required: false``). A warning about it is
right (a stretch reaching back before the window, driven with an honest odometer, can still
show too little counted in all), but its absence is no miss: whether such a mixed stretch
falls under the share depends on where the detector's stretch happens to end. The event's
messages are the window's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from contracts.rules.thresholds import THRESHOLDS
from device_sim.assignment import ResolvedScenario
from device_sim.effects import Effect, EffectContext, Emission
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

__all__ = ["ODOMETER_BLOCKER_EFFECTS", "OdometerBlocker", "counted_too_little"]

_MIN_M: Final = THRESHOLDS["odo_gnss_min_distance_m"].default
_MISMATCH_PCT: Final = THRESHOLDS["odo_gnss_mismatch_pct"].default


class OdometerBlocker(Effect):
    """During the window the odometer counts ``counted_fraction`` of the distance driven."""

    warning_type = "odo_gnss_mismatch"

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        self._lost_m = 0.0
        self._last_odo: tuple[int, int] | None = None  # (true, reported) at the last message
        self._in_window = [0, 0]  # metres truly driven and counted in the window

    def before(self, emission: Emission) -> None:
        reading = emission.reading
        if reading is None:
            return
        true_odo, active = reading.odo_m, self.active(emission.t)
        step = 0 if self._last_odo is None else true_odo - self._last_odo[0]
        if active:
            self._lost_m += step * (1.0 - self.scenario.param("counted_fraction"))
        reported = true_odo - int(self._lost_m)
        if active and self._last_odo is not None:
            self._in_window[0] += step
            self._in_window[1] += reported - self._last_odo[1]
        self._last_odo = (true_odo, reported)
        if reported != true_odo:
            emission.reading = reading._replace(odo_m=reported)
        if active:
            self.touch(emission)

    def warning(self) -> WarningTruth | None:
        self.detail = {
            "driven_m": self._in_window[0],
            "counted_m": self._in_window[1],
            "counted_fraction": self.scenario.param("counted_fraction"),
        }
        event = super().warning()
        if event is None or counted_too_little(*self._in_window):
            return event
        return replace(event, required=False)  # injected, but no event by the rule


def counted_too_little(driven_m: int, counted_m: int) -> bool:
    """Whether an odometer that counted ``counted_m`` of the ``driven_m`` metres a vehicle
    truly drove in a blocker's window makes the blocker an event (see the module docstring)."""
    return driven_m >= _MIN_M and counted_m * 100 < (100 - _MISMATCH_PCT) * driven_m


ODOMETER_BLOCKER_EFFECTS: dict[ScenarioType, type[Effect]] = {
    ScenarioType.ODOMETER_BLOCKER: OdometerBlocker
}
