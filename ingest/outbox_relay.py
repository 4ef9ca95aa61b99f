"""The outbox relay: registry changes -> telemetry.verified -> the device's ledger.

The registry writes each key record into ``ledger_outbox`` in the same transaction as the
change. The relay publishes pending rows to ``telemetry.verified`` keyed by device id (so they
land in the same partition, hence the same log, as the device's telemetry) and marks them
published once the stream acknowledged them. A crash between the two publishes a row again;
the log dedupes it by leaf hash.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from chain.entries import entry_kind
from contracts.topics import VERIFIED
from roadledger.resilience import Dependency, RetryPolicy, is_transient, wait_or_stop
from roadledger.stream import Producer
from roadledger.stream.errors import StreamError

__all__ = ["relay_outbox", "run_outbox_relay"]

log = logging.getLogger(__name__)


async def relay_outbox(
    pool: asyncpg.Pool, producer: Producer, *, topic: str = VERIFIED, limit: int = 1000
) -> int:
    """Publish up to ``limit`` pending outbox rows; return how many were published."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT outbox_id, device_id, entry FROM ledger_outbox "
            "WHERE published_at IS NULL ORDER BY outbox_id LIMIT $1",
            limit,
        )
    if not rows:
        return 0
    futures = [
        await producer.send(
            topic,
            bytes(row["entry"]),
            key=row["device_id"].encode(),
            headers=[("kind", entry_kind(bytes(row["entry"])).encode())],
        )
        for row in rows
    ]
    await asyncio.gather(*futures)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE ledger_outbox SET published_at = now() WHERE outbox_id = ANY($1::bigint[])",
            [row["outbox_id"] for row in rows],
        )
    return len(rows)


async def run_outbox_relay(
    pool: asyncpg.Pool,
    producer: Producer,
    stop: asyncio.Event,
    *,
    topic: str = VERIFIED,
    interval_s: float = 1.0,
    retry: RetryPolicy | None = None,
    database: Dependency | None = None,
    kafka: Dependency | None = None,
) -> None:
    """Relay until ``stop`` is set, checking for new rows every ``interval_s`` when idle.

    An outage of PostgreSQL or Kafka is waited out (backoff, one log line each way): a round
    that failed half way publishes its rows again, and the log dedupes them.
    """
    retry = retry or RetryPolicy()
    database = database or Dependency("PostgreSQL", log)
    kafka = kafka or Dependency("Kafka", log)
    while not stop.is_set():
        try:
            published = await relay_outbox(pool, producer, topic=topic)
        except Exception as exc:
            if not is_transient(exc):
                raise
            dependency = kafka if isinstance(exc, StreamError) else database
            dependency.down(exc)
            await retry.pause(dependency, stop)
            continue
        database.up()
        kafka.up()
        if not published:
            await wait_or_stop(stop, interval_s)
