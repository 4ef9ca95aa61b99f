"""The authorisation matrix as one table: every route of the API (method and path template, as
the OpenAPI document names it) against every situation, each cell the answer it must get.

A situation (:data:`SITUATIONS`, ``matrix_situations``) is who asks, described by what
decides access: organisation and kind, roles, a login or an API key (and the key's scopes),
the relation to fleet-a's vehicles the routes name (owner; a grant active, of another scope,
pending, expired, revoked, on other vehicles of the fleet; none) and to police's
jurisdiction, where the routes' warning and segment lie (its own, a unit's, its parent's, a
sibling's, unrelated).

Each route has one rule (a function of the situation, below) and, where it departs from the
rule, explicit exceptions. An expectation is a status code, :data:`OK` (the route's success
status) or, for a list, :data:`LISTS`/:data:`OMITS` (a 200 whose items include or omit the
world's vehicle, warning, segment, grant, API key or audit entry).
``test_authorization_matrix`` sends one request per cell and fails when a route of the app
is missing here or a route here is not the app's;
``python -m tests.integration.api.matrix_docs --cells`` prints every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from contracts.access import DATA_ROLES, OrgKind, Role, Scope
from tests.integration.api.matrix_situations import (
    GRANT_SEEN,
    NOT_NOW,
    SITUATIONS,
    Area,
    Situation,
    Vehicle,
)

__all__ = [
    "LISTS", "OK", "OMITS", "SITUATIONS", "TABLE", "Expect", "Row", "Situation", "Table",
    "Vehicle", "cells", "read",
]  # fmt: skip

OK = "ok"
LISTS = "200 listing it"
OMITS = "200 without it"
Expect = int | str


# --- the rules: each says, for one kind of route, what a situation gets (401: no credentials)
Rule = Callable[[Situation], Expect]


def _authenticated(decide: Rule) -> Rule:
    def rule(s: Situation) -> Expect:
        return decide(s) if s.authenticated else 401

    rule.__name__, rule.__doc__ = decide.__name__, decide.__doc__
    return rule


def public(s: Situation) -> Expect:
    """Anyone, with or without credentials."""
    return OK


def credentials_in_body(s: Situation) -> Expect:
    """The body's credentials decide (right ones for all but ``bad-credentials``)."""
    return 401 if s.body == "bad" else OK


@_authenticated
def member(s: Situation) -> Expect:
    """Anyone authenticated: directories, public law, hashes, proofs, one's own lists."""
    return OK


@_authenticated
def session(s: Situation) -> Expect:
    """A login's own session (an API key has none: 403)."""
    return 403 if s.key else OK


@_authenticated
def fleet_a_admin_or_operator(s: Situation) -> Expect:
    """An admin of fleet-a (whose members these are) or of the operator; else 403."""
    return OK if s.admin and s.org in ("fleet-a", "operator") else 403


@_authenticated
def admin(s: Situation) -> Expect:
    """An admin of any organisation, acting on its own (keys, devices): else 403."""
    return OK if s.admin else 403


@_authenticated
def logged_in_admin(s: Situation) -> Expect:
    """An admin logged in (a key mints no credentials): else 403."""
    return OK if s.admin and not s.key else 403


@_authenticated
def fleet_a_admin(s: Situation) -> Expect:
    """An admin of fleet-a (its key, grant, document); other admins are not told it exists
    (404); a non-admin 403."""
    return 403 if not s.admin else OK if s.org == "fleet-a" else 404


@_authenticated
def grant_party(s: Situation) -> Expect:
    """fleet-a's grant to insurer-x: members of either; else 404."""
    return OK if s.org in ("fleet-a", "insurer-x") else 404


@_authenticated
def own_keys(s: Situation) -> Expect:
    """An admin, its organisation's keys: fleet-a's list names its key; else 403."""
    return 403 if not s.admin else LISTS if s.org == "fleet-a" else OMITS


@_authenticated
def own_grants(s: Situation) -> Expect:
    """Anyone, its organisation's grants: fleet-a's list names its grant to insurer-x."""
    return LISTS if s.org == "fleet-a" else OMITS


@_authenticated
def audit_entry_of_fleet_a(s: Situation) -> Expect:
    """An entry about fleet-a: its admins and auditors, the operator's; other readers 404;
    neither an admin nor an auditor 403."""
    if not s.roles & {Role.ADMIN, Role.AUDITOR}:
        return 403
    return OK if s.org in ("fleet-a", "operator") else 404


@_authenticated
def audit_list(s: Situation) -> Expect:
    """An admin or auditor, each its organisation's entries (the operator's all): lists one
    about fleet-a's vehicle when ``audit_entry_of_fleet_a`` allows it."""
    found = audit_entry_of_fleet_a(s)
    return found if found == 403 else LISTS if found == OK else OMITS


