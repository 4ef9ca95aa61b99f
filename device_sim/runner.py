"""Running a simulation end to end: generate (optionally all of it first), publish, record.

:func:`run_simulation` is what ``roadledger sim`` and the embedded demo call after registering
the fleet: it streams the run's messages into a publisher (or, with ``presign``, signs the
whole run into memory first, so that publishing measures the broker and the pipeline, not
Ed25519), and writes the truth file along the way with its summary line at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from device_sim.emitter import Outgoing
from device_sim.publisher import PublishReport
from device_sim.simulation import Simulation
from device_sim.truth import TruthWriter

__all__ = ["Publisher", "RunResult", "run_simulation"]


class Publisher(Protocol):
    """Anything that publishes a run's messages (:class:`~device_sim.publisher.MqttPublisher`)."""

    def publish(self, messages: Iterable[Outgoing], total: int | None = None) -> PublishReport: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run did: messages generated, their expected outcomes, and the publish report."""

    messages: int
    expected: dict[str, int]
    warnings: int
    report: PublishReport | None
    truth_path: Path | None
    signing_s: float | None = field(default=None)


def run_simulation(
    simulation: Simulation,
    *,
    truth_path: Path | None,
    publisher: Publisher | None,
    presign: bool = False,
    on_signed: Callable[[int], None] | None = None,
) -> RunResult:
    """Generate the run and publish it (``publisher`` None: a dry run that only writes truth).

    ``on_signed(count)`` is called every 1000 messages while pre-signing. Raises what the
    publisher raises (``PublishError``); the truth file then has no summary line.
    """
    target = truth_path if truth_path is not None else Path(os.devnull)
    if truth_path is not None:
        truth_path.parent.mkdir(parents=True, exist_ok=True)
    signing_s = None
    with TruthWriter(target) as truth:
        stream: Iterable[Outgoing] = simulation.messages(truth)
        if presign:
            started = time.monotonic()
            signed: list[Outgoing] = []
            for outgoing in stream:
                signed.append(outgoing)
                if on_signed is not None and len(signed) % 1000 == 0:
                    on_signed(len(signed))
            if on_signed is not None:
                on_signed(len(signed))
            signing_s = time.monotonic() - started
            stream = signed
        report = None
        if publisher is not None:
            total = len(stream) if isinstance(stream, list) else None
            report = publisher.publish(stream, total=total)
        else:
            for _ in stream:
                pass
        truth.summary(report.published if report else None, report.acked if report else None)
    return RunResult(
        messages=sum(truth.counts.values()),
        expected=dict(sorted(truth.counts.items())),
        warnings=truth.warnings,
        report=report,
        truth_path=truth_path,
        signing_s=signing_s,
    )
