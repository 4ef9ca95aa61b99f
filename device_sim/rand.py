"""Seeded randomness: every random choice of the simulator comes from a stream made here.

Streams are named (``seeded(seed, "vehicle", device_id)``) so adding a vehicle or a scenario
never shifts the random numbers another part of the simulation draws. ``random.Random`` seeded
with a string hashes it with SHA-512, so the streams do not depend on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import random

__all__ = ["seeded"]


def seeded(seed: int, *names: object) -> random.Random:
    """An independent, reproducible random stream for ``seed`` and a name path."""
    key = "/".join(["roadledger-sim", str(seed), *(str(name) for name in names)])
    # Reproducibility is the point here; nothing secret is ever drawn from these streams.
    return random.Random(key)  # noqa: S311
