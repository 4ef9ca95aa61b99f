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

Two more anomalies need what only a certificate knows (the signed bytes, the leaf indices, the
key records); :mod:`chain.certificate_build` computes them and passes them in as ``extra``
anomalies, listed at their message before the ones above:

  - ``chain_broken``: ``b = a + 1`` and ``b``'s ``prev`` is not the hash of ``a``'s JWS (a
    re-flashed or cloned device continuing the count);
  - ``sequenced_after_revocation``: the message's leaf comes after the revocation record of
    the key that signed it, although its ``ts`` is before the revocation (backdated with a
    stolen key, or in flight when the key was revoked).

The only floating point is the haversine of one leg; it is rounded to a millimetre before
anything is added or compared, so two platforms disagree only if a leg lies within a few
ulps of a half millimetre.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from chain.geodesy import EARTH_RADIUS_M, central_angle
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
    "SummaryBuilder",
    "gnss_distance_mm",
    "summarize",
]

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
    CHAIN_BROKEN = "chain_broken"
    SEQUENCED_AFTER_REVOCATION = "sequenced_after_revocation"


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
    # The same operations in the same order as before chain.geodesy: certificates already
    # issued keep exactly the distances they state.
    return round(EARTH_RADIUS_M * central_angle(lat1_e7, lon1_e7, lat2_e7, lon2_e7) * 1000)


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


_T_contra = TypeVar("_T_contra", contravariant=True)


class Sink(Protocol[_T_contra]):
    """Where a :class:`SummaryBuilder` puts gaps or anomalies: a list, or a comparator."""

    def append(self, item: _T_contra, /) -> None: ...


class SummaryBuilder:
    """:func:`summarize`, one message at a time, in memory independent of the message count.

    Gaps and anomalies go to the given sinks as they are found (lists by default), so a
    verifier can compare them with a stated summary as it goes instead of keeping them.
    """

    def __init__(
        self, gaps: Sink[Gap] | None = None, anomalies: Sink[Anomaly] | None = None
    ) -> None:
        self.gaps: Sink[Gap] = [] if gaps is None else gaps
        self.anomalies: Sink[Anomaly] = [] if anomalies is None else anomalies
        self.first: Telemetry | None = None
        self.last: Telemetry | None = None
        self.count = 0
        self._total_mm = 0

    def add(self, message: Telemetry, extra: Sequence[Anomaly] = ()) -> None:
        """Add the next message (seqs strictly increasing); ``extra`` anomalies are at it.

        Raises ``ValueError`` for a seq out of order or an RSU message.
        """
        _odometer(message)
        a, b = self.last, message
        for anomaly in extra:
            self.anomalies.append(anomaly)
        if a is not None:
            if b.seq <= a.seq:
                raise ValueError(f"seq {b.seq} follows seq {a.seq}: not strictly increasing")
            leg_mm = gnss_distance_mm(a.lat_e7, a.lon_e7, b.lat_e7, b.lon_e7)
            self._total_mm += leg_mm
            if b.seq != a.seq + 1:
                self.gaps.append(Gap(a.seq, b.seq))
            for anomaly in _leg_anomalies(a, b, leg_mm):
                self.anomalies.append(anomaly)
        else:
            self.first = message
        self.last = message
        self.count += 1

    @property
    def gnss_distance_m(self) -> int:
        return (self._total_mm + 500) // 1000

    def scalars(self) -> dict[str, int]:
        """The summary's integer fields, by name (raises ``ValueError`` before any message)."""
        if self.first is None or self.last is None:
            raise ValueError("no messages to summarize")
        start, end = _odometer(self.first), _odometer(self.last)
        return {
            "first_seq": self.first.seq,
            "last_seq": self.last.seq,
            "message_count": self.count,
            "odometer_start_m": start,
            "odometer_end_m": end,
            "distance_m": end - start,
            "gnss_distance_m": self.gnss_distance_m,
        }

    def result(self) -> MileageSummary:
        """The summary; only when the sinks are lists (the default)."""
        if not isinstance(self.gaps, list) or not isinstance(self.anomalies, list):
            raise TypeError("result() needs list sinks")
        return MileageSummary(
            **self.scalars(), gaps=tuple(self.gaps), anomalies=tuple(self.anomalies)
        )


def summarize(
    messages: Sequence[Telemetry], extra: Mapping[int, Sequence[Anomaly]] | None = None
) -> MileageSummary:
    """The summary of vehicle ``messages`` given in strictly increasing seq order.

    ``extra`` maps a seq to anomalies found outside this module (``chain_broken``,
    ``sequenced_after_revocation``); they are listed at that message before its own.
    Raises ``ValueError`` for no messages, seqs out of order, or an RSU message: a verifier
    checks those first and reports them itself.
    """
    builder = SummaryBuilder()
    for message in messages:
        builder.add(message, extra.get(message.seq, ()) if extra else ())
    return builder.result()
