"""Verifier benchmark: classification rate with 0, 1 and 2 worker processes vs raw PyNaCl.

Run from the project root::

    .venv/bin/python bench/verify.py                      # 20,000 messages, about a minute
    .venv/bin/python bench/verify.py --messages 5000 --repeat 1 --no-stream
    .venv/bin/python bench/verify.py --postgres           # + device_messages claim rate

One run, on the same signed messages (vehicles of ``--devices`` devices, ~300 bytes each):

- ``raw PyNaCl verify``: ``crypto_sign_open`` over each message's signing input on one core,
  nothing else. The limit of any verifier on one core: every message needs one.
- ``classify, N workers``: :class:`ingest.classifier_pool.ClassifierPool` over batches of
  ``--batch`` records, awaited one after the other as the verifier does: the full per-message
  check (parse, record key, signature, schema, kind, key window, clock), not only the
  signature. N = 0 is in-process.
- ``verifier loop, N workers``: :class:`ingest.verifier.Verifier` on the in-process stream
  with in-memory dedupe: classification plus the stream, the claim and the produce of every
  record; what the verifier does per message apart from Kafka and PostgreSQL I/O.
- ``--postgres``: :class:`ingest.dedupe.PostgresDeviceMessages` claims, one round trip per
  batch, in a scratch schema of ``ROADLEDGER_DATABASE_URL``.
- ``--kafka``: the whole verifier on the real services (scratch topics, schema and group):
  from the first fetch to the last commit, CPU of this process and its workers only (the
  broker's and the database's CPU are not counted).

Each rate is the best of ``--repeat`` runs; worker processes are started before the clock
starts, as in a long-running verifier. Beside each rate: CPU time per message, of this
process and of the worker processes together (less the CPU of starting an idle pool),
because on a machine where Kafka, PostgreSQL, the bridge and the rest share two cores, what
a message costs in CPU matters as much as how fast one stage can go when it has the machine
to itself. Figures go to stdout, progress to
stderr; compare ratios within one run, not absolute rates across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import logging
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import nacl.bindings

from chain.device_keys import DeviceKey
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DeviceKind, Telemetry, chain_hash, sign_telemetry
from contracts.topics import Source
from ingest.classifier_pool import ClassifierPool
from ingest.classify import Accepted, ClassifyInput, Limits
from ingest.dedupe import InMemoryDeviceMessages, MessageClaim, PostgresDeviceMessages
from ingest.key_cache import StaticKeys
from ingest.verifier import Verifier
from roadledger.settings import Settings, load_settings
from roadledger.stream import (
    Consumer,
    PartitionsListener,
    Producer,
    Stream,
    StreamRecord,
    TopicPartition,
)
from roadledger.stream.memory import MemoryStream

T0 = 1_767_225_600_000


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


@dataclass
class Workload:
    keys: dict[str, list[DeviceKey]]
    items: list[ClassifyInput]


def make_workload(messages: int, devices: int) -> Workload:
    """``messages`` signed vehicle messages, round robin over ``devices`` chained devices."""
    signers = [
        Ed25519PrivateKey.from_bytes(hashlib.sha256(f"bench-{d}".encode()).digest())
        for d in range(devices)
    ]
    keys = {
        f"veh-{d:05d}": [
            DeviceKey(
                device_id=f"veh-{d:05d}",
                public_key=signer.public_key,
                owner_org="bench",
                kind=DeviceKind.VEHICLE,
                valid_from_ms=T0 - 86_400_000,
            )
        ]
        for d, signer in enumerate(signers)
    }
    prev = [""] * devices
    items = []
    for i in range(messages):
        d, seq = i % devices, i // devices + 1
        telemetry = Telemetry(
            dev=f"veh-{d:05d}",
            seq=seq,
            prev=prev[d],
            ts=T0 + i,
            odo_m=1_000_000 + seq * 14,
            lat_e7=522516100 + seq,
            lon_e7=133777200,
            spd_cms=1389,
            hdg_cdeg=9000,
        )
        raw = sign_telemetry(signers[d], telemetry)
        prev[d] = chain_hash(raw)
        items.append(ClassifyInput(raw, telemetry.dev.encode(), T0 + i + 50))
    return Workload(keys, items)


def cpu_seconds() -> float:
    """CPU time of this process plus its reaped children (worker pools are shut down)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Report:
    rates: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, count: int, seconds: float, cpu: float | None) -> None:
        self.rates[name] = count / seconds
        cost = "" if cpu is None else f"   {cpu / count * 1e6:6.1f} us CPU/msg"
        print(f"{name:<36} {count / seconds:>10,.0f} msg/s{cost}", flush=True)

    def ratios(self, base: str) -> None:
        print(f"\nratio to {base}:")
        for name, rate in self.rates.items():
            if name != base:
                print(f"  {name:<34} {rate / self.rates[base]:>6.2f}x")


