"""TODO(geofencing): detector (skeleton; being written)."""

from __future__ import annotations

from analytics.warnings.checks import Check

__all__ = ["GeofenceCheck"]


class GeofenceCheck(Check):
    """Placeholder: finds nothing yet."""
