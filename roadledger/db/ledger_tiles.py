"""A log's hashes by tile, read once and kept: what the API computes proofs from.

A tile (C2SP tlog-tiles, height 8) at tile level ``t`` and index ``n`` holds the hashes of the
tree's nodes at level ``8t`` with indices ``256n .. 256n + 255``: leaf hashes at tile level 0
(``ledger_entries``), stored subtree hashes above (``ledger_nodes``). Every perfect subtree a
proof names lies inside one tile: node ``(level, index)`` is the root of ``2^h`` consecutive
hashes of one tile, ``h = level - 8t``, so the tile keeps its inner levels (computed once, 255
hashes for a full tile) and answers any node of it without hashing again.

A full tile never changes (the log is append-only), nor does a partial one's prefix: a tile
read when the log was shorter answers every node it is wide enough for, and is read again
(wider) only for a node beyond its width. So the cache needs no invalidation, only a bound
(least recently used tiles leave first).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from chain.errors import StorageError
from chain.hashing import parent_hashes
from chain.merkle import NodeRef

__all__ = ["TILE_HEIGHT", "TILE_WIDTH", "Tile", "TileCache", "tile_of"]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

TileRef = tuple[int, int, int]  # (log id, tile level, tile index)

# Rows [lo, lo + $5) of several tiles in one query: leaf hashes for tile level 0, stored
# nodes above. LATERAL makes each tile one index range scan: a join on the ranges let the
# planner scan a whole log's entries (milliseconds a miss at a million leaves).
_READ_TILES = """
    SELECT 0, e.leaf_index, e.leaf_hash
      FROM unnest($2::bigint[]) AS r(lo)
     CROSS JOIN LATERAL (
        SELECT leaf_index, leaf_hash FROM ledger_entries
         WHERE log_id = $1 AND leaf_index >= r.lo AND leaf_index < r.lo + $5
     ) AS e
    UNION ALL
    SELECT n.level / 8, n.node_index, n.hash
      FROM unnest($3::smallint[], $4::bigint[]) AS r(level, lo)
     CROSS JOIN LATERAL (
        SELECT level, node_index, hash FROM ledger_nodes
         WHERE log_id = $1 AND level = r.level AND node_index >= r.lo AND node_index < r.lo + $5
     ) AS n
"""


def tile_of(ref: NodeRef) -> tuple[int, int, int, int]:
    """(tile level, tile index, height in the tile, first row) of node ``ref``."""
    level, index = ref
    tile_level, height = divmod(level, TILE_HEIGHT)
    row = index << height
    return tile_level, row >> TILE_HEIGHT, height, row & (TILE_WIDTH - 1)


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile's rows and the levels above them inside the tile (``levels[0]`` = rows)."""

    levels: tuple[tuple[bytes, ...], ...]

    @classmethod
    def of_rows(cls, rows: Sequence[bytes]) -> Tile:
        """The tile of ``rows`` (at most 256 hashes), its inner levels computed."""
        levels = [tuple(rows)]
        while len(levels) < TILE_HEIGHT and len(levels[-1]) >= 2:
            levels.append(tuple(parent_hashes(levels[-1])))
        return cls(tuple(levels))

    @property
    def width(self) -> int:
        """How many rows the tile holds (256 when full)."""
        return len(self.levels[0])

    def node(self, height: int, first_row: int) -> bytes | None:
        """The hash of the ``2^height`` rows from ``first_row`` (None: the tile is too narrow)."""
        if height >= len(self.levels):
            return None
        position = first_row >> height
        hashes = self.levels[height]
        return hashes[position] if position < len(hashes) else None

    @property
    def size_bytes(self) -> int:
        """Memory held, near enough: 32 bytes a hash plus the tuples' pointers."""
        return sum(40 * len(level) for level in self.levels)


