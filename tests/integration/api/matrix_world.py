"""The world the authorisation matrix runs in, built once per module on a scratch schema of
the real PostgreSQL: the cast of ``conftest`` and more organisations, fleet-a's vehicles
(``veh-a1`` with telemetry and a warning in police's jurisdiction, ``veh-c1`` in the ledger
with a document and a witness cosignature), a grant in each state, API keys, rules, and who
each situation of ``matrix_table`` is."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from analytics.warnings.model import WarningType
from api.app import create_app
from api.routes.devices import use_mqtt_credentials
from api.server import stopping
from chain.cosignature import CosignatureSigner
from chain.device_keys import DeviceKey
from chain.encoding import b64_decode
from chain.keys import Ed25519PrivateKey
from chain.note_signers import Ed25519Verifier
from chain.telemetry import DeviceKind
from chain.witness import MemoryWitnessStateStore, Witness
from contracts.access import OrgKind, Role, Scope
from roadledger.documents import register_document
from roadledger.identity.api_keys import create_api_key, revoke_api_key
from roadledger.identity.grants import create_grant, revoke_grant
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from roadledger.mqtt_auth import PasswordFile
from roadledger.registry import DeviceCredentials, DeviceRegistry
from roadledger.rules_areas import set_jurisdiction
from roadledger.rules_store import add_organisation_key
from roadledger.settings import Settings
from tests.integration.api import matrix_table as t
from tests.integration.api import places
from tests.integration.api.access_support import principal
from tests.integration.api.conftest import CAST, PASSWORD, bearer
from tests.integration.api.ledger_support import HOUR_MS, Ledger, drive, telemetry_vkey
from tests.integration.api.places import CITY, T0, middle
from tests.integration.api.test_ledger_routes import witnesses
from tests.integration.api.test_rules import JOSE, _key, _signed
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.ingest.fleet import Device

DAY_MS = 86_400_000
ALL_SCOPES = sorted(Scope)
CHANGED = ("veh-rot", "veh-rev", "veh-mqtt")  # one fleet-a device per device change
GRANTED = ["veh-a1", "veh-c1", *CHANGED]
# Organisations holding a grant of fleet-a's vehicles (member, scopes, devices, valid
# from/until relative to now, revoked), besides insurer-x (every scope, active: the cast's).
GRANTEES = {
    "insurer-y": ("narrow-mileage", [Scope.MILEAGE], GRANTED, -HOUR_MS, DAY_MS, False),
    "insurer-z": ("narrow-track", [Scope.TRACK], GRANTED, -HOUR_MS, DAY_MS, False),
    "insurer-pend": ("pending-agent", ALL_SCOPES, GRANTED, DAY_MS, 2 * DAY_MS, False),
    "insurer-exp": ("expired-agent", ALL_SCOPES, GRANTED, -2 * DAY_MS, -DAY_MS, False),
    "insurer-rev": ("revoked-agent", ALL_SCOPES, GRANTED, -HOUR_MS, DAY_MS, True),
    "insurer-set": ("other-set-agent", ALL_SCOPES, ["veh-a2"], -HOUR_MS, DAY_MS, False),
}
# Organisations and members besides the cast's, places' and witnesses': kind and parent;
# organisation and role.
MORE_ORGS = {  # ministry: police's parent; harbour: police's sibling
    "ministry": (OrgKind.AUTHORITY, None), "harbour": (OrgKind.AUTHORITY, "ministry"),
    "workshop-q": (OrgKind.WORKSHOP, None),
}  # fmt: skip
MORE_MEMBERS = {
    "fleet-a-ops": ("fleet-a", Role.OPERATOR), "fleet-a-auditor": ("fleet-a", Role.AUDITOR),
    "fleet-a-insurer": ("fleet-a", Role.INSURER), "fleet-a-witness": ("fleet-a", Role.WITNESS),
    "insurer-x-analyst": ("insurer-x", Role.ANALYST),
    "insurer-x-auditor": ("insurer-x", Role.AUDITOR),
    "insurer-x-ops": ("insurer-x", Role.OPERATOR),
    "insurer-x-witness": ("insurer-x", Role.WITNESS),
    "ops-auditor": ("operator", Role.AUDITOR), "ops-watch": ("operator", Role.OPERATOR),
    "ministry-analyst": ("ministry", Role.ANALYST), "harbour-analyst": ("harbour", Role.ANALYST),
    "workshop-q-admin": ("workshop-q", Role.ADMIN), "login-user": ("fleet-b", Role.ANALYST),
}  # fmt: skip
KEYS = {  # the API keys (organisation, role) and who makes them
    ("fleet-a", Role.ADMIN): "fleet-a-admin", ("fleet-a", Role.ANALYST): "fleet-a-analyst",
    ("insurer-x", Role.ADMIN): "insurer-x-admin",
}  # fmt: skip
HARBOUR = places.square(526_000_000, 130_000_000)


def other_scope(scope: Scope | None) -> Scope:
    """A scope that is not ``scope`` (mileage, or track for the mileage route)."""
    return Scope.TRACK if scope == Scope.MILEAGE else Scope.MILEAGE


@dataclass
class World:
    """What the requests of the matrix name, and the credentials of each situation."""

    api: httpx.AsyncClient
    pool: asyncpg.Pool
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: dict[tuple[str, str, str], str] = field(default_factory=dict)  # KEYS, scope or any
    ids: dict[str, str | int] = field(default_factory=dict)
    cosignature: dict[str, object] = field(default_factory=dict)
    ended: dict[str, dict[str, str]] = field(default_factory=dict)  # dead credentials

    def user(self, situation: str, scope: Scope | None) -> str | None:
        """The member ``situation`` logs in as, for a route reading ``scope``."""
        if situation == "grantee-other-scope":
            return "narrow-track" if other_scope(scope) == Scope.TRACK else "narrow-mileage"
        return t.SITUATIONS[situation].user

    def headers(self, situation: str, scope: Scope | None) -> dict[str, str]:
        """Credentials of ``situation`` for a route reading ``scope``."""
        s = t.SITUATIONS[situation]
        if s.ended:
            return self.ended[situation]
        if s.key is not None:
            wanted = {"any": "any", "scoped": scope or Scope.TRACK, "other": other_scope(scope)}
            (role,) = s.roles
            return {"X-API-Key": self.keys[(str(s.org), role, str(wanted[s.key]))]}
        user = self.user(situation, scope)
        return self.tokens[user] if user is not None else {}


async def _cast(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for org_id, kind in CAST.orgs.items():
            await create_organisation(conn, org_id, org_id.title(), kind)
        for username, (org_id, roles) in CAST.members.items():
            await create_member(conn, org_id, username, PASSWORD, roles)
        for org_id in GRANTEES:
            await create_organisation(conn, org_id, org_id.title(), OrgKind.INSURER)
    await places.add_places(pool)  # police's jurisdiction, police-north, county, segments
    await witnesses(pool)  # witness-w with witness-w-admin and witness-w-bot
    async with pool.acquire() as conn:
        for org_id, (kind, parent) in MORE_ORGS.items():
            area = [list(v) for v in HARBOUR] if org_id == "harbour" else None
            await create_organisation(
                conn, org_id, org_id.title(), kind, parent_id=parent, jurisdiction=area
            )
        await conn.execute(
            "UPDATE organisations SET parent_id = 'ministry' WHERE org_id = 'police'"
        )
        for username, (org_id, role) in MORE_MEMBERS.items():
            await create_member(conn, org_id, username, PASSWORD, [role])
        for org_id, (username, *_rest) in GRANTEES.items():
            await create_member(conn, org_id, username, PASSWORD, [Role.INSURER])


async def _grants(world: World) -> None:
    owner = await principal(world.api, world.pool, "fleet-a-admin")
    # A key holds its creator's roles at most: the analyst's key is made as the analyst (the
    # route would need an admin who is an analyst too; the kernel does not ask).
    creators = {key: await principal(world.api, world.pool, user) for key, user in KEYS.items()}
    now = int(time.time() * 1000)
    async with world.pool.acquire() as conn:
        made = await create_grant(
            conn, owner, "insurer-x", ALL_SCOPES, GRANTED, now - HOUR_MS, now + DAY_MS, "claim"
        )
        world.ids["grant_id"] = made.grant_id
        spare = await create_grant(
            conn, owner, "insurer-x", [Scope.TRACK], ["veh-a2"], now, now + DAY_MS, "to revoke"
        )
        world.ids["spare_grant_id"] = spare.grant_id
        for org_id, (_user, scopes, devices, start, end, revoked) in GRANTEES.items():
            grant = await create_grant(
                conn, owner, org_id, scopes, devices, now + start, now + end, "a test"
            )
            if revoked:
                await revoke_grant(conn, owner, grant.grant_id)
        for org, role in KEYS:
            creator = creators[(org, role)]
            for scope in (*ALL_SCOPES, None):
                scopes = [] if scope is None else [scope]
                _row, full = await create_api_key(conn, creator, "a key", [role], scopes, 1, 1)
                world.keys[(org, role, str(scope or "any"))] = full
        revocable, _full = await create_api_key(conn, owner, "to revoke", [Role.ADMIN], [], 1, 1)
        world.ids["key_id"] = revocable.key_id
        listed, _full = await create_api_key(conn, owner, "listed", [Role.ADMIN], [], 1, 1)
        world.ids["listed_key_id"] = listed.key_id
        dead, full = await create_api_key(conn, owner, "revoked", [Role.ADMIN], [], 1, 1)
        await revoke_api_key(conn, "fleet-a", dead.key_id)
        world.ended["owner-key-revoked"] = {"X-API-Key": full}
    session = await bearer(world.api, "fleet-a-admin")
    ended = await world.api.post("/v1/auth/revoke", headers=session)
    assert ended.status_code == 204, ended.text
    world.ended["owner-admin-logged-out"] = session


async def _vehicles(world: World, settings: Settings) -> None:
    """veh-a1's telemetry and warning in police's city; veh-c1 in the ledger with a document;
    the devices that the device changes change."""
    await places.add_telemetry(world.pool, [("veh-a1", 1, T0 + 1000, middle(CITY), 7, 1500)])
    speeding = places.warning("w-a1", WarningType.SPEEDING, "veh-a1", [1], T0)
    await places.add_warnings(world.pool, [speeding])
    registry = DeviceRegistry(world.pool)
    for device_id in CHANGED:
        key = Ed25519PrivateKey.generate().public_key
        await registry.register(
            DeviceKey(
                device_id=device_id,
                public_key=key,
                owner_org="fleet-a",
                kind=DeviceKind.VEHICLE,
                valid_from_ms=0,
            )
        )
    ledger = Ledger(world.pool, settings)
    car = Device("veh-c1")
    await ledger.register(car.records)
    async with world.pool.acquire() as conn:
        document = await register_document(
            conn, "fleet-a", "veh-c1", "ab" * 32, "inspection", None, "setup"
        )
    world.ids["document_id"] = document.document_id
    start = int(time.time() * 1000) - HOUR_MS
    size = await ledger.sequence(drive(car, 5, start), car.device_id)
    world.ids |= {"from_ms": start - 1, "to_ms": start + HOUR_MS, "index": size - 1}
    world.ids["log_id"] = await world.pool.fetchval(
        "SELECT log_id FROM ledger_logs WHERE origin LIKE '%/telemetry/%'"
    )


async def _witness_and_rules(world: World) -> None:
    """witness-w's key registered and a cosignature of the latest checkpoint ready to send;
    police's rules key and its version 1."""
    api = world.api
    signer = CosignatureSigner.generate("w.matrix/1")
    made = await api.post(
        "/v1/ledger/witness-keys",
        json={"vkey": signer.verifier().to_vkey()},
        headers=world.tokens["witness-w-admin"],
    )
    assert made.status_code == 201, made.text
    headers = world.tokens["witness-w-bot"]
    base = f"/v1/ledger/logs/{world.ids['log_id']}"
    log_vkey = telemetry_vkey((await api.get("/v1/ledger/keys", headers=headers)).json())
    note = (await api.get(f"{base}/checkpoint", headers=headers)).text
    proof = (await api.get(f"{base}/proofs/consistency?first=0", headers=headers)).json()
    line = Witness(signer, MemoryWitnessStateStore()).add_checkpoint(
        note, 0, [b64_decode(h) for h in proof["proof"]], Ed25519Verifier.from_vkey(log_vkey)
    )
    world.cosignature = {"tree_size": proof["second"], "cosignature": line}
    await set_jurisdiction(world.pool, "police", CITY)
    await add_organisation_key(world.pool, "police", "k1", _key("police").public_key, 0)
    published = await api.post(
        "/v1/rules", content=_signed(), headers={**JOSE, **world.tokens["police-admin"]}
    )
    assert published.status_code == 201, published.text