class Measured(NamedTuple):
    wall: float  # seconds from the first record to the last commit
    cpu: float  # CPU seconds of this process and its workers in that span


async def best_of(
    repeat: int, step: Callable[[], Awaitable[Measured]], overhead_cpu: float = 0.0
) -> Measured:
    """The fastest of ``repeat`` runs, its CPU less ``overhead_cpu`` (starting the pool)."""
    runs = [await step() for _ in range(repeat)]
    best = min(runs, key=lambda run: run.wall)
    return Measured(best.wall, best.cpu - overhead_cpu)


def raw_pynacl(work: Workload) -> float:
    triples = []
    for item in work.items:
        signing_input, _, sig = item.value.rpartition(b".")
        signature = base64.urlsafe_b64decode(sig + b"=" * (-len(sig) % 4))
        public = work.keys[item.key.decode()][0].public_key.raw  # type: ignore[union-attr]
        triples.append((signature + signing_input, public))
    start = time.perf_counter()
    for signed, public in triples:
        nacl.bindings.crypto_sign_open(signed, public)
    return time.perf_counter() - start


async def classify_rate(work: Workload, workers: int, batch: int, chunk: int) -> Measured:
    limits = Limits(300_000, 30 * 86_400_000)
    pool = ClassifierPool(workers, chunk_size=chunk)
    await pool.start()
    cpu = cpu_seconds()
    try:
        start = time.perf_counter()
        accepted = 0
        for first in range(0, len(work.items), batch):
            items = work.items[first : first + batch]
            verdicts = await pool.classify(items, work.keys, limits)
            accepted += sum(isinstance(v, Accepted) for v in verdicts)
        elapsed = time.perf_counter() - start
    finally:
        await pool.close()  # reaps the workers: their CPU is counted from here
    assert accepted == len(work.items), f"only {accepted} of {len(work.items)} accepted"
    return Measured(elapsed, cpu_seconds() - cpu)


class _StopAtEnd:
    """Wraps a stream; sets ``stop`` once the verifier committed through ``end``."""

    def __init__(self, inner: Stream, end: dict[TopicPartition, int]) -> None:
        self.inner = inner
        self.end = end
        self.stop = asyncio.Event()
        self.committed: dict[TopicPartition, int] = {}

    def producer(self, *, client_id: str) -> Producer:
        return self.inner.producer(client_id=client_id)

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None = None,
    ) -> Consumer:
        inner = self.inner.consumer(
            topics, group_id=group_id, client_id=client_id, listener=listener
        )
        return _WatchedConsumer(self, inner)

    def done(self, offsets: Mapping[TopicPartition, int]) -> bool:
        self.committed.update(offsets)
        return all(self.committed.get(tp, 0) >= n for tp, n in self.end.items())


class _WatchedConsumer:
    def __init__(self, stream: _StopAtEnd, inner: Consumer) -> None:
        self.stream = stream
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def getmany(self, timeout_ms: int, max_records: int) -> list[StreamRecord]:
        return await self.inner.getmany(timeout_ms, max_records)

    def assignment(self) -> set[TopicPartition]:
        return self.inner.assignment()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.inner.seek(partition, offset)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self.inner.commit(offsets)
        if self.stream.done(offsets):
            self.stream.stop.set()


async def idle_pool_cpu(workers: int) -> float:
    """CPU seconds to start and stop a pool that does nothing: subtracted from the figures."""
    cpu = cpu_seconds()
    async with ClassifierPool(workers):
        pass
    return cpu_seconds() - cpu


async def verifier_rate(work: Workload, settings: Settings, workers: int, batch: int) -> Measured:
    memory = MemoryStream(partitions=3)
    producer = memory.producer(client_id="bench-bridge")
    await producer.start()
    for item in work.items:
        headers = [("recv_ms", str(item.recv_ms).encode())]
        await producer.send("bench.raw", item.value, key=item.key, headers=headers)
    stream = _StopAtEnd(memory, memory.end_offsets("bench.raw"))
    classifier = ClassifierPool(workers)
    await classifier.start()  # started before the clock, as in a long-running verifier
    verifier = Verifier(
        settings.model_copy(update={"verify_workers": workers, "batch_size": batch}),
        stream,
        InMemoryDeviceMessages(),
        StaticKeys(k for keys in work.keys.values() for k in keys),
        raw_topic="bench.raw",
        verified_topic="bench.verified",
        quarantine_topic="bench.quarantine",
        group_id="bench",
        stats_interval_s=3600,
        classifier=classifier,
    )
    cpu = cpu_seconds()
    try:
        start = time.perf_counter()
        await verifier.run(stream.stop)
        elapsed = time.perf_counter() - start
    finally:
        await classifier.close()
    assert verifier.stats.forwarded == len(work.items), verifier.stats.snapshot()
    return Measured(elapsed, cpu_seconds() - cpu)


