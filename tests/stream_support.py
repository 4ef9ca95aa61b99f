"""Reading from a stream in tests, the same way for the memory stream and Kafka."""

from __future__ import annotations

import asyncio

from roadledger.stream.base import Consumer, StreamRecord

__all__ = ["read_records"]


async def read_records(
    consumer: Consumer, count: int, *, within_s: float, max_records: int = 500
) -> list[StreamRecord]:
    """Fetch until at least ``count`` records arrived; TimeoutError after ``within_s``."""
    records: list[StreamRecord] = []
    async with asyncio.timeout(within_s):
        while len(records) < count:
            records.extend(await consumer.getmany(timeout_ms=500, max_records=max_records))
    return records
