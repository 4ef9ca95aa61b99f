"""The authorisation matrix as one table: for every route of the API (method and path
template, as the OpenAPI document names it), what each situation gets.

A situation is who asks, in relation to what the request is about (``matrix_world`` says who
each one is in the test's world). An expectation is a status code, or for a list of vehicles'
data (:data:`LISTS`/:data:`OMITS`) a 200 whose items include or omit the world's vehicle or
warning. ``test_authorization_matrix`` makes one request per cell, and fails when a route of
the app is missing here or a route here is not the app's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.access import Scope

# Vehicle data: fleet-a owns the vehicle; grants to other organisations name it.
OWNER_ADMIN = "owner-admin"  # an admin of fleet-a
OWNER_ANALYST = "owner-analyst"  # an analyst of fleet-a
GRANTEE = "grantee"  # insurer-x: an active grant of every scope
GRANTEE_OTHER_SCOPE = "grantee-other-scope"  # an active grant of another scope only
GRANTEE_EXPIRED = "grantee-expired"  # a grant of every scope, expired
GRANTEE_REVOKED = "grantee-revoked"  # a grant of every scope, revoked
STRANGER = "stranger"  # fleet-b's admin: no grant at all
NO_DATA_ROLE = "no-data-role"  # a fleet-a member with the operator role only
AUTHORITY = "authority-in-jurisdiction"  # police: the vehicle drove in its jurisdiction
AUTHORITY_OUTSIDE = "authority-outside"  # county: the vehicle never drove there
OPERATOR_ADMIN = "operator-admin"  # the operator's admin
KEY_OTHER_SCOPE = "key-other-scope"  # a fleet-a API key scoped to another scope
KEY_SCOPED = "key-scoped"  # a fleet-a API key scoped to the route's scope
ANONYMOUS = "anonymous"  # no credentials
# Everything else: organisations, members, keys, grants, rules, ledger, audit, operations.
OWN_ADMIN = "own-org-admin"  # fleet-a's admin, about fleet-a
OWN_MEMBER = "own-org-analyst"  # fleet-a's analyst, about fleet-a
OTHER_ADMIN = "other-org-admin"  # fleet-b's admin, about fleet-a
AUTHORITY_ADMIN = "authority-admin"  # police's admin
OPERATOR_ROLE = "operator-role"  # the fleet-a member with the operator role only
WITNESS = "witness"  # a witness organisation's member with the witness role
WITNESS_ADMIN = "witness-admin"  # a witness organisation's admin
API_KEY = "api-key"  # a fleet-a API key (role admin, any scope)
FRESH_SESSION = "fresh-session"  # a login made for this request alone
GOOD_LOGIN = "good-credentials"  # no token; a right password or refresh token in the body
BAD_LOGIN = "bad-credentials"  # no token; a wrong password or refresh token

LISTS = "200 listing it"
OMITS = "200 without it"
Expect = int | str


@dataclass(frozen=True)
class Row:
    """What each situation gets. ``scope``: the vehicle-data scope the route reads (the
    ``-scope`` situations' keys and grants are chosen by it); ``audited``: each read goes
    through ``api.access.require_access``, so a refused one is in the audit log."""

    expect: Mapping[str, Expect]
    scope: Scope | None = None
    audited: bool = False


def read(expect: Mapping[str, Expect], scope: Scope) -> Row:
    """A route reading one vehicle's ``scope`` through ``require_access``."""
    return Row(expect, scope, audited=True)


# A read of one vehicle's data: ownership or a live grant of the scope, a data role, a key
# scoped for it. An organisation that was never granted the vehicle is not told it exists.
VEHICLE_READ: Mapping[str, Expect] = {
    OWNER_ADMIN: 200, OWNER_ANALYST: 200, GRANTEE: 200, GRANTEE_OTHER_SCOPE: 403,
    GRANTEE_EXPIRED: 403, GRANTEE_REVOKED: 403, STRANGER: 404, NO_DATA_ROLE: 403,
    AUTHORITY: 404, OPERATOR_ADMIN: 404, KEY_OTHER_SCOPE: 403, KEY_SCOPED: 200, ANONYMOUS: 401,
}  # fmt: skip
CREATED_READ = {**VEHICLE_READ, **{k: 201 for k, v in VEHICLE_READ.items() if v == 200}}
# A change to a fleet-a device: its admin only (an API key holding the admin role too).
DEVICE_CHANGE: Mapping[str, Expect] = {
    OWNER_ADMIN: 201, OWNER_ANALYST: 403, GRANTEE: 403, GRANTEE_OTHER_SCOPE: 403,
    GRANTEE_EXPIRED: 403, GRANTEE_REVOKED: 403, STRANGER: 404, NO_DATA_ROLE: 403, AUTHORITY: 404,
    OPERATOR_ADMIN: 404, KEY_OTHER_SCOPE: 201, ANONYMOUS: 401,
}  # fmt: skip
# Anyone authenticated: public to members (directories, public law, hashes and proofs).
ANY_MEMBER: Mapping[str, Expect] = {
    OWN_ADMIN: 200, OWN_MEMBER: 200, OTHER_ADMIN: 200, NO_DATA_ROLE: 200, OPERATOR_ADMIN: 200,
    AUTHORITY: 200, WITNESS: 200, API_KEY: 200, ANONYMOUS: 401,
}  # fmt: skip
# Administration of fleet-a: its admin, or the operator's.
ORG_ADMIN: Mapping[str, Expect] = {
    OWN_ADMIN: 200, OWN_MEMBER: 403, OTHER_ADMIN: 403, AUTHORITY_ADMIN: 403,
    OPERATOR_ADMIN: 200, WITNESS: 403, ANONYMOUS: 401,
}  # fmt: skip
# Segment 7: an authority sees the segments in its jurisdiction, everyone else every one.
SEGMENT: Mapping[str, Expect] = {
    **ANY_MEMBER, AUTHORITY: 200, AUTHORITY_OUTSIDE: 404, OPERATOR_ADMIN: 200,
}  # fmt: skip

# fmt: off
TABLE: Mapping[str, Row] = {
    # --- health and authentication
    "GET /health": Row({ANONYMOUS: 200, OWN_MEMBER: 200}),
    "POST /v1/auth/token": Row({GOOD_LOGIN: 200, BAD_LOGIN: 401}),
    "POST /v1/auth/refresh": Row({GOOD_LOGIN: 200, BAD_LOGIN: 401}),
    "POST /v1/auth/revoke": Row({FRESH_SESSION: 204, API_KEY: 403, ANONYMOUS: 401}),
    "GET /v1/auth/me": Row(ANY_MEMBER),
    "GET /v1/openapi.json": Row(ANY_MEMBER),
    # --- organisations, members, API keys
    "GET /v1/organisations": Row(ANY_MEMBER),
    "GET /v1/organisations/{org_id}": Row(ANY_MEMBER),
    "POST /v1/organisations": Row({  # a district unit of police
        OPERATOR_ADMIN: 201, AUTHORITY_ADMIN: 201, OWN_ADMIN: 403, AUTHORITY: 403,
        WITNESS_ADMIN: 403, API_KEY: 403, ANONYMOUS: 401,
    }),
    "GET /v1/organisations/{org_id}/members": Row(ORG_ADMIN),
    "POST /v1/organisations/{org_id}/members": Row(
        {k: 201 if v == 200 else v for k, v in ORG_ADMIN.items()}
    ),
    "GET /v1/api-keys": Row(  # the caller's own organisation's
        {**ORG_ADMIN, OTHER_ADMIN: 200, AUTHORITY_ADMIN: 200, API_KEY: 200}
    ),
    "POST /v1/api-keys": Row({
        OWN_ADMIN: 201, OPERATOR_ADMIN: 201, OWN_MEMBER: 403, API_KEY: 403, ANONYMOUS: 401,
    }),
    "POST /v1/api-keys/{key_id}/revoke": Row({  # a key of fleet-a
        OWN_ADMIN: 204, OWN_MEMBER: 403, OTHER_ADMIN: 404, OPERATOR_ADMIN: 404, API_KEY: 204,
        ANONYMOUS: 401,
    }),
    # --- grants (fleet-a's; the grantee's member is an insurer, not an admin)
    "POST /v1/grants": Row({
        OWN_ADMIN: 201, OWN_MEMBER: 403, OTHER_ADMIN: 404, OPERATOR_ADMIN: 404, GRANTEE: 403,
        API_KEY: 201, ANONYMOUS: 401,
    }),
    "GET /v1/grants": Row(ANY_MEMBER),  # the caller's own organisation's
    "GET /v1/grants/{grant_id}": Row({  # fleet-a's grant to insurer-x
        OWN_ADMIN: 200, OWN_MEMBER: 200, GRANTEE: 200, OTHER_ADMIN: 404, OPERATOR_ADMIN: 404,
        GRANTEE_EXPIRED: 404, ANONYMOUS: 401,
    }),
    "POST /v1/grants/{grant_id}/revoke": Row({
        OWN_ADMIN: 200, OWN_MEMBER: 403, GRANTEE: 403, OTHER_ADMIN: 404, OPERATOR_ADMIN: 404,
        API_KEY: 200, ANONYMOUS: 401,
    }),
    # --- audit log and operations
    "GET /v1/audit": Row({
        OWN_ADMIN: 200, OWN_MEMBER: 403, OTHER_ADMIN: 200, OPERATOR_ADMIN: 200,
        OPERATOR_ROLE: 403, WITNESS: 403, API_KEY: 200, ANONYMOUS: 401,
    }),
    "GET /v1/audit/checkpoint": Row(ANY_MEMBER),
    "GET /v1/audit/{index}/proof": Row({  # fleet-a's admin reading its vehicle
        OWN_ADMIN: 200, OWN_MEMBER: 403, OTHER_ADMIN: 404, OPERATOR_ADMIN: 200,
        WITNESS: 403, ANONYMOUS: 401,
    }),
    "GET /metrics": Row({
        OPERATOR_ADMIN: 200, OPERATOR_ROLE: 200, OWN_ADMIN: 403, AUTHORITY_ADMIN: 403,
        WITNESS: 403, ANONYMOUS: 401,
    }),
    # --- rules (police publishes)
    "POST /v1/rules": Row({
        AUTHORITY_ADMIN: 201, AUTHORITY: 403, OWN_ADMIN: 403, OPERATOR_ADMIN: 403,
        ANONYMOUS: 401,
    }),
    "GET /v1/rules": Row(ANY_MEMBER),
    "GET /v1/rules/{org_id}/{version}": Row(ANY_MEMBER),
    # --- devices (fleet-a's vehicle; each change on a device of its own)
    "POST /v1/devices": Row({  # a new device of the caller's organisation
        OWN_ADMIN: 201, OTHER_ADMIN: 201, OWN_MEMBER: 403, NO_DATA_ROLE: 403,
        AUTHORITY: 403, API_KEY: 201, ANONYMOUS: 401,
    }),
    "GET /v1/devices": Row({
        **{k: LISTS if v == 200 else v for k, v in VEHICLE_READ.items()},
        GRANTEE_OTHER_SCOPE: LISTS, GRANTEE_EXPIRED: OMITS, GRANTEE_REVOKED: OMITS,
        STRANGER: OMITS, AUTHORITY: OMITS, OPERATOR_ADMIN: OMITS, KEY_OTHER_SCOPE: LISTS,
    }),
    "GET /v1/devices/{device_id}": Row(  # any active grant shows it; not a key scope
        {**VEHICLE_READ, GRANTEE_OTHER_SCOPE: 200, KEY_OTHER_SCOPE: 200}
    ),
    "POST /v1/devices/{device_id}/keys": Row(DEVICE_CHANGE),
    "POST /v1/devices/{device_id}/revoke": Row(
        {k: 200 if v == 201 else v for k, v in DEVICE_CHANGE.items()}
    ),
    "POST /v1/devices/{device_id}/mqtt-credentials": Row(DEVICE_CHANGE),
    # --- one vehicle's data
    "GET /v1/vehicles/{device_id}/track": read(VEHICLE_READ, Scope.TRACK),
    "GET /v1/vehicles/{device_id}/mileage": read(VEHICLE_READ, Scope.MILEAGE),
    "GET /v1/vehicles/{device_id}/export": read(VEHICLE_READ, Scope.EXPORT),
    "POST /v1/vehicles/{device_id}/certificates": read(CREATED_READ, Scope.CERTIFICATE),
    "GET /v1/vehicles/{device_id}/documents": read(VEHICLE_READ, Scope.CERTIFICATE),
    "GET /v1/vehicles/{device_id}/documents/{document_id}/proof": read(
        VEHICLE_READ, Scope.CERTIFICATE
    ),
    "POST /v1/vehicles/{device_id}/documents": Row({  # its owner's admin registers
        OWNER_ADMIN: 201, OWNER_ANALYST: 403, GRANTEE: 403, GRANTEE_OTHER_SCOPE: 403,
        GRANTEE_EXPIRED: 403, GRANTEE_REVOKED: 403, STRANGER: 404, NO_DATA_ROLE: 403,
        AUTHORITY: 403, OPERATOR_ADMIN: 404, KEY_OTHER_SCOPE: 201, ANONYMOUS: 401,
    }),
    "GET /v1/ledger/logs/{log_id}/entries/{index}": read(VEHICLE_READ, Scope.TRACK),
    # --- warnings (the vehicle's warning, located in police's jurisdiction)
    "GET /v1/warnings": Row({
        **{k: LISTS if v == 200 else OMITS if v == 404 else v for k, v in VEHICLE_READ.items()},
        GRANTEE_OTHER_SCOPE: OMITS, GRANTEE_EXPIRED: OMITS, GRANTEE_REVOKED: OMITS,
        AUTHORITY: LISTS, AUTHORITY_OUTSIDE: OMITS,
    }, Scope.WARNINGS),
    "GET /v1/warnings/{warning_id}": read(
        {**VEHICLE_READ, AUTHORITY: 200, AUTHORITY_OUTSIDE: 404}, Scope.WARNINGS
    ),
    "GET /v1/warnings/stream": Row({
        **{k: 200 if v == 404 else v for k, v in VEHICLE_READ.items()},
        GRANTEE_OTHER_SCOPE: 200, GRANTEE_EXPIRED: 200, GRANTEE_REVOKED: 200,
    }, Scope.WARNINGS),
    "GET /v1/positions/stream": Row({  # live positions: track, own or granted vehicles
        **{k: 200 if v == 404 else v for k, v in VEHICLE_READ.items()},
        GRANTEE_OTHER_SCOPE: 200, GRANTEE_EXPIRED: 200, GRANTEE_REVOKED: 200,
    }, Scope.TRACK),
    # --- segments (segment 7 lies in police's jurisdiction)
    "GET /v1/segments": Row({**ANY_MEMBER, AUTHORITY_OUTSIDE: 200}),
    "GET /v1/segments/{segment_id}/history": Row(SEGMENT),
    "GET /v1/segments/{segment_id}/forecasts": Row(SEGMENT),
    # --- the ledger: hashes and proofs are public to members
    "GET /v1/ledger/logs": Row(ANY_MEMBER),
    "GET /v1/ledger/logs/{log_id}/checkpoint": Row(ANY_MEMBER),
    "GET /v1/ledger/logs/{log_id}/blocks": Row(ANY_MEMBER),
    "GET /v1/ledger/logs/{log_id}/proofs/inclusion": Row(ANY_MEMBER),
    "GET /v1/ledger/logs/{log_id}/proofs/consistency": Row(ANY_MEMBER),
    "GET /v1/ledger/keys": Row(ANY_MEMBER),
    "POST /v1/ledger/witness-keys": Row({
        WITNESS_ADMIN: 201, WITNESS: 403, OWN_ADMIN: 403, OPERATOR_ADMIN: 403, ANONYMOUS: 401,
    }),
    "POST /v1/ledger/logs/{log_id}/cosignatures": Row({
        WITNESS: 201, WITNESS_ADMIN: 403, OWN_ADMIN: 403, OPERATOR_ADMIN: 403, ANONYMOUS: 401,
    }),
}
# fmt: on
