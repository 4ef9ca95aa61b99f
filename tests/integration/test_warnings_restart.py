"""Warnings end to end when analytics is SIGKILLed mid-run and restarted, on the real services.

The run of ``test_warnings_e2e`` (every scenario, real bridge, ingest, sequencer and analytics
processes), but ``roadledger analytics run`` is killed while the scenarios are under way and
started again at once. The restarted engine resumes at the committed offsets after replaying
the stored telemetry (its warm-up), so every type must still score precision and recall of at
least 0.95, and no event may be reported twice under two ids.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from analytics.scoring import score_warnings
from analytics.warnings.engine import GROUP_ID
from analytics.warnings.store import load_warnings
from analytics.warnings.warmup import load_progress
from device_sim.truth import read_truth
from roadledger.scratch_pipeline import ROADLEDGER, pipeline_env, wait_until
from roadledger.settings import Settings
from tests.integration.analytics_support import wait_until_analysed
from tests.integration.test_warnings_e2e import SCENARIOS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.mqtt, pytest.mark.slow]

DURATION_S = 50
KILL_AFTER_S = 18  # scenarios run from 10 s to 25 s of the run by default


async def test_warnings_survive_an_analytics_sigkill(settings: Settings, tmp_path: Path) -> None:
    async with pipeline_env(settings, tmp_path) as pipeline:
        env = pipeline.settings
        for name in ("bridge", "ingest", "sequencer"):
            pipeline.component(name).start()
        analytics = pipeline.component("analytics", command="analytics run")
        analytics.start()
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
        # Runs under way at the kill (speeding, zone stays, odometer spans) are one warning
        # each, not one from before the kill and another from after it. (A drift is left
        # out: its truth is one event per scenario, while the detector warns once per stretch
        # off the roads, and a drift across the grid crosses roads.)
        one_per_run = {"speeding", "geofence", "odo_gnss_mismatch"}
        runs = Counter((w.type.value, w.device_id or "") for w in warnings if w.type in one_per_run)
        events = [*truth.warnings, *truth.optional]
        at_most = Counter((e.type, e.device) for e in events if e.type in one_per_run)
        assert not runs - at_most, (runs, at_most)  # no subject warned more often than it did it
