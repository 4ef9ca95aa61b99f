"""The situations of the authorisation matrix (``matrix_table``): who asks, described by what
decides access (organisation and kind, roles, a login or an API key and its scopes), and its
relation to fleet-a's vehicles and to police's jurisdiction (``matrix_world`` makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from contracts.access import DATA_ROLES, OrgKind, Role


class Vehicle(StrEnum):
    """The situation's relation to the fleet-a vehicle a route names."""

    OWNER = "owner"
    GRANTED = "granted"  # an active grant of every scope naming it
    OTHER_SCOPE = "other scope"  # an active grant naming it, of another scope than the route's
    PENDING = "pending"  # a grant of every scope naming it, valid from tomorrow
    EXPIRED = "expired"
    REVOKED = "revoked"
    OTHER_SET = "other set"  # an active grant of every scope on other fleet-a vehicles only
    NONE = "none"  # never granted anything of fleet-a


class Area(StrEnum):
    """The situation's relation to police's jurisdiction (the warning w-a1, segment 7)."""

    OWN = "own"  # police: it is its jurisdiction
    UNIT = "unit's"  # ministry: police is its district unit
    PARENT = "parent's"  # police-north: police is its parent
    SIBLING = "sibling's"  # harbour: police is another unit of its parent
    UNRELATED = "unrelated"  # county
    NONE = "-"  # not an authority


GRANT_SEEN = (Vehicle.GRANTED, Vehicle.OTHER_SCOPE, Vehicle.PENDING, Vehicle.EXPIRED,
              Vehicle.REVOKED)  # fmt: skip
NOT_NOW = (Vehicle.OTHER_SCOPE, Vehicle.PENDING, Vehicle.EXPIRED, Vehicle.REVOKED)


@dataclass(frozen=True)
class Situation:
    """Who asks. ``user``: a member's login; ``key``: an API key of ``org`` holding ``roles``,
    for ``any`` scope, ``scoped`` to the route's scope, or to an ``other``; ``body``: no
    header, credentials in the body, ``good`` or ``bad`` (every other situation sends good
    ones); ``ended``: the key was revoked, the login's session ended (logged out)."""

    org: str | None = None
    kind: OrgKind | None = None
    roles: frozenset[Role] = frozenset()
    user: str | None = None
    key: str | None = None
    body: str | None = None
    vehicle: Vehicle = Vehicle.NONE
    area: Area = Area.NONE
    ended: bool = False

    @property
    def authenticated(self) -> bool:
        return (self.user is not None or self.key is not None) and not self.ended

    @property
    def admin(self) -> bool:
        return Role.ADMIN in self.roles

    @property
    def reads_data(self) -> bool:
        """A data role, and (a key) scoped for the route's scope."""
        return bool(self.roles & DATA_ROLES) and self.key != "other"


def _member(
    org: str,
    kind: OrgKind,
    user: str,
    *roles: Role,
    vehicle: Vehicle = Vehicle.NONE,
    area: Area = Area.NONE,
) -> Situation:
    return Situation(org, kind, frozenset(roles), user, vehicle=vehicle, area=area)


def _owner(user: str, role: Role) -> Situation:
    return _member("fleet-a", OrgKind.FLEET_OWNER, user, role, vehicle=Vehicle.OWNER)


def _key(scopes: str, role: Role = Role.ADMIN, *, grantee: bool = False) -> Situation:
    org, kind = ("insurer-x", OrgKind.INSURER) if grantee else ("fleet-a", OrgKind.FLEET_OWNER)
    vehicle = Vehicle.GRANTED if grantee else Vehicle.OWNER
    return Situation(org, kind, frozenset({role}), key=scopes, vehicle=vehicle)


def _insurer(org: str, user: str, vehicle: Vehicle, role: Role = Role.INSURER) -> Situation:
    return _member(org, OrgKind.INSURER, user, role, vehicle=vehicle)


