"""TODO(speeding): detector (skeleton; being written)."""

from __future__ import annotations

from analytics.warnings.checks import Check

__all__ = ["SpeedingCheck"]


class SpeedingCheck(Check):
    """Placeholder: finds nothing yet."""
