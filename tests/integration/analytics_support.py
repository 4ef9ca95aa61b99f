"""Shared by the analytics integration tests: a scratch schema with private topics, running
an engine until it has read so many records, and waiting until a pipeline's analytics has
committed everything."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from analytics.warnings.engine import GROUP_ID, AnalyticsEngine
from contracts.topics import QUARANTINE, VERIFIED
from roadledger.settings import Settings
from runtime.services.kafka import delete_topics, ensure_topics
from tests.support.pipeline import KafkaProbe, PipelineEnv, wait_until
from tests.support.scratch_schema import scratch_schema_pool

WAIT_S = 60


@asynccontextmanager
async def analytics_env(
    kafka: Settings, postgres: Settings, prefix: str
) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    """Settings on a fresh schema and on topics of their own (``prefix``-<random>.)."""
    async with scratch_schema_pool(postgres, max_size=4) as pool:
        schema = await pool.fetchval("SELECT current_schema()")
        settings = kafka.model_copy(
            update={
                "topic_prefix": f"{prefix}-{uuid.uuid4().hex[:8]}.",
                "database_url": f"{postgres.database_url}?search_path={schema}",
            }
        )
        await ensure_topics(settings)
        try:
            yield settings, pool
        finally:
            await delete_topics(settings)


async def run_until(engine: AnalyticsEngine, records: int) -> None:
    """Run ``engine`` until it has read ``records`` records, then stop it in order."""
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))

    async def read_enough() -> bool:
        if engine.stats.records >= records:
            return True
        if task.done():
            await task  # raises what ended it
        return False

    try:
        await wait_until(
            read_enough,
            f"the engine to read {records} records",
            WAIT_S,
            every_s=0.05,
            observed=lambda: f"{engine.stats.records} read",
        )
    finally:
        stop.set()
        await task


async def wait_until_analysed(pipeline: PipelineEnv, published: int) -> None:
    """Until ``published`` messages are judged and analytics committed both topics' ends."""
    env = pipeline.settings
    kafka = KafkaProbe(env)
    await kafka.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=env.kafka_bootstrap)
    await admin.start()
    try:

        async def analysed() -> bool:
            pipeline.check_alive()
            judged = await kafka.end_offsets(env.topic(VERIFIED)) + await kafka.end_offsets(
                env.topic(QUARANTINE)
            )
            committed = await admin.list_consumer_group_offsets(env.group(GROUP_ID))
            done = sum(meta.offset for meta in committed.values() if meta.offset > 0)
            return judged >= published and done >= judged

        await wait_until(analysed, "analytics committed both topics to their end", 300)
    finally:
        await admin.close()
        await kafka.stop()
