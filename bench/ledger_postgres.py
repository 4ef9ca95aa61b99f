"""The PostgreSQL half of the ledger benchmark (``bench/ledger.py --postgres``).

In one run, in a scratch schema of the configured database: the raw asyncpg COPY rate of the
same entry rows into ``ledger_entries`` (the limit: sequencing must write at least these
rows), then the sequencer appending every entry in batches through ``PostgresLedgerStore``,
then inclusion and consistency proofs read back from PostgreSQL, timed one by one for
p50/p99. Before the proofs the bulk-loaded tables are vacuumed and analysed (as autovacuum
would do a moment later, competing for the same two cores), and the benchmark's own millions
of objects are frozen out of the garbage collector (a proof-serving process does not hold
them). The final root is checked against the in-memory log of the same entries, and a
sample of the proofs is verified, so a fast wrong answer cannot pass.
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence

from chain.hashing import leaf_hashes
from chain.log import InMemoryMerkleLog
from chain.merkle import verify_consistency, verify_inclusion
from chain.note_signers import Ed25519Signer
from chain.sequencer import AppendResult, Sequencer
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.settings import load_settings
from tests.support.scratch_schema import scratch_schema_pool

SEQUENCING_FLOOR = 50_000  # leaves/s
PROOF_P99_FLOOR_MS = 5.0
ORIGIN = "roadledger.bench/ledger"


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _run(
    entries: Sequence[bytes], batch: int, proofs: int, reference: InMemoryMerkleLog, seed: int
) -> list[tuple[str, float, str]]:
    settings = load_settings()
    figures: list[tuple[str, float, str]] = []
    hashes = leaf_hashes(entries)
    async with scratch_schema_pool(settings) as pool:
        _progress(f"raw COPY of {len(entries):,} entry rows (the limit)")
        async with pool.acquire() as conn:
            started = time.perf_counter()
            for start in range(0, len(entries), batch):
                rows = [
                    (0, i, hashes[i], entries[i])
                    for i in range(start, min(start + batch, len(entries)))
                ]
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "ledger_entries",
                        columns=("log_id", "leaf_index", "leaf_hash", "entry"),
                        records=rows,
                    )
            copy_rate = len(entries) / (time.perf_counter() - started)
            await conn.execute("TRUNCATE ledger_entries")
        figures.append(("raw asyncpg COPY, entry rows", copy_rate, "rows/s"))

        store = PostgresLedgerStore(pool)
        sequencer = await Sequencer.open(store, ORIGIN, Ed25519Signer.generate(ORIGIN))
        _progress(f"sequencing {len(entries):,} leaves in batches of {batch:,}, 2 in flight")
        started = time.perf_counter()
        sizes = []
        in_flight: deque[asyncio.Future[AppendResult]] = deque()
        for start in range(0, len(entries), batch):
            in_flight.append(await sequencer.submit(entries[start : start + batch]))
            sizes.append(sequencer.size)
            if len(in_flight) == 2:
                await in_flight.popleft()
            if len(sizes) % 20 == 0:
                _progress(f"{sequencer.size:,} leaves")
        while in_flight:
            await in_flight.popleft()
        sequencing_rate = len(entries) / (time.perf_counter() - started)
        figures.append(("PostgreSQL sequencing", sequencing_rate, "leaves/s"))
        if sequencer.head.root != reference.root():
            raise SystemExit("BUG: the PostgreSQL log's root differs from the in-memory log's")

        size = sequencer.size
        root = sequencer.head.root
        _progress("VACUUM (ANALYZE) of the bulk-loaded ledger tables")
        async with pool.acquire() as conn:
            await conn.execute("VACUUM (ANALYZE) ledger_entries, ledger_nodes")
        rng = random.Random(seed)
        # The benchmark holds millions of entry objects that a process serving proofs would
        # not; freeze them out of the garbage collector so that its full collections do not
        # land inside the timed proofs (the in-memory half does the same).
        gc.collect()
        gc.freeze()
        _progress(f"{proofs:,} inclusion and {proofs:,} consistency proofs from PostgreSQL")
        inclusion: list[float] = []
        for _ in range(proofs):
            index = rng.randrange(size)
            started = time.perf_counter()
            proof = await store.inclusion_proof(ORIGIN, index, size)
            inclusion.append((time.perf_counter() - started) * 1000)
            if len(inclusion) % 97 == 0:
                verify_inclusion(index, size, hashes[index], root, proof)
        consistency: list[float] = []
        for _ in range(proofs):
            size1 = rng.choice(sizes)
            started = time.perf_counter()
            proof = await store.consistency_proof(ORIGIN, size1, size)
            consistency.append((time.perf_counter() - started) * 1000)
            if len(consistency) % 97 == 0:
                verify_consistency(size1, size, reference.root_at(size1), root, proof)
        for name, samples in (("inclusion", inclusion), ("consistency", consistency)):
            figures.append((f"{name} proof from PostgreSQL p50", statistics.median(samples), "ms"))
            figures.append((f"{name} proof from PostgreSQL p99", _percentile(samples, 0.99), "ms"))
    return figures


def bench_postgres(
    entries: Sequence[bytes], batch: int, proofs: int, reference: InMemoryMerkleLog, seed: int
) -> tuple[list[str], list[str]]:
    """Run the PostgreSQL half; return (report lines, names of missed floors)."""
    figures = asyncio.run(_run(entries, batch, proofs, reference, seed))
    lines: list[str] = []
    missed: list[str] = []
    by_name = {name: value for name, value, _ in figures}
    for name, value, unit in figures:
        lines.append(
            f"{name:<44} {value:>13,.2f} {unit}"
            if unit == "ms"
            else f"{name:<44} {value:>13,.0f} {unit}"
        )
    ratio = by_name["PostgreSQL sequencing"] / by_name["raw asyncpg COPY, entry rows"]
    lines.append(f"{'sequencing / raw COPY of the entry rows':<44} {ratio:>13.2f}x")
    rate = by_name["PostgreSQL sequencing"]
    ok = rate >= SEQUENCING_FLOOR
    lines.append(f"{'sequencing floor 50,000 leaves/s':<44} {'ok' if ok else 'MISSED':>13}")
    if not ok:
        missed.append("PostgreSQL sequencing")
    for kind in ("inclusion", "consistency"):
        p99 = by_name[f"{kind} proof from PostgreSQL p99"]
        ok = p99 < PROOF_P99_FLOOR_MS
        lines.append(f"{kind + ' proof p99 floor < 5 ms':<44} {'ok' if ok else 'MISSED':>13}")
        if not ok:
            missed.append(f"{kind} proof p99")
    for line in lines:
        print(line, flush=True)
    return lines, missed
