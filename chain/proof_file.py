"""Proof files: JSON collections of RFC 9162 roots and proofs that an auditor checks.

The format is the one of ``shared/vectors/rfc9162-merkle.json``; every section may be absent::

    {
      "hash": "SHA-256, RFC 9162 section 2.1",          optional; must name SHA-256
      "leaves_hex": ["", "00", ...],                     entries, hex
      "leaf_hashes_hex": ["6e34...", ...],               their leaf hashes (checked if both)
      "roots": [{"size": 3, "root_hex": "aeb6..."}],     checked against the leaves when
                                                         the file has enough of them
      "inclusion": [{"index": 2, "size": 5, "proof_hex": [...]}],
      "consistency": [{"size1": 3, "size2": 7, "proof_hex": [...]}],
      "negative": [{"kind": "inclusion" | "consistency", "desc": "...", ...}]
    }

An inclusion case may give ``leaf_hash_hex`` (or ``leaf_hex``) and ``root_hex``; otherwise
the leaf hash comes from the file's leaves and the root from ``roots`` or, failing that, from
the leaves. Consistency cases likewise take ``root1_hex``/``root2_hex``. Negative cases are
shaped like the case of their ``kind`` and must be *rejected*. Every case may carry ``desc``.

:meth:`ProofFile.from_json` validates the whole file first (unknown or duplicated fields,
non-integers, bad hex, a root or leaf that cannot be found), raising
:class:`~chain.errors.EncodingError` that names the field; :meth:`ProofFile.check` then
verifies every case with :mod:`chain.merkle`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chain.errors import EncodingError, ProofError, RootMismatchError
from chain.hashing import HASH_SIZE, leaf_hash, leaf_hashes
from chain.log import InMemoryMerkleLog
from chain.merkle import verify_consistency, verify_inclusion
from chain.strict_json import loads_object

__all__ = [
    "MAX_PROOF_FILE_BYTES",
    "CaseResult",
    "ConsistencyClaim",
    "InclusionClaim",
    "LeafClaim",
    "ProofCase",
    "ProofFile",
    "RootClaim",
    "summarize",
]

MAX_PROOF_FILE_BYTES = 64 * 1024 * 1024
"""Largest proof file read (64 MiB: ~1.5 million leaves or ~100,000 proofs); checked before
parsing, so a larger file fails at once instead of filling memory."""

Section = Literal["leaf_hashes", "roots", "inclusion", "consistency", "negative"]

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_NOTES = frozenset({"desc", "note", "comment"})
_TOP_FIELDS = frozenset(
    {"hash", "note", "notes", "desc", "description", "comment", "source", "leaves_hex"}
    | {"leaf_hashes_hex", "roots", "inclusion", "consistency", "negative"}
)
_CASE_FIELDS: dict[str, frozenset[str]] = {
    "roots": frozenset({"size", "root_hex"}) | _NOTES,
    "inclusion": frozenset({"index", "size", "proof_hex", "leaf_hash_hex", "leaf_hex", "root_hex"})
    | _NOTES,
    "consistency": frozenset({"size1", "size2", "proof_hex", "root1_hex", "root2_hex"}) | _NOTES,
}


@dataclass(frozen=True, slots=True)
class LeafClaim:
    """``entry`` has the RFC 9162 leaf hash ``leaf_hash``."""

    index: int
    entry: bytes
    leaf_hash: bytes

    @property
    def params(self) -> str:
        return f"leaf {self.index}"

    def verify(self) -> None:
        calculated = leaf_hash(self.entry)
        if calculated != self.leaf_hash:
            raise RootMismatchError(self.leaf_hash, calculated, f"leaf hash of leaf {self.index}")


@dataclass(frozen=True, slots=True)
class RootClaim:
    """The first ``size`` leaves of ``tree`` make a tree whose root is ``root``.

    ``tree`` holds the file's leaves once, with every completed subtree, so a root of any size
    costs O(log n) hashes: checking a root per size is linear in the file, not quadratic.
    """

    size: int
    root: bytes
    tree: InMemoryMerkleLog

    @property
    def params(self) -> str:
        return f"size {self.size}"

    def verify(self) -> None:
        calculated = self.tree.root_at(self.size)
        if calculated != self.root:
            raise RootMismatchError(self.root, calculated, f"root of tree size {self.size}")


@dataclass(frozen=True, slots=True)
class InclusionClaim:
    """``proof`` shows leaf ``leaf_hash`` at ``index`` in the tree of ``size`` with ``root``."""

    index: int
    size: int
    leaf_hash: bytes
    root: bytes
    proof: tuple[bytes, ...]

    @property
    def params(self) -> str:
        return f"index {self.index}, size {self.size}"

    def verify(self) -> None:
        verify_inclusion(self.index, self.size, self.leaf_hash, self.root, self.proof)


@dataclass(frozen=True, slots=True)
class ConsistencyClaim:
    """``proof`` shows the tree ``(size2, root2)`` extends ``(size1, root1)``."""

    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: tuple[bytes, ...]

    @property
    def params(self) -> str:
        return f"size {self.size1} to {self.size2}"

    def verify(self) -> None:
        verify_consistency(self.size1, self.size2, self.root1, self.root2, self.proof)


Claim = LeafClaim | RootClaim | InclusionClaim | ConsistencyClaim


@dataclass(frozen=True, slots=True)
class ProofCase:
    """One case of a file: a claim, and whether it must verify or be rejected."""

    section: Section
    position: int
    desc: str
    claim: Claim
    expect_valid: bool = True

    @property
    def name(self) -> str:
        """How reports name the case: ``section[i] "desc" (parameters)``."""
        label = f"{self.section}[{self.position}]"
        if self.desc:
            label += f" {json.dumps(self.desc, ensure_ascii=False)}"
        params = self.claim.params
        if self.section == "negative":
            kind = "inclusion" if isinstance(self.claim, InclusionClaim) else "consistency"
            params = f"{kind}, {params}"
        return f"{label} ({params})"


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one case: ``passed``, and ``reason`` (why it failed, or was rejected)."""

    case: ProofCase
    passed: bool
    reason: str

    def __str__(self) -> str:
        return f"{self.case.name}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ProofFile:
    """A validated proof file: its cases, plus notes on values taken as given."""

    cases: tuple[ProofCase, ...]
    notes: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, text: str | bytes) -> ProofFile:
        """Parse and validate a proof file; EncodingError names the first bad field.

        Parsing and checking cost time linear in the file (plus log n per proof).
        """
        if len(text) > MAX_PROOF_FILE_BYTES:
            raise EncodingError(
                f"proof file: larger than the limit of {MAX_PROOF_FILE_BYTES} bytes"
            )
        return _Parser(loads_object(text, "proof file")).parse()

    def check(self) -> list[CaseResult]:
        """Verify every case: a positive case passes if it verifies, a negative one if not."""
        results = []
        for case in self.cases:
            try:
                case.claim.verify()
            except ProofError as exc:
                if case.expect_valid:
                    results.append(CaseResult(case, False, str(exc)))
                else:
                    results.append(CaseResult(case, True, f"rejected: {exc}"))
            else:
                if case.expect_valid:
                    results.append(CaseResult(case, True, "verified"))
                else:
                    results.append(CaseResult(case, False, "accepted, but must be rejected"))
        return results


