"""Throughput samples of a fault run, and how long the pipeline took to recover from a fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Sample", "recovery_after"]


@dataclass(frozen=True)
class Sample:
    """How far each stage had got at monotonic time ``at`` (``lag``: records not committed
    yet, summed over the consumer groups; ``publishing``: the simulator was still running)."""

    at: float
    raw: int
    judged: int
    stored: int
    leaves: int
    lag: int
    publishing: bool


def recovery_after(samples: Sequence[Sample], rate: int, returned_at: float) -> float | None:
    """Seconds from ``returned_at`` until throughput was back: within one second wholly
    after it, the ledger and the telemetry table grew by at least half the offered rate
    (or nothing was left to do), and so did telemetry.raw while the simulator was still
    publishing (half of ``rate``, per second). None: never, as far as the samples go."""
    need = rate / 2
    for i, now in enumerate(samples):
        before = next((s for s in reversed(samples[:i]) if s.at <= now.at - 1.0), None)
        if before is None or before.at < returned_at:
            continue
        span = now.at - before.at
        downstream = now.lag == 0 or (
            now.leaves - before.leaves >= need * span and now.stored - before.stored >= need * span
        )
        upstream = not now.publishing or now.raw - before.raw >= need * span
        if downstream and upstream:
            return now.at - returned_at
    return None
