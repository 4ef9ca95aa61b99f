"""The verifier loop on the in-process stream: routing, headers, offsets, crashes, rebalances."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from chain.errors import RejectReason
from contracts.topics import recv_ms_of
from ingest.classifier_pool import ClassifierPool
from ingest.classify import Accepted, ClassifyInput, Limits, classify_chunk
from ingest.dedupe import InMemoryDeviceMessages
from ingest.key_cache import KeyCache, StaticKeys
from ingest.verifier import Verifier
from roadledger.resilience import RetryPolicy
from roadledger.settings import Settings
from roadledger.stream import StreamRecord, TopicPartition
from roadledger.stream.errors import StreamError
from roadledger.stream.memory import MemoryStream
from tests.support.pipeline import wait_until
from tests.unit.ingest.fleet import DAY_MS, T0, Device, Traffic, mixed_traffic, raw_record
from tests.unit.ingest.stream_probe import ProbeStream

RAW, VERIFIED, QUARANTINE = "t.raw", "t.verified", "t.quarantine"
Placed = dict[str, list[tuple[str, str | None]]]  # src -> [(topic, reason)] of every copy


@pytest.fixture
def settings() -> Settings:
    return Settings(verify_workers=0, batch_size=16)


class Run:
    """One MemoryStream with a scenario published to RAW, and verifiers started on it."""

    def __init__(self, settings: Settings, traffic: Traffic) -> None:
        self.settings = settings
        self.traffic = traffic
        self.memory = MemoryStream(partitions=3)
        self.keys = StaticKeys(traffic.records)
        self.messages = InMemoryDeviceMessages()
        self.expected: dict[str, RejectReason | None] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.committed: dict[TopicPartition, int] = {}

    def probe(self) -> ProbeStream:
        """A probe on the stream; all probes of a run share the group's committed offsets."""
        return ProbeStream(self.memory, self.committed)

    async def publish(self) -> None:
        producer = self.memory.producer(client_id="bridge")
        await producer.start()
        for sent in self.traffic.sent:
            headers = [("recv_ms", str(sent.recv_ms).encode())]
            future = await producer.send(RAW, sent.value, key=sent.key, headers=headers)
            partition, offset = await future
            self.expected[f"raw:{partition}:{offset}"] = sent.expected
        await producer.stop()

    def verifier(self, probe: ProbeStream, stop: asyncio.Event, name: str = "v") -> Verifier:
        verifier = Verifier(
            self.settings,
            probe,
            self.messages,
            self.keys,
            raw_topic=RAW,
            verified_topic=VERIFIED,
            quarantine_topic=QUARANTINE,
            client_id=name,
            retry=RetryPolicy(base_s=0.001, cap_s=0.01),
        )
        self.tasks.append(asyncio.create_task(verifier.run(stop)))
        return verifier

    def raw_end(self) -> dict[TopicPartition, int]:
        return self.memory.end_offsets(RAW)

    def placed(self) -> Placed:
        placed: Placed = {}
        for topic in (VERIFIED, QUARANTINE):
            for record in self.memory.records(topic):
                src = header(record, "src")
                reason = record.header("reason")
                placed.setdefault(src, []).append((topic, reason.decode() if reason else None))
        return placed

    def check_each_record_placed_once(self, placed: Placed, replays_allowed: bool = False) -> None:
        assert set(placed) == set(self.expected), "every raw record is in exactly one topic"
        for src, copies in placed.items():
            expected = self.expected[src]
            want = (VERIFIED, None) if expected is None else (QUARANTINE, expected.value)
            assert copies[0] == want, f"{src}: {copies[0]} != {want}"
            assert all(copy == want for copy in copies), f"{src}: copies disagree: {copies}"
            if not replays_allowed:
                assert len(copies) == 1, f"{src} placed {len(copies)} times"


