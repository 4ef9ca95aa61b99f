"""Kafka consumer lag as a gauge, in every consumer process's health report and so on
``GET /metrics``: ``roadledger_kafka_consumer_lag{group, topic, partition}``, the records of
each partition a process's consumers are assigned that their group has not committed yet
(:meth:`roadledger.stream.kafka.KafkaConsumer.lag`).

Metrics sources are read synchronously by the health reporter, and the lag needs the broker,
so :func:`watch_lag` asks it every health interval in a task of its own and the source hands
out the last answer. While the broker does not answer, the gauge is left out rather than
stale (the process's health already says Kafka is down). The in-memory stream has no lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from roadledger.metrics import Sample
from roadledger.stream.base import Stream
from roadledger.stream.errors import StreamError
from roadledger.stream.kafka import KafkaStream

__all__ = ["LAG_METRIC", "ConsumerLag", "watch_lag"]

LAG_METRIC = "roadledger_kafka_consumer_lag"

log = logging.getLogger(__name__)


class ConsumerLag:
    """The lag of ``stream``'s live consumers, as of the last :meth:`refresh`; a metrics
    source (``roadledger.metrics.MetricsSource``)."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._samples: list[Sample] = []

    def __call__(self) -> list[Sample]:
        return list(self._samples)

    async def refresh(self) -> None:
        """Ask the broker again (:class:`StreamError` when it cannot answer)."""
        consumers = self._stream.consumers if isinstance(self._stream, KafkaStream) else []
        samples = []
        for consumer in list(consumers):
            for tp, lag in sorted((await consumer.lag()).items()):
                labels = (("group", consumer.group_id), ("partition", str(tp.partition)),
                          ("topic", tp.topic))  # fmt: skip
                samples.append(Sample(LAG_METRIC, float(lag), labels))
        self._samples = samples

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        """:meth:`refresh` every ``every_s`` until ``stop``."""
        while not stop.is_set():
            try:
                await self.refresh()
            except StreamError as exc:  # the broker is away: its outage is reported already
                self._samples = []
                log.debug("consumer lag unknown: %s", exc)
            except Exception:  # a bug here costs the gauge, never the process
                self._samples = []
                log.exception("consumer lag: cannot read it; the gauge is left out")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


_watchers: set[asyncio.Task[None]] = set()  # running, so none is garbage-collected


def watch_lag(stream: Stream, stop: asyncio.Event, every_s: float) -> ConsumerLag:
    """A :class:`ConsumerLag` of ``stream`` refreshed every ``every_s`` until ``stop``, in a
    task beside the caller's work; add it to the process's ``MetricsBoard``."""
    lag = ConsumerLag(stream)
    task = asyncio.create_task(lag.run(stop, every_s), name="consumer lag")
    _watchers.add(task)
    task.add_done_callback(_watchers.discard)
    return lag
