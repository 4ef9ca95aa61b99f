"""Warnings end to end when analytics is SIGKILLed mid-run and restarted, on the real services.

The run of ``test_warnings_e2e`` (every scenario, real bridge, ingest, sequencer and analytics
processes), but ``roadledger analytics run`` is killed while the scenarios are under way and
started again at once. The restarted engine resumes at the committed offsets after replaying
the stored telemetry (its warm-up), so every type must still score precision and recall of at
least 0.95, and no event may be reported twice under two ids.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from analytics.warnings.engine import GROUP_ID, AnalyticsEngine
from analytics.warnings.model import Warning, WarningType
from analytics.warnings.store import load_warnings
from analytics.warnings.warmup import load_progress
from app.scoring import score_warnings
from contracts.topics import QUARANTINE, VERIFIED
from device_sim.truth import read_truth
from roadledger.rules_store import load_rulebook
from roadledger.settings import Settings
from roadledger.stream.kafka import KafkaStream
from tests.integration.analytics_support import wait_until_analysed
from tests.integration.test_warnings_e2e import SCENARIOS
from tests.support.pipeline import (
    ROADLEDGER,
    KafkaProbe,
    PipelineEnv,
    pipeline_env,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.slow]

DURATION_S = 50
KILL_AFTER_S = 18  # scenarios run from 10 s to 25 s of the run by default


async def test_warnings_survive_an_analytics_sigkill(settings: Settings, tmp_path: Path) -> None:
    async with pipeline_env(settings, tmp_path) as pipeline:
        env = pipeline.settings
        for name in ("bridge", "ingest", "sequencer"):
            pipeline.component(name).start()
        analytics = pipeline.component("analytics", command="analytics run")
        truth_path = tmp_path / "truth.jsonl"
        prefix = f"k{uuid.uuid4().hex[:6]}"
        args = [ROADLEDGER, "sim", "--vehicles", "40", "--rsus", "6", "--rate", "120",
                "--duration", str(DURATION_S), "--seed", "31", "--truth", str(truth_path),
                "--id-prefix", prefix, "--quiet"]  # fmt: skip
        for scenario in SCENARIOS:
            args += ["--scenario", scenario]
        started_ms = int(time.time() * 1000)
        sim = subprocess.Popen(  # noqa: ASYNC220 - runs beside the test; waited for below
            args, env=pipeline.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            group = env.group(GROUP_ID)

            async def registered() -> bool:
                segments = await pipeline.pool.fetchval("SELECT count(*) FROM road_segments")
                rules = await pipeline.pool.fetchval("SELECT count(*) FROM rule_versions")
                return bool(segments and rules)

            # Started once the road network and the zone rules are there, as the reference
            # engine below is: a run's first points judged without a network (a fresh system)
            # would be a difference that no restart made.
            await wait_until(registered, "the simulator to register its network and rules", 120)
            analytics.start()

            async def midway() -> bool:
                pipeline.check_alive()
                progress = await load_progress(pipeline.pool, group)
                return progress is not None and progress >= started_ms + KILL_AFTER_S * 1000

            await wait_until(midway, "analytics to be midway through the run", 120)
            analytics.kill()
            before = len(await load_warnings(pipeline.pool))
            analytics.start()
            output, _ = sim.communicate(timeout=600)
        finally:
            if sim.poll() is None:
                sim.kill()
                sim.wait()
        assert sim.returncode == 0, output.decode()
        assert before > 0  # killed after it had found something, not before it began
        truth = read_truth(truth_path)

        await wait_until_analysed(pipeline, len(truth.messages))

        restarted_log = (pipeline.log_dir / "analytics.2.log").read_text(errors="replace")
        assert "analytics warm-up:" in restarted_log
        warnings = [
            w
            for w in await load_warnings(pipeline.pool)
            if w.device_id is None or w.device_id.startswith(prefix)
        ]
        report = score_warnings(truth.warnings, warnings, optional=truth.optional)
        print(report.table())
        assert report.below(0.95) == [], report.table()
        # A restart changes nothing: an engine that read the whole run without one finds the
        # very same stateful warnings (runs, stays, stretches, pairs across the kill).
        reference = await _uninterrupted(pipeline, GROUP_ID + "-reference")
        mine = {w.warning_id: w for w in warnings if w.type in STATEFUL}
        theirs = {
            w.warning_id: w
            for w in reference
            if w.type in STATEFUL and (w.device_id or "").startswith(prefix)
        }
        assert mine.keys() == theirs.keys(), (
            [_brief(mine[k]) for k in mine.keys() - theirs.keys()],
            [_brief(theirs[k]) for k in theirs.keys() - mine.keys()],
        )


def _brief(warning: Warning) -> str:
    seqs = [e.seq for e in warning.evidence]
    return f"{warning.type.value} {warning.device_id} {warning.from_ts_ms} seqs {seqs}"


# Per-device state that a restart could lose or split. (Congestion and RSU contradictions
# match within windows that also depend on where batches end, so a reader with other batch
# boundaries may differ; the score above covers them.)
STATEFUL = {
    WarningType.SPEEDING,
    WarningType.GEOFENCE,
    WarningType.ODO_GNSS_MISMATCH,
    WarningType.DRIFT_OFF_ROAD,
    WarningType.ODOMETER_ROLLBACK,
    WarningType.TELEPORT,
}


async def _uninterrupted(pipeline: PipelineEnv, group: str) -> list[Warning]:
    """What one engine detects reading both topics from their start in one go (not stored)."""
    env = pipeline.settings
    engine = AnalyticsEngine(
        env,
        KafkaStream(env),
        pipeline.pool,
        load_rules=functools.partial(load_rulebook, pipeline.pool),
        group_id=env.group(group),
    )
    await engine.judge.refresh_rules()
    kafka = KafkaProbe(env)
    await kafka.start()
    try:
        total = sum([await kafka.end_offsets(env.topic(t)) for t in (VERIFIED, QUARANTINE)])
    finally:
        await kafka.stop()
    consumer = KafkaStream(env).consumer(
        [env.topic(VERIFIED), env.topic(QUARANTINE)],
        group_id=env.group(group),
        client_id="test-reference",
    )
    await consumer.start()
    found: list[Warning] = []
    read = 0
    try:
        async with asyncio.timeout(120):
            while read < total:
                records = await consumer.getmany(timeout_ms=500, max_records=env.batch_size)
                read += len(records)
                if records:
                    found.extend(await engine.judge.detect(records))
    finally:
        await consumer.stop()
    return found