def _authority(org: str, user: str, area: Area, role: Role = Role.ANALYST) -> Situation:
    return _member(org, OrgKind.AUTHORITY, user, role, area=area)


OPS, WIT = OrgKind.OPERATOR, OrgKind.WITNESS
# fmt: off
SITUATIONS: Mapping[str, Situation] = {
    "anonymous": Situation(),
    "good-credentials": Situation(body="good"),
    "bad-credentials": Situation(body="bad"),
    "owner-admin": _owner("fleet-a-admin", Role.ADMIN),
    "owner-analyst": _owner("fleet-a-analyst", Role.ANALYST),
    "owner-auditor": _owner("fleet-a-auditor", Role.AUDITOR),
    "owner-operator": _owner("fleet-a-ops", Role.OPERATOR),
    "owner-insurer": _owner("fleet-a-insurer", Role.INSURER),
    "owner-witness": _owner("fleet-a-witness", Role.WITNESS),
    "owner-key": _key("any"),
    "owner-key-scoped": _key("scoped"),
    "owner-key-other-scope": _key("other"),
    "owner-key-analyst": _key("any", Role.ANALYST),
    "owner-key-revoked": replace(_key("any"), ended=True),
    "owner-admin-logged-out": replace(_owner("fleet-a-admin", Role.ADMIN), ended=True),
    "grantee": _insurer("insurer-x", "insurer-x-agent", Vehicle.GRANTED),
    "grantee-admin": _insurer("insurer-x", "insurer-x-admin", Vehicle.GRANTED, Role.ADMIN),
    "grantee-analyst": _insurer("insurer-x", "insurer-x-analyst", Vehicle.GRANTED, Role.ANALYST),
    "grantee-auditor": _insurer("insurer-x", "insurer-x-auditor", Vehicle.GRANTED, Role.AUDITOR),
    "grantee-operator": _insurer("insurer-x", "insurer-x-ops", Vehicle.GRANTED, Role.OPERATOR),
    "grantee-witness": _insurer("insurer-x", "insurer-x-witness", Vehicle.GRANTED, Role.WITNESS),
    "grantee-key-other-scope": _key("other", grantee=True),
    "grantee-other-scope": _insurer("insurer-y/z", "narrow-*", Vehicle.OTHER_SCOPE),
    "grantee-pending": _insurer("insurer-pend", "pending-agent", Vehicle.PENDING),
    "grantee-expired": _insurer("insurer-exp", "expired-agent", Vehicle.EXPIRED),
    "grantee-revoked": _insurer("insurer-rev", "revoked-agent", Vehicle.REVOKED),
    "grantee-other-set": _insurer("insurer-set", "other-set-agent", Vehicle.OTHER_SET),
    "stranger": _member("fleet-b", OrgKind.FLEET_OWNER, "fleet-b-admin", Role.ADMIN),
    "workshop-admin": _member("workshop-q", OrgKind.WORKSHOP, "workshop-q-admin", Role.ADMIN),
    "authority": _authority("police", "police-analyst", Area.OWN),
    "authority-admin": _authority("police", "police-admin", Area.OWN, Role.ADMIN),
    "authority-parent": _authority("ministry", "ministry-analyst", Area.UNIT),
    "authority-unit": _authority("police-north", "north-analyst", Area.PARENT),
    "authority-sibling": _authority("harbour", "harbour-analyst", Area.SIBLING),
    "authority-outside": _authority("county", "county-analyst", Area.UNRELATED),
    "operator-admin": _member("operator", OPS, "ops", Role.ADMIN, Role.OPERATOR),
    "operator-auditor": _member("operator", OPS, "ops-auditor", Role.AUDITOR),
    "operator-role": _member("operator", OPS, "ops-watch", Role.OPERATOR),
    "witness": _member("witness-w", WIT, "witness-w-bot", Role.WITNESS),
    "witness-admin": _member("witness-w", WIT, "witness-w-admin", Role.ADMIN),
}
# fmt: on
