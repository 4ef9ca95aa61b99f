"""The data ``bench/api_load.py`` serves, in a scratch schema: an organisation with an API key, a
log of many leaves for the proof routes, and vehicles whose signed messages went through the
pipeline's own stages (``tests/integration/api/ledger_support.py``) for the certificates."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from dataclasses import dataclass

import asyncpg

from chain.note_signers import Ed25519Signer
from chain.sequencer import AppendResult, Sequencer
from contracts.access import OrgKind, Role
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.identity.api_keys import create_api_key
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from roadledger.identity.principal import Principal
from roadledger.settings import Settings
from tests.integration.api.ledger_support import HOUR_MS, Ledger, drive
from tests.unit.ingest.fleet import Device

__all__ = ["PROOF_ORIGIN", "Cast", "add_cast", "add_proof_log", "add_vehicles"]

PROOF_ORIGIN = "roadledger.bench/api"
ORG = "fleet-a"  # the owner of tests.unit.ingest.fleet's devices


@dataclass(frozen=True)
class Cast:
    """Who the benchmark's requests act as."""

    api_key: str


async def add_cast(pool: asyncpg.Pool) -> Cast:
    """The vehicles' owner organisation, an analyst, and an API key of it."""
    async with pool.acquire() as conn:
        await create_organisation(conn, ORG, "Fleet A", OrgKind.FLEET_OWNER)
        member = await create_member(conn, ORG, "bench-analyst", os.urandom(12).hex(),
                                     [Role.ANALYST])  # fmt: skip
        creator = Principal(member.member_id, ORG, OrgKind.FLEET_OWNER,
                            frozenset({Role.ANALYST}), "session")  # fmt: skip
        _, secret = await create_api_key(conn, creator, "bench", ["analyst"], [], 1, 1)
    return Cast(api_key=secret)


async def add_proof_log(pool: asyncpg.Pool, leaves: int, batch: int = 10_000) -> tuple[int, int]:
    """A log of ``leaves`` 400-byte entries sequenced as ``bench/ledger_postgres.py`` does,
    then vacuumed and analysed; (its log id, the tree size of its latest checkpoint)."""
    store = PostgresLedgerStore(pool)
    sequencer = await Sequencer.open(store, PROOF_ORIGIN, Ed25519Signer.generate(PROOF_ORIGIN))
    in_flight: deque[asyncio.Future[AppendResult]] = deque()
    for start in range(0, leaves, batch):
        count = min(batch, leaves - start)
        entries = [i.to_bytes(8, "big") + os.urandom(392) for i in range(start, start + count)]
        in_flight.append(await sequencer.submit(entries))
        if len(in_flight) == 2:
            await in_flight.popleft()
    while in_flight:
        await in_flight.popleft()
    async with pool.acquire() as conn:
        await conn.execute("VACUUM (ANALYZE) ledger_entries, ledger_nodes")
        row = await conn.fetchrow(
            "SELECT log_id, tree_size FROM ledger_logs WHERE origin = $1", PROOF_ORIGIN
        )
    return int(row["log_id"]), int(row["tree_size"])


async def add_vehicles(
    pool: asyncpg.Pool, settings: Settings, counts: list[int]
) -> dict[int, tuple[str, int, int]]:
    """A vehicle per count with that many messages, one a second, through the registry, the
    outbox relay, the ledger writer and the store writer (signed with ``settings``' log key);
    count -> (device id, from_ms, to_ms) of a certificate of all of them."""
    ledger = Ledger(pool, settings)
    made: dict[int, tuple[str, int, int]] = {}
    messages: list[bytes] = []
    start = (int(time.time() * 1000) - 24 * HOUR_MS) // 1000 * 1000
    for count in counts:
        car = Device(f"veh-bench-{count}")
        await ledger.register(car.records)
        messages += drive(car, count, start)
        made[count] = (car.device_id, start, start + count * 1000)
    await ledger.sequence(messages, made[counts[0]][0])
    return made