def header(record: StreamRecord, name: str) -> str:
    value = record.header(name)
    assert value is not None, f"{record.topic}:{record.offset} has no {name} header"
    return value.decode()


@pytest.fixture
async def run(settings: Settings) -> AsyncIterator[Run]:
    scenario = Run(settings, mixed_traffic())
    await scenario.publish()
    yield scenario
    for task in scenario.tasks:
        task.cancel()
    await asyncio.gather(*scenario.tasks, return_exceptions=True)


async def finish(run: Run, probe: ProbeStream, stop: asyncio.Event) -> None:
    await probe.wait_committed(run.raw_end())
    stop.set()
    await asyncio.wait_for(asyncio.gather(*run.tasks), 30)


async def crash(run: Run, gate_reached: asyncio.Event) -> None:
    """Cancel every verifier once a gate holds one: it dies at that step, with no commit."""
    await asyncio.wait_for(gate_reached.wait(), 30)
    for task in run.tasks:
        task.cancel()
    await asyncio.gather(*run.tasks, return_exceptions=True)
    run.tasks.clear()


# --- a clean run -------------------------------------------------------------------------------


async def test_every_record_ends_in_exactly_one_topic_with_its_reason(run: Run) -> None:
    probe = run.probe()
    stop = asyncio.Event()
    verifier = run.verifier(probe, stop)
    await finish(run, probe, stop)

    run.check_each_record_placed_once(run.placed())
    for tp, end in run.raw_end().items():
        assert run.memory.committed(verifier.group_id, tp) == end
    counts = verifier.stats.snapshot()
    expected = run.traffic.expected_counts()
    assert counts["received"] == len(run.traffic.sent)
    assert counts["forwarded"] == expected.pop("verified")
    assert counts["replayed"] == 0
    assert {k.removeprefix("rejected."): v for k, v in counts.items() if "." in k} == expected
    assert set(expected) >= {r.value for r in RejectReason} - {"chain_broken"}


async def test_forwarded_and_quarantined_copies_are_verbatim_with_headers(run: Run) -> None:
    probe = run.probe()
    stop = asyncio.Event()
    run.verifier(probe, stop)
    await finish(run, probe, stop)
    raw = {f"raw:{r.partition}:{r.offset}": r for r in run.memory.records(RAW)}

    verified = run.memory.records(VERIFIED)
    assert verified
    for record in verified:
        source = raw[header(record, "src")]
        assert record.value == source.value
        assert record.key == source.key
        assert [name for name, _ in record.headers] == ["recv_ms", "src"]
        assert header(record, "recv_ms") == str(T0)
    for record in run.memory.records(QUARANTINE):
        source = raw[header(record, "src")]
        assert record.value == source.value
        assert record.key == source.key
        assert [n for n, _ in record.headers] == ["reason", "detail", "recv_ms", "src"]
        detail = header(record, "detail")
        assert detail
        assert "\n" not in detail
        assert len(detail) <= 300
    # per device, verified keeps the order of telemetry.raw
    order = [header(r, "src") for r in verified]
    by_device: dict[bytes | None, list[int]] = {}
    for src in order:
        by_device.setdefault(raw[src].key, []).append(raw[src].offset)
    assert all(offsets == sorted(offsets) for offsets in by_device.values())


async def test_graceful_stop_finishes_and_commits_the_batch_under_way(run: Run) -> None:
    probe = run.probe()
    stop = asyncio.Event()
    probe.commit_gate.after = 0  # hold the first batch at its commit...
    verifier = run.verifier(probe, stop)
    await asyncio.wait_for(probe.commit_gate.reached.wait(), 30)
    stop.set()  # ...ask for a stop while it is under way...
    probe.commit_gate.release()
    await asyncio.wait_for(asyncio.gather(*run.tasks), 30)  # ...and it returns by itself
    run.tasks.clear()
    # The batch held at its commit and the next one, fetched and classified meanwhile (the
    # pipeline), are both finished: everything fetched is placed and committed, no more.
    fetched = verifier.stats.received
    assert fetched == 32
    assert sum(probe.committed.values()) == fetched, "the batches under way were committed"
    assert len(run.placed()) == fetched

    again = run.probe()
    stop = asyncio.Event()
    run.verifier(again, stop)
    await finish(run, again, stop)
    run.check_each_record_placed_once(run.placed())  # a graceful stop repeats nothing