class _Parser:
    """Validates the JSON tree and resolves leaves and roots into self-contained cases."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.leaf_hashes: tuple[bytes, ...] = ()
        self.tree = InMemoryMerkleLog()
        self.roots: dict[int, bytes] = {}
        self.cases: list[ProofCase] = []
        self.notes: list[str] = []

    def parse(self) -> ProofFile:
        data = self.data
        for key in data:
            if key not in _TOP_FIELDS:
                raise EncodingError(f"unknown field {key!r} (expected {_fields(_TOP_FIELDS)})")
        if "hash" in data:
            algorithm = data["hash"]
            if not isinstance(algorithm, str) or "sha-256" not in algorithm.lower():
                raise EncodingError(
                    f"hash: only SHA-256 (RFC 9162) is supported, not {algorithm!r}"
                )
        self._leaves()
        for position, item in enumerate(_list(data, "roots")):
            self._root(position, _object(item, f"roots[{position}]"))
        for position, item in enumerate(_list(data, "inclusion")):
            where = f"inclusion[{position}]"
            self._inclusion(position, _object(item, where), "inclusion", where, True)
        for position, item in enumerate(_list(data, "consistency")):
            where = f"consistency[{position}]"
            self._consistency(position, _object(item, where), "consistency", where, True)
        for position, item in enumerate(_list(data, "negative")):
            where = f"negative[{position}]"
            fields = _object(item, where)
            kind = fields.get("kind")
            if kind == "inclusion":
                self._inclusion(position, fields, "negative", where, False)
            elif kind == "consistency":
                self._consistency(position, fields, "negative", where, False)
            else:
                raise EncodingError(f"{where}.kind: must be 'inclusion' or 'consistency'")
        if not self.cases:
            raise EncodingError("the file holds no case to check")
        return ProofFile(tuple(self.cases), tuple(self.notes))

    def _leaves(self) -> None:
        data = self.data
        entries = [_hex(v, f"leaves_hex[{i}]") for i, v in enumerate(_list(data, "leaves_hex"))]
        given = [
            _hex(v, f"leaf_hashes_hex[{i}]") for i, v in enumerate(_list(data, "leaf_hashes_hex"))
        ]
        if entries and given and len(entries) != len(given):
            raise EncodingError(
                f"leaf_hashes_hex: {len(given)} hashes for {len(entries)} leaves in leaves_hex"
            )
        if not entries:
            for position, value in enumerate(given):
                if len(value) != HASH_SIZE:
                    raise EncodingError(
                        f"leaf_hashes_hex[{position}]: must be a {HASH_SIZE}-byte hash, "
                        f"got {len(value)} bytes"
                    )
        # The entries are the data; given leaf hashes are claims about them, checked below.
        self.leaf_hashes = tuple(leaf_hashes(entries)) if entries else tuple(given)
        # Built once (about 2n hashes); every root computed from the leaves then reads O(log n)
        # of its nodes. Recomputing each root from its leaves was quadratic in the file.
        self.tree.append_leaf_hashes(self.leaf_hashes)
        if entries and given:
            for position, (entry, value) in enumerate(zip(entries, given, strict=True)):
                claim = LeafClaim(position, entry, value)
                self.cases.append(ProofCase("leaf_hashes", position, "", claim))

    def _root(self, position: int, fields: dict[str, Any]) -> None:
        where = f"roots[{position}]"
        _known(fields, _CASE_FIELDS["roots"], where)
        size = _int(fields, "size", where)
        if size < 0:
            raise EncodingError(f"{where}.size: must not be negative")
        root = _hex(_required(fields, "root_hex", where), f"{where}.root_hex")
        if self.roots.setdefault(size, root) != root:
            raise EncodingError(f"{where}: a different root for size {size} is listed earlier")
        desc = _desc(fields, where)
        if size <= len(self.leaf_hashes):
            claim = RootClaim(size, root, self.tree)
            self.cases.append(ProofCase("roots", position, desc, claim))
        else:
            self.notes.append(
                f"{where} (size {size}) is taken as given: the file has "
                f"{len(self.leaf_hashes)} leaves"
            )

    def _root_for(self, size: int, fields: dict[str, Any], key: str, where: str) -> bytes:
        if key in fields:
            return _hex(fields[key], f"{where}.{key}")
        if size in self.roots:
            return self.roots[size]
        if 0 <= size <= len(self.leaf_hashes):
            return self.tree.root_at(size)
        raise EncodingError(
            f"{where}: no {key}, and neither a roots entry nor enough leaves for size {size}"
        )

    def _inclusion(
        self, position: int, fields: dict[str, Any], section: Section, where: str, valid: bool
    ) -> None:
        allowed = _CASE_FIELDS["inclusion"] | ({"kind"} if section == "negative" else set())
        _known(fields, allowed, where)
        index = _int(fields, "index", where)
        size = _int(fields, "size", where)
        proof = _proof(fields, where)
        if "leaf_hash_hex" in fields:
            if "leaf_hex" in fields:
                raise EncodingError(f"{where}: give leaf_hash_hex or leaf_hex, not both")
            value = _hex(fields["leaf_hash_hex"], f"{where}.leaf_hash_hex")
        elif "leaf_hex" in fields:
            value = leaf_hash(_hex(fields["leaf_hex"], f"{where}.leaf_hex"))
        elif 0 <= index < len(self.leaf_hashes):
            value = self.leaf_hashes[index]
        else:
            raise EncodingError(
                f"{where}: no leaf_hash_hex, and the file has no leaf {index} "
                f"({len(self.leaf_hashes)} leaves)"
            )
        root = self._root_for(size, fields, "root_hex", where)
        claim = InclusionClaim(index, size, value, root, proof)
        self.cases.append(ProofCase(section, position, _desc(fields, where), claim, valid))

    def _consistency(
        self, position: int, fields: dict[str, Any], section: Section, where: str, valid: bool
    ) -> None:
        allowed = _CASE_FIELDS["consistency"] | ({"kind"} if section == "negative" else set())
        _known(fields, allowed, where)
        size1 = _int(fields, "size1", where)
        size2 = _int(fields, "size2", where)
        proof = _proof(fields, where)
        root1 = self._root_for(size1, fields, "root1_hex", where)
        root2 = self._root_for(size2, fields, "root2_hex", where)
        claim = ConsistencyClaim(size1, size2, root1, root2, proof)
        self.cases.append(ProofCase(section, position, _desc(fields, where), claim, valid))


def _fields(names: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(names))


def _known(fields: dict[str, Any], allowed: frozenset[str] | set[str], where: str) -> None:
    for key in fields:
        if key not in allowed:
            raise EncodingError(f"{where}: unknown field {key!r} (expected {_fields(allowed)})")


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise EncodingError(f"{key}: must be a list")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EncodingError(f"{where}: must be an object")
    return value


def _required(fields: dict[str, Any], key: str, where: str) -> Any:
    if key not in fields:
        raise EncodingError(f"{where}.{key}: missing")
    return fields[key]


def _int(fields: dict[str, Any], key: str, where: str) -> int:
    value = _required(fields, key, where)
    if type(value) is not int:  # bool is an int subclass, and 2.0 is not a size
        raise EncodingError(f"{where}.{key}: must be an integer, got {value!r}")
    return value


def _hex(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise EncodingError(f"{where}: must be a string of hex digit pairs, got {value!r}")
    return bytes.fromhex(value)


def _proof(fields: dict[str, Any], where: str) -> tuple[bytes, ...]:
    value = _required(fields, "proof_hex", where)
    if not isinstance(value, list):
        raise EncodingError(f"{where}.proof_hex: must be a list")
    return tuple(_hex(item, f"{where}.proof_hex[{i}]") for i, item in enumerate(value))


def _desc(fields: dict[str, Any], where: str) -> str:
    value = fields.get("desc", "")
    if not isinstance(value, str):
        raise EncodingError(f"{where}.desc: must be a string")
    return value


def summarize(results: Sequence[CaseResult]) -> str:
    """The closing line of a check: ``N passed, M failed``."""
    passed = sum(1 for result in results if result.passed)
    return f"{passed} passed, {len(results) - passed} failed"
