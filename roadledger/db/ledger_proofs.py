"""One proof request, at most one query: the RFC 9162 proofs the API serves one at a time.

A proof route needs the log (its origin and size), the proof, the root of each tree size it
names and, for inclusion, the leaf's hash. Read separately that is five round trips. Here the
log comes from :class:`KnownLogs` (no query while the sizes asked for are ones the log is known
to have) and every node of the proof and of the roots from the tiles of
:class:`~roadledger.db.ledger_tiles.TileCache`: one query for the tiles not held yet, none
once they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from chain.errors import ChainError
from chain.merkle import NodeRef, RootPlan, consistency_plan, inclusion_plan, root_plan
from roadledger.db.ledger_reads import LedgerLog, ProofRequestInvalid, log_by_id
from roadledger.db.ledger_tiles import TileCache

__all__ = ["ConsistencyAnswer", "InclusionAnswer", "KnownLogs", "LedgerProofs"]


class KnownLogs:
    """The logs' rows as last read, by id.

    A log's id and origin never change and its tree only grows, so a request about sizes up
    to the size last read needs no query; a larger size, or "the latest", reads the row again.
    """

    def __init__(self) -> None:
        self._logs: dict[int, LedgerLog] = {}

    async def covering(self, pool: asyncpg.Pool, log_id: int, *sizes: int | None) -> LedgerLog:
        """The log ``log_id``, read again unless every size (None: the latest) is known."""
        known = self._logs.get(log_id)
        if known is None or any(size is None or size > known.tree_size for size in sizes):
            known = await log_by_id(pool, log_id)
            self._logs[log_id] = known
        return known


@dataclass(frozen=True)
class InclusionAnswer:
    """An inclusion proof with the leaf hash and the root it leads to."""

    leaf_hash: bytes
    root: bytes
    proof: list[bytes]


@dataclass(frozen=True)
class ConsistencyAnswer:
    """A consistency proof with the roots of both sizes."""

    first_root: bytes
    second_root: bytes
    proof: list[bytes]


def _check_size(log: LedgerLog, size: int, what: str) -> None:
    if not 0 <= size <= log.tree_size:
        raise ProofRequestInvalid(f"{what}: {size} is not a size the log had (0..{log.tree_size})")


def _root_plan(log: LedgerLog, size: int) -> RootPlan:
    # The latest root is in the log's row: no node to read for it.
    if size == log.tree_size and log.root_hash is not None:
        return RootPlan(size, ())
    return root_plan(size)


def _root(log: LedgerLog, plan: RootPlan, hashes: list[bytes]) -> bytes:
    if not plan.nodes and plan.size and log.root_hash is not None:
        return log.root_hash
    return plan.assemble(hashes)


class LedgerProofs:
    """Proofs of the API's process: its known logs and its tiles (``tile_cache_bytes``)."""

    def __init__(self, tile_cache_bytes: int) -> None:
        self.logs = KnownLogs()
        self.tiles = TileCache(tile_cache_bytes)

    async def _read(
        self, pool: asyncpg.Pool, log: LedgerLog, parts: list[tuple[NodeRef, ...]]
    ) -> list[list[bytes]]:
        """The hashes of each part's nodes, read together."""
        wanted = list(dict.fromkeys(ref for part in parts for ref in part))
        hashes = await self.tiles.read_nodes(pool, log.log_id, wanted)
        found = dict(zip(wanted, hashes, strict=True))
        return [[found[ref] for ref in part] for part in parts]

    async def inclusion(
        self, pool: asyncpg.Pool, log: LedgerLog, index: int, size: int
    ) -> InclusionAnswer:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        _check_size(log, size, "tree_size")
        try:
            plan = inclusion_plan(index, size)
        except ChainError as exc:
            raise ProofRequestInvalid(f"leaf_index: {exc}") from None
        roots = _root_plan(log, size)
        leaf, proof, root = await self._read(pool, log, [((0, index),), plan.nodes, roots.nodes])
        return InclusionAnswer(leaf[0], _root(log, roots, root), plan.assemble(proof))

    async def consistency(
        self, pool: asyncpg.Pool, log: LedgerLog, first: int, second: int
    ) -> ConsistencyAnswer:
        """The consistency proof from size ``first`` to ``second``, with both roots."""
        _check_size(log, second, "second")
        if not 0 <= first <= second:
            raise ProofRequestInvalid(f"first: {first} must be between 0 and second ({second})")
        plan = consistency_plan(first, second)
        first_roots, second_roots = _root_plan(log, first), _root_plan(log, second)
        parts = [plan.nodes, first_roots.nodes, second_roots.nodes]
        proof, one, two = await self._read(pool, log, parts)
        return ConsistencyAnswer(
            _root(log, first_roots, one), _root(log, second_roots, two), plan.assemble(proof)
        )
