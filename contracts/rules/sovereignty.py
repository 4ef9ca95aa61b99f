"""Who may publish what where: the checks a rules version passes against its publisher.

Only an organisation of kind ``authority`` publishes rules. Its geofences and the segments of
its segment speed limits must lie inside its jurisdiction (:class:`~.jurisdiction.Area`: its
own polygon and its units'), and an authority without a jurisdiction publishes nothing that
sets a rule, since rules apply only inside their publisher's jurisdiction (a version setting
nothing is harmless and accepted). Refusals are :class:`RulesForbidden` (403) naming the
field, or :class:`RulesInvalid` (422) for a segment no road network knows.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.access import OrgKind
from contracts.rules.errors import RulesForbidden, RulesInvalid
from contracts.rules.geometry import Vertex
from contracts.rules.jurisdiction import Area
from contracts.rules.model import RuleVersion

__all__ = ["check_sovereignty"]


def check_sovereignty(
    rules: RuleVersion,
    kind: str,
    area: Area | None,
    segment_ends: Mapping[int, tuple[Vertex, Vertex]],
) -> None:
    """Refuse ``rules`` unless its publisher (of ``kind``, with ``area``) may set them.

    ``segment_ends``: the end points of the road segments the version's speed limits name
    (a segment missing from it is unknown).
    """
    org = rules.org_id
    if kind != OrgKind.AUTHORITY:
        raise RulesForbidden("org_id", f"{org!r} is a {kind}: only an authority publishes rules")
    if area is None or not area.polygons:
        if rules.speed_limits or rules.geofences or rules.thresholds:
            raise RulesForbidden(
                "org_id", f"authority {org!r} has no jurisdiction: its rules would apply nowhere"
            )
        return
    for i, fence in enumerate(rules.geofences):
        if not area.covers(fence.polygon):
            raise RulesForbidden(
                f"geofences[{i}].polygon",
                f"geofence {fence.id!r} is not inside the jurisdiction of {org!r}",
            )
    for i, limit in enumerate(rules.speed_limits):
        if limit.segment_id is None:
            continue  # a road-class limit applies inside the jurisdiction, wherever that is
        ends = segment_ends.get(limit.segment_id)
        if ends is None:
            raise RulesInvalid(
                f"speed_limits[{i}].segment_id", f"unknown road segment {limit.segment_id}"
            )
        if not all(area.contains(lat, lon) for lat, lon in ends):
            raise RulesForbidden(
                f"speed_limits[{i}].segment_id",
                f"segment {limit.segment_id} is not inside the jurisdiction of {org!r}",
            )
