"""Grids, neighbours and time-of-day profiles."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.forecast.grid import GridError, SeriesGrid, neighbours_from_adjacency
from analytics.forecast.profile import DailyProfile


def test_neighbours_are_symmetric_strongest_first_and_never_self() -> None:
    adjacency = [[1.0, 0.2, 0.9], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert neighbours_from_adjacency(adjacency) == ((2, 1), (0,), (0,))
    with pytest.raises(GridError, match="adjacency"):
        neighbours_from_adjacency([[1.0, 0.0]])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ids": ("a",)}, "ids"),
        ({"step_minutes": 7}, "step_minutes"),
        ({"first_slot": 288}, "first_slot"),
        ({"first_weekday": 7}, "first_weekday"),
        ({"neighbours": ((0,), ())}, "neighbours"),
    ],
)
def test_bad_grids_name_the_field(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"values": np.zeros((3, 2)), "ids": ("a", "b")} | kwargs
    with pytest.raises(GridError, match=field):
        SeriesGrid(**arguments)  # type: ignore[arg-type]


def test_clock_slots_and_weekends() -> None:
    # 6-hour steps: 4 slots a day; starting Friday 18:00 (slot 3).
    grid = SeriesGrid(np.zeros((10, 1)), ("a",), step_minutes=360, first_slot=3, first_weekday=4)
    assert grid.slots(np.arange(6)).tolist() == [3, 0, 1, 2, 3, 0]
    # rows 0 Fri, 1-4 Sat, 5-8 Sun, 9 Mon
    assert grid.day_kinds(np.arange(10)).tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    tail = grid.tail_from(5)
    assert (tail.first_slot, tail.first_weekday) == (0, 6)


def test_profile_leaves_the_rows_own_day_out() -> None:
    values = np.array([1.0, 2, 3, 4, 5, 6, 7, 8])[:, None]  # two days of 4 slots
    grid = SeriesGrid(values, ("a",), step_minutes=360)
    profile = DailyProfile.fit(grid, half_width=0)
    assert profile.at(np.array([0, 3]), np.array([0, 0]))[:, 0].tolist() == [3, 6]
    assert profile.loo(np.array([0, 4, 7]))[:, 0].tolist() == [5, 1, 4]


def test_profile_separates_weekends_and_falls_back() -> None:
    # Friday 10, Saturday 20 at every slot; Sunday unseen shares Saturday's kind.
    values = np.array([10.0] * 4 + [20.0] * 4)[:, None]
    grid = SeriesGrid(values, ("a",), step_minutes=360, first_weekday=4)
    profile = DailyProfile.fit(grid, half_width=0)
    assert profile.at(np.array([1, 1]), np.array([0, 1]))[:, 0].tolist() == [10, 20]
    # A working-day row's own day left out: no other working day, so the series' mean.
    assert profile.loo(np.array([1]))[0, 0] == 15
