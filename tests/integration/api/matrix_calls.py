"""How the matrix calls each route: a request that is valid in the matrix's world (ids that
exist, a fresh name where a second creation would conflict), so that only who asks decides
the answer."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chain.cosignature import CosignatureSigner
from chain.keys import Ed25519PrivateKey
from tests.integration.api import matrix_table as t
from tests.integration.api.conftest import PASSWORD, login
from tests.integration.api.matrix_world import World
from tests.integration.api.places import T0
from tests.integration.api.test_rules import JOSE, _signed

_versions = itertools.count(2)  # police's rules version 1 is the world's


@dataclass(frozen=True)
class Request:
    """The path's parameters, and what else the request carries."""

    path: Mapping[str, str | int] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    data: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _fresh(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _public_key() -> str:
    return Ed25519PrivateKey.generate().public_key.to_b64url()


def _window(world: World, device: str = "veh-a1") -> Request:
    return Request(
        {"device_id": device}, params={"from_ms": T0 - 86_400_000, "to_ms": T0 + 86_400_000}
    )


def _device(device: str) -> Callable[[World, str], Request]:
    return lambda w, s: Request({"device_id": device})


def _log(world: World, **params: Any) -> Request:
    return Request({"log_id": world.ids["log_id"]}, params=params or None)


def _bad(situation: str) -> bool:
    return t.SITUATIONS[situation].body == "bad"


def _login(world: World, situation: str) -> Request:
    password = "not the password at all" if _bad(situation) else PASSWORD
    return Request(data={"username": "login-user", "password": password})


async def _refresh(world: World, situation: str) -> Request:
    """A refresh token is good once: each cell logs in for its own."""
    if _bad(situation):
        return Request(json={"refresh_token": "rlr_" + "x" * 43})
    tokens = await login(world.api, "login-user")
    return Request(json={"refresh_token": tokens["refresh_token"]})


def _grant(world: World, situation: str) -> Request:
    now = int(time.time() * 1000)
    return Request(json={
        "grantee_org": "insurer-y", "scopes": ["mileage"], "device_ids": ["veh-a2"],
        "valid_from_ms": now, "valid_until_ms": now + 86_400_000, "purpose": "a matrix cell",
    })  # fmt: skip


def _unit(world: World, situation: str) -> Request:
    return Request(json={
        "org_id": _fresh("unit"), "name": "A unit", "kind": "authority", "parent_id": "police",
    })  # fmt: skip


def _member(world: World, situation: str) -> Request:
    body = {"username": _fresh("member"), "password": PASSWORD, "roles": ["analyst"]}
    return Request({"org_id": "fleet-a"}, json=body)


def _new_device(world: World, situation: str) -> Request:
    body = {"device_id": _fresh("veh-new"), "kind": "vehicle", "public_key": _public_key()}
    return Request(json=body)


def _rules(world: World, situation: str) -> Request:
    return Request(content=_signed(version=next(_versions)), headers=JOSE)


def _witness_key(world: World, situation: str) -> Request:
    vkey = CosignatureSigner.generate(f"{_fresh('w')}.matrix/1").verifier().to_vkey()
    return Request(json={"vkey": vkey})


def _document(world: World, situation: str) -> Request:
    body = {"sha256": secrets.token_hex(32), "kind": "inspection"}
    return Request({"device_id": "veh-c1"}, json=body)


_FLEET_A = Request({"org_id": "fleet-a"})
_NOTHING = Request()

Call = Callable[[World, str], Request | Awaitable[Request]]
CALLS: Mapping[str, Call] = {
    "GET /health": lambda w, s: _NOTHING,
    "POST /v1/auth/token": _login,
    "POST /v1/auth/refresh": _refresh,
    "POST /v1/auth/revoke": lambda w, s: _NOTHING,
    "GET /v1/auth/me": lambda w, s: _NOTHING,
    "GET /v1/openapi.json": lambda w, s: _NOTHING,
    "GET /v1/organisations": lambda w, s: _NOTHING,
    "GET /v1/organisations/{org_id}": lambda w, s: _FLEET_A,
    "POST /v1/organisations": _unit,
    "GET /v1/organisations/{org_id}/members": lambda w, s: _FLEET_A,
    "POST /v1/organisations/{org_id}/members": _member,
    "GET /v1/api-keys": lambda w, s: _NOTHING,
    "POST /v1/api-keys": lambda w, s: Request(json={"label": "a cell", "roles": ["admin"]}),
    "POST /v1/api-keys/{key_id}/revoke": lambda w, s: Request({"key_id": w.ids["key_id"]}),
    "POST /v1/grants": _grant,
    "GET /v1/grants": lambda w, s: _NOTHING,
    "GET /v1/grants/{grant_id}": lambda w, s: Request({"grant_id": w.ids["grant_id"]}),
    "POST /v1/grants/{grant_id}/revoke": lambda w, s: Request(
        {"grant_id": w.ids["spare_grant_id"]}
    ),
    "GET /v1/audit": lambda w, s: Request(  # the world's entries about veh-a1
        params={"device_id": "veh-a1", "until_ms": w.ids["audit_until_ms"]}
    ),
    "GET /v1/audit/checkpoint": lambda w, s: _NOTHING,
    "GET /v1/audit/{index}/proof": lambda w, s: Request({"index": w.ids["audit_index"]}),
    "GET /metrics": lambda w, s: _NOTHING,
    "POST /v1/rules": _rules,
    "GET /v1/rules": lambda w, s: _NOTHING,
    "GET /v1/rules/{org_id}/{version}": lambda w, s: Request(
        {"org_id": "police", "version": "city@1"}
    ),
    "POST /v1/devices": _new_device,
    "GET /v1/devices": lambda w, s: _NOTHING,
    "GET /v1/devices/{device_id}": _device("veh-a1"),
    "POST /v1/devices/{device_id}/keys": lambda w, s: Request(
        {"device_id": "veh-rot"}, json={"public_key": _public_key()}
    ),
    "POST /v1/devices/{device_id}/revoke": lambda w, s: Request({"device_id": "veh-rev"}, json={}),
    "POST /v1/devices/{device_id}/mqtt-credentials": _device("veh-mqtt"),
    "GET /v1/vehicles/{device_id}/track": lambda w, s: _window(w),
    "GET /v1/vehicles/{device_id}/mileage": lambda w, s: _window(w),
    "GET /v1/vehicles/{device_id}/export": lambda w, s: _window(w),
    "POST /v1/vehicles/{device_id}/certificates": lambda w, s: Request(
        {"device_id": "veh-c1"}, json={"from_ms": w.ids["from_ms"], "to_ms": w.ids["to_ms"]}
    ),
    "GET /v1/vehicles/{device_id}/documents": _device("veh-c1"),
    "GET /v1/vehicles/{device_id}/documents/{document_id}/proof": lambda w, s: Request(
        {"device_id": "veh-c1", "document_id": w.ids["document_id"]}
    ),
    "POST /v1/vehicles/{device_id}/documents": _document,
    "GET /v1/ledger/logs/{log_id}/entries/{index}": lambda w, s: Request(
        {"log_id": w.ids["log_id"], "index": w.ids["index"]}
    ),
    "GET /v1/warnings": lambda w, s: _NOTHING,
    "GET /v1/warnings/{warning_id}": lambda w, s: Request({"warning_id": "w-a1"}),
    "GET /v1/warnings/stream": lambda w, s: _NOTHING,
    "GET /v1/positions/stream": lambda w, s: _NOTHING,
    "GET /v1/segments": lambda w, s: _NOTHING,
    "GET /v1/segments/stream": lambda w, s: _NOTHING,
    "GET /v1/segments/{segment_id}/history": lambda w, s: Request({"segment_id": 7}),
    "GET /v1/segments/{segment_id}/forecasts": lambda w, s: Request({"segment_id": 7}),
    "GET /v1/ledger/logs": lambda w, s: _NOTHING,
    "GET /v1/ledger/logs/{log_id}/checkpoint": lambda w, s: _log(w),
    "GET /v1/ledger/logs/{log_id}/blocks": lambda w, s: _log(w),
    "GET /v1/ledger/logs/{log_id}/proofs/inclusion": lambda w, s: _log(w, leaf_index=0),
    "GET /v1/ledger/logs/{log_id}/proofs/consistency": lambda w, s: _log(w, first=1),
    "GET /v1/ledger/keys": lambda w, s: _NOTHING,
    "POST /v1/ledger/witness-keys": _witness_key,
    "POST /v1/ledger/logs/{log_id}/cosignatures": lambda w, s: Request(
        {"log_id": w.ids["log_id"]}, json=w.cosignature
    ),
}
