"""The services under the pipeline fail under load: nothing lost, nothing twice, no restart.

Each test runs the real ``roadledger bridge``, ``ingest`` and ``sequencer`` processes on a
PRIVATE PostgreSQL or Kafka (``private_services``), publishes a simulated fleet at a bounded
rate, and crashes, pauses or restarts that service mid-run. No process may be restarted from
outside: each must wait the outage out by itself (one log line when it starts, one when it
ends), and once the pipeline is quiet every published message is counted at every stage by
(device, seq) and by leaf hash (``fault_harness``): 0 lost, 0 duplicated, every stored row a
leaf, checkpoints consistent, sampled inclusion proofs valid.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from roadledger.settings import Settings
from tests.integration.fault_harness import FaultRun, fault_run
from tests.integration.private_services import private_services
from tests.support.pipeline import wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.mqtt,
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.faults,
]

RATE = 500  # msg/s offered


def _outage_lines(run: FaultRun, service: str) -> dict[str, tuple[int, int]]:
    """Per process: (lines saying ``service`` is unavailable, lines saying it is back)."""
    counts = {}
    for name in run.pipeline.components:
        text = "".join(
            log.read_text(errors="replace")
            for log in sorted(run.pipeline.log_dir.glob(f"{name}.*.log"))
        )
        counts[name] = (text.count(f"{service} unavailable"), text.count(f"{service} is back"))
    return counts


async def test_postgres_immediate_restart_under_load(settings: Settings, tmp_path: Path) -> None:
    async with (
        private_services(settings, postgres=True) as services,
        fault_run(services.settings, tmp_path) as run,
    ):
        run.start()
        await run.open_front_door()
        run.start_sampling()
        run.publish(15_000, RATE)
        await run.wait_first_published()
        await run.wait_ledger_growth(2000, "before the outage")
        services.postgres_immediate_stop()
        stopped_at = time.monotonic()

        async def reported() -> bool:  # health says so while it lasts (roadledger health)
            health = run.health()
            return all(
                health[name].state == "degraded" and "PostgreSQL down" in health[name].detail
                for name in ("ingest", "sequencer")
            )

        await wait_until(reported, "ingest and sequencer to report PostgreSQL down", 30)
        # The outage's length is the fault, not a synchronisation.
        await asyncio.sleep(max(0.0, 5 - (time.monotonic() - stopped_at)))
        await asyncio.to_thread(services.postgres_start)
        returned = time.monotonic()
        await run.settle_and_count([returned])
        lines = _outage_lines(run, "PostgreSQL")
        print(lines)
        for name in ("ingest", "sequencer"):
            down, back = lines[name]
            # One pair per component that noticed (verifier, store writer, ledger writer,
            # outbox relay): never one per retry.
            assert 1 <= down <= 4, (name, lines)
            assert back == down, (name, lines)


async def test_kafka_paused_20s_under_load(settings: Settings, tmp_path: Path) -> None:
    async with (
        private_services(settings, postgres=False, kafka=True) as services,
        fault_run(services.settings, tmp_path) as run,
    ):
        run.start()
        await run.open_front_door()
        run.start_sampling()
        run.publish(20_000, RATE)
        await run.wait_first_published()
        await run.wait_ledger_growth(2000, "before the pause")
        services.kafka_signal(signal.SIGSTOP)
        await asyncio.sleep(20)  # the pause's length is the fault, not a synchronisation
        services.kafka_signal(signal.SIGCONT)
        returned = time.monotonic()
        await run.settle_and_count([returned])
        for name, text in _error_lines(run).items():
            assert text.count("\n") < 100, f"{name} logged every retry:\n{text[:3000]}"


async def test_kafka_sigkilled_and_restarted_under_load(settings: Settings, tmp_path: Path) -> None:
    async with (
        private_services(settings, postgres=False, kafka=True) as services,
        fault_run(services.settings, tmp_path) as run,
    ):
        run.start()
        await run.open_front_door()
        run.start_sampling()
        run.publish(15_000, RATE)
        await run.wait_first_published()
        await run.wait_ledger_growth(2000, "before the kill")
        services.kafka_signal(signal.SIGKILL)
        await asyncio.to_thread(services.kafka_start)
        returned = time.monotonic()
        await run.settle_and_count([returned])


def _error_lines(run: FaultRun) -> dict[str, str]:
    """Per process, every log line at ERROR or about an unreachable broker."""
    found = {}
    for name in run.pipeline.components:
        lines = [
            line
            for log in sorted(run.pipeline.log_dir.glob(f"{name}.*.log"))
            for line in log.read_text(errors="replace").splitlines()
            if "ERROR" in line or "Unable connect" in line
        ]
        found[name] = "\n".join(lines) + "\n" if lines else ""
    return found