async def test_stop_before_any_record_returns_promptly(settings: Settings) -> None:
    memory = MemoryStream()
    verifier = Verifier(
        settings, memory, InMemoryDeviceMessages(), StaticKeys(), raw_topic=RAW,
        verified_topic=VERIFIED, quarantine_topic=QUARANTINE,
    )  # fmt: skip
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(verifier.run(stop), 10)
    assert verifier.stats.received == 0


# --- crashes: cancel at a chosen step, restart, nothing lost --------------------------------------


async def test_crash_after_the_claim_before_any_produce_loses_nothing(run: Run) -> None:
    probe = run.probe()
    probe.send_gate.after = 0  # the first batch is claimed, then the first send never returns
    run.verifier(probe, asyncio.Event())
    await crash(run, probe.send_gate.reached)
    assert run.messages.rows, "the first batch was claimed before the crash"
    assert run.memory.records(VERIFIED) == []

    again = run.probe()
    stop = asyncio.Event()
    verifier = run.verifier(again, stop)
    await finish(run, again, stop)
    run.check_each_record_placed_once(run.placed())
    assert verifier.stats.replayed > 0, "the claimed records came back as own replays"


async def test_crash_in_the_middle_of_the_produce(run: Run) -> None:
    probe = run.probe()
    probe.send_gate.after = 10  # the first batch is half produced
    run.verifier(probe, asyncio.Event())
    await crash(run, probe.send_gate.reached)
    assert len(run.placed()) == 10

    again = run.probe()
    stop = asyncio.Event()
    run.verifier(again, stop)
    await finish(run, again, stop)
    placed = run.placed()
    run.check_each_record_placed_once(placed, replays_allowed=True)
    twice = {src for src, copies in placed.items() if len(copies) > 1}
    assert len(twice) == 10, "exactly the records produced before the crash came twice"


async def test_crash_after_the_produce_before_the_commit(run: Run) -> None:
    probe = run.probe()
    probe.commit_gate.after = 2  # two batches committed, the third produced but not committed
    first = run.verifier(probe, asyncio.Event())
    await crash(run, probe.commit_gate.reached)
    first_placed = run.placed()
    assert first.stats.received == 32  # two counted batches; the third was never counted

    again = run.probe()
    stop = asyncio.Event()
    second = run.verifier(again, stop)
    await finish(run, again, stop)
    placed = run.placed()
    run.check_each_record_placed_once(placed, replays_allowed=True)
    twice = {src for src, copies in placed.items() if len(copies) > 1}
    assert len(twice) == len(first_placed) - 32, "only the uncommitted batch came again"
    forwarded_twice = {src for src in twice if placed[src][0][0] == VERIFIED}
    assert second.stats.replayed == len(forwarded_twice)
    duplicates = Counter(reason for copies in placed.values() for _, reason in copies[:1])
    assert duplicates["duplicate"] == 1, "an own replay never turns into a duplicate"


