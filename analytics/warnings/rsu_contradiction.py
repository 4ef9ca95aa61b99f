"""TODO(rsu_contradiction): detector (skeleton; being written)."""

from __future__ import annotations

from analytics.warnings.checks import Check

__all__ = ["RsuContradictionCheck"]


class RsuContradictionCheck(Check):
    """Placeholder: finds nothing yet."""
