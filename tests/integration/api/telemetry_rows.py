"""Stored telemetry for the vehicle-data tests: devices registered through the registry and
rows inserted straight into the scratch schema's ``telemetry`` (what the store writer would
have written), with what each route should then answer computed here from the same rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from chain.device_keys import DeviceKey
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DeviceKind
from roadledger.registry import DeviceRegistry

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Row:
    """One stored message, as the export shows it."""

    device_id: str
    seq: int
    ts_ms: int
    recv_ms: int
    odo_m: int | None
    lat_e7: int
    lon_e7: int
    spd_cms: int | None
    hdg_cdeg: int | None
    segment_id: int | None
    leaf_hash: str


@dataclass(frozen=True)
class Fleet:
    """fleet-a's vehicle ``veh-a1`` (its rows in ``rows``, oldest first), its ``veh-a2`` and
    fleet-b's ``veh-b1`` (rows not to be shown with veh-a1's), and the window ``[start_ms,
    end_ms)`` of three whole UTC days that holds all of veh-a1's rows but ``before``."""

    rows: list[Row]
    before: Row
    start_ms: int
    end_ms: int


def _row(device_id: str, seq: int, ts_ms: int, odo_m: int | None) -> Row:
    leaf = hashlib.sha256(f"{device_id}/{seq}".encode()).hexdigest()
    return Row(
        device_id, seq, ts_ms, ts_ms + 150, odo_m, 525_000_000 + seq * 100,
        134_000_000 - seq * 70, None if odo_m is None else 1_000 + seq,
        None if odo_m is None else (seq * 450) % 36_000, seq % 3 or None, leaf,
    )  # fmt: skip


async def insert(pool: asyncpg.Pool, rows: list[Row]) -> None:
    def at(ms: int) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)

    await pool.executemany(
        "INSERT INTO telemetry (device_id, seq, ts, recv_ts, odo_m, lat_e7, lon_e7, spd_cms, "
        "hdg_cdeg, segment_id, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        [
            (r.device_id, r.seq, at(r.ts_ms), at(r.recv_ms), r.odo_m, r.lat_e7, r.lon_e7,
             r.spd_cms, r.hdg_cdeg, r.segment_id, bytes.fromhex(r.leaf_hash))
            for r in rows
        ],
    )  # fmt: skip


async def seed(pool: asyncpg.Pool) -> Fleet:
    """Register the devices and store their rows (see :class:`Fleet`)."""
    registry = DeviceRegistry(pool)
    for device_id, owner in (("veh-a1", "fleet-a"), ("veh-a2", "fleet-a"), ("veh-b1", "fleet-b")):
        await registry.register(
            DeviceKey(
                device_id=device_id,
                public_key=Ed25519PrivateKey.generate().public_key,
                owner_org=owner,
                kind=DeviceKind.VEHICLE,
                valid_from_ms=0,
            )
        )
    # Three days ago at midnight UTC: recent, so no retention or compression job is involved.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start_ms = int(today.timestamp() * 1000) - 3 * DAY_MS
    before = _row("veh-a1", 1, start_ms - 40 * 60_000, 99_000)
    rows: list[Row] = []
    odo = 100_000
    seq = 1
    # 37 messages over three days in a few hours each; two share a millisecond (ordered by
    # seq), and one odometer reading goes back 300 m (a rollback).
    for minute in [*range(0, 240, 20), *range(1450, 1570, 10), *range(2900, 3020, 10), 3020]:
        seq += 1
        odo += 0 if seq == 20 else 500
        if seq == 30:
            odo -= 800  # 500 forward, then 800 back: 300 m rolled back
        rows.append(_row("veh-a1", seq, start_ms + minute * 60_000, odo))
    last = rows[-1]
    rows[-1] = _row("veh-a1", last.seq, rows[-2].ts_ms, last.odo_m)  # same ts as the one before
    others = [_row("veh-a2", s, start_ms + s * 60_000, 5_000 + s) for s in range(1, 6)]
    others += [_row("veh-b1", s, start_ms + s * 60_000, 7_000 + s) for s in range(1, 6)]
    await insert(pool, [before, *rows, *others])
    return Fleet(rows, before, start_ms, start_ms + 3 * DAY_MS)


async def grant(
    api: httpx.AsyncClient,
    owner_headers: dict[str, str],
    grantee: str,
    scopes: list[str],
    *,
    from_ms: int,
    until_ms: int,
    device_id: str = "veh-a1",
) -> str:
    """A grant of ``scopes`` on ``device_id`` to ``grantee`` by fleet-a's admin; its id."""
    answer = await api.post(
        "/v1/grants",
        headers=owner_headers,
        json={
            "grantee_org": grantee,
            "scopes": scopes,
            "device_ids": [device_id],
            "valid_from_ms": from_ms,
            "valid_until_ms": until_ms,
            "purpose": "a test",
        },
    )
    assert answer.status_code == 201, answer.text
    grant_id: str = answer.json()["grant_id"]
    return grant_id
