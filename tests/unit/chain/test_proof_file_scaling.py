"""``ProofFile`` work grows linearly with the file, counted in SHA-256 computations.

A 391 KB proof file once took 44 s: every root (and every proof whose root came from the
leaves) was recomputed from all its leaves. These tests count the hashes done for a file and
for one four times larger: linear work gives a ratio near 4 (a little more for the log n of
each proof), quadratic work 16.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

import chain.hashing
from chain.hashing import leaf_hashes
from chain.log import InMemoryMerkleLog
from chain.proof_file import ProofFile


class _CountingHasher:
    """Stands in for the prefixed hashers of ``chain.hashing``; counts every copy made."""

    def __init__(self, prefix: bytes, counter: list[int]) -> None:
        self._hasher = hashlib.sha256(prefix)
        self._counter = counter

    def copy(self) -> Any:
        self._counter[0] += 1
        return self._hasher.copy()


@pytest.fixture
def count_hashes(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], object]], int]:
    counter = [0]
    monkeypatch.setattr(chain.hashing, "_LEAF_HASHER", _CountingHasher(b"\x00", counter))
    monkeypatch.setattr(chain.hashing, "_NODE_HASHER", _CountingHasher(b"\x01", counter))

    def count(work: Callable[[], object]) -> int:
        counter[0] = 0
        work()
        return counter[0]

    return count


def _file(leaves: int) -> str:
    """Every root size listed; inclusion and consistency proofs whose roots come from leaves."""
    entries = [b"entry %d" % i for i in range(leaves)]
    log = InMemoryMerkleLog()
    log.append_many(entries)
    data = {
        "leaves_hex": [e.hex() for e in entries],
        "leaf_hashes_hex": [h.hex() for h in leaf_hashes(entries)],
        "roots": [{"size": n, "root_hex": log.root_at(n).hex()} for n in range(1, leaves + 1)],
        "inclusion": [
            {"index": i, "size": leaves, "proof_hex": [h.hex() for h in log.inclusion_proof(i)]}
            for i in range(leaves)
        ],
        "consistency": [
            {
                "size1": n,
                "size2": leaves,
                "proof_hex": [h.hex() for h in log.consistency_proof(n, leaves)],
            }
            for n in range(1, leaves + 1)
        ],
    }
    return json.dumps(data)


def _parse_and_check(text: str) -> None:
    results = ProofFile.from_json(text).check()
    assert all(r.passed for r in results), [str(r) for r in results if not r.passed][:3]


def test_roots_and_proofs_cost_linear_work(
    count_hashes: Callable[[Callable[[], object]], int],
) -> None:
    small, large = _file(512), _file(2048)
    small_hashes = count_hashes(lambda: _parse_and_check(small))
    large_hashes = count_hashes(lambda: _parse_and_check(large))
    ratio = large_hashes / small_hashes
    # n log n for the proofs themselves: 4 * 11/9 ~ 4.9. Quadratic work would be ~16.
    assert ratio < 7, (small_hashes, large_hashes)


def test_roots_from_the_leaves_need_no_roots_section(
    count_hashes: Callable[[Callable[[], object]], int],
) -> None:
    # Inclusion proofs whose root is computed from the leaves (no roots, no root_hex).
    def only_inclusion(leaves: int) -> str:
        data = json.loads(_file(leaves))
        del data["roots"], data["consistency"]
        return json.dumps(data)

    small, large = only_inclusion(512), only_inclusion(2048)
    ratio = count_hashes(lambda: _parse_and_check(large)) / count_hashes(
        lambda: _parse_and_check(small)
    )
    assert ratio < 7


def test_given_leaf_hashes_must_be_hashes() -> None:
    from chain.errors import EncodingError

    with pytest.raises(EncodingError, match=r"leaf_hashes_hex\[1\]: must be a 32-byte hash"):
        ProofFile.from_json('{"leaf_hashes_hex": ["' + "00" * 32 + '", "00"], "roots": []}')


def test_a_file_over_the_limit_fails_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    import chain.proof_file
    from chain.errors import EncodingError

    monkeypatch.setattr(chain.proof_file, "MAX_PROOF_FILE_BYTES", 100)
    with pytest.raises(EncodingError, match="proof file: larger than the limit of 100 bytes"):
        ProofFile.from_json(b"{" + b" " * 200 + b"}")
