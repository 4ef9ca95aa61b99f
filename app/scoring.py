"""Warnings scored against the simulator's ground truth: precision and recall per type.

A truth event (a ``warning`` line of a ``roadledger sim --truth`` file) and a stored warning
match when they have the same type, the same subject (device id, or ``segment:<id>`` for a
segment's warnings such as congestion), and the warning's time span overlaps the
event's span widened by ``tolerance_ms`` on both sides (detectors report at message times,
an excursion also at the message after it, and a late delivery at its arrival).

- recall of a type = events matched by at least one warning / events;
- precision of a type = warnings that match some event / warnings.

``optional`` events (truth lines with ``required: false``: injected, but never observable by
the rule that defines the type) make a warning that matches them right, and are not counted
as events: detecting one is correct, missing one is not a miss.

One event reported by several warnings (a spoofed excursion has two edges, three forged
messages make three warnings) costs neither: each of those warnings is correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analytics.warnings.model import Warning
from device_sim.truth import WarningTruth

__all__ = ["Score", "ScoreReport", "score_warnings", "subject"]


@dataclass(frozen=True, slots=True)
class Score:
    """One type's counts."""

    type: str
    events: int
    events_found: int
    warnings: int
    warnings_matching: int

    @property
    def recall(self) -> float | None:
        return self.events_found / self.events if self.events else None

    @property
    def precision(self) -> float | None:
        return self.warnings_matching / self.warnings if self.warnings else None


@dataclass(frozen=True, slots=True)
class ScoreReport:
    scores: tuple[Score, ...]

    def below(self, floor: float) -> list[str]:
        """Types whose precision or recall is under ``floor`` (a type with events but no
        warnings has recall 0; one with warnings but no events has precision 0)."""
        out = []
        for s in self.scores:
            recall = s.recall if s.recall is not None else 1.0
            precision = s.precision if s.precision is not None else (0.0 if s.events else 1.0)
            if recall < floor or precision < floor:
                out.append(s.type)
        return out

    def table(self) -> str:
        """A fixed-width table, one line per type."""

        def fmt(value: float | None) -> str:
            return "   -" if value is None else f"{value:4.2f}"

        lines = [f"{'type':<20} {'events':>6} {'found':>6} {'warnings':>8} {'right':>6} "
                 f"{'precision':>9} {'recall':>6}"]  # fmt: skip
        for s in self.scores:
            lines.append(
                f"{s.type:<20} {s.events:>6} {s.events_found:>6} {s.warnings:>8} "
                f"{s.warnings_matching:>6} {fmt(s.precision):>9} {fmt(s.recall):>6}"
            )
        return "\n".join(lines)


def subject(warning: Warning) -> str:
    """What a warning is about, as the truth file names it: a device id, or
    ``segment:<id>`` for a road segment."""
    return warning.device_id or f"segment:{warning.segment_id}"


def _overlaps(warning: Warning, event: WarningTruth, tolerance_ms: int) -> bool:
    return (
        subject(warning) == event.device
        and warning.from_ts_ms <= event.to_ts + tolerance_ms
        and warning.to_ts_ms >= event.from_ts - tolerance_ms
    )


def score_warnings(
    truth: Sequence[WarningTruth],
    warnings: Sequence[Warning],
    *,
    optional: Sequence[WarningTruth] = (),
    tolerance_ms: int = 10_000,
) -> ScoreReport:
    """Precision and recall per type (see the module docstring)."""
    types = sorted({e.type for e in truth} | {w.type.value for w in warnings})
    scores = []
    for kind in types:
        events = [e for e in truth if e.type == kind]
        acceptable = events + [e for e in optional if e.type == kind]
        found = [w for w in warnings if w.type.value == kind]
        matched_events = sum(1 for e in events if any(_overlaps(w, e, tolerance_ms) for w in found))
        right = sum(1 for w in found if any(_overlaps(w, e, tolerance_ms) for e in acceptable))
        scores.append(Score(kind, len(events), matched_events, len(found), right))
    return ScoreReport(tuple(scores))
