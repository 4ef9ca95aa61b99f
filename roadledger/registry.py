"""The device registry: organisations, devices, and every key a device ever had.

A key record (:class:`chain.device_keys.DeviceKey`) says from when a key is valid and, once
rotated or revoked, until when. Messages are judged by the key valid at *their* time, so a
revocation rejects a device's later messages and keeps its earlier ones.

Every change is written in one transaction with its ledger entry
(:func:`chain.entries.device_key_entry`) into ``ledger_outbox``; the outbox relay publishes
those into the device's log, so the key history an insurer checks offline is on the ledger and
no change can be missing from it.

:class:`DeviceCredentials` issues each device its MQTT credential (the broker's password file,
:mod:`roadledger.mqtt_auth`) and takes it away again when the device's key is rotated or
revoked.

Errors, each also of a kind of :mod:`contracts.errors` (the status ``api/`` answers with)::

    RegistryError               root: catch this to catch every refusal of the registry
    ├── OrganisationNotFound    NotFound   the organisation is not registered
    ├── InvalidOrganisationKind Invalid    not a kind of contracts.access.OrgKind
    ├── DeviceNotFound          NotFound   the device is not registered
    ├── DeviceConflict          Conflict   the change contradicts the registry: another owner,
    │                                      kind or key details for a known device, a key used
    │                                      before, a rotation before the current key, no key
    │                                      valid now
    └── ReservedDeviceId        Forbidden  the device id is a service account's username
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import asyncpg

from chain.device_keys import DeviceKey
from chain.entries import device_key_entry
from chain.keys import Ed25519PublicKey
from contracts.access import OrgKind
from contracts.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

__all__ = [
    "CredentialStore",
    "DeviceConflict",
    "DeviceCredentials",
    "DeviceNotFound",
    "DeviceRegistry",
    "InvalidOrganisationKind",
    "OrganisationNotFound",
    "RegistryError",
    "ReservedDeviceId",
]


class RegistryError(DomainError):
    """A registry change was refused; the message names the device and the reason. Only its
    subclasses are raised (the tree is in the module docstring)."""


class OrganisationNotFound(RegistryError, NotFound):
    """The organisation is not registered."""


class InvalidOrganisationKind(RegistryError, Invalid):
    """The organisation kind is not one RoadLedger knows."""


class DeviceNotFound(RegistryError, NotFound):
    """The device is not registered."""


class DeviceConflict(RegistryError, Conflict):
    """The change contradicts what the registry holds for the device."""


class ReservedDeviceId(RegistryError, Forbidden):
    """The device id is a service account's username: never given to a device."""


_PARSED_LIMIT = 200_000


def _refuse_overlap(record: DeviceKey, others: list[tuple[str, int, int | None]]) -> None:
    """A device has at most one valid key at any time: a second one would let two signers
    speak for one odometer. Replacing a key is :meth:`DeviceRegistry.rotate`."""
    end = record.revoked_at_ms
    for key_id, valid_from, revoked_at in others:
        if (revoked_at is None or record.valid_from_ms < revoked_at) and (
            end is None or valid_from < end
        ):
            raise DeviceConflict(
                f"device {record.device_id} already has key {key_id} valid from {valid_from}"
                + ("" if revoked_at is None else f" to {revoked_at}")
                + "; a device has one valid key at a time: rotate it instead"
            )


