"""Projected annual mileage per vehicle, with an interval, from its odometer readings.

Method (``daily-mean-normal``):

1. Per UTC day with readings, the day's lowest and highest odometer. The distance of a day is
   its highest reading minus the previous observed day's highest (the first day: minus its own
   lowest), so the days add up exactly to the odometer's advance; days without a reading count
   0 and whatever was driven then lands on the next day with readings. A decreasing odometer
   contributes 0.
2. ``n`` calendar days from the first to the last day with readings; mean ``m`` and sample
   standard deviation ``s`` of the daily distances (``s = m`` when ``n = 1``).
3. Projection: ``365.25 * m``. Interval: the next 365.25 days' total if days are independent
   draws like the observed ones, its variance ``s^2 * (365.25 + 365.25^2 / n)`` (day-to-day
   spread plus the uncertainty of ``m``), normal, central ``level`` (90% by default), the lower
   end clipped at 0.

What the interval does not cover: seasons, a change of owner or use, weekly cycles longer than
the history (a history under a week gives an interval that is wide, and says so by ``days``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

__all__ = [
    "DAYS_PER_YEAR",
    "METHOD",
    "DayReading",
    "MileageError",
    "MileageProjection",
    "daily_distances_km",
    "project_mileage",
]

DAYS_PER_YEAR = 365.25
METHOD = "daily-mean-normal"


class MileageError(ValueError):
    """Readings or parameters are unusable; the message names the field."""


@dataclass(frozen=True)
class DayReading:
    """A vehicle's lowest and highest odometer (metres) on one UTC day."""

    day: date
    min_odo_m: int
    max_odo_m: int


@dataclass(frozen=True)
class MileageProjection:
    """Annual distance in km: the point projection and its central ``level`` interval."""

    first_day: date
    last_day: date
    days: int
    mean_daily_km: float
    annual_km: float
    annual_low_km: float
    annual_high_km: float
    level: float
    method: str = METHOD


def daily_distances_km(readings: Iterable[DayReading]) -> tuple[date, list[float]]:
    """The first day and the distance of every calendar day from it to the last reading."""
    ordered = sorted(readings, key=lambda r: r.day)
    if not ordered:
        raise MileageError("readings: at least one day of odometer readings is needed")
    if len({r.day for r in ordered}) != len(ordered):
        raise MileageError("readings: one reading per day expected")
    first = ordered[0].day
    distances = [0.0] * ((ordered[-1].day - first).days + 1)
    previous = ordered[0].min_odo_m
    for reading in ordered:
        if reading.max_odo_m < reading.min_odo_m:
            raise MileageError(f"readings[{reading.day}]: max_odo_m below min_odo_m")
        distances[(reading.day - first).days] = max(0, reading.max_odo_m - previous) / 1000.0
        previous = max(previous, reading.max_odo_m)
    return first, distances


def project_mileage(readings: Iterable[DayReading], level: float = 0.9) -> MileageProjection:
    """The annual projection of one vehicle (see the module docstring for the method)."""
    if not 0 < level < 1:
        raise MileageError(f"level: {level} must be strictly between 0 and 1")
    first, distances = daily_distances_km(readings)
    n = len(distances)
    mean = sum(distances) / n
    spread = math.sqrt(sum((d - mean) ** 2 for d in distances) / (n - 1)) if n > 1 else mean
    annual = DAYS_PER_YEAR * mean
    sd = spread * math.sqrt(DAYS_PER_YEAR + DAYS_PER_YEAR**2 / n)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return MileageProjection(
        first_day=first,
        last_day=first + timedelta(days=n - 1),
        days=n,
        mean_daily_km=mean,
        annual_km=annual,
        annual_low_km=max(0.0, annual - z * sd),
        annual_high_km=annual + z * sd,
        level=level,
    )