async def test_a_failed_produce_is_retried_until_kafka_is_back(run: Run) -> None:
    probe = run.probe()
    probe.send_gate.after = 20  # the second batch fails to produce (Kafka said no)...
    probe.send_gate.fail = StreamError("producer v: delivery to t.verified: broker down")
    stop = asyncio.Event()
    verifier = run.verifier(probe, stop)
    await asyncio.wait_for(probe.send_gate.reached.wait(), 30)
    await wait_until(
        lambda: verifier.kafka.failures >= 5,
        "5 failed produces: retried, not given up",
        10,
        every_s=0.005,
        observed=lambda: f"{verifier.kafka.failures} failures",
    )
    assert not run.tasks[0].done(), "the verifier waits the outage out"
    assert sum(run.committed.values()) == 16, "nothing after the failed batch is committed"
    probe.send_gate.release()  # ...until the broker is back
    await finish(run, probe, stop)
    assert (verifier.kafka.healthy, verifier.kafka.outages) == (True, 1)
    placed = run.placed()
    run.check_each_record_placed_once(placed, replays_allowed=True)
    assert sum(len(copies) > 1 for copies in placed.values()) == 4, "the 4 sent before the error"


async def test_repeated_crashes_converge(run: Run) -> None:
    for after in (3, 7, 20):
        probe = run.probe()
        probe.send_gate.after = after
        run.verifier(probe, asyncio.Event())
        await crash(run, probe.send_gate.reached)
    probe = run.probe()
    stop = asyncio.Event()
    run.verifier(probe, stop)
    await finish(run, probe, stop)
    run.check_each_record_placed_once(run.placed(), replays_allowed=True)


# --- rebalance --------------------------------------------------------------------------------


async def test_a_member_joining_mid_batch_waits_for_that_batch(settings: Settings) -> None:
    run = Run(settings, mixed_traffic(vehicles=8, messages=10))  # every partition has plenty
    await run.publish()
    probe = run.probe()
    stop = asyncio.Event()
    probe.commit_gate.after = 1  # hold the first verifier inside its second batch
    first = run.verifier(probe, stop, "v1")
    await asyncio.wait_for(probe.commit_gate.reached.wait(), 30)
    second = run.verifier(probe, stop, "v2")  # joins: the group rebalances
    try:
        await asyncio.wait_for(probe.revoking.wait(), 30)
        assert first.stats.batches == 1
        probe.commit_gate.release()  # revoked() returns once the held batch is committed
        await finish(run, probe, stop)
    finally:
        for task in run.tasks:
            task.cancel()
    run.check_each_record_placed_once(run.placed())  # nothing handed over half done
    assert second.stats.received > 0, "the second member took partitions over"
    assert first.stats.received + second.stats.received == len(run.traffic.sent)


async def test_two_members_share_the_partitions_and_place_each_record_once(
    settings: Settings,
) -> None:
    scenario = Run(settings, mixed_traffic(vehicles=8, messages=10))
    await scenario.publish()
    probe = scenario.probe()
    stop = asyncio.Event()
    first = scenario.verifier(probe, stop, "v1")
    second = scenario.verifier(probe, stop, "v2")  # joins while the first may be mid-batch
    try:
        await finish(scenario, probe, stop)
    finally:
        for task in scenario.tasks:
            task.cancel()
    scenario.check_each_record_placed_once(scenario.placed())
    assert first.stats.received + second.stats.received == len(scenario.traffic.sent)


# --- parts ------------------------------------------------------------------------------------


def test_recv_ms_comes_from_the_bridge_header_else_the_record_timestamp() -> None:
    assert recv_ms_of(raw_record(b"x", "d", offset=0, recv_ms=T0 + 5, timestamp_ms=T0)) == T0 + 5
    assert recv_ms_of(raw_record(b"x", "d", offset=0, recv_ms=None, timestamp_ms=T0 + 7)) == T0 + 7
    bad = StreamRecord("t", 0, 0, b"d", b"x", (("recv_ms", b"-12"),), T0 + 9)
    assert recv_ms_of(bad) == T0 + 9


