"""Distances on the Earth: the one great-circle formula every part of RoadLedger uses.

A mileage certificate (``chain.mileage``) and a warning (``analytics``) must agree about the
same drive, so both measure with this module. Positions are degrees x 1e7, as on the wire.
"""

from __future__ import annotations

import math

__all__ = ["EARTH_RADIUS_M", "central_angle", "great_circle_m"]

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""


def central_angle(lat1_e7: int, lon1_e7: int, lat2_e7: int, lon2_e7: int) -> float:
    """The angle (radians) between two positions, seen from the Earth's centre (haversine)."""
    phi1 = math.radians(lat1_e7 / 1e7)
    phi2 = math.radians(lat2_e7 / 1e7)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians((lon2_e7 - lon1_e7) / 1e7) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(a)))


def great_circle_m(lat1_e7: int, lon1_e7: int, lat2_e7: int, lon2_e7: int) -> float:
    """Great-circle distance in metres between two positions in degrees x 1e7."""
    return EARTH_RADIUS_M * central_angle(lat1_e7, lon1_e7, lat2_e7, lon2_e7)
