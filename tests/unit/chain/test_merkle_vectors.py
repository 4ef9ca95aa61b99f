"""Every case of shared/vectors/rfc9162-merkle.json, one test each (ids from the file).

The file is read at collection time to name the cases; the ``vectors_dir`` fixture decides
where it is (``ROADLEDGER_SHARED_DIR``), and a test checks both agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chain.errors import ProofError, RootMismatchError
from chain.hashing import leaf_hash
from chain.log import InMemoryMerkleLog
from chain.merkle import compute_root, verify_consistency, verify_inclusion
from roadledger.settings import load_settings
from tests.conftest import PROJECT_ROOT


def _vector_path() -> Path:
    shared = load_settings().shared_dir
    if not shared.is_absolute():
        shared = (PROJECT_ROOT / shared).resolve()
    return shared / "vectors" / "rfc9162-merkle.json"


VECTOR_PATH = _vector_path()
VECTORS: dict[str, Any] = json.loads(VECTOR_PATH.read_text()) if VECTOR_PATH.exists() else {}
MISSING = pytest.mark.skip(reason=f"{VECTOR_PATH} not found (set ROADLEDGER_SHARED_DIR)")

# The error each negative case must raise, by its desc; a case not listed here must raise
# ProofError (or a subclass).
EXPECTED_ERRORS: dict[str, type[ProofError]] = {
    "flipped bit in first proof hash": RootMismatchError,
    "wrong index": RootMismatchError,
    "wrong size": ProofError,  # proof of the wrong length for (2, 4)
    "trailing garbage": ProofError,
    "missing last hash": ProofError,
    "index beyond size": ProofError,
    "flipped bit in proof": RootMismatchError,
    "swapped roots": RootMismatchError,
    "size1 greater than size2": ProofError,
    "preceding garbage": ProofError,
    "equal sizes, different roots": RootMismatchError,
}


def _cases(section: str, name: Any) -> list[Any]:
    cases = VECTORS.get(section, [])
    if not cases:
        return [pytest.param({}, id=f"{section}-missing", marks=MISSING)]
    return [pytest.param(case, id=name(case)) for case in cases]


def _hashes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


def _leaves() -> list[bytes]:
    return _hashes(VECTORS["leaves_hex"])


def _leaf_hashes() -> list[bytes]:
    return _hashes(VECTORS["leaf_hashes_hex"])


def _root(size: int) -> bytes:
    return next(bytes.fromhex(r["root_hex"]) for r in VECTORS["roots"] if r["size"] == size)


def _log() -> InMemoryMerkleLog:
    log = InMemoryMerkleLog()
    log.append_many(_leaves())
    return log


def test_collected_file_is_the_fixture_file(vectors_dir: Path) -> None:
    assert (vectors_dir / "rfc9162-merkle.json").resolve() == VECTOR_PATH.resolve()
    for section in ("roots", "inclusion", "consistency", "negative"):
        assert VECTORS[section], f"{section} is empty"


def test_leaf_hashes(vectors_dir: Path) -> None:
    assert [leaf_hash(entry) for entry in _leaves()] == _leaf_hashes()


@pytest.mark.parametrize("case", _cases("roots", lambda c: f"size{c['size']}"))
def test_root(case: dict[str, Any]) -> None:
    size, expected = case["size"], bytes.fromhex(case["root_hex"])
    assert compute_root(_leaf_hashes()[:size]) == expected
    assert _log().root_at(size) == expected


@pytest.mark.parametrize(
    "case", _cases("inclusion", lambda c: f"index{c['index']}-size{c['size']}")
)
def test_inclusion(case: dict[str, Any]) -> None:
    index, size, proof = case["index"], case["size"], _hashes(case["proof_hex"])
    assert _log().inclusion_proof(index, size) == proof
    verify_inclusion(index, size, _leaf_hashes()[index], _root(size), proof)


@pytest.mark.parametrize(
    "case", _cases("consistency", lambda c: f"size{c['size1']}-to-size{c['size2']}")
)
def test_consistency(case: dict[str, Any]) -> None:
    size1, size2, proof = case["size1"], case["size2"], _hashes(case["proof_hex"])
    assert _log().consistency_proof(size1, size2) == proof
    verify_consistency(size1, size2, _root(size1), _root(size2), proof)


@pytest.mark.parametrize("case", _cases("negative", lambda c: c["desc"]))
def test_negative_is_rejected(case: dict[str, Any]) -> None:
    expected = EXPECTED_ERRORS.get(case["desc"], ProofError)
    proof = _hashes(case["proof_hex"])
    if case["kind"] == "inclusion":
        leaf, root = bytes.fromhex(case["leaf_hash_hex"]), bytes.fromhex(case["root_hex"])
        with pytest.raises(ProofError) as info:
            verify_inclusion(case["index"], case["size"], leaf, root, proof)
    else:
        assert case["kind"] == "consistency"
        root1, root2 = bytes.fromhex(case["root1_hex"]), bytes.fromhex(case["root2_hex"])
        with pytest.raises(ProofError) as info:
            verify_consistency(case["size1"], case["size2"], root1, root2, proof)
    assert type(info.value) is expected, f"{case['desc']}: {info.value!r}"
