"""chain.proof_file: every malformed input is an EncodingError naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chain.errors import EncodingError
from chain.hashing import leaf_hash, leaf_hashes
from chain.log import InMemoryMerkleLog
from chain.proof_file import (
    ConsistencyClaim,
    InclusionClaim,
    ProofFile,
    summarize,
)

ENTRIES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31"]
LOG = InMemoryMerkleLog()
LOG.append_many(ENTRIES)


def _hex(values: list[bytes]) -> list[str]:
    return [value.hex() for value in values]


def _file(**overrides: Any) -> dict[str, Any]:
    """A small valid file: 5 leaves, their roots, one case of each kind."""
    data: dict[str, Any] = {
        "hash": "SHA-256, RFC 9162 section 2.1",
        "leaves_hex": _hex(ENTRIES),
        "leaf_hashes_hex": _hex(leaf_hashes(ENTRIES)),
        "roots": [{"size": size, "root_hex": LOG.root_at(size).hex()} for size in (3, 5)],
        "inclusion": [{"index": 2, "size": 5, "proof_hex": _hex(LOG.inclusion_proof(2, 5))}],
        "consistency": [{"size1": 3, "size2": 5, "proof_hex": _hex(LOG.consistency_proof(3, 5))}],
        "negative": [
            {
                "kind": "inclusion",
                "desc": "wrong index",
                "index": 1,
                "size": 5,
                "leaf_hash_hex": leaf_hash(ENTRIES[2]).hex(),
                "proof_hex": _hex(LOG.inclusion_proof(2, 5)),
            }
        ],
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _check(data: dict[str, Any]) -> list[str]:
    results = ProofFile.from_json(json.dumps(data)).check()
    return [str(result) for result in results if not result.passed]


def test_a_valid_file_passes() -> None:
    proof_file = ProofFile.from_json(json.dumps(_file()).encode())
    results = proof_file.check()
    assert [r.case.section for r in results] == ["leaf_hashes"] * 5 + [
        "roots",
        "roots",
        "inclusion",
        "consistency",
        "negative",
    ]
    assert all(result.passed for result in results)
    assert summarize(results) == "10 passed, 0 failed"
    assert results[-1].reason.startswith("rejected: root of tree size 5 mismatch")
    assert proof_file.notes == ()


def test_roots_and_leaves_are_resolved_from_the_file() -> None:
    cases = ProofFile.from_json(json.dumps(_file())).cases
    inclusion = cases[7].claim
    assert isinstance(inclusion, InclusionClaim)
    assert inclusion.leaf_hash == leaf_hash(ENTRIES[2])
    assert inclusion.root == LOG.root_at(5)
    consistency = cases[8].claim
    assert isinstance(consistency, ConsistencyClaim)
    assert (consistency.root1, consistency.root2) == (LOG.root_at(3), LOG.root_at(5))


def test_only_proofs_with_explicit_hashes() -> None:
    data = {
        "inclusion": [
            {
                "index": 2,
                "size": 5,
                "leaf_hex": ENTRIES[2].hex(),
                "root_hex": LOG.root().hex(),
                "proof_hex": _hex(LOG.inclusion_proof(2, 5)),
            }
        ],
        "consistency": [
            {
                "size1": 3,
                "size2": 5,
                "root1_hex": LOG.root_at(3).hex(),
                "root2_hex": LOG.root().hex(),
                "proof_hex": _hex(LOG.consistency_proof(3, 5)),
            }
        ],
    }
    assert _check(data) == []


def test_roots_beyond_the_leaves_are_used_as_given_with_a_note() -> None:
    data = _file(leaves_hex=_hex(ENTRIES[:4]), leaf_hashes_hex=None)
    proof_file = ProofFile.from_json(json.dumps(data))
    assert proof_file.notes == ("roots[1] (size 5) is taken as given: the file has 4 leaves",)
    assert all(result.passed for result in proof_file.check())


def test_failures_name_the_case_and_why() -> None:
    data = _file()
    data["leaf_hashes_hex"][1] = "00" * 32
    data["roots"][0]["root_hex"] = "11" * 32
    data["roots"][0]["desc"] = "tampered"
    data["inclusion"][0]["proof_hex"] = data["inclusion"][0]["proof_hex"][:-1]
    data["negative"][0]["index"] = 2  # now a valid proof: it must still be rejected
    failures = _check(data)
    assert failures[0].startswith("leaf_hashes[1] (leaf 1): leaf hash of leaf 1 mismatch")
    assert failures[1].startswith('roots[0] "tampered" (size 3): root of tree size 3 mismatch')
    # the consistency case uses the file's (tampered) root of size 3
    assert failures[2] == (
        "inclusion[0] (index 2, size 5): inclusion proof of leaf 2 in size 5 must have 3 "
        "hashes, got 2"
    )
    assert failures[3].startswith("consistency[0] (size 3 to 5): old root (tree size 3)")
    assert failures[4] == (
        'negative[0] "wrong index" (inclusion, index 2, size 5): accepted, but must be rejected'
    )
    assert len(failures) == 5


def test_hash_of_wrong_length_in_a_case_is_a_failure_not_a_format_error() -> None:
    data = _file()
    data["inclusion"][0]["proof_hex"][0] = "abcd"
    assert _check(data) == [
        "inclusion[0] (index 2, size 5): proof[0] must be a 32-byte hash, got 2"
    ]


def _edit(path: str, value: Any) -> dict[str, Any]:
    """A valid file with the field at ``path`` (dots and [i]) set to ``value``, or deleted."""
    data = _file()
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("inclusion[0].index", "2", "inclusion[0].index: must be an integer, got '2'"),
        ("inclusion[0].size", True, "inclusion[0].size: must be an integer, got True"),
        ("consistency[0].size1", 3.0, "consistency[0].size1: must be an integer, got 3.0"),
        ("consistency[0].size2", DELETE, "consistency[0].size2: missing"),
        ("inclusion[0].proof_hex", DELETE, "inclusion[0].proof_hex: missing"),
        ("inclusion[0].proof_hex", "ab", "inclusion[0].proof_hex: must be a list"),
        ("inclusion[0].proof_hex[1]", "zz", "inclusion[0].proof_hex[1]: must be a string of hex"),
        ("inclusion[0].proof_hex[1]", "abc", "inclusion[0].proof_hex[1]: must be a string of hex"),
        ("inclusion[0].proof_hex[1]", "ab cd", "inclusion[0].proof_hex[1]: must be a string"),
        ("inclusion[0].proof_hex[1]", "abcd\n", "inclusion[0].proof_hex[1]: must be a string"),
        ("inclusion[0].proof_hex[1]", 12, "inclusion[0].proof_hex[1]: must be a string of hex"),
        ("leaves_hex[2]", "0x10", "leaves_hex[2]: must be a string of hex"),
        ("leaf_hashes_hex[0]", None, "leaf_hashes_hex[0]: must be a string of hex"),
        ("roots[1].root_hex", DELETE, "roots[1].root_hex: missing"),
        ("roots[1].size", -1, "roots[1].size: must not be negative"),
        ("roots[0]", [], "roots[0]: must be an object"),
        ("roots", {}, "roots: must be a list"),
        ("inclusion[0].proof", [], "inclusion[0]: unknown field 'proof' (expected comment, desc"),
        ("inclusion[0].kind", "inclusion", "inclusion[0]: unknown field 'kind'"),
        ("consistency[0].root_hex", "00", "consistency[0]: unknown field 'root_hex'"),
        ("inclusions", [], "unknown field 'inclusions' (expected comment, consistency"),
        ("negative[0].kind", "root", "negative[0].kind: must be 'inclusion' or 'consistency'"),
        ("negative[0].kind", DELETE, "negative[0].kind: must be 'inclusion' or 'consistency'"),
        ("negative[0].desc", 7, "negative[0].desc: must be a string"),
        ("negative[0].leaf_hex", "00", "negative[0]: give leaf_hash_hex or leaf_hex, not both"),
        ("hash", "SHA-512", "hash: only SHA-256 (RFC 9162) is supported, not 'SHA-512'"),
        ("leaf_hashes_hex", ["00" * 32], "leaf_hashes_hex: 1 hashes for 5 leaves in leaves_hex"),
        ("inclusion[0].index", 7, "inclusion[0]: no leaf_hash_hex, and the file has no leaf 7"),
        ("inclusion[0].size", 9, "inclusion[0]: no root_hex, and neither a roots entry nor"),
        ("consistency[0].size2", 8, "consistency[0]: no root2_hex, and neither a roots entry"),
        ("roots[1].size", 3, "roots[1]: a different root for size 3 is listed earlier"),
    ],
)
def test_malformed_fields_are_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(EncodingError) as info:
        ProofFile.from_json(json.dumps(_edit(path, value)))
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "proof file: not JSON: Expecting value at line 1 column 1"),
        (b"[]", "proof file: not a JSON object"),
        (b'{"roots": [], "roots": []}', "proof file: duplicate member 'roots'"),
        (b'{"inclusion": [{"index": NaN}]}', "proof file: not JSON: NaN is not JSON"),
        (b'{"note": "\xff"}', "proof file: not UTF-8 text"),
        (b"{}", "the file holds no case to check"),
        (b'{"note": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "proof file: nested too deeply"),
        (b'{"leaves_hex": ["00"], "roots": [{"size": 2, "root_hex": ""}]}', "the file holds no"),
    ],
    ids=["empty", "array", "duplicate", "nan", "not-utf8", "no-cases", "deep", "unchecked-root"],
)
def test_malformed_documents_are_encoding_errors(text: bytes, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        ProofFile.from_json(text)


def test_uppercase_hex_is_accepted() -> None:
    data = _file()
    data["inclusion"][0]["proof_hex"] = [h.upper() for h in data["inclusion"][0]["proof_hex"]]
    assert _check(data) == []