class TileCache:
    """Tiles of every log, least recently used first out beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[TileRef, Tile] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[TileRef, asyncio.Future[None]] = {}
        self.reads = 0  # queries made, for tests and metrics

    def __len__(self) -> int:
        return len(self._tiles)

    async def read_nodes(
        self, pool: asyncpg.Pool, log_id: int, refs: Sequence[NodeRef]
    ) -> list[bytes]:
        """The hashes of perfect subtrees ``refs`` of log ``log_id`` (one query for every tile
        not held, or held too narrow; none when all are held)."""
        found: dict[NodeRef, bytes] = {}
        missing: set[tuple[int, int]] = set()  # (tile level, tile index)
        for ref in refs:
            if ref in found:
                continue
            tile_level, index, height, first = tile_of(ref)
            tile = self._get((log_id, tile_level, index))
            digest = tile.node(height, first) if tile is not None else None
            if digest is None:
                missing.add((tile_level, index))
            else:
                found[ref] = digest
        if missing:
            await self._fetch(pool, log_id, missing)
            for attempt in range(2):
                short: set[tuple[int, int]] = set()
                for ref in refs:
                    if ref not in found:
                        tile_level, index, height, first = tile_of(ref)
                        tile = self._get((log_id, tile_level, index))
                        digest = tile.node(height, first) if tile is not None else None
                        if digest is not None:
                            found[ref] = digest
                        elif attempt:
                            raise StorageError(f"log {log_id}: node {ref} is not stored")
                        else:
                            short.add((tile_level, index))
                if not short:
                    break
                # A tile another request read while the log was shorter: read it now.
                await self._read(pool, log_id, short)
        return [found[ref] for ref in refs]

    async def _fetch(self, pool: asyncpg.Pool, log_id: int, missing: set[tuple[int, int]]) -> None:
        """Read the ``missing`` tiles, once however many requests want one at the same time:
        a tile already being read is waited for, not read again (a cold cache under load
        would otherwise read each tile once per request that missed it)."""
        waits = {
            self._inflight[log_id, *key] for key in missing if (log_id, *key) in self._inflight
        }
        mine = {key for key in missing if (log_id, *key) not in self._inflight}
        if mine:
            done = asyncio.get_running_loop().create_future()
            for key in mine:
                self._inflight[log_id, *key] = done
            try:
                await self._read(pool, log_id, mine)
            finally:
                for key in mine:
                    del self._inflight[log_id, *key]
                done.set_result(None)  # waiters look again, and read what is still missing
        for wait in waits:
            await asyncio.shield(wait)
        if waits:
            still = {key for key in missing if self._get((log_id, *key)) is None}
            if still:
                await self._read(pool, log_id, still)

    def _get(self, key: TileRef) -> Tile | None:
        tile = self._tiles.get(key)
        if tile is not None:
            self._tiles.move_to_end(key)
        return tile

    async def _read(self, pool: asyncpg.Pool, log_id: int, missing: set[tuple[int, int]]) -> None:
        # Read whole tiles (as far as the log has them), not just the rows asked for: the
        # neighbours' proofs need the rest, and a full tile is cached for good.
        leaf_tiles = [index for level, index in missing if level == 0]
        node_tiles = [(level, index) for level, index in missing if level > 0]
        self.reads += 1
        rows = await pool.fetch(
            _READ_TILES,
            log_id,
            [index * TILE_WIDTH for index in leaf_tiles],
            [level * TILE_HEIGHT for level, _ in node_tiles],
            [index * TILE_WIDTH for _, index in node_tiles],
            TILE_WIDTH,
        )
        grouped: dict[tuple[int, int], dict[int, bytes]] = {key: {} for key in missing}
        for tile_level, row_index, digest in rows:
            grouped[tile_level, row_index >> TILE_HEIGHT][row_index & (TILE_WIDTH - 1)] = bytes(
                digest
            )
        for (tile_level, index), by_row in grouped.items():
            width = 0
            while width in by_row:  # the stored prefix: rows are written in order, never holes
                width += 1
            if width:
                rows_of_tile = [by_row[row] for row in range(width)]
                self._put((log_id, tile_level, index), Tile.of_rows(rows_of_tile))

    def _put(self, key: TileRef, tile: Tile) -> None:
        old = self._tiles.pop(key, None)
        if old is not None:
            self._bytes -= old.size_bytes
        self._tiles[key] = tile
        self._bytes += tile.size_bytes
        while self._bytes > self.max_bytes and len(self._tiles) > 1:
            _, evicted = self._tiles.popitem(last=False)
            self._bytes -= evicted.size_bytes