class DeviceRegistry:
    """Registry operations on PostgreSQL (tables of :mod:`roadledger.db.schema`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        # record text -> parsed key. The verifier re-reads every cached device's keys every
        # few seconds; records are immutable text, so each is parsed (~40 us) only once.
        self._parsed: dict[str, DeviceKey] = {}

    async def ensure_organisation(self, org_id: str, name: str, kind: str) -> None:
        """Create the organisation unless it exists (its name and kind are then kept); a kind
        that is not a ``contracts.access.OrgKind`` is :class:`InvalidOrganisationKind`."""
        if kind not in OrgKind.__members__.values():
            known = ", ".join(k.value for k in OrgKind)
            raise InvalidOrganisationKind(f"organisation kind {kind!r} is not one of {known}")
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO organisations (org_id, name, kind) VALUES ($1, $2, $3) "
                "ON CONFLICT (org_id) DO NOTHING",
                org_id,
                name,
                kind,
            )

    async def register(self, record: DeviceKey) -> bool:
        """Register a device with its first key; True if new, False if already identical."""
        return await self.register_many([record]) == 1

    async def register_many(self, records: Sequence[DeviceKey]) -> int:
        """Register devices and keys in one transaction; returns how many key records were new.

        Idempotent: registering the same record again changes nothing. A record that
        contradicts the registry (another owner or kind for a known device, other validity
        for a known key, a second key valid while another of the device is) is refused with
        :class:`DeviceConflict`, a record of an unregistered
        organisation with :class:`OrganisationNotFound`, and nothing is written.
        """
        if not records:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            unknown_orgs = await conn.fetch(
                "SELECT o FROM unnest($1::text[]) AS o "
                "WHERE NOT EXISTS (SELECT 1 FROM organisations WHERE org_id = o)",
                sorted({r.owner_org for r in records}),
            )
            if unknown_orgs:
                raise OrganisationNotFound(f"organisation {unknown_orgs[0][0]!r} is not registered")
            await conn.executemany(
                "INSERT INTO devices (device_id, owner_org, kind, vin, vehicle_class) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id) DO NOTHING",
                [(r.device_id, r.owner_org, r.kind.value, r.vin, r.vehicle_class) for r in records],
            )
            rows = await conn.fetch(
                "SELECT device_id, owner_org, kind FROM devices WHERE device_id = ANY($1::text[])",
                [r.device_id for r in records],
            )
            known = {row["device_id"]: (row["owner_org"], row["kind"]) for row in rows}
            for record in records:
                if known[record.device_id] != (record.owner_org, record.kind.value):
                    owner, kind = known[record.device_id]
                    raise DeviceConflict(
                        f"device {record.device_id} is registered as a {kind} of {owner}, "
                        f"not a {record.kind.value} of {record.owner_org}"
                    )
            stored = await conn.fetch(
                "SELECT device_id, key_id, record, valid_from_ms, revoked_at_ms FROM device_keys "
                "WHERE device_id = ANY($1::text[])",
                [r.device_id for r in records],
            )
            existing = {(row["device_id"], row["key_id"]): row["record"] for row in stored}
            windows: dict[str, list[tuple[str, int, int | None]]] = {}
            for row in stored:
                windows.setdefault(row["device_id"], []).append(
                    (row["key_id"], row["valid_from_ms"], row["revoked_at_ms"])
                )
            fresh = []
            for record in records:
                text = existing.get((record.device_id, record.key_id))
                if text is None:
                    _refuse_overlap(record, windows.setdefault(record.device_id, []))
                    windows[record.device_id].append(
                        (record.key_id, record.valid_from_ms, record.revoked_at_ms)
                    )
                    existing[(record.device_id, record.key_id)] = record.to_json()
                    fresh.append(record)
                elif text != record.to_json():
                    raise DeviceConflict(
                        f"device {record.device_id}: key {record.key_id} is already registered "
                        "with other details; rotate or revoke it instead"
                    )
            await self._write_keys(conn, fresh, insert=True)
            return len(fresh)

    async def rotate(self, device_id: str, new_key: Ed25519PublicKey, at_ms: int) -> DeviceKey:
        """Make ``new_key`` the device's key from ``at_ms``; every older key ends there.

        :class:`DeviceNotFound` if the device is unknown; :class:`DeviceConflict` if the key
        was the device's before or ``at_ms`` is before the current key's start.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            keys = await self._keys_for_update(conn, device_id)
            if any(key.public_key == new_key for key in keys):
                raise DeviceConflict(f"device {device_id}: that key was registered before")
            ended = [key.revoke(at_ms) for key in keys if _valid_at_or_after(key, at_ms)]
            latest = max(keys, key=lambda key: key.valid_from_ms)
            if at_ms < latest.valid_from_ms:
                raise DeviceConflict(
                    f"device {device_id}: rotation at {at_ms} is before the current key's "
                    f"start {latest.valid_from_ms}"
                )
            record = DeviceKey(
                device_id=device_id,
                public_key=new_key,
                owner_org=latest.owner_org,
                kind=latest.kind,
                valid_from_ms=at_ms,
                vin=latest.vin,
                vehicle_class=latest.vehicle_class,
            )
            await self._write_keys(conn, ended, insert=False)
            await self._write_keys(conn, [record], insert=True)
            return record

    async def revoke(self, device_id: str, at_ms: int) -> list[DeviceKey]:
        """End every key of the device that is still valid at or after ``at_ms``.

        Messages with a device time from ``at_ms`` on are then rejected (``revoked_key``);
        earlier ones stay valid. Returns the changed records (none if all ended earlier);
        :class:`DeviceNotFound` if the device is unknown.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            keys = await self._keys_for_update(conn, device_id)
            ended = [key.revoke(at_ms) for key in keys if _valid_at_or_after(key, at_ms)]
            ended = [key for key in ended if key.revoked_at_ms is not None]
            await self._write_keys(conn, ended, insert=False)
            return ended

    async def keys(self, device_id: str) -> list[DeviceKey]:
        """Every key the device ever had, oldest first (empty if unknown)."""
        return (await self.keys_for([device_id])).get(device_id, [])

    async def keys_for(self, device_ids: Iterable[str]) -> dict[str, list[DeviceKey]]:
        """Every key of each known device among ``device_ids``, oldest first."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT device_id, record FROM device_keys WHERE device_id = ANY($1::text[]) "
                "ORDER BY device_id, valid_from_ms, key_id",
                list(set(device_ids)),
            )
        found: dict[str, list[DeviceKey]] = {}
        parsed = self._parsed
        if len(parsed) > _PARSED_LIMIT:
            parsed.clear()
        for device_id, record in rows:
            key = parsed.get(record)
            if key is None:
                key = parsed[record] = DeviceKey.from_json(record)
            found.setdefault(device_id, []).append(key)
        return found

    async def devices(self, owner_org: str | None = None) -> list[tuple[str, str, str]]:
        """(device_id, owner_org, kind) of every device, optionally of one owner."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT device_id, owner_org, kind FROM devices "
                "WHERE $1::text IS NULL OR owner_org = $1 ORDER BY device_id",
                owner_org,
            )
        return [(row["device_id"], row["owner_org"], row["kind"]) for row in rows]

    # --- internals --------------------------------------------------------------------------

    async def _keys_for_update(self, conn: asyncpg.Connection, device_id: str) -> list[DeviceKey]:
        rows = await conn.fetch(
            "SELECT record FROM device_keys WHERE device_id = $1 "
            "ORDER BY valid_from_ms, key_id FOR UPDATE",
            device_id,
        )
        if not rows:
            raise DeviceNotFound(f"device {device_id} is not registered")
        return [DeviceKey.from_json(row["record"]) for row in rows]

    async def _write_keys(
        self, conn: asyncpg.Connection, records: Sequence[DeviceKey], *, insert: bool
    ) -> None:
        """Store key records and queue each for the ledger, in the caller's transaction."""
        if not records:
            return
        if insert:
            await conn.executemany(
                "INSERT INTO device_keys (device_id, key_id, public_key, valid_from_ms, "
                "revoked_at_ms, record) VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    (r.device_id, r.key_id, r.public_key.to_bytes(), r.valid_from_ms,
                     r.revoked_at_ms, r.to_json())
                    for r in records
                ],
            )  # fmt: skip
        else:
            await conn.executemany(
                "UPDATE device_keys SET revoked_at_ms = $3, record = $4, updated_at = now() "
                "WHERE device_id = $1 AND key_id = $2",
                [(r.device_id, r.key_id, r.revoked_at_ms, r.to_json()) for r in records],
            )
        await conn.executemany(
            "INSERT INTO ledger_outbox (device_id, entry) VALUES ($1, $2)",
            [(r.device_id, device_key_entry(r)) for r in records],
        )


