"""``roadledger analytics``: ``telemetry.verified`` + ``telemetry.quarantine`` -> warnings.

One consumer group (``roadledger-analytics``) reads both topics. Per batch:

1. decode: verified vehicle messages become :class:`~analytics.warnings.detectors.Point` s,
   map-matched to a road segment (as the store writer does) and given their vehicle class
   from the registry; RSU messages become :class:`~analytics.warnings.checks.RsuReport` s
   (device key entries are skipped); quarantined records become
   :class:`~analytics.warnings.detectors.QuarantinedRecord` s (reason from the ``reason``
   header; seq and ts when the bytes parse);
2. detect: verified points first (they feed the per-device tracks the quarantine checks
   consult) through the track detectors and every check of :data:`CHECKS` (speeding,
   geofences, congestion, RSU contradictions, odometer vs GNSS), then the RSU reports, then
   the quarantined records; for ``bad_signature`` one query asks ``device_messages`` which
   (device, seq) had a genuine message accepted. A rules version's ledger entry in the batch
   (``roadledger rules publish`` puts it on ``telemetry.verified``) reloads the rule book
   first, so new rules apply at once rather than at the next periodic refresh;
3. store: ``INSERT ... ON CONFLICT (warning_id) DO NOTHING`` (ids are deterministic);
4. publish every warning of the batch on ``warnings`` (key = device id or segment), await
   the acknowledgements, then commit the offsets.

So a crash anywhere repeats at most one batch: storing is idempotent, and the ``warnings``
topic is at least once (readers dedupe by ``warning_id``). Detector state (tracks, runs under
way) lives in memory; before consuming, the engine rebuilds it from the telemetry stored in
the ``analytics_warmup_s`` seconds before its group's last commit
(:mod:`analytics.warnings.warmup`), so an event that spans a restart is still found, once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import asyncpg

from analytics.warnings.checks import Check, RsuReport, Sighting
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
from analytics.warnings.store import store_warnings
from analytics.warnings.warmup import (
    fresh_warnings,
    load_progress,
    recent_telemetry,
    save_progress,
)
from chain.entries import DEVICE_KEY_ENTRY_PREFIX, RULES_ENTRY_PREFIX
from chain.errors import TelemetryError
from chain.hashing import leaf_hash
from chain.telemetry import parse
from contracts.map_matching import SegmentIndex
from contracts.roads import RoadSegment, load_segments
from contracts.rules.model import RuleBook
from contracts.topics import (
    HEADER_CHAIN_BROKEN,
    HEADER_DETAIL,
    HEADER_REASON,
    HEADER_SRC,
    QUARANTINE,
    VERIFIED,
    WARNINGS,
    parse_links,
    recv_ms_of,
)
from roadledger.resilience import Dependency, RetryPolicy, is_rebalance, patiently
from roadledger.settings import Settings
from roadledger.stream import (
    Consumer,
    OutgoingRecord,
    Producer,
    Stream,
    StreamRecord,
    next_offsets,
)
from roadledger.stream.errors import StreamError

__all__ = [
    "CHECKS",
    "GROUP_ID",
    "AnalyticsEngine",
    "EngineStats",
    "decode_quarantined",
    "decode_verified",
]

log = logging.getLogger(__name__)

GROUP_ID = "roadledger-analytics"
# The checks beside the track detectors, each in its own module.
CHECKS: tuple[type[Check], ...] = (
    SpeedingCheck,
    GeofenceCheck,
    CongestionCheck,
    RsuContradictionCheck,
    OdometerGnssCheck,
)
_POLL_MS = 250
# The warm-up reads this far past its group's progress (records stored but not yet analysed),
# and, since records reach the stream in not quite their arrival order, keeps skipping the ones
# it judged until the stream is this far past the newest of them.
_REPLAY_MARGIN_MS = 60_000
_NO_ROADS_RETRY_S = 2.0

T = TypeVar("T")


class _Stopped(Exception):
    """Asked to stop while waiting out an outage: the batch under way is abandoned, uncommitted
    (the next start reads it again, and its warm-up rebuilds the detectors' state)."""


@dataclass
class EngineStats:
    """Counters since start."""

    records: int = 0
    batches: int = 0
    stored: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    warmup_records: int = 0
    warmup_seconds: float = 0.0
    warmup_skipped: int = 0  # records the stream delivered again after the warm-up judged them


def _header_text(record: StreamRecord, name: str) -> str | None:
    value = record.header(name)
    return value.decode("utf-8", "replace") if value is not None else None


def decode_verified(record: StreamRecord) -> Point | RsuReport | None:
    """A verified message as a vehicle point or an RSU report (None: a device key entry, or
    a format analytics does not read)."""
    raw = record.value
    if raw.startswith(DEVICE_KEY_ENTRY_PREFIX):
        return None
    try:
        t = parse(raw).telemetry
    except TelemetryError:
        return None  # the verifier accepted it, so only a format we do not analyse
    recv, leaf, src = recv_ms_of(record), leaf_hash(raw), _header_text(record, HEADER_SRC)
    if t.obs is not None:
        sightings = tuple(Sighting(o.veh, o.ts, o.lat_e7, o.lon_e7) for o in t.obs)
        return RsuReport(t.dev, t.seq, t.ts, recv, t.lat_e7, t.lon_e7, sightings, leaf, src)
    if t.odo_m is None:
        return None
    return Point(t.dev, t.seq, t.ts, recv, t.odo_m, t.lat_e7, t.lon_e7, leaf, src,
                 t.spd_cms or 0, t.hdg_cdeg or 0)  # fmt: skip


def decode_quarantined(record: StreamRecord) -> QuarantinedRecord:
    """A quarantined record; seq and ts only when its bytes parse as telemetry."""
    device = (record.key or b"").decode("utf-8", "replace")
    seq = ts = None
    try:
        telemetry = parse(record.value).telemetry
    except TelemetryError:
        pass
    else:
        device, seq, ts = telemetry.dev, telemetry.seq, telemetry.ts
    return QuarantinedRecord(
        device,
        _header_text(record, HEADER_REASON) or "unknown",
        seq,
        ts,
        recv_ms_of(record),
        hashlib.sha256(record.value).digest(),
        _header_text(record, HEADER_SRC),
    )


class AnalyticsEngine:
    """Runs the detectors over the stream until stopped (see the module docstring).

    ``rules``: where thresholds, limits and geofences come from (default: the built-in
    thresholds and each segment's own limit). ``load_rules``, if
    given, is awaited at start and every ``rules_refresh_s``, so that newly published rules
    versions apply without a restart (each applies from its own effective time).
    """

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        pool: asyncpg.Pool,
        rules: RuleSource | None = None,
        *,
        load_rules: Callable[[], Awaitable[RuleSource]] | None = None,
        group_id: str | None = None,
        client_id: str = "roadledger-analytics",
        rules_refresh_s: float = 30.0,
        retry: RetryPolicy | None = None,
        database: Dependency | None = None,
        kafka: Dependency | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.pool = pool
        self.detector = TelemetryDetector(rules or RuleBook.default())
        self.checks: list[Check] = [check(self.detector.rules) for check in CHECKS]
        self._matcher: SegmentIndex | None = None
        self._segments: dict[int, RoadSegment] = {}
        self._vehicle_class: dict[str, str | None] = {}
        self.load_rules = load_rules
        self.rules_refresh_s = rules_refresh_s
        self.verified_topic = settings.topic(VERIFIED)
        self.quarantine_topic = settings.topic(QUARANTINE)
        self.warnings_topic = settings.topic(WARNINGS)
        self.group_id = group_id or settings.group(GROUP_ID)
        self.client_id = client_id
        self.stats = EngineStats()
        # (device, seq) judged by the warm-up: skipped when the stream delivers them again.
        self._replayed: set[tuple[str, int]] = set()
        self._replayed_until_ms = 0
        # Outages are waited out step by step (each step below is a read, an idempotent write
        # or an at-least-once publish; a whole batch is not: detecting updates the tracks).
        self.database = database or Dependency("PostgreSQL", log)
        self.kafka = kafka or Dependency("Kafka", log)
        self._retry = retry or RetryPolicy()
        self._stop = asyncio.Event()

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

    async def _retrying(self, operation: Callable[[], Awaitable[T]], dependency: Dependency) -> T:
        """``operation()`` through ``dependency``'s outages (backoff, one line each way);
        :class:`_Stopped` if asked to stop meanwhile."""
        results: list[T] = []

        async def once() -> None:
            results.append(await operation())

        if not await self._retry.run(once, dependency, self._stop):
            raise _Stopped
        return results[-1]

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, detect, store, publish and commit until ``stop`` is set.

        PostgreSQL and Kafka outages, at start too, are waited out (see :meth:`_retrying`); a
        commit refused because the group rebalanced is not an error (the records come again).
        """
        self._stop = stop
        try:
            await self._run(stop)
        except _Stopped:
            log.info("analytics stopped during an outage; the batch under way is read again")

    async def _run(self, stop: asyncio.Event) -> None:
        await self._retrying(self.refresh_rules, self.database)
        refreshed = time.monotonic()
        producer = self.stream.producer(client_id=self.client_id)
        consumer = self.stream.consumer(
            [self.verified_topic, self.quarantine_topic],
            group_id=self.group_id,
            client_id=self.client_id,
        )
        await self._retrying(producer.start, self.kafka)
        try:
            await self.warm_up(producer)
            await self._retrying(consumer.start, self.kafka)
            try:
                log.info("analytics started: %s + %s -> %s, group %s", self.verified_topic,
                         self.quarantine_topic, self.warnings_topic, self.group_id)  # fmt: skip
                while not stop.is_set():
                    # Without a road network yet (a fresh system), look again soon.
                    every = self.rules_refresh_s if self.detector.off_road else _NO_ROADS_RETRY_S
                    if time.monotonic() - refreshed >= every:
                        await self._retrying(self.refresh_rules, self.database)
                        refreshed = time.monotonic()
                    fetch = functools.partial(
                        consumer.getmany, timeout_ms=_POLL_MS, max_records=self.settings.batch_size
                    )
                    records = await self._retry.call(fetch, self.kafka, stop)
                    if records is None:  # stopped while Kafka was away
                        break
                    if not records:
                        continue
                    warnings = await self.detect(records)
                    await self.emit(producer, warnings)
                    await self._commit(consumer, records)
                    progress_ms = max(recv_ms_of(r) for r in records)
                    await self._retrying(
                        functools.partial(save_progress, self.pool, self.group_id, progress_ms),
                        self.database,
                    )
                    self.stats.records += len(records)
                    self.stats.batches += 1
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        log.info("analytics stopped: %s", self.stats)

    async def _commit(self, consumer: Consumer, records: Sequence[StreamRecord]) -> None:
        """Commit the batch's offsets; a failure is not fatal: the warnings are stored (once)
        and published, so records read again (after a rebalance) change nothing."""
        try:
            await patiently(consumer.commit(next_offsets(records)), self.kafka, "commit")
        except StreamError as exc:
            if is_rebalance(exc):
                log.info("analytics: offsets not committed, the group rebalanced: read again")
            else:
                self.kafka.down(exc, "commit")

    async def warm_up(self, producer: Producer) -> None:
        """Replay the telemetry stored in the ``analytics_warmup_s`` seconds before this group's
        last commit through the detectors, then store and publish what it reveals that was not
        found before (nothing to do on a group's first start)."""
        window_s = self.settings.analytics_warmup_s
        if window_s == 0:
            return
        progress_ms = await self._retrying(
            lambda: load_progress(self.pool, self.group_id), self.database
        )
        if progress_ms is None:
            log.info("analytics warm-up: group %s has no progress yet, nothing to replay",
                     self.group_id)  # fmt: skip
            return
        started = time.monotonic()
        records = await self._retrying(
            lambda: recent_telemetry(
                self.pool,
                since_ms=progress_ms - window_s * 1000,
                until_ms=progress_ms + _REPLAY_MARGIN_MS,
                limit=self.settings.analytics_warmup_rows,
            ),
            self.database,
        )
        found: list[Warning] = []
        step = self.settings.batch_size
        for start in range(0, len(records), step):
            chunk = records[start : start + step]
            points = [r for r in chunk if isinstance(r, Point)]
            reports = [r for r in chunk if isinstance(r, RsuReport)]
            found.extend(await self._judge(points, reports))
        self._replayed = {(r.device_id, r.seq) for r in records}
        self._replayed_until_ms = max((r.recv_ms for r in records), default=0)
        fresh = await self._retrying(lambda: fresh_warnings(self.pool, found), self.database)
        await self.emit(producer, fresh)
        self.stats.warmup_records = len(records)
        self.stats.warmup_seconds = time.monotonic() - started
        log.info("analytics warm-up: %d stored records of the %d s before the last commit "
                 "replayed in %.1f s; %d warnings, %d of them new", len(records), window_s,
                 self.stats.warmup_seconds, len(found), len(fresh))  # fmt: skip

    def _seen_in_warm_up(self, device_id: str, seq: int, recv_ms: int) -> bool:
        if not self._replayed:
            return False
        if recv_ms > self._replayed_until_ms + _REPLAY_MARGIN_MS:
            # The stream is past everything the warm-up read: forget it.
            self._replayed.clear()
            return False
        if (device_id, seq) in self._replayed:
            self.stats.warmup_skipped += 1
            return True
        return False

    async def detect(self, records: Sequence[StreamRecord]) -> list[Warning]:
        """Every warning one batch reveals (updates the detectors' tracks)."""
        if self.load_rules is not None and any(
            r.topic != self.quarantine_topic and r.value.startswith(RULES_ENTRY_PREFIX)
            for r in records
        ):
            # A rules version was just published: apply it now, not at the next refresh.
            await self._retrying(self.refresh_rules, self.database)
        quarantined: list[QuarantinedRecord] = []
        found_in_stream: list[Warning] = []
        points: list[Point] = []
        reports: list[RsuReport] = []
        for record in records:
            if record.topic == self.quarantine_topic:
                quarantined.append(decode_quarantined(record))
                continue
            decoded = decode_verified(record)
            link = _header_text(record, HEADER_CHAIN_BROKEN)
            if decoded is not None and link is not None:
                # Before the warm-up skip: the flag is in the stream, not in the stored rows.
                ev = Evidence(decoded.device_id, decoded.seq, decoded.leaf_hash, decoded.src)
                detail = _header_text(record, HEADER_DETAIL) or ""
                rules = self.detector.rules
                for seq in parse_links(link):
                    found_in_stream.append(
                        chain_broken_warning(ev, decoded.ts_ms, seq, detail, rules)
                    )
            if decoded is None or self._seen_in_warm_up(
                decoded.device_id, decoded.seq, decoded.recv_ms
            ):
                continue
            if isinstance(decoded, Point):
                points.append(decoded)
            else:
                reports.append(decoded)
        found = found_in_stream + await self._judge(points, reports)
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

    async def _judge(self, points: Sequence[Point], reports: Sequence[RsuReport]) -> list[Warning]:
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
        rows = await self._retrying(
            lambda: self.pool.fetch(
                "SELECT device_id, vehicle_class FROM devices WHERE device_id = ANY($1::text[])",
                unknown,
            ),
            self.database,
        )
        for device in unknown:
            self._vehicle_class[device] = None
        for row in rows:
            self._vehicle_class[row["device_id"]] = row["vehicle_class"]

    async def _accepted(self, keys: Sequence[tuple[str, int | None]]) -> set[tuple[str, int]]:
        """Which (device, seq) have an accepted message (the verifier's ``device_messages``)."""
        if not keys:
            return set()
        rows = await self._retrying(
            lambda: self.pool.fetch(
                "SELECT m.device_id, m.seq FROM device_messages m "
                "JOIN unnest($1::text[], $2::bigint[]) AS k(device_id, seq) "
                "ON m.device_id = k.device_id AND m.seq = k.seq",
                [k[0] for k in keys],
                [k[1] for k in keys],
            ),
            self.database,
        )
        return {(row["device_id"], row["seq"]) for row in rows}

    async def emit(self, producer: Producer, warnings: Sequence[Warning]) -> None:
        """Store the warnings (once) and publish them all, acknowledged, on ``warnings``."""
        if not warnings:
            return
        new = await self._retrying(lambda: store_warnings(self.pool, warnings), self.database)
        self.stats.stored += len(new)
        for warning in {w.warning_id: w for w in warnings}.values():  # a batch may repeat one
            if warning.warning_id in new:
                self.stats.by_type[warning.type.value] += 1
                log.info("warning %s %s %s", warning.type.value, warning.device_id or
                         warning.segment_id, warning.warning_id)  # fmt: skip
        out = [
            OutgoingRecord(
                (w.device_id or str(w.segment_id)).encode(),
                w.to_json(),
                (("warning_id", w.warning_id.encode()), ("type", w.type.value.encode())),
            )
            for w in warnings
        ]

        async def publish() -> None:
            await (await producer.send_many(self.warnings_topic, out))

        # At least once: a publish repeated after a failure may duplicate (readers dedupe).
        await self._retrying(lambda: patiently(publish(), self.kafka, "publish"), self.kafka)
