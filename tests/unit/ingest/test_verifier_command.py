"""``roadledger ingest``: its help names every check, and components stop together."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from app.commands import ingest
from chain.errors import RejectReason
from contracts.errors import CommandError
from roadledger.settings import Settings


def test_help_explains_every_reason_code_the_verifier_emits() -> None:
    parser = argparse.ArgumentParser(description=ingest.DESCRIPTION)
    ingest.configure(parser)
    text = parser.format_help()
    for reason in set(RejectReason) - {RejectReason.CHAIN_BROKEN}:  # chain: the ledger's
        assert f"\n  {reason.value} " in ingest.DESCRIPTION, reason
    assert "telemetry.verified" in text
    assert "--stats-interval" in text
    assert parser.parse_args([]).stats_interval == 30.0


def test_a_non_positive_stats_interval_is_refused() -> None:
    with pytest.raises(CommandError, match="stats-interval") as info:
        ingest.run(argparse.Namespace(stats_interval=0.0), Settings())
    assert info.value.exit_code == 2


class Worker:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stopped = False

    async def run(self, stop: asyncio.Event) -> None:
        if self.fail:
            raise RuntimeError("broken component")
        await stop.wait()
        self.stopped = True


async def test_components_run_until_stopped() -> None:
    stop = asyncio.Event()
    components = [Worker(), Worker()]
    task = asyncio.create_task(ingest.run_components(components, stop))
    stop.set()
    await asyncio.wait_for(task, 10)
    assert all(c.stopped for c in components)


async def test_one_failing_component_stops_the_others_and_raises() -> None:
    stop = asyncio.Event()
    healthy = Worker()
    with pytest.raises(RuntimeError, match="broken component"):
        await asyncio.wait_for(ingest.run_components([healthy, Worker(fail=True)], stop), 10)
    assert stop.is_set()
    assert healthy.stopped, "the healthy component finished its work and returned"
