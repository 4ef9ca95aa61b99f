"""What the pipeline did compared with what the simulator says it should have done."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.demo.pipeline import PipelineCounts
from app.scoring import ScoreReport

__all__ = ["DemoResult", "compare_outcomes", "observed_outcomes"]

_STORED, _DUPLICATE = "stored", "duplicate"


def observed_outcomes(counts: PipelineCounts) -> dict[str, int]:
    """Outcomes in the truth file's vocabulary: ``stored``, ``duplicate``,
    ``quarantine:<reason>``. ``stored`` is telemetry rows new to the database."""
    observed = {_STORED: counts.stored_new}
    for reason, n in counts.rejected.items():
        observed[_DUPLICATE if reason == _DUPLICATE else f"quarantine:{reason}"] = n
    return {outcome: n for outcome, n in sorted(observed.items()) if n}


def compare_outcomes(
    expected: dict[str, int], observed: dict[str, int]
) -> list[tuple[str, int, int]]:
    """``(outcome, expected, observed)`` for every outcome either side has."""
    names = sorted(expected.keys() | observed.keys())
    return [(name, expected.get(name, 0), observed.get(name, 0)) for name in names]


@dataclass(frozen=True, slots=True)
class DemoResult:
    """The end of a demo run."""

    published: int
    expected: dict[str, int]
    observed: dict[str, int]
    counts: PipelineCounts
    truth_path: Path | None
    database_url: str
    services: dict[str, str]
    start_to_first_publish_s: float | None
    drained: bool
    interrupted: bool = False
    warnings: int = 0
    rows: list[tuple[str, int, int]] = field(default_factory=list)
    startup: dict[str, float] = field(default_factory=dict)
    """Start-up phase -> seconds from the demo's start until that phase was done."""
    warning_report: ScoreReport | None = None
    """The warnings analytics stored, scored against the truth's events."""

    @property
    def accounted(self) -> bool:
        """Every published message has an outcome, and they match the truth."""
        return (
            self.drained
            and not self.interrupted
            and sum(self.observed.values()) == self.published
            and all(expected == observed for _, expected, observed in self.rows)
        )
