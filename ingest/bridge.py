"""The ingest bridge: MQTT telemetry -> Kafka ``telemetry.raw``, at least once, in bounded memory.

Guarantee: a device message is acknowledged to the MQTT broker (PUBACK) only after the stream
acknowledged it durably (Kafka: ``acks=all``, idempotent producer), and PUBACKs go out in the
order the PUBLISHes arrived. Whatever is not acknowledged when the bridge stops, crashes or loses
its connection stays queued in the broker's persistent session (fixed client id,
``clean_session=False``, QoS 1) and is delivered again to the next bridge. So nothing is lost;
a crash can duplicate, which the verifier's dedupe absorbs.

Each message becomes one record: key = the device id (the topic's last level), value = the MQTT
payload byte for byte, headers ``mqtt_topic`` (the topic, UTF-8) and ``recv_ms`` (when the bridge
received it, ms since the epoch, decimal ASCII). A payload larger than a Kafka record may hold
(:data:`MAX_PAYLOAD_BYTES`) would block the in-order acknowledgements forever, so it is recorded
without its bytes: empty value, headers ``oversize`` (its length) and ``payload_sha256`` (hex),
for the verifier to quarantine as ``oversize``.

How it runs, all on one event loop: the MQTT link (:class:`~ingest.mqtt_link.PahoLink`) calls
:meth:`Bridge._take` for each PUBLISH; a task sends what was taken since its last turn to the
stream as one batch (``Producer.send_many``: one delivery future for the batch), in arrival
order; another keeps the :class:`~ingest.ack_order.AckWindow` and PUBACKs the longest prefix the
stream acknowledged. At most ``settings.bridge_max_inflight`` messages are held (taken, not yet
acknowledged); at that mark the link stops reading the socket, and it reads again once an eighth
of them are done. A failed send or delivery is sent again (every message of a failed batch, each
on its own; those that had reached Kafka become harmless duplicates), with backoff, and holds
back the PUBACKs behind it until it succeeds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from contracts import topics
from contracts.topics import MQTT_TELEMETRY_FILTER
from ingest.ack_order import AckWindow, Pending, Released
from ingest.mqtt_link import MqttLink, PahoLink
from roadledger.metrics import Sample, counters
from roadledger.mqtt_auth import bridge_account
from roadledger.resilience import Dependency, RetryPolicy
from roadledger.stream.base import OutgoingRecord
from roadledger.stream.errors import StreamError

if TYPE_CHECKING:
    from roadledger.settings import Settings
    from roadledger.stream.base import Producer, Stream

__all__ = ["MAX_PAYLOAD_BYTES", "Bridge", "BridgeStats"]

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 1_000_000  # below Kafka's default 1 MiB record and request limits
_RETRY_MIN_S, _RETRY_MAX_S = 0.1, 5.0
_SLOW_DELIVERY_S = 5.0  # a delivery unanswered this long: Kafka is down or paused


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """Counters since the bridge started."""

    received: int  # PUBLISHes taken from the broker
    produced: int  # records the stream acknowledged
    acked: int  # PUBACKs sent
    in_flight: int  # taken, not yet acknowledged or given back
    high_water: int  # the most ever in flight at once (<= bridge_max_inflight)
    resent: int  # records sent again after a failed send or delivery
    dropped: int  # taken on a connection that was lost before their PUBACK (redelivered)
    throttled: int  # times reading paused because bridge_max_inflight were held
    connections: int  # MQTT connections the broker accepted

    def samples(self) -> list[Sample]:
        """Prometheus samples (``roadledger.metrics``): the counters, and in flight now."""
        counted = {k: v for k, v in asdict(self).items() if k not in ("in_flight", "high_water")}
        return [
            *counters("roadledger_bridge", counted),
            Sample("roadledger_bridge_in_flight", self.in_flight),
            Sample("roadledger_bridge_in_flight_max", self.high_water),
        ]

    def line(self) -> str:
        return (
            f"received {self.received}, produced {self.produced}, acked {self.acked}, "
            f"in flight {self.in_flight} (max {self.high_water}), resent {self.resent}, "
            f"dropped {self.dropped}, throttled {self.throttled}, "
            f"connections {self.connections}"
        )


def _record(entry: Pending) -> OutgoingRecord:
    """The ``telemetry.raw`` record of one MQTT message (see the module docstring)."""
    headers = [
        (topics.HEADER_MQTT_TOPIC, entry.topic.encode()),
        (topics.HEADER_RECV_MS, str(entry.recv_ms).encode()),
    ]
    value = entry.payload
    if len(value) > MAX_PAYLOAD_BYTES:
        headers += [
            (topics.HEADER_OVERSIZE, str(len(value)).encode()),
            (topics.HEADER_PAYLOAD_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
        value = b""
    return OutgoingRecord(entry.topic.rpartition("/")[2].encode(), value, headers)


class Bridge:
    """Forwards MQTT telemetry to the stream (see the module docstring).

    ``client_id`` (default ``settings.bridge_client_id``) names the persistent MQTT session;
    ``raw_topic`` defaults to ``settings.topic("telemetry.raw")``; ``link`` replaces the paho
    link (tests). Use ``await bridge.run(stop_event)``, or ``start()`` ... ``stop()``.
    """

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        *,
        topic_filter: str = MQTT_TELEMETRY_FILTER,
        client_id: str | None = None,
        raw_topic: str | None = None,
        keepalive: int = 60,
        stats_interval: float = 10.0,
        link: MqttLink | None = None,
    ) -> None:
        self.topic_filter = topic_filter
        self.client_id = client_id or settings.bridge_client_id
        self.raw_topic = raw_topic or settings.topic(topics.RAW)
        self._stream = stream
        self._link: MqttLink = link or PahoLink(
            settings.mqtt,
            client_id=self.client_id,
            topic_filter=topic_filter,
            account=bridge_account(settings),
            tls=settings.mqtt_url.startswith("mqtts://"),
            keepalive=keepalive,
        )
        self._stats_interval = stats_interval
        self.capacity = settings.bridge_max_inflight
        self._resume_at = self.capacity - max(1, self.capacity // 8)
        self._window = AckWindow()
        self._incoming: list[Pending] = []
        self._held = self._high_water = self._received = self._throttles = 0
        self._produced = self._acked = self._resent = self._dropped = 0
        self._state = "new"
        self._producer: Producer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._items_ready = asyncio.Event()
        self._window_grew = asyncio.Event()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.throttled = asyncio.Event()  # set while reading is paused for room
        # Outages are one line down, one line back (not one per failed send or delivery).
        self.kafka = Dependency("Kafka", log)

    # --- public -------------------------------------------------------------------------------

    @property
    def dependencies(self) -> list[Dependency]:
        """The services the bridge needs, for its health report."""
        return [self._link.mqtt, self.kafka]

    def stats(self) -> BridgeStats:
        return BridgeStats(
            received=self._received,
            produced=self._produced,
            acked=self._acked,
            in_flight=self._held,
            high_water=self._high_water,
            resent=self._resent,
            dropped=self._dropped,
            throttled=self._throttles,
            connections=self._link.connections,
        )

    async def start(self, stop: asyncio.Event | None = None) -> None:
        """Start the producer, the forwarding tasks and the MQTT link (it connects on its own).

        With ``stop``, an unreachable Kafka is waited for (backoff, one log line); if ``stop``
        is set first the bridge stays unstarted."""
        if self._state != "new":
            raise RuntimeError(f"bridge {self.client_id} was already started")
        producer = self._stream.producer(client_id=self.client_id)
        if stop is None:
            await producer.start()
        elif not await RetryPolicy().run(producer.start, self.kafka, stop):
            return
        self._producer = producer
        self._state = "running"
        self._tasks = [
            asyncio.create_task(self._forward(), name=f"{self.client_id}-forward"),
            asyncio.create_task(self._acknowledge(), name=f"{self.client_id}-ack"),
            asyncio.create_task(self._report(), name=f"{self.client_id}-stats"),
        ]
        await self._link.start(self._take)
        log.info(
            "bridge %s: MQTT %s -> %s (at most %d in flight)",
            self.client_id,
            self.topic_filter,
            self.raw_topic,
            self.capacity,
        )

    async def wait_subscribed(self) -> None:
        """Wait until the broker confirmed the subscription (bound it with asyncio.timeout)."""
        await self._link.wait_subscribed()

    async def wait_acked(self, count: int) -> None:
        """Wait until ``count`` PUBACKs were sent in total (bound it with asyncio.timeout)."""
        await self._wait_until(lambda: self._acked >= count)

    async def run(self, stop: asyncio.Event, *, drain_timeout: float = 30.0) -> BridgeStats:
        """Run until ``stop`` is set (or a bridge task fails), then stop gracefully."""
        await self.start(stop)
        if self._state != "running":  # stopped while Kafka was unreachable
            return self.stats()
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                [stopping, *self._tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopping:
                    task.result()  # a bridge task ended: raise its error
        finally:
            stopping.cancel()
            stats = await self.stop(drain_timeout=drain_timeout)
        return stats

    async def stop(self, *, drain_timeout: float = 30.0) -> BridgeStats:
        """Take no more messages, wait up to ``drain_timeout`` s for the in-flight ones to be
        acknowledged, then disconnect. Anything still unacknowledged stays with the broker and
        is delivered again to the next session (``drain_timeout=0`` acts like a crash)."""
        if self._state != "running":
            return self.stats()
        self._state = "stopping"
        self._link.pause_reading()  # what arrives from now on stays with the broker
        # Nothing drains while Kafka is away: what is in flight stays with the broker.
        draining = self.kafka.healthy and not any(t.done() for t in self._tasks)  # else broken
        if drain_timeout > 0 and draining:
            try:
                async with asyncio.timeout(drain_timeout):
                    # Kafka found away meanwhile (a paused broker): nothing more will drain.
                    await self._wait_until(lambda: self._held == 0 or not self.kafka.healthy)
            except TimeoutError:
                log.warning(
                    "bridge %s: %d messages not acknowledged by the stream within %.0fs; "
                    "the broker keeps them for the next session",
                    self.client_id,
                    self._held,
                    drain_timeout,
                )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._link.close(grace_s=5.0)
        if self._producer is not None:
            try:  # bounded: with Kafka away, flushing would wait for each request's timeout
                await asyncio.wait_for(self._producer.stop(), timeout=3.0)
            except (StreamError, TimeoutError) as exc:
                log.warning("bridge %s: producer stop: %r", self.client_id, exc)
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._state = "stopped"
        stats = self.stats()
        log.info("bridge %s stopped: %s", self.client_id, stats.line())
        return stats

    # --- the flow -----------------------------------------------------------------------------

    def _take(self, mid: int, qos: int, topic: str, payload: bytes) -> None:
        """One PUBLISH from the link: hold it until the stream has it."""
        if self._state != "running":
            return  # no PUBACK ever: the broker delivers it again to the next session
        recv_ms = time.time_ns() // 1_000_000
        self._incoming.append(Pending(self._link.session, mid, qos, topic, payload, recv_ms))
        self._received += 1
        self._held += 1
        if self._held > self._high_water:
            self._high_water = self._held
        self._items_ready.set()
        if self._held >= self.capacity and not self.throttled.is_set():
            self._link.pause_reading()
            self.throttled.set()
            self._throttles += 1

    def _release(self, count: int) -> None:
        self._held -= count
        if self.throttled.is_set() and self._held <= self._resume_at and self._state == "running":
            self.throttled.clear()
            self._link.resume_reading()
        self._progress()

    async def _forward(self) -> None:
        """Taken messages -> stream, in arrival order; each joins the ack window."""
        window = self._window
        while True:
            await self._items_ready.wait()
            self._items_ready.clear()
            batch, self._incoming = self._incoming, []
            # Sent even when their connection is gone (released without a PUBACK): a broker
            # killed before saving them will never deliver them again -- Mosquitto saves a
            # message handed straight to a connected subscriber only with the next change.
            # If it does deliver them again, the copy is a duplicate the verifier absorbs.
            if batch:
                delivery = await self._send_batch(batch)
                for entry in batch:
                    entry.delivery = delivery  # one future for the batch: PUBACKs wait for all
                    window.append(entry)
                self._window_grew.set()

    async def _acknowledge(self) -> None:
        """Ack window -> PUBACKs of the longest acknowledged prefix; re-send failures."""
        window, link = self._window, self._link
        while True:
            head = window.head()
            if head is None:
                self._window_grew.clear()
                await self._window_grew.wait()
                continue
            assert head.delivery is not None
            if not head.delivery.done():
                done, _ = await asyncio.wait((head.delivery,), timeout=_SLOW_DELIVERY_S)
                if not done:  # a paused broker refuses nothing: it just does not answer
                    self.kafka.down(
                        TimeoutError(f"no answer for {_SLOW_DELIVERY_S:g} s"), "delivery"
                    )
                    self._progress()  # a drain under way stops waiting
                    await asyncio.wait((head.delivery,))
            session = link.session
            released = window.release(session)
            pubacks = 0
            for entry in released.to_ack:
                if link.ack(entry.session, entry.mid, entry.qos) and entry.qos:
                    pubacks += 1
            self._account(released, pubacks)
            if released.to_ack or released.dropped:
                if released.delivered:
                    self.kafka.up("delivery")
                continue
            for entry in window.failed(session):  # the head failed: send again, no PUBACK
                assert entry.delivery is not None
                failure = (
                    entry.delivery.exception() if not entry.delivery.cancelled() else None
                ) or StreamError("delivery cancelled")
                self.kafka.down(failure, "delivery")
                entry.delivery = await self._send(entry)
                self._resent += 1

    def _account(self, released: Released, pubacks: int) -> None:
        self._produced += released.delivered
        self._acked += pubacks
        self._dropped += len(released.dropped)
        self._release(len(released))

    async def _send(self, entry: Pending) -> asyncio.Future[Any]:
        """Queue one record again (after a failed delivery), retrying like a batch."""
        return await self._send_batch([entry])

    async def _send_batch(self, entries: Sequence[Pending]) -> asyncio.Future[Any]:
        """Queue the entries' records in order, retrying with backoff until the producer takes
        them; the future resolves once every one is durable."""
        producer = self._producer
        assert producer is not None
        records = [_record(entry) for entry in entries]
        delay = _RETRY_MIN_S
        while True:
            try:
                delivery = await producer.send_many(self.raw_topic, records)
            except StreamError as exc:
                self._resent += 1
                self.kafka.down(exc, "send")
            else:
                self.kafka.up("send")
                return delivery
            await asyncio.sleep(delay)  # back off; meanwhile the window fills and reading pauses
            delay = min(delay * 2, _RETRY_MAX_S)

    async def _report(self) -> None:
        last, last_time = self.stats(), time.monotonic()
        while True:
            await asyncio.sleep(self._stats_interval)
            now, stats = time.monotonic(), self.stats()
            rate = (stats.acked - last.acked) / max(now - last_time, 1e-9)
            log.info("bridge %s: %s, %.0f acked/s", self.client_id, stats.line(), rate)
            last, last_time = stats, now

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        if condition():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, waiter))
        try:
            await waiter
        finally:
            self._waiters = [(c, w) for c, w in self._waiters if w is not waiter]

    def _progress(self) -> None:
        for condition, waiter in self._waiters:
            if not waiter.done() and condition():
                waiter.set_result(None)
