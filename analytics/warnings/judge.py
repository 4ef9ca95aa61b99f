"""The detectors and checks with their in-memory state: one batch of records in, its warnings.

:class:`Judge` holds what the analytics engine (:mod:`analytics.warnings.engine`) keeps between
batches: the rule book, the per-device tracks
(:class:`~analytics.warnings.detectors.TelemetryDetector`), the checks of :data:`CHECKS` with
their runs under way, the road network it matches points to, and the vehicle classes already
read from the registry. It reads PostgreSQL (road network, vehicle classes,
``device_messages``) through the engine's retrying call and writes nothing: storing and
publishing the warnings is the engine's job.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

import asyncpg

from analytics.warnings.checks import Check, RsuReport
from analytics.warnings.congestion import CongestionCheck
from analytics.warnings.detectors import (
    Point,
    QuarantinedRecord,
    RuleSource,
    TelemetryDetector,
    chain_broken_warning,
    quarantine_warning,
)
from analytics.warnings.geofencing import GeofenceCheck
from analytics.warnings.model import Evidence, Warning
from analytics.warnings.odometer_gnss import OdometerGnssCheck
from analytics.warnings.rsu_contradiction import RsuContradictionCheck
from analytics.warnings.speeding import SpeedingCheck
from analytics.warnings.stream_records import decode_quarantined, decode_verified, header_text
from chain.entries import RULES_ENTRY_PREFIX
from contracts.map_matching import SegmentIndex
from contracts.roads import RoadSegment, load_segments
from contracts.rules.model import RuleBook
from contracts.topics import HEADER_CHAIN_BROKEN, HEADER_DETAIL, parse_links
from roadledger.stream import StreamRecord

__all__ = ["CHECKS", "DatabaseCall", "Judge"]

# The checks beside the track detectors, each in its own module.
CHECKS: tuple[type[Check], ...] = (
    SpeedingCheck,
    GeofenceCheck,
    CongestionCheck,
    RsuContradictionCheck,
    OdometerGnssCheck,
)

T = TypeVar("T")


class DatabaseCall(Protocol):
    """Runs a database read through PostgreSQL's outages (the engine's retrying call)."""

    def __call__(self, operation: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


class Judge:
    """The detectors' state and the batch logic over it (see the module docstring).

    ``rules``: where thresholds, limits and geofences come from (default: the built-in
    thresholds and each segment's own limit). ``load_rules``, if given, is awaited by
    :meth:`refresh_rules`, so that newly published rules versions apply without a restart.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        in_database: DatabaseCall,
        quarantine_topic: str,
        rules: RuleSource | None = None,
        load_rules: Callable[[], Awaitable[RuleSource]] | None = None,
    ) -> None:
        self.pool = pool
        self._in_database = in_database
        self.quarantine_topic = quarantine_topic
        self.detector = TelemetryDetector(rules or RuleBook.default())
        self.checks: list[Check] = [check(self.detector.rules) for check in CHECKS]
        self.load_rules = load_rules
        self._matcher: SegmentIndex | None = None
        self._segments: dict[int, RoadSegment] = {}
        self._vehicle_class: dict[str, str | None] = {}

    async def refresh_rules(self) -> None:
        """Reload the rules (if a loader was given) and the road network."""
        if self.load_rules is not None:
            self.detector.rules = await self.load_rules()
            for check in self.checks:
                check.rules = self.detector.rules
        async with self.pool.acquire() as conn:
            segments = await load_segments(conn)
        if not segments:
            self.detector.off_road = None  # no road network: drift cannot be judged
            self._matcher = None
            return
        # The store writer's matching (same radius, heading-aware), so that a warning's
        # segment is the one its telemetry row names.
        self._matcher = SegmentIndex(segments)
        self._segments = {s.segment_id: s for s in segments}
        now_ms = int(time.time() * 1000)
        radius, _ = self.detector.rules.in_force(now_ms).threshold("drift_off_road_m")
        index = SegmentIndex(segments, radius_m=radius)
        self.detector.off_road = lambda lat, lon: index.nearest(lat, lon) is None

    async def detect(
        self,
        records: Sequence[StreamRecord],
        already_judged: Callable[[str, int, int], bool] | None = None,
    ) -> list[Warning]:
        """Every warning one batch reveals (updates the detectors' tracks).

        ``already_judged(device_id, seq, recv_ms)``: true for a verified record the warm-up
        replayed, which is then not judged again (its chain-broken flag still is).
        """
        if self.load_rules is not None and any(
            r.topic != self.quarantine_topic and r.value.startswith(RULES_ENTRY_PREFIX)
            for r in records
        ):
            # A rules version was just published: apply it now, not at the next refresh.
            await self._in_database(self.refresh_rules)
        quarantined: list[QuarantinedRecord] = []
        found_in_stream: list[Warning] = []
        points: list[Point] = []
        reports: list[RsuReport] = []
        for record in records:
            if record.topic == self.quarantine_topic:
                quarantined.append(decode_quarantined(record))
                continue
            decoded = decode_verified(record)
            link = header_text(record, HEADER_CHAIN_BROKEN)
            if decoded is not None and link is not None:
                # Before the warm-up skip: the flag is in the stream, not in the stored rows.
                ev = Evidence(decoded.device_id, decoded.seq, decoded.leaf_hash, decoded.src)
                detail = header_text(record, HEADER_DETAIL) or ""
                rules = self.detector.rules
                for seq in parse_links(link):
                    found_in_stream.append(
                        chain_broken_warning(ev, decoded.ts_ms, seq, detail, rules)
                    )
            if decoded is None or (
                already_judged is not None
                and already_judged(decoded.device_id, decoded.seq, decoded.recv_ms)
            ):
                continue
            if isinstance(decoded, Point):
                points.append(decoded)
            else:
                reports.append(decoded)
        found = found_in_stream + await self.judge(points, reports)
        accepted = await self._accepted(
            [(q.device_id, q.seq) for q in quarantined if q.reason == "bad_signature" and q.seq]
        )
        for q in quarantined:
            warning = quarantine_warning(
                q,
                self.detector.rules,
                seq_accepted=lambda device, seq: (device, seq) in accepted,
                newest_seq=self.detector.newest_seq,
            )
            if warning is not None:
                found.append(warning)
        return found

    async def judge(self, points: Sequence[Point], reports: Sequence[RsuReport]) -> list[Warning]:
        """Run the vehicle points, then the RSU reports, through the detectors and checks."""
        found: list[Warning] = []
        await self._load_vehicle_classes({p.device_id for p in points})
        for point in points:
            point = self._enrich(point)
            if self.detector.knows(point.device_id, point.seq):
                continue  # a re-delivered record: judged once
            found.extend(self.detector.observe(point))
            for check in self.checks:
                found.extend(check.on_point(point))
        for report in reports:
            for check in self.checks:
                found.extend(check.on_rsu(report))
        for check in self.checks:
            found.extend(check.on_batch_end())
        return found

    def _enrich(self, point: Point) -> Point:
        """``point`` with its matched segment and its vehicle's class."""
        segment = None
        if self._matcher is not None:
            heading = point.hdg_cdeg if point.spd_cms > 0 else None
            segment_id = self._matcher.nearest(point.lat_e7, point.lon_e7, heading)
            segment = self._segments.get(segment_id) if segment_id is not None else None
        return replace(
            point, segment=segment, vehicle_class=self._vehicle_class.get(point.device_id)
        )

    async def _load_vehicle_classes(self, devices: set[str]) -> None:
        """Fetch the registry's vehicle class of the devices not seen before (one query)."""
        unknown = [d for d in devices if d not in self._vehicle_class]
        if not unknown:
            return
        rows = await self._in_database(
            lambda: self.pool.fetch(
                "SELECT device_id, vehicle_class FROM devices WHERE device_id = ANY($1::text[])",
                unknown,
            )
        )
        for device in unknown:
            self._vehicle_class[device] = None
        for row in rows:
            self._vehicle_class[row["device_id"]] = row["vehicle_class"]

    async def _accepted(self, keys: Sequence[tuple[str, int | None]]) -> set[tuple[str, int]]:
        """Which (device, seq) have an accepted message (the verifier's ``device_messages``)."""
        if not keys:
            return set()
        rows = await self._in_database(
            lambda: self.pool.fetch(
                "SELECT m.device_id, m.seq FROM device_messages m "
                "JOIN unnest($1::text[], $2::bigint[]) AS k(device_id, seq) "
                "ON m.device_id = k.device_id AND m.seq = k.seq",
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
        )
        return {(row["device_id"], row["seq"]) for row in rows}