@_authenticated
def operations(s: Situation) -> Expect:
    """The operator role of the operator organisation (another's opens nothing): else 403."""
    return OK if Role.OPERATOR in s.roles and s.kind == OrgKind.OPERATOR else 403


@_authenticated
def police_admin(s: Situation) -> Expect:
    """police's admin (its signed rules): else 403."""
    return OK if s.admin and s.kind == OrgKind.AUTHORITY and s.area == Area.OWN else 403


@_authenticated
def unit_creator(s: Situation) -> Expect:
    """A unit under police: the operator's admin, or an admin of police or above it."""
    above = s.kind == OrgKind.AUTHORITY and s.area in (Area.OWN, Area.UNIT)
    return OK if s.admin and (s.kind == OrgKind.OPERATOR or above) else 403


@_authenticated
def device_list(s: Situation) -> Expect:
    """A data role; lists veh-a1 when owned or named by an active grant (any scope)."""
    if not s.roles & DATA_ROLES:
        return 403
    return LISTS if s.vehicle in (Vehicle.OWNER, Vehicle.GRANTED, Vehicle.OTHER_SCOPE) else OMITS


@_authenticated
def device_details(s: Situation) -> Expect:
    """A data role; its owner or an active grant (any scope); a grant not active now 403;
    never granted 404."""
    if not s.roles & DATA_ROLES:
        return 403
    if s.vehicle in (Vehicle.OWNER, Vehicle.GRANTED, Vehicle.OTHER_SCOPE):
        return OK
    return 403 if s.vehicle in GRANT_SEEN else 404


@_authenticated
def device_change(s: Situation) -> Expect:
    """Its owner's admin; any grant naming it 403; never granted 404."""
    if s.vehicle == Vehicle.OWNER:
        return OK if s.admin else 403
    return 403 if s.vehicle in GRANT_SEEN else 404


@_authenticated
def vehicle_read(s: Situation) -> Expect:
    """``require_access``: a data role and key scope (403); the owner or an active grant of
    the scope; a grant that does not open it now 403; never granted 404."""
    if not s.reads_data:
        return 403
    if s.vehicle in (Vehicle.OWNER, Vehicle.GRANTED):
        return OK
    return 403 if s.vehicle in NOT_NOW else 404


def _sees_area(s: Situation) -> bool:
    return s.area in (Area.OWN, Area.UNIT)


@_authenticated
def warning_read(s: Situation) -> Expect:
    """``vehicle_read``, or an authority where it lies in its or its units' jurisdiction."""
    return OK if s.reads_data and _sees_area(s) else vehicle_read(s)


@_authenticated
def warning_list(s: Situation) -> Expect:
    """A data role and key scope; lists w-a1 when ``warning_read`` allows it."""
    if not s.reads_data:
        return 403
    return LISTS if warning_read(s) == OK else OMITS


@_authenticated
def warning_feed(s: Situation) -> Expect:
    """A data role and key scope (the feed then filters as the list does)."""
    return OK if s.reads_data else 403


@_authenticated
def located(s: Situation) -> Expect:
    """Segment 7: an authority in its or its units' jurisdiction; every other caller."""
    return OK if s.kind != OrgKind.AUTHORITY or _sees_area(s) else 404


@_authenticated
def located_list(s: Situation) -> Expect:
    """The segments: lists segment 7 when ``located`` allows it."""
    return LISTS if located(s) == OK else OMITS


@_authenticated
def witness_admin(s: Situation) -> Expect:
    """An admin of a witness organisation (its key): else 403."""
    return OK if s.admin and s.kind == OrgKind.WITNESS else 403


@_authenticated
def witness_role(s: Situation) -> Expect:
    """A witness organisation's member with the witness role: else 403."""
    return OK if Role.WITNESS in s.roles and s.kind == OrgKind.WITNESS else 403


@dataclass(frozen=True)
class Row:
    """A route's rule and exceptions. ``ok``: its success status; ``scope``: the vehicle-data
    scope it reads (``*-scoped``/``*-other-scope`` credentials are chosen by it); ``audited``:
    each read goes through ``api.access.require_access``, so it is in the audit log, refused
    or not; ``fresh``: each request carries a session made for it alone (it ends it)."""

    rule: Rule
    ok: int = 200
    scope: Scope | None = None
    audited: bool = False
    exceptions: Mapping[str, Expect] = field(default_factory=dict)
    fresh: bool = False

    def expect(self, situation: str) -> Expect:
        found = self.exceptions.get(situation, self.rule(SITUATIONS[situation]))
        return self.ok if found == OK else found


def read(scope: Scope, rule: Rule = vehicle_read, ok: int = 200) -> Row:
    """A route reading one vehicle's ``scope`` through ``require_access``."""
    return Row(rule, ok, scope, audited=True)


