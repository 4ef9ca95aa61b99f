"""A consumer-group member of the in-process broker (:mod:`roadledger.stream.memory`).

:class:`MemoryConsumer` fetches, seeks and commits like a Kafka consumer; the broker
(:class:`~roadledger.stream.memory.MemoryStream`) creates it, and calls back into it during a
rebalance (``_revoke_all``, ``_take_assignment``, ``_assigned``). The semantics are in the
broker's module docstring.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from roadledger.stream.base import PartitionsListener, StreamRecord, TopicPartition
from roadledger.stream.errors import StreamError

if TYPE_CHECKING:  # the broker imports this module: only its type is needed here
    from roadledger.stream.memory import MemoryStream

__all__ = ["MemoryConsumer"]

log = logging.getLogger(__name__)

_State = Literal["new", "running", "stopping", "stopped"]


class MemoryConsumer:
    """A consumer-group member on a :class:`MemoryStream` (see the module docstring)."""

    def __init__(
        self,
        broker: MemoryStream,
        topics: list[str],
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None,
    ) -> None:
        self._broker = broker
        self._topics = topics
        self._group = broker._group(group_id)
        self.client_id = client_id
        self._listener = listener
        self._state: _State = "new"
        self._assignment: set[TopicPartition] = set()
        self._fetchable: list[TopicPartition] = []  # set once the listener heard `assigned`
        self._positions: dict[TopicPartition, int] = {}
        self._turn = 0
        self._wakeup: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"MemoryConsumer({self.client_id!r}, group={self._group.id!r})"

    async def start(self) -> None:
        if self._state != "new":
            raise StreamError(f"consumer {self.client_id}: start() called twice")
        self._state = "running"
        await self._broker._rebalance(self._group, joining=self)

    async def stop(self) -> None:
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopping"
        self._wake()
        try:
            await self._broker._rebalance(self._group, leaving=self)
        finally:
            self._state = "stopped"

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition not in self._assignment:
            raise StreamError(
                f"consumer {self.client_id}: cannot seek {partition.topic}[{partition.partition}],"
                f" it is not assigned to this member of group {self._group.id}"
            )
        if offset < 0:
            raise StreamError(f"consumer {self.client_id}: cannot seek to offset {offset}")
        self._positions[partition] = offset

    async def getmany(self, timeout_ms: int, max_records: int) -> list[StreamRecord]:
        if self._state != "running":
            if self._state == "stopping":
                return []
            raise StreamError(f"consumer {self.client_id}: getmany while {self._state}")
        if max_records < 1:
            raise ValueError(f"max_records must be positive, got {max_records}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_ms, 0) / 1000
        while True:
            records = self._take(max_records)
            if records or self._state != "running":
                return records
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            signals = [self._broker._topic(t).changed() for t in self._topics]
            signals.append(self._wakeup_signal())
            await asyncio.wait(signals, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._state not in ("running", "stopping"):
            raise StreamError(f"consumer {self.client_id}: commit while {self._state}")
        for tp, offset in offsets.items():
            if tp not in self._assignment:
                raise StreamError(
                    f"consumer {self.client_id}: cannot commit {tp.topic}[{tp.partition}], "
                    f"it is not assigned to this member of group {self._group.id} "
                    "(the group rebalanced)"
                )
            end = self._broker._topic(tp.topic).logs[tp.partition].end
            if not 0 <= offset <= end:
                raise StreamError(
                    f"consumer {self.client_id}: commit offset {offset} for "
                    f"{tp.topic}[{tp.partition}] is outside 0..{end}"
                )
        self._group.committed.update(offsets)
        if self._broker.trim_committed:
            self._broker._trim(list(offsets))

    # --- called by the broker during a rebalance ----------------------------------------------

    def _take(self, max_records: int) -> list[StreamRecord]:
        fetchable = self._fetchable
        if not fetchable:
            return []
        self._turn = (self._turn + 1) % len(fetchable)
        taken: list[StreamRecord] = []
        for tp in fetchable[self._turn :] + fetchable[: self._turn]:
            partition_log = self._broker._topic(tp.topic).logs[tp.partition]
            position = self._positions.get(tp)
            if position is None:
                position = self._group.committed.get(tp, partition_log.start)
            position = max(position, partition_log.start)
            batch = partition_log.read(position, max_records - len(taken))
            self._positions[tp] = position + len(batch)
            taken.extend(batch)
            if len(taken) >= max_records:
                break
        return taken

    async def _revoke_all(self) -> None:
        revoked, self._fetchable = set(self._assignment), []
        self._wake()
        if revoked and self._listener is not None:
            try:
                await self._listener.revoked(revoked)
            except Exception:
                log.exception("%r: partitions listener failed in revoked(%s)", self, revoked)
        self._assignment = set()
        self._positions.clear()

    def _take_assignment(self, partitions: set[TopicPartition]) -> None:
        self._assignment = set(partitions)

    async def _assigned(self) -> None:
        if self._listener is not None:
            try:
                await self._listener.assigned(set(self._assignment))
            except Exception:
                log.exception("%r: partitions listener failed in assigned()", self)
        # Positions are read from the group's commits on first fetch, after the listener ran.
        self._fetchable = sorted(self._assignment)
        self._wake()

    def _wakeup_signal(self) -> asyncio.Future[None]:
        if self._wakeup is None or self._wakeup.done():
            self._wakeup = asyncio.get_running_loop().create_future()
        return self._wakeup

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
