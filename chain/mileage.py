"""Mileage from one vehicle's messages: distances, gaps and anomalies.

The builder of a mileage certificate states a :class:`MileageSummary`; every verifier
recomputes it with :func:`summarize` and compares the two field by field, so the computation
is fixed here and kept in integers wherever a comparison is made:

* ``distance_m`` is the odometer delta, last message minus first (negative after a rollback);
* ``gnss_distance_m`` is the great-circle (haversine) distance between the positions of
  consecutive messages, each leg rounded to whole millimetres, summed, then rounded half up
  to metres. Across a gap the leg is a straight line, so the sum is a lower bound there;
* a **gap** is a pair of consecutive messages whose seqs are not consecutive;
* an **anomaly**, for consecutive messages ``a`` then ``b`` (in seq order):

  - ``clock_rollback``: ``b``'s ``ts`` is before ``a``'s;
  - ``odometer_rollback``: ``b``'s odometer is below ``a``'s;
  - ``odometer_gnss_mismatch``, odometer reads low: the positions are further apart than
    the odometer advanced, beyond :data:`LOW_READING_PERCENT` percent plus
    :data:`LOW_READING_SLACK_MM` (a straight line is never longer than the road, so only
    odometer error and GNSS error can explain it); checked across gaps too;
  - ``odometer_gnss_mismatch``, odometer reads high: the odometer advanced more than
    :data:`HIGH_READING_FACTOR` times the straight line plus :data:`HIGH_READING_SLACK_MM`;
    checked only between consecutive seqs (roads bend, so this bound is loose on purpose).

The only floating point is the haversine of one leg; it is rounded to a millimetre before
anything is added or compared, so two platforms disagree only if a leg lies within a few
ulps of a half millimetre.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from chain.telemetry import Telemetry

__all__ = [
    "EARTH_RADIUS_M",
    "HIGH_READING_FACTOR",
    "HIGH_READING_SLACK_MM",
    "LOW_READING_PERCENT",
    "LOW_READING_SLACK_MM",
    "Anomaly",
    "AnomalyKind",
    "Gap",
    "MileageSummary",
    "gnss_distance_mm",
    "summarize",
]

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""

LOW_READING_PERCENT = 105
"""An odometer may read up to 5% low (tyre wear, calibration) before a leg is an anomaly."""
LOW_READING_SLACK_MM = 50_000
"""Plus 50 m: two GNSS fixes, each off by up to ~25 m in a city canyon."""
HIGH_READING_FACTOR = 2
"""Between consecutive seqs the odometer may advance up to twice the straight line ..."""
HIGH_READING_SLACK_MM = 500_000
"""... plus 500 m (hairpins, roundabouts, a turn between two fixes)."""


class AnomalyKind(enum.StrEnum):
    """What an anomaly is; the ``kind`` member of a summary anomaly."""

    CLOCK_ROLLBACK = "clock_rollback"
    ODOMETER_ROLLBACK = "odometer_rollback"
    ODOMETER_GNSS_MISMATCH = "odometer_gnss_mismatch"


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages ``after_seq + 1 .. before_seq - 1`` are missing."""

    after_seq: int
    before_seq: int

    @property
    def missing(self) -> int:
        """How many messages are missing."""
        return self.before_seq - self.after_seq - 1


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something a fraud analyst should look at, found at message ``seq``."""

    seq: int
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class MileageSummary:
    """What a mileage certificate states about its messages (see the module docstring)."""

    first_seq: int
    last_seq: int
    message_count: int
    odometer_start_m: int
    odometer_end_m: int
    distance_m: int
    gnss_distance_m: int
    gaps: tuple[Gap, ...]
    anomalies: tuple[Anomaly, ...]


def gnss_distance_mm(lat1_e7: int, lon1_e7: int, lat2_e7: int, lon2_e7: int) -> int:
    """Great-circle distance in whole millimetres between two positions in degrees x 1e7."""
    phi1 = math.radians(lat1_e7 / 1e7)
    phi2 = math.radians(lat2_e7 / 1e7)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians((lon2_e7 - lon1_e7) / 1e7) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    central_angle = 2 * math.asin(min(1.0, math.sqrt(a)))
    return round(EARTH_RADIUS_M * central_angle * 1000)


def _odometer(t: Telemetry) -> int:
    if t.odo_m is None:
        raise ValueError(f"seq {t.seq}: an RSU message has no odometer")
    return t.odo_m


def _leg_anomalies(a: Telemetry, b: Telemetry, leg_mm: int) -> list[Anomaly]:
    found: list[Anomaly] = []
    if b.ts < a.ts:
        found.append(
            Anomaly(
                b.seq,
                AnomalyKind.CLOCK_ROLLBACK.value,
                f"ts {b.ts} at seq {b.seq} is before ts {a.ts} at seq {a.seq}",
            )
        )
    odo_a, odo_b = _odometer(a), _odometer(b)
    if odo_b < odo_a:
        found.append(
            Anomaly(
                b.seq,
                AnomalyKind.ODOMETER_ROLLBACK.value,
                f"odometer {odo_a} m at seq {a.seq}, {odo_b} m at seq {b.seq}",
            )
        )
        return found
    odo_mm = (odo_b - odo_a) * 1000
    leg_m = (leg_mm + 500) // 1000
    where = f"seq {a.seq} -> {b.seq}: odometer +{odo_b - odo_a} m, positions {leg_m} m apart"
    mismatch = AnomalyKind.ODOMETER_GNSS_MISMATCH.value
    if 100 * leg_mm > LOW_READING_PERCENT * odo_mm + 100 * LOW_READING_SLACK_MM:
        found.append(Anomaly(b.seq, mismatch, f"{where}: reads low"))
    elif b.seq == a.seq + 1 and odo_mm > HIGH_READING_FACTOR * leg_mm + HIGH_READING_SLACK_MM:
        found.append(Anomaly(b.seq, mismatch, f"{where}: reads high"))
    return found


def summarize(messages: Sequence[Telemetry]) -> MileageSummary:
    """The summary of vehicle ``messages`` given in strictly increasing seq order.

    Raises ``ValueError`` for no messages, seqs out of order, or an RSU message: a verifier
    checks those first and reports them itself.
    """
    if not messages:
        raise ValueError("no messages to summarize")
    gaps: list[Gap] = []
    anomalies: list[Anomaly] = []
    total_mm = 0
    for a, b in pairwise(messages):
        if b.seq <= a.seq:
            raise ValueError(f"seq {b.seq} follows seq {a.seq}: not strictly increasing")
        leg_mm = gnss_distance_mm(a.lat_e7, a.lon_e7, b.lat_e7, b.lon_e7)
        total_mm += leg_mm
        if b.seq != a.seq + 1:
            gaps.append(Gap(a.seq, b.seq))
        anomalies.extend(_leg_anomalies(a, b, leg_mm))
    first, last = messages[0], messages[-1]
    start, end = _odometer(first), _odometer(last)
    return MileageSummary(
        first_seq=first.seq,
        last_seq=last.seq,
        message_count=len(messages),
        odometer_start_m=start,
        odometer_end_m=end,
        distance_m=end - start,
        gnss_distance_m=(total_mm + 500) // 1000,
        gaps=tuple(gaps),
        anomalies=tuple(anomalies),
    )