Table = Mapping[str, Row]
# fmt: off
TABLE: Table = {
    # --- health and authentication
    "GET /health": Row(public),
    "POST /v1/auth/token": Row(credentials_in_body),
    "POST /v1/auth/refresh": Row(credentials_in_body),
    "POST /v1/auth/revoke": Row(session, 204, fresh=True),
    "GET /v1/auth/me": Row(member),
    "GET /v1/openapi.json": Row(member),
    # --- organisations, members, API keys (fleet-a's members; a unit of police)
    "GET /v1/organisations": Row(member),
    "GET /v1/organisations/{org_id}": Row(member),
    "POST /v1/organisations": Row(unit_creator, 201),
    "GET /v1/organisations/{org_id}/members": Row(fleet_a_admin_or_operator),
    "POST /v1/organisations/{org_id}/members": Row(
        fleet_a_admin_or_operator, 201, exceptions={  # a key mints no credentials
            "owner-key": 403, "owner-key-scoped": 403, "owner-key-other-scope": 403}),
    "GET /v1/api-keys": Row(own_keys),
    "POST /v1/api-keys": Row(logged_in_admin, 201),
    "POST /v1/api-keys/{key_id}/revoke": Row(fleet_a_admin, 204),  # a key of fleet-a
    # --- grants (fleet-a's)
    "POST /v1/grants": Row(fleet_a_admin, 201),
    "GET /v1/grants": Row(own_grants),
    "GET /v1/grants/{grant_id}": Row(grant_party),
    "POST /v1/grants/{grant_id}/revoke": Row(fleet_a_admin),
    # --- audit log and operations
    "GET /v1/audit": Row(audit_list),
    "GET /v1/audit/checkpoint": Row(member),
    "GET /v1/audit/{index}/proof": Row(audit_entry_of_fleet_a),
    "GET /metrics": Row(operations),
    # --- rules (police publishes)
    "POST /v1/rules": Row(police_admin, 201),
    "GET /v1/rules": Row(member),
    "GET /v1/rules/{org_id}/{version}": Row(member),
    # --- devices (fleet-a's vehicle; each change on a device of its own)
    "POST /v1/devices": Row(admin, 201),  # a new device of the caller's organisation
    "GET /v1/devices": Row(device_list),
    "GET /v1/devices/{device_id}": Row(device_details),
    "POST /v1/devices/{device_id}/keys": Row(device_change, 201),
    "POST /v1/devices/{device_id}/revoke": Row(device_change),
    "POST /v1/devices/{device_id}/mqtt-credentials": Row(device_change, 201),
    # --- one vehicle's data
    "GET /v1/vehicles/{device_id}/track": read(Scope.TRACK),
    "GET /v1/vehicles/{device_id}/mileage": read(Scope.MILEAGE),
    "GET /v1/vehicles/{device_id}/export": read(Scope.EXPORT),
    "POST /v1/vehicles/{device_id}/certificates": read(Scope.CERTIFICATE, ok=201),
    "GET /v1/vehicles/{device_id}/documents": read(Scope.CERTIFICATE),
    "GET /v1/vehicles/{device_id}/documents/{document_id}/proof": read(Scope.CERTIFICATE),
    "POST /v1/vehicles/{device_id}/documents": Row(fleet_a_admin, 201),
    "GET /v1/ledger/logs/{log_id}/entries/{index}": read(Scope.TRACK),
    # --- warnings (veh-a1's warning, located in police's jurisdiction)
    "GET /v1/warnings": Row(warning_list, scope=Scope.WARNINGS),
    "GET /v1/warnings/{warning_id}": read(Scope.WARNINGS, warning_read),
    "GET /v1/warnings/stream": Row(warning_feed, scope=Scope.WARNINGS),
    "GET /v1/positions/stream": Row(warning_feed, scope=Scope.TRACK),  # filters as a track read
    # --- segments (segment 7 lies in police's jurisdiction)
    "GET /v1/segments": Row(located_list),
    "GET /v1/segments/stream": Row(member),  # then shows what GET /v1/segments lists
    "GET /v1/segments/{segment_id}/history": Row(located),
    "GET /v1/segments/{segment_id}/forecasts": Row(located),
    # --- the ledger: hashes and proofs are public to members
    "GET /v1/ledger/logs": Row(member),
    "GET /v1/ledger/logs/{log_id}/checkpoint": Row(member),
    "GET /v1/ledger/logs/{log_id}/blocks": Row(member),
    "GET /v1/ledger/logs/{log_id}/proofs/inclusion": Row(member),
    "GET /v1/ledger/logs/{log_id}/proofs/consistency": Row(member),
    "GET /v1/ledger/keys": Row(member),
    "POST /v1/ledger/witness-keys": Row(witness_admin, 201),
    "POST /v1/ledger/logs/{log_id}/cosignatures": Row(witness_role, 201),
}
# fmt: on


def cells(table: Table = TABLE) -> list[tuple[str, str, Expect]]:
    """Every (route, situation, expectation): the full product."""
    return [(route, s, row.expect(s)) for route, row in table.items() for s in SITUATIONS]
