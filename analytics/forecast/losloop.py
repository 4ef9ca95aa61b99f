"""Loader of the Los-loop data set (real Los Angeles loop-detector speeds, METR-LA subset).

``<shared_dir>/data/los-loop/``: ``los_speed.csv`` (2016 rows of 5-minute speeds in mph,
one column per sensor, header = sensor ids) and ``los_adj.csv`` (sensor adjacency, no header,
same order; weighted, any non-zero entry counts as a link). The series start at midnight
(Thursday 1 March 2012, 00:00 local time), so row 0 is slot 0 of a working day.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analytics.forecast.grid import GridError, SeriesGrid, neighbours_from_adjacency

__all__ = ["LOS_LOOP_SUBDIR", "LosLoopMissing", "load_los_loop", "los_loop_dir"]

LOS_LOOP_SUBDIR = Path("data") / "los-loop"
SPEED_FILE = "los_speed.csv"
ADJACENCY_FILE = "los_adj.csv"
FIRST_WEEKDAY = 3  # 2012-03-01 was a Thursday


class LosLoopMissing(FileNotFoundError):
    """The Los-loop files are not where the settings say (the message names the path)."""


def los_loop_dir(shared_dir: Path) -> Path:
    """Where the Los-loop files live under ``shared_dir``."""
    return shared_dir / LOS_LOOP_SUBDIR


def load_los_loop(data_dir: Path) -> SeriesGrid:
    """The speed grid (mph) with neighbours from the adjacency matrix."""
    speed_path, adjacency_path = data_dir / SPEED_FILE, data_dir / ADJACENCY_FILE
    for path in (speed_path, adjacency_path):
        if not path.is_file():
            raise LosLoopMissing(f"{path} not found (set ROADLEDGER_SHARED_DIR or pass --data)")
    with speed_path.open(encoding="utf-8") as handle:
        ids = tuple(name.strip() for name in handle.readline().split(","))
    try:
        speeds = np.loadtxt(speed_path, delimiter=",", skiprows=1, ndmin=2)
        adjacency = np.loadtxt(adjacency_path, delimiter=",", ndmin=2)
    except ValueError as exc:
        raise GridError(f"{speed_path.parent}: unreadable CSV ({exc})") from exc
    if speeds.shape[1] != len(ids):
        found = speeds.shape[1]
        raise GridError(f"{speed_path.name}: {len(ids)} ids in the header, {found} columns")
    if adjacency.shape != (len(ids), len(ids)):
        raise GridError(
            f"{adjacency_path.name}: shape {adjacency.shape} does not match "
            f"{len(ids)} sensors in {speed_path.name}"
        )
    return SeriesGrid(
        values=speeds,
        ids=ids,
        step_minutes=5,
        first_slot=0,
        neighbours=neighbours_from_adjacency(adjacency),
        first_weekday=FIRST_WEEKDAY,
    )