def _valid_at_or_after(key: DeviceKey, at_ms: int) -> bool:
    return key.revoked_at_ms is None or key.revoked_at_ms > at_ms


class CredentialStore(Protocol):
    """Where MQTT credentials live (:class:`roadledger.mqtt_auth.PasswordFile`)."""

    def issue(self, username: str) -> str: ...

    def remove(self, username: str) -> bool: ...


class DeviceCredentials:
    """Each device's MQTT credential (username = device id), kept in step with the registry.

    Only a device with a key valid now gets one; rotating a device's key replaces it (the old
    password stops working), revoking the device removes it. ``reload`` makes the broker read
    the store again (SIGHUP; False when the broker is elsewhere and its operator must reload
    it); a reload also disconnects a device that is connected with a removed credential.
    ``reserved`` are the service accounts' usernames, never given to a device.
    """

    def __init__(
        self,
        registry: DeviceRegistry,
        store: CredentialStore,
        reload: Callable[[], bool],
        *,
        reserved: Iterable[str] = (),
    ) -> None:
        self.registry = registry
        self.store = store
        self._reload = reload
        self._reserved = frozenset(reserved)

    async def issue(self, device_id: str, *, now_ms: int) -> tuple[str, bool]:
        """A new password for ``device_id`` (shown once) and whether the broker was reloaded.

        Raises:
            DeviceNotFound: the device is unknown.
            DeviceConflict: it has no key valid at ``now_ms``.
            ReservedDeviceId: its id is a service account's username.
        """
        if device_id in self._reserved:
            raise ReservedDeviceId(f"device {device_id}: that id is a service account's username")
        keys = await self.registry.keys(device_id)
        if not keys:
            raise DeviceNotFound(f"device {device_id} is not registered")
        if not any(key.valid_from_ms <= now_ms and _valid_at_or_after(key, now_ms) for key in keys):
            raise DeviceConflict(
                f"device {device_id} has no key valid now (revoked?); rotate in a new key first"
            )
        password = self.store.issue(device_id)
        return password, self._reload()

    def revoke(self, device_id: str) -> tuple[bool, bool]:
        """Remove ``device_id``'s credential: (whether it had one, whether the broker was
        reloaded)."""
        if device_id in self._reserved:
            raise ReservedDeviceId(f"device {device_id}: that id is a service account's username")
        removed = self.store.remove(device_id)
        return removed, self._reload() if removed else False
