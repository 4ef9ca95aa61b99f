"""One great-circle formula: certificates and warnings measure a drive the same way."""

from __future__ import annotations

import math

import pytest

from chain.geodesy import EARTH_RADIUS_M, great_circle_m
from chain.mileage import gnss_distance_mm
from contracts.roads import haversine_m


def test_a_degree_of_latitude_on_a_meridian() -> None:
    assert great_circle_m(0, 0, 10_000_000, 0) == pytest.approx(EARTH_RADIUS_M * math.pi / 180)
    assert great_circle_m(0, 0, 10_000_000, 0) == pytest.approx(111_195.08, abs=0.01)


def test_a_quarter_meridian_and_half_the_equator() -> None:
    assert great_circle_m(0, 0, 900_000_000, 0) == pytest.approx(10_007_557.2, abs=0.1)
    assert great_circle_m(0, 0, 0, 1_800_000_000) == pytest.approx(EARTH_RADIUS_M * math.pi)
    assert great_circle_m(0, 1_799_999_999, 0, -1_799_999_999) < 0.03  # across the date line


@pytest.mark.parametrize(
    "points",
    [(0, 0, 0, 0), (525_250_000, 133_695_000, 525_251_000, 133_696_000),
     (-337_000_000, 1_512_000_000, 406_000_000, -740_000_000)],
)  # fmt: skip
def test_certificates_and_warnings_agree(points: tuple[int, int, int, int]) -> None:
    assert haversine_m is great_circle_m
    assert gnss_distance_mm(*points) == round(great_circle_m(*points) * 1000)
