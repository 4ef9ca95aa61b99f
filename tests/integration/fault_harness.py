"""Fault runs on the real pipeline: publish a known fleet, inject a fault, account for every
message.

A :class:`FaultRun` is a private pipeline (``tests.support.pipeline``: scratch schema,
prefixed topics and groups, its own log key) whose ``roadledger bridge``, ``ingest`` and
``sequencer`` run as real processes, fed by ``roadledger sim`` (every message signed before
the first is published, then published at a bounded rate, with a few injected rejections so
that the quarantine is counted too). A test or ``bench/faults.py`` starts the publisher,
injects its fault (SIGKILL of a process, or a private service killed, restarted or paused),
waits until the pipeline is quiescent and then calls :meth:`FaultRun.tally`, which counts the
simulator's ground truth against every stage (``fault_counting.py``):

- ``telemetry.raw``: each published message at least once (the bridge may repeat);
- ``telemetry`` rows: each message expected stored exactly once, by (device, seq) and by leaf
  hash, nothing else;
- ``telemetry.quarantine``: each expected rejection with its reason;
- the ledger: each stored message exactly one leaf, no rejected message a leaf;
- ``roadledger ledger check``'s queries (every stored row has a leaf, each log whole), every
  checkpoint signed by the log key and consistent with the next one (RFC 9162 consistency
  proofs from the stored tree), and a sample of inclusion proofs against the latest one;

and :meth:`FaultRun.check_recovered` requires every process to be alive, each started only by
the harness (once, plus once after each kill the caller made). A background sampler measures
how long after a service returned the pipeline moved at half the offered rate again
(``fault_sampling.py``).

Services are whatever ``settings`` names: the shared ones for process faults, private
instances for service faults (their URLs are passed on to every process).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from contracts.topics import QUARANTINE, RAW, VERIFIED, mqtt_telemetry_topic
from roadledger.health import ProcessHealth, read_health
from roadledger.mqtt_auth import sim_account
from roadledger.settings import Settings
from tests.integration.fault_counting import Tally, count_run
from tests.integration.fault_sampling import Sample, recovery_after
from tests.integration.mqtt_client import MqttTestClient
from tests.support.pipeline import (
    ROADLEDGER,
    KafkaProbe,
    PipelineEnv,
    pipeline_env,
    wait_until,
)

__all__ = [
    "PIPELINE",
    "RECOVERY_FLOOR_S",
    "FaultRun",
    "fault_run",
]

PIPELINE = ("bridge", "ingest", "sequencer")
RECOVERY_FLOOR_S = 15.0  # issue 9: throughput back within 15 s of the service's return
# Rejections injected into every run, so that the quarantine is counted as well.
SCENARIOS = ("forged_signature", "malformed", "duplicate_delivery", "conflict")
_GROUPS = {  # consumer group -> the topic it consumes
    "roadledger-verifier": RAW,
    "roadledger-store": VERIFIED,
    "roadledger-ledger": VERIFIED,
}
_SAMPLE_EVERY_S = 0.5
_TRANSIENT = (OSError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class FaultRun:
    """One private pipeline under faults; made by :func:`fault_run`."""

    def __init__(self, pipeline: PipelineEnv, kafka: KafkaProbe, tmp_path: Path) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.kafka = kafka
        self.tmp_path = tmp_path
        self.truth_path = tmp_path / "truth.jsonl"
        self.kills: Counter[str] = Counter()  # SIGKILLs the caller made, per component
        self.samples: list[Sample] = []
        self.rate = 0
        self.sim: subprocess.Popen[bytes] | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._sampler: asyncio.Task[None] | None = None

    # --- the pipeline ------------------------------------------------------------------------

    def start(self, *names: str) -> None:
        for name in names or PIPELINE:
            self.pipeline.component(name).start()

    def kill_and_restart(self, name: str) -> float:
        """SIGKILL ``name`` and start it again at once; the monotonic time it was restarted."""
        component = self.pipeline.component(name)
        component.kill()
        self.kills[name] += 1
        component.start()
        return time.monotonic()

    async def kill_when_progressing(self, name: str, step: int, what: str) -> float:
        """SIGKILL ``name`` once the ledger has grown by ``step`` leaves (so the process, or
        the sequencer it feeds, is at work), and start it again; the time it was restarted."""
        await self.wait_ledger_growth(step, what)
        return self.kill_and_restart(name)

    async def wait_ledger_growth(self, step: int, what: str, within_s: float = 300) -> None:
        """Until the ledger has ``step`` more leaves than now: the pipeline is under load."""
        floor = await self.leaves()

        async def grown() -> bool:
            self.check_alive()
            return await self.leaves() >= floor + step

        await wait_until(grown, f"the ledger to grow by {step} leaves ({what})", within_s)

    async def kill_cycles(self, name: str, cycles: int, steps: tuple[int, int]) -> list[float]:
        """``cycles`` SIGKILL/restart cycles of ``name``, each once the ledger has grown by a
        number of leaves drawn from ``steps`` (seeded), so kills land at varied points of its
        work; the restart times."""
        rng = random.Random(cycles)
        return [
            await self.kill_when_progressing(name, rng.randint(*steps), f"before kill {n + 1}")
            for n in range(cycles)
        ]

    async def settle(self, *, publish_within_s: float = 600, quiet_within_s: float = 300) -> None:
        """Until the simulator is done and the pipeline is quiescent."""
        await self.wait_published(publish_within_s)
        await self.wait_quiescent(quiet_within_s)

    def health(self) -> dict[str, ProcessHealth]:
        """Each pipeline process's health report, by component, as ``roadledger health``
        judges it (the processes report every 0.5 s here)."""
        directory = Path(self.pipeline.env["ROADLEDGER_HEALTH_DIR"])
        reports = read_health(directory, stale_after_s=5)
        return {report.name.split(".")[0]: report for report in reports}

    async def settle_and_count(self, returns: list[float]) -> list[float | None]:
        """Settle, then the verdict of a fault run: every message counted once at every stage,
        every process alive without an outside restart, throughput back after each return in
        ``returns`` (monotonic times). The seconds it took are printed and returned, not
        asserted: that is a performance floor, measured and enforced by ``bench/faults.py``
        (a timed test would fail on a noisy machine and say nothing about integrity)."""
        await self.settle()
        recoveries = [self.recovery_s(at) for at in returns]
        tally = await self.tally()
        print(f"{tally}\nthroughput back after each return (s): {recoveries}")
        self.check_recovered()
        assert tally.ok, str(tally)
        assert None not in recoveries, f"throughput never came back: {recoveries}"
        health = self.health()
        assert all(health[name].ok for name in PIPELINE), health  # and they say so
        self.check_metrics(health, tally)
        return recoveries

    def check_metrics(self, health: dict[str, ProcessHealth], tally: Tally) -> None:
        """Each process's report carries its counters (what ``GET /metrics`` serves), and a
        process that lived through the whole run counted at least every message it saw."""
        floors = {
            "bridge": ("roadledger_bridge_acked_total", tally.published),
            "ingest": ("roadledger_verifier_received_total", tally.raw),
            "sequencer": ("roadledger_sequencer_entries_total", tally.ledger),
        }
        for name, (metric, floor) in floors.items():
            values = [s.value for s in health[name].samples if s.name == metric]
            assert len(values) == 1, f"{name} reports no {metric}: {health[name].samples}"
            if not self.kills[name]:  # a restarted process counts from its restart
                assert values[0] >= floor, f"{name}: {metric} {values[0]} < {floor}"

    def stop_all(self, within_s: float = 15.0) -> None:
        """SIGTERM every process; each must exit 0 within ``within_s`` (a stop is honoured in
        every state, also after the faults it lived through)."""
        slow = []
        for name, component in self.pipeline.components.items():
            process = component.process
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                code = process.wait(timeout=within_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
                slow.append(f"roadledger {name} ignored SIGTERM for {within_s:.0f} s")
                continue
            if code != 0:
                slow.append(f"roadledger {name} exited {code} on SIGTERM:\n{component.log_tail()}")
        assert not slow, "\n".join(slow)
        health = self.health()
        assert all(health[name].state == "stopped" for name in PIPELINE), health

    def check_alive(self) -> None:
        """Fail naming any process that exited (with its log)."""
        self.pipeline.check_alive()

    def check_recovered(self) -> None:
        """Every process alive, and started only by the harness: once, plus once per kill."""
        self.check_alive()
        for name, component in self.pipeline.components.items():
            assert component.starts == 1 + self.kills[name], (
                f"roadledger {name} was started {component.starts} times for "
                f"{self.kills[name]} kills"
            )

    async def open_front_door(self) -> None:
        """Publish a probe until it reaches telemetry.raw: the bridge's session is subscribed
        (a message published before that would reach no subscriber)."""
        raw = self.settings.topic(RAW)
        probe = MqttTestClient(
            self.settings.mqtt,
            f"probe-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            account=sim_account(self.settings),
        ).connect()
        try:

            async def arrived() -> bool:
                self.check_alive()
                await asyncio.to_thread(probe.publish, mqtt_telemetry_topic("probe-device"), b"p")
                return await self.kafka.end_offsets(raw) > 0

            await wait_until(arrived, "the bridge to forward a probe into telemetry.raw", 90)
        finally:
            probe.disconnect()

    # --- publishing --------------------------------------------------------------------------

    def publish(self, messages: int, rate: int, *, vehicles: int = 500, seed: int = 7) -> None:
        """Start ``roadledger sim``: ``messages`` telemetry messages (plus the injected
        rejections of :data:`SCENARIOS`) signed first, then published at ``rate`` per second."""
        duration = max(1, round(messages / rate))
        args = [ROADLEDGER, "sim", "--vehicles", str(vehicles), "--rsus", "0",
                "--rate", str(rate), "--duration", str(duration), "--seed", str(seed),
                "--presign", "--publish-rate", str(rate), "--truth", str(self.truth_path),
                "--id-prefix", f"f{uuid.uuid4().hex[:6]}", "--quiet"]  # fmt: skip
        for scenario in SCENARIOS:
            args += ["--scenario", scenario]
        self.rate = rate
        log = (self.tmp_path / "logs" / "sim.log").open("wb")
        self.sim = subprocess.Popen(args, env=self.pipeline.env, stdout=log, stderr=log)
        log.close()

    def publishing(self) -> bool:
        return self.sim is not None and self.sim.poll() is None

    async def wait_published(self, within_s: float) -> None:
        """Until ``roadledger sim`` has exited; it must have published everything."""

        async def done() -> bool:
            self.check_alive()
            return not self.publishing()

        await wait_until(done, "roadledger sim to publish everything", within_s)
        assert self.sim is not None
        log = (self.tmp_path / "logs" / "sim.log").read_text(errors="replace")
        assert self.sim.returncode == 0, f"roadledger sim exited {self.sim.returncode}:\n{log}"

    async def wait_first_published(self, within_s: float = 120) -> None:
        """Until the first published messages are in telemetry.raw (signing is over)."""
        raw = self.settings.topic(RAW)

        async def flowing() -> bool:
            self.check_alive()
            if self.sim is not None and self.sim.poll() not in (None, 0):
                raise AssertionError(f"roadledger sim exited {self.sim.returncode}")
            return await self.kafka.end_offsets(raw) > 100

        await wait_until(flowing, "the first published messages in telemetry.raw", within_s)

    # --- observing ---------------------------------------------------------------------------

    async def leaves(self) -> int:
        value = await self.pipeline.pool.fetchval(
            "SELECT coalesce(sum(tree_size), 0) FROM ledger_logs"
        )
        return int(value)

    async def lag(self) -> int:
        """Records not yet committed, summed over the three consumer groups."""
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=5000
            )
            await self._admin.start()
        total = 0
        for group, topic in _GROUPS.items():
            name = self.settings.topic(topic)
            partitions = [TopicPartition(name, p) for p in range(self.settings.kafka_partitions)]
            ends = await self.kafka.consumer.end_offsets(partitions)
            committed = await self._admin.list_consumer_group_offsets(self.settings.group(group))
            for tp, end in ends.items():
                meta = committed.get(tp)
                total += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return total

    async def sample(self) -> Sample:
        env = self.settings
        raw = await self.kafka.end_offsets(env.topic(RAW))
        judged = await self.kafka.end_offsets(env.topic(VERIFIED))
        judged += await self.kafka.end_offsets(env.topic(QUARANTINE))
        stored = int(await self.pipeline.pool.fetchval("SELECT count(*) FROM telemetry"))
        leaves, lag = await self.leaves(), await self.lag()
        return Sample(time.monotonic(), raw, judged, stored, leaves, lag, self.publishing())

    async def _sample_forever(self) -> None:
        while True:
            try:
                async with asyncio.timeout(3):
                    self.samples.append(await self.sample())
            except _TRANSIENT:  # a service is down: no sample this time
                pass
            await asyncio.sleep(_SAMPLE_EVERY_S)  # sampling period, not a synchronisation

    def start_sampling(self) -> None:
        self._sampler = asyncio.create_task(self._sample_forever())

    async def stop_sampling(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None

    def recovery_s(self, returned_at: float) -> float | None:
        """Seconds from ``returned_at`` until throughput was back (see
        :func:`~tests.integration.fault_sampling.recovery_after`); None: never."""
        return recovery_after(self.samples, self.rate, returned_at)

    async def wait_quiescent(self, within_s: float, stable_s: float = 4.0) -> None:
        """Until the simulator is done, every consumer group has committed to the end of its
        topic and nothing moved for ``stable_s`` (the bridge may still be draining the broker).
        Fails naming what is behind, with every process's state."""
        last: list[tuple[int, int, int, int]] = []
        since = time.monotonic()
        state = "not sampled yet"

        async def quiet() -> bool:
            nonlocal since, state
            self.check_alive()
            if self.publishing():
                state = "roadledger sim still publishing"
                return False
            try:
                async with asyncio.timeout(10):
                    now = await self.sample()
            except _TRANSIENT as exc:
                state = f"a service does not answer: {exc!r}"
                return False
            key = (now.raw, now.judged, now.stored, now.leaves)
            state = (
                f"raw {now.raw}, judged {now.judged}, stored {now.stored}, "
                f"leaves {now.leaves}, uncommitted {now.lag}"
            )
            if now.lag != 0 or not last or last[-1] != key:
                last[:] = [key]
                since = time.monotonic()
                return False
            return time.monotonic() - since >= stable_s

        try:
            await wait_until(quiet, "the pipeline to be quiescent", within_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {state}") from None

    # --- counting ----------------------------------------------------------------------------

    async def tally(self, *, proofs: int = 200, max_pairs: int = 3000) -> Tally:
        """Count the ground truth against every stage and check the ledger (module docstring).
        Stops the throughput sampler (reading whole topics moves the probe's assignment)."""
        await self.stop_sampling()
        return await count_run(
            self.pipeline, self.kafka, self.truth_path, proofs=proofs, max_pairs=max_pairs
        )

    async def close(self) -> None:
        await self.stop_sampling()
        if self.sim is not None and self.sim.poll() is None:
            self.sim.kill()
            self.sim.wait()
        if self._admin is not None:
            await self._admin.close()


@contextlib.asynccontextmanager
async def fault_run(settings: Settings, tmp_path: Path) -> AsyncIterator[FaultRun]:
    """A private pipeline on the services ``settings`` names, its processes not started yet.

    The services' addresses go to every process the run starts (the scratch pipeline passes
    only the database, topics and keys), so private instances work as the shared ones do.
    """
    async with pipeline_env(settings, tmp_path) as pipeline:
        pipeline.env.update(
            {
                "ROADLEDGER_MQTT_URL": settings.mqtt_url,
                "ROADLEDGER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "ROADLEDGER_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
            }
        )
        kafka = KafkaProbe(pipeline.settings)
        await kafka.start()
        run = FaultRun(pipeline, kafka, tmp_path)
        try:
            yield run
        finally:
            await run.close()
            await kafka.stop()
            # Every process is stopped before anything is dropped, even when one of them
            # ignores SIGTERM (the scratch pipeline would stop at the first and drop the schema
            # under the others, leaving them running).
            stuck = []
            for component in pipeline.components.values():
                try:
                    await asyncio.to_thread(component.stop)
                except AssertionError as exc:
                    stuck.append(str(exc))
            if stuck:
                raise AssertionError("; ".join(stuck))
