"""A Stream wrapper for the verifier's tests: observe commits, stop the world at a chosen step.

``commit_gate`` / ``send_gate`` hold a consumer's n-th commit or a producer's n-th send until
released, or forever (the test then cancels the verifier there: a crash at that step, without
a goodbye). ``wait_committed`` waits until the group committed through given offsets and
``revoking`` tells that a rebalance asked a member to give up its partitions: no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from roadledger.stream import (
    Consumer,
    OutgoingRecord,
    PartitionsListener,
    Producer,
    Stream,
    StreamRecord,
    TopicPartition,
    send_one_by_one,
)


class Gate:
    """Holds callers once ``after`` calls went through (``reached`` is then set) until
    :meth:`release`; a test that never releases cancels the holder: a crash at that step."""

    def __init__(self, after: int | None = None) -> None:
        self.after = after
        self.fail: Exception | None = None  # raise this instead of holding
        self.calls = 0
        self.reached = asyncio.Event()
        self._open = asyncio.Event()

    async def passage(self) -> None:
        self.calls += 1
        if self.after is not None and self.calls > self.after and not self._open.is_set():
            self.reached.set()
            if self.fail is not None:
                raise self.fail
            await self._open.wait()

    def release(self) -> None:
        """Let the held callers and every later one through."""
        self._open.set()


class ProbeStream:
    """Wraps ``inner``; counts commits per partition and applies the gates."""

    def __init__(self, inner: Stream, committed: dict[TopicPartition, int] | None = None) -> None:
        """``committed``: the group's commits so far (shared by the probes of one group)."""
        self.inner = inner
        self.commit_gate = Gate()
        self.send_gate = Gate()
        self.committed = committed if committed is not None else {}
        self.revoking = asyncio.Event()
        self._changed = asyncio.Condition()

    def producer(self, *, client_id: str) -> Producer:
        return _ProbeProducer(self, self.inner.producer(client_id=client_id))

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None = None,
    ) -> Consumer:
        if listener is not None:
            listener = _ProbeListener(self, listener)
        inner = self.inner.consumer(
            topics, group_id=group_id, client_id=client_id, listener=listener
        )
        return _ProbeConsumer(self, inner)

    async def _committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        async with self._changed:
            self.committed.update(offsets)
            self._changed.notify_all()

    async def wait_committed(
        self, targets: Mapping[TopicPartition, int], within_s: float = 60
    ) -> None:
        """Until every partition in ``targets`` is committed at least through its offset."""

        def done() -> bool:
            return all(self.committed.get(tp, 0) >= offset for tp, offset in targets.items())

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(done)

        await asyncio.wait_for(wait(), within_s)


class _ProbeProducer:
    def __init__(self, probe: ProbeStream, inner: Producer) -> None:
        self.probe = probe
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[tuple[int, int]]:
        await self.probe.send_gate.passage()
        return await self.inner.send(topic, value, key=key, headers=headers)

    async def send_many(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> asyncio.Future[None]:
        return await send_one_by_one(self, topic, records)


class _ProbeConsumer:
    def __init__(self, probe: ProbeStream, inner: Consumer) -> None:
        self.probe = probe
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def getmany(self, timeout_ms: int, max_records: int) -> list[StreamRecord]:
        return await self.inner.getmany(timeout_ms, max_records)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self.probe.commit_gate.passage()
        await self.inner.commit(offsets)
        await self.probe._committed(offsets)

    def assignment(self) -> set[TopicPartition]:
        return self.inner.assignment()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.inner.seek(partition, offset)


class _ProbeListener:
    def __init__(self, probe: ProbeStream, inner: PartitionsListener) -> None:
        self.probe = probe
        self.inner = inner

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self.probe.revoking.set()
        await self.inner.revoked(partitions)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        await self.inner.assigned(partitions)
