"""``roadledger ingest`` as a real process reports its consumers' lag in its health report,
what ``GET /metrics`` serves: per group, topic and partition, down to 0 once it has read and
committed what was waiting (the lag's own figures: ``test_stream_kafka.py``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from contracts.topics import RAW, VERIFIED
from roadledger.health import read_health
from roadledger.settings import Settings
from roadledger.stream.lag import LAG_METRIC
from tests.integration.analytics_support import analytics_env
from tests.support.pipeline import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ROADLEDGER = Path(sys.executable).parent / "roadledger"


@pytest.fixture
async def own_topics(
    kafka: Settings, postgres: Settings
) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    async with analytics_env(kafka, postgres, "test-lag") as env:
        yield env


async def test_the_ingest_process_reports_each_partitions_lag(
    own_topics: tuple[Settings, asyncpg.Pool], tmp_path: Path
) -> None:
    settings, _ = own_topics
    env = os.environ | {
        "ROADLEDGER_DATABASE_URL": settings.database_url,
        "ROADLEDGER_TOPIC_PREFIX": settings.topic_prefix,
        "ROADLEDGER_HEALTH_DIR": str(tmp_path),
        "ROADLEDGER_HEALTH_INTERVAL_S": "0.5",
        "ROADLEDGER_VERIFY_WORKERS": "1",
    }
    process = await asyncio.create_subprocess_exec(
        ROADLEDGER, "ingest", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    topics = {settings.topic_prefix + RAW, settings.topic_prefix + VERIFIED}

    def lags() -> dict[tuple[str, str], list[float]]:
        found: dict[tuple[str, str], list[float]] = {}
        for report in read_health(tmp_path, stale_after_s=60):
            for sample in report.samples:
                if sample.name == LAG_METRIC:
                    labels = dict(sample.labels)
                    found.setdefault((labels["topic"], labels["group"]), []).append(sample.value)
        return found

    try:
        await wait_until(
            lambda: {topic for topic, _ in lags()} == topics,
            "the verifier's and the store writer's lag in the report",
            90,
            every_s=0.25,
        )
        partitions = settings.kafka_partitions
        assert {topic: len(values) for (topic, _), values in lags().items()} == dict.fromkeys(
            topics, partitions
        )
        assert all(v == 0 for values in lags().values() for v in values)  # nothing waiting
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, errors = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert "Traceback" not in errors.decode()