async def test_decide_without_a_stream(settings: Settings) -> None:
    device = Device("veh-1")
    keys = StaticKeys(device.records)
    verifier = Verifier(settings, MemoryStream(), InMemoryDeviceMessages(), keys)
    first, second = device.message(T0), device.message(T0 + 1)
    records = [
        raw_record(first, "veh-1", offset=0),
        raw_record(second, "veh-1", offset=1, recv_ms=None, timestamp_ms=T0 - 10 * DAY_MS),
        raw_record(first, "veh-1", offset=2),
    ]
    decisions = await verifier.decide(records)
    assert [d.reason for d in decisions] == [None, RejectReason.CLOCK_SKEW, RejectReason.DUPLICATE]
    assert decisions[1].recv_ms == T0 - 10 * DAY_MS
    assert decisions[2].detail == "veh-1 seq 1: the same bytes were accepted first from raw:0:0"
    assert dict(decisions[2].headers())["src"] == b"raw:0:2"
    again = await verifier.decide(records[:1])
    assert again[0].reason is None
    assert again[0].replay


async def test_a_payload_the_bridge_dropped_as_too_large_is_oversize(settings: Settings) -> None:
    device = Device("veh-1")
    verifier = Verifier(settings, MemoryStream(), InMemoryDeviceMessages(), StaticKeys())
    headers = (
        ("recv_ms", str(T0).encode()),
        ("oversize", b"2000000"),
        ("payload_sha256", b"ab" * 32),
    )
    dropped = StreamRecord("t.raw", 0, 0, b"veh-1", b"", headers, T0)
    empty = StreamRecord("t.raw", 0, 1, b"veh-1", b"", headers[:1], T0)
    decisions = await verifier.decide(
        [dropped, empty, raw_record(device.message(T0), "veh-1", offset=2)]
    )
    assert [d.reason for d in decisions] == [
        RejectReason.OVERSIZE,
        RejectReason.MALFORMED,
        RejectReason.UNKNOWN_DEVICE,
    ]
    assert decisions[0].detail == (
        f"2000000 bytes, limit is 16384; the bridge kept only its sha256 {'ab' * 32}"
    )


async def test_key_cache_reads_misses_once_and_refreshes_on_time() -> None:
    device = Device("veh-1")
    lookup = StaticKeys(device.records)
    now = [0.0]
    cache = KeyCache(lookup, refresh_interval_s=2.0, clock=lambda: now[0])
    assert await cache.keys_for(["veh-1", "ghost"]) == {"veh-1": (device.record,)}
    assert await cache.keys_for(["veh-1"]) == {"veh-1": (device.record,)}
    assert lookup.lookups == 1, "a known device is served from the cache"
    assert await cache.keys_for(["ghost"]) == {}
    assert lookup.lookups == 2, "unknown devices are asked again (they may register any time)"
    lookup.keys["ghost"] = Device("ghost").records
    assert set(await cache.keys_for(["ghost"])) == {"ghost"}
    assert lookup.lookups == 3

    revoked = device.record.revoke(T0)
    lookup.replace(device.record, revoked)
    now[0] = 1.9
    assert await cache.keys_for(["veh-1"]) == {"veh-1": (device.record,)}
    now[0] = 2.0
    assert await cache.keys_for(["veh-1"]) == {"veh-1": (revoked,)}, "revocation seen"
    assert lookup.lookups == 4
    del lookup.keys["ghost"]
    await cache.refresh()
    assert len(cache) == 1, "a device that disappeared is dropped"


async def test_worker_processes_give_the_same_verdicts_as_in_process() -> None:
    traffic = mixed_traffic(vehicles=3, messages=40)
    keys = StaticKeys(traffic.records).keys
    items = [ClassifyInput(s.value, s.key, s.recv_ms) for s in traffic.sent]
    limits = Limits(300_000, 30 * DAY_MS)
    expected = classify_chunk(items, keys, limits)
    async with ClassifierPool(2, chunk_size=16) as pool:
        assert await pool.classify(items, keys, limits) == expected
    assert sum(isinstance(v, Accepted) for v in expected) > 100
    with pytest.raises(RuntimeError, match="before start"):
        await ClassifierPool(1).classify(items, keys, limits)