async def postgres_rate(work: Workload, settings: Settings, batch: int) -> tuple[int, float]:
    from tests.support.scratch_schema import scratch_schema_pool

    claims = [
        MessageClaim(item.key.decode(), i, hashlib.sha256(item.value).digest(), Source(0, i))  # type: ignore[union-attr]
        for i, item in enumerate(work.items)
    ]
    async with scratch_schema_pool(settings) as pool:
        store = PostgresDeviceMessages(pool)
        start = time.perf_counter()
        for first in range(0, len(claims), batch):
            await store.claim(claims[first : first + batch])
        return len(claims), time.perf_counter() - start


async def kafka_rate(work: Workload, settings: Settings, workers: int, batch: int) -> Measured:
    """The verifier on the real Kafka and PostgreSQL: scratch topics, schema and group."""
    import uuid

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from roadledger.stream.kafka import KafkaStream
    from tests.support.scratch_schema import scratch_schema_pool

    prefix = f"bench.verify.{uuid.uuid4().hex[:8]}"
    raw, verified, quarantine = (f"{prefix}.{name}" for name in ("raw", "verified", "quarantine"))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 3, 1) for t in (raw, verified, quarantine)])
        local = settings.model_copy(update={"verify_workers": workers, "batch_size": batch})
        kafka = KafkaStream(local)
        producer = kafka.producer(client_id="bench-bridge")
        await producer.start()
        end: dict[TopicPartition, int] = {}
        futures = []
        for item in work.items:
            headers = [("recv_ms", str(item.recv_ms).encode())]
            futures.append(await producer.send(raw, item.value, key=item.key, headers=headers))
        for partition, offset in await asyncio.gather(*futures):
            tp = TopicPartition(raw, partition)
            end[tp] = max(end.get(tp, 0), offset + 1)
        await producer.stop()
        async with scratch_schema_pool(settings) as pool:
            stream = _StopAtEnd(kafka, end)
            classifier = ClassifierPool(workers)
            await classifier.start()
            verifier = Verifier(
                local,
                stream,
                pool,
                StaticKeys(k for keys in work.keys.values() for k in keys),
                raw_topic=raw,
                verified_topic=verified,
                quarantine_topic=quarantine,
                group_id=prefix,
                stats_interval_s=3600,
                classifier=classifier,
            )
            cpu = cpu_seconds()
            try:
                start = time.perf_counter()
                await verifier.run(stream.stop)
                elapsed = time.perf_counter() - start
            finally:
                await classifier.close()
            cpu = cpu_seconds() - cpu
        assert verifier.stats.forwarded == len(work.items), verifier.stats.snapshot()
        return Measured(elapsed, cpu)
    finally:
        await admin.delete_topics([raw, verified, quarantine])
        await admin.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=2_000, help="records per verifier batch")
    parser.add_argument("--chunk", type=int, default=256, help="records per worker task")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-stream", action="store_true", help="skip the verifier loop")
    parser.add_argument("--postgres", action="store_true", help="add the claim round trip")
    parser.add_argument(
        "--kafka", action="store_true", help="add the verifier on the real Kafka and PostgreSQL"
    )
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # "topic not found yet" chatter

    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    progress(f"signing {args.messages:,} messages of {args.devices:,} devices")
    work = make_workload(args.messages, args.devices)
    settings = load_settings()
    report = Report()
    n = len(work.items)

    progress("raw PyNaCl verify")
    best = min(raw_pynacl(work) for _ in range(args.repeat))
    report.add("raw PyNaCl verify (1 core)", n, best, None)

    idle = {workers: await idle_pool_cpu(workers) for workers in args.workers}
    for workers in args.workers:
        progress(f"classify, {workers} workers")
        wall, cpu = await best_of(
            args.repeat,
            functools.partial(classify_rate, work, workers, args.batch, args.chunk),
            idle[workers],
        )
        report.add(f"classify, {workers} workers", n, wall, cpu)

    if not args.no_stream:
        for workers in args.workers:
            progress(f"verifier loop, {workers} workers")
            wall, cpu = await best_of(
                args.repeat,
                functools.partial(verifier_rate, work, settings, workers, args.batch),
                idle[workers],
            )
            report.add(f"verifier loop, {workers} workers", n, wall, cpu)

    if args.postgres:
        progress("device_messages claims on PostgreSQL")
        count, seconds = await postgres_rate(work, settings, args.batch)
        report.add(f"postgres claim (batch {args.batch})", count, seconds, None)

    if args.kafka:
        for workers in args.workers:
            progress(f"verifier on Kafka + PostgreSQL, {workers} workers")
            wall, cpu = await best_of(
                args.repeat,
                functools.partial(kafka_rate, work, settings, workers, args.batch),
                idle[workers],
            )
            report.add(f"Kafka+PostgreSQL, {workers} workers", n, wall, cpu)

    report.ratios("raw PyNaCl verify (1 core)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
