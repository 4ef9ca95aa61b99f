"""Pipeline processes SIGKILLed under load, on the shared services: nothing lost, nothing twice.

A private pipeline (``fault_harness``) with the real ``roadledger bridge``, ``ingest`` and
``sequencer`` processes and a simulated fleet publishing at a bounded rate. The test SIGKILLs
one process while messages flow and starts it again at once (the kill is the fault; the
restart is what a supervisor would do, the only outside help allowed). Once the pipeline is
quiet, every published message is counted at every stage against the simulator's ground truth
by (device, seq) and by leaf hash: 0 lost, 0 duplicated, every stored row a leaf, the ledger's
checkpoints consistent and sampled inclusion proofs valid; every other process must have lived
through it untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roadledger.settings import Settings
from tests.integration.fault_harness import fault_run

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.mqtt,
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.faults,
]

RATE = 500  # msg/s offered: load the 2-core machine can carry beside other work


async def test_sequencer_sigkilled_five_times_under_load(
    settings: Settings, tmp_path: Path
) -> None:
    async with fault_run(settings, tmp_path) as run:
        run.start()
        await run.open_front_door()
        run.start_sampling()
        # 72 s of publishing outlast five kills, even a restart that waits out Kafka's 10 s
        # session timeout (the fault pipeline uses static membership: about 1-2 s each).
        run.publish(36_000, RATE)
        await run.wait_first_published()
        returns = await run.kill_cycles("sequencer", 5, (300, 1500))
        assert run.publishing(), "every kill under load: publishing must outlast them"
        await run.settle_and_count(returns)
        run.stop_all()  # and each stops on SIGTERM within seconds
        assert run.kills["sequencer"] == 5


async def test_ingest_sigkilled_under_load(settings: Settings, tmp_path: Path) -> None:
    async with fault_run(settings, tmp_path) as run:
        run.start()
        await run.open_front_door()
        run.start_sampling()
        run.publish(10_000, RATE)
        await run.wait_first_published()
        returns = [await run.kill_when_progressing("ingest", 3000, "before the kill")]
        assert run.publishing(), "the kill under load: publishing must outlast it"
        await run.settle_and_count(returns)
        run.stop_all()  # and each stops on SIGTERM within seconds
