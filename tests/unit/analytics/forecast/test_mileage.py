"""Annual mileage projection with its interval, worked by hand."""

from __future__ import annotations

import math
from datetime import date
from statistics import NormalDist

import pytest

from analytics.forecast.mileage import (
    DAYS_PER_YEAR,
    DayReading,
    MileageError,
    daily_distances_km,
    project_mileage,
)


def test_daily_distances_add_up_to_the_odometer_advance() -> None:
    readings = [
        DayReading(date(2026, 3, 3), 31_000, 31_000),
        DayReading(date(2026, 3, 1), 1_000, 11_000),
    ]
    first, distances = daily_distances_km(readings)
    assert first == date(2026, 3, 1)
    # day 1: 11 - 1 km; day 2: nothing read; day 3: 31 - 11 km
    assert distances == [10.0, 0.0, 20.0]


def test_projection_and_interval_by_hand() -> None:
    readings = [
        DayReading(date(2026, 3, 1), 1_000, 11_000),
        DayReading(date(2026, 3, 3), 31_000, 31_000),
    ]
    p = project_mileage(readings, level=0.9)
    assert (p.days, p.first_day, p.last_day) == (3, date(2026, 3, 1), date(2026, 3, 3))
    assert p.mean_daily_km == pytest.approx(10.0)
    assert p.annual_km == pytest.approx(3652.5)
    sd = 10.0 * math.sqrt(DAYS_PER_YEAR + DAYS_PER_YEAR**2 / 3)  # sample sd of (10, 0, 20) = 10
    z = NormalDist().inv_cdf(0.95)
    assert p.annual_high_km == pytest.approx(3652.5 + z * sd)
    assert p.annual_low_km == pytest.approx(3652.5 - z * sd)  # about 170 km: 3 days say little
    lone = project_mileage([DayReading(date(2026, 3, 1), 0, 5_000)])
    assert lone.annual_low_km == 0.0  # one day: spread taken as the mean, the low end clipped


def test_more_days_narrow_the_interval() -> None:
    def alternating(days: int) -> list[DayReading]:
        """30 and 50 km on alternate days."""
        odometer = [0]
        for d in range(days):
            odometer.append(odometer[-1] + (30_000 if d % 2 else 50_000))
        return [DayReading(date(2026, 1, 1 + d), odometer[d], odometer[d + 1]) for d in range(days)]

    short, long = project_mileage(alternating(6)), project_mileage(alternating(30))
    assert short.annual_low_km <= short.annual_km <= short.annual_high_km
    assert long.annual_high_km - long.annual_low_km < short.annual_high_km - short.annual_low_km
    assert long.annual_km == pytest.approx(40 * DAYS_PER_YEAR, rel=1e-3)


def test_a_decreasing_odometer_counts_zero() -> None:
    _, distances = daily_distances_km(
        [DayReading(date(2026, 1, 1), 5_000, 9_000), DayReading(date(2026, 1, 2), 2_000, 8_000)]
    )
    assert distances == [4.0, 0.0]


@pytest.mark.parametrize(
    ("readings", "level", "field"),
    [
        ([], 0.9, "readings"),
        ([DayReading(date(2026, 1, 1), 5, 1)], 0.9, "readings"),
        ([DayReading(date(2026, 1, 1), 1, 5)], 1.0, "level"),
    ],
)
def test_bad_input_names_the_field(readings: list[DayReading], level: float, field: str) -> None:
    with pytest.raises(MileageError, match=field):
        project_mileage(readings, level)