async def build_world(settings: Settings, tmp: Path) -> AsyncIterator[World]:
    """The world on a fresh scratch schema, with the app serving it in process."""
    settings = settings.model_copy(update={"log_key_file": tmp / "log.skey"})
    async with scratch_schema_pool(settings, max_size=6) as pool:
        await _cast(pool)
        app = create_app(settings, pool)
        passwords = PasswordFile(tmp / "passwd")
        use_mqtt_credentials(app, lambda r: DeviceCredentials(r, passwords, lambda: False))
        # The live feed ends its answer after its first line when the server is stopping:
        # so a feed allowed here is a whole 200 answer (its refusals come before it starts).
        stopping(app).set()
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
                world = World(api, pool)
                users = {s.user for s in t.SITUATIONS.values() if s.user is not None}
                users = users - {"narrow-*"} | {"narrow-mileage", "narrow-track"}
                world.tokens = {user: await bearer(api, user) for user in sorted(users)}
                await _vehicles(world, settings)
                await _grants(world)
                await _witness_and_rules(world)
                # an audit entry about fleet-a's vehicle, read by its admin
                read = await api.get(
                    "/v1/vehicles/veh-a1/mileage",
                    params={"from_ms": T0 - DAY_MS, "to_ms": T0 + DAY_MS},
                    headers=world.tokens["fleet-a-admin"],
                )
                assert read.status_code == 200, read.text
                world.ids["audit_index"] = await pool.fetchval(
                    "SELECT max(leaf_index) FROM audit_entries"
                )
                world.ids["audit_until_ms"] = int(time.time() * 1000) + 1
                yield world
