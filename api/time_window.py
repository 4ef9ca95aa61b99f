"""The time window of a vehicle-data read: ``?from_ms=&to_ms=`` (ms since the epoch, device
time, ``from <= ts < to``), both required, at most :data:`MAX_SPAN_DAYS` apart. A window that
is empty, reversed or too long is 422 naming ``to_ms``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from api.models.common import MAX_EPOCH_MS
from contracts.errors import Invalid

__all__ = ["MAX_SPAN_DAYS", "TimeWindow", "WindowDep"]

MAX_SPAN_DAYS = 31
_MAX_MS = MAX_EPOCH_MS


class BadWindow(Invalid):
    """The window is empty, reversed or too long; the message names the field."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A checked window ``[from_ms, to_ms)``."""

    from_ms: int
    to_ms: int


def _window(
    from_ms: Annotated[
        int, Query(ge=0, le=_MAX_MS, description="Start (ms since the epoch, included)")
    ],
    to_ms: Annotated[
        int, Query(ge=0, le=_MAX_MS, description="End (ms since the epoch, excluded)")
    ],
) -> TimeWindow:
    if to_ms <= from_ms:
        raise BadWindow("to_ms: must be after from_ms")
    if to_ms - from_ms > MAX_SPAN_DAYS * 86_400_000:
        raise BadWindow(f"to_ms: a window spans at most {MAX_SPAN_DAYS} days")
    return TimeWindow(from_ms, to_ms)


WindowDep = Annotated[TimeWindow, Depends(_window)]
