"""Doubles for ingest.bridge without a network: an MQTT link whose broker the test plays
(:class:`FakeLink`), a producer whose deliveries the test settles by hand (:class:`HeldStream`),
and a :class:`Rig`, a started bridge between the two. Used by ``test_bridge.py``,
``test_bridge_outages.py`` and tests/integration/test_bridge.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.bridge import Bridge
from ingest.mqtt_link import MessageHandler
from roadledger.resilience import Dependency
from roadledger.settings import Settings
from roadledger.stream.base import (
    Consumer,
    OutgoingRecord,
    PartitionsListener,
    send_one_by_one,
)
from roadledger.stream.errors import StreamError

__all__ = [
    "FILTER",
    "WAIT_S",
    "FakeLink",
    "HeldProducer",
    "HeldStream",
    "Rig",
    "Sent",
    "acked",
    "make_rig",
]

WAIT_S = 5
FILTER = "fleet/+"


# --- doubles (also used by tests/integration/test_bridge.py) -----------------------------------


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> bytes | None:
        return dict(self.headers).get(name)


class HeldProducer:
    """A Producer whose delivery futures stay pending until the test settles them."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.deliveries: list[asyncio.Future[tuple[int, int]]] = []
        self.auto_deliver = False  # settle each new send at once
        self.failing_sends = 0  # so many next send() calls raise StreamError
        self._changed = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[tuple[int, int]]:
        if self.failing_sends:
            self.failing_sends -= 1
            raise StreamError("no broker (test)", retriable=True)
        delivery: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self.sent.append(Sent(topic, key, value, tuple(headers)))
        self.deliveries.append(delivery)
        if self.auto_deliver:
            delivery.set_result((0, len(self.sent) - 1))
        self._changed.set()
        return delivery

    def deliver(self, index: int) -> None:
        self.deliveries[index].set_result((0, index))

    def deliver_all(self, *, from_now_on: bool = False) -> None:
        for index, delivery in enumerate(self.deliveries):
            if not delivery.done():
                delivery.set_result((0, index))
        self.auto_deliver = self.auto_deliver or from_now_on

    async def wait_sent(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.sent) < count:
                self._changed.clear()
                await self._changed.wait()

    async def send_many(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> asyncio.Future[None]:
        return await send_one_by_one(self, topic, records)


class HeldStream:
    """A Stream whose producer is one :class:`HeldProducer`."""

    def __init__(self) -> None:
        self.held = HeldProducer()

    def producer(self, *, client_id: str) -> HeldProducer:
        return self.held

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None = None,
    ) -> Consumer:
        raise NotImplementedError("the bridge only produces")


class FakeLink:
    """The MQTT link with the broker played by the test (the real one: tests/integration)."""

    def __init__(self) -> None:
        self.session = 0
        self.connections = 0
        self.mqtt = Dependency("MQTT", logging.getLogger("test"))
        self.paused = False
        self.journal: list[tuple[str, int]] = []  # ("ack", mid), ("pause", 0), ("close", 0)...
        self._on_message: MessageHandler | None = None
        self._subscribed = asyncio.Event()
        self.started = asyncio.Event()

    # what the bridge calls
    async def start(self, on_message: MessageHandler) -> None:
        self._on_message = on_message
        self.started.set()

    async def wait_subscribed(self) -> None:
        await self._subscribed.wait()

    def is_paused(self) -> bool:
        return self.paused

    def pause_reading(self) -> None:
        self.paused = True
        self.journal.append(("pause", 0))

    def resume_reading(self) -> None:
        self.paused = False
        self.journal.append(("resume", 0))

    def ack(self, session: int, mid: int, qos: int) -> bool:
        if session != self.session:
            return False
        if qos:
            self.journal.append(("ack", mid))
        return True

    async def close(self, grace_s: float) -> None:
        self.journal.append(("close", 0))

    # what the test (as the broker) does
    def connects(self, *, session_present: bool = False) -> None:
        self.session += 1
        self.connections += 1
        self._subscribed.set()

    def loses_connection(self) -> None:
        self.session += 1

    def delivers(self, mid: int, device: str, payload: bytes, qos: int = 1) -> None:
        assert not self.paused, "a paused link reads nothing from the broker"
        assert self._on_message is not None
        self._on_message(mid, qos, f"fleet/{device}", payload)

    @property
    def acks(self) -> list[int]:
        return [mid for what, mid in self.journal if what == "ack"]


# --- a bridge between them ------------------------------------------------------------


@dataclass
class Rig:
    bridge: Bridge
    link: FakeLink
    producer: HeldProducer


async def make_rig(settings: Settings, max_inflight: int = 100) -> Rig:
    stream, link = HeldStream(), FakeLink()
    bridge = Bridge(
        settings.model_copy(update={"bridge_max_inflight": max_inflight}),
        stream,
        topic_filter=FILTER,
        client_id="test-bridge",
        raw_topic="raw",
        link=link,
    )
    await bridge.start()
    link.connects()
    async with asyncio.timeout(WAIT_S):
        await bridge.wait_subscribed()
    return Rig(bridge, link, stream.held)


async def acked(rig: Rig, count: int) -> None:
    async with asyncio.timeout(WAIT_S):
        await rig.bridge.wait_acked(count)
