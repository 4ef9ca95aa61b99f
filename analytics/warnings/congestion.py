"""TODO(congestion): detector (skeleton; being written)."""

from __future__ import annotations

from analytics.warnings.checks import Check

__all__ = ["CongestionCheck"]


class CongestionCheck(Check):
    """Placeholder: finds nothing yet."""
