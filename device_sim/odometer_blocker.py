"""The odometer blocker: during the window the odometer counts only part of the distance.

A "mileage stopper" interrupts the odometer's pulses: while it is on, the odometer advances by
``counted_fraction`` of the distance driven. Afterwards it counts normally again from where it
stood, so the lost distance stays lost and the reading never goes back (no rollback).

The event (``odo_gnss_mismatch``) is only claimed when analytics can see it: when the track the
vehicle signed (its GNSS positions, speeds and the blocked odometer), cut into legs and judged
as the detector judges it (:mod:`analytics.warnings.odometer_gnss`, default thresholds), has a
stretch of ``odo_gnss_min_distance_m`` over which the odometer counted less than
``100 - odo_gnss_mismatch_pct`` % of the distance. A vehicle parked for most of the window, or
one that drives too little around it, is no event; near the limit, whether the GNSS noise tips
the share over it is what the vehicle's own telemetry says, so the truth follows it. The
event's messages are the window's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from analytics.warnings.odometer_gnss import Fix, Legs, Span, counted_too_little
from contracts.rules.thresholds import THRESHOLDS
from device_sim.assignment import ResolvedScenario
from device_sim.effects import Effect, EffectContext, Emission
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

__all__ = ["ODOMETER_BLOCKER_EFFECTS", "OdometerBlocker"]

_MIN_M: Final = THRESHOLDS["odo_gnss_min_distance_m"].default
_MISMATCH_PCT: Final = THRESHOLDS["odo_gnss_mismatch_pct"].default


class OdometerBlocker(Effect):
    """During the window the odometer counts ``counted_fraction`` of the distance driven."""

    warning_type = "odo_gnss_mismatch"

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        self._lost_m = 0.0
        self._last_odo: tuple[int, int] | None = None  # (true, reported) at the last message
        self._in_window = [0, 0]  # metres driven and counted in the window
        self._legs: Legs[int] = Legs()  # the detector's view of the signed track
        self._seen = False  # a stretch the detector can judge counted too little

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
        fix = Fix(reading.ts, reading.lat_e7, reading.lon_e7, reported, reading.spd_cms)
        self._seen = self._seen or _mismatch(self._legs.add(fix, emission.t, _MIN_M))
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
        # Blocked, but never over a stretch the rule can judge (the vehicle drove too little
        # of it): a warning is right, none is no miss. Near that edge the detector's own
        # exclusions (off-network fixes, speed cross-checks) cut its stretches differently.
        return event if event is None or self._seen else replace(event, required=False)


def _mismatch(span: Span[int] | None) -> bool:
    return span is not None and counted_too_little(span, _MISMATCH_PCT)


ODOMETER_BLOCKER_EFFECTS: dict[ScenarioType, type[Effect]] = {
    ScenarioType.ODOMETER_BLOCKER: OdometerBlocker
}
