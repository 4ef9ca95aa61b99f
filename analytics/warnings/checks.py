"""Checks plugged into the engine beside the per-device track detectors.

A :class:`Check` sees every new verified vehicle point (map-matched, with its vehicle class)
and every RSU report, in arrival order, and keeps whatever state it needs (a speeding run, a
segment's speeds, sightings waiting for the vehicle's own report). ``rules`` is the engine's
rule source, replaced when newly published rules are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.warnings.detectors import Point, RuleSource
from analytics.warnings.model import Evidence, Warning

__all__ = ["Check", "RsuReport", "Sighting"]


@dataclass(frozen=True, slots=True)
class Sighting:
    """One observation of an RSU report: vehicle ``veh`` at its report ``ts_ms``, seen at
    (``lat_e7``, ``lon_e7``)."""

    veh: str
    ts_ms: int
    lat_e7: int
    lon_e7: int


@dataclass(frozen=True, slots=True)
class RsuReport:
    """One verified RSU message."""

    device_id: str
    seq: int
    ts_ms: int
    recv_ms: int
    lat_e7: int
    lon_e7: int
    sightings: tuple[Sighting, ...]
    leaf_hash: bytes
    src: str | None

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.device_id, self.seq, self.leaf_hash, self.src)


class Check:
    """One kind of detection over the verified stream; subclasses override what they need."""

    def __init__(self, rules: RuleSource) -> None:
        self.rules = rules

    def on_point(self, point: Point) -> list[Warning]:
        """A verified vehicle point not seen before; the warnings it reveals."""
        return []

    def on_rsu(self, report: RsuReport) -> list[Warning]:
        """A verified RSU report not seen before; the warnings it reveals."""
        return []

    def on_batch_end(self) -> list[Warning]:
        """After each batch of records: warnings of windows that are now complete."""
        return []
