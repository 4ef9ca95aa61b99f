"""TODO(odometer_gnss): detector (skeleton; being written)."""

from __future__ import annotations

from analytics.warnings.checks import Check

__all__ = ["OdometerGnssCheck"]


class OdometerGnssCheck(Check):
    """Placeholder: finds nothing yet."""
