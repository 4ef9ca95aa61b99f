"""Checking many inclusion proofs against one tree: a certificate's thousands of them.

:class:`InclusionChecker` raises exactly what :func:`chain.merkle.verify_inclusion` raises for
each proof, but hashes less. The RFC 9162 algorithm walks from the leaf to the root; from any
step on, what it computes depends only on its state (``fn``, ``sn``, the hash so far) and the
rest of the proof. Proofs of nearby leaves join the same path a few levels up, so when a proof
reaches a state of the previous proof that led to the root, with the same hash and the same
rest of the proof, the rest would compute that same root: it is not hashed again. A
certificate's messages, in seq order, are nearby leaves: for 10,000 consecutive leaves, two
hashes a proof instead of sixteen.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.errors import ProofError, RootMismatchError
from chain.hashing import path_step
from chain.merkle import _check_hash, _check_proof, _path_size

__all__ = ["InclusionChecker"]


class InclusionChecker:
    """``verify_inclusion(index, size, leaf_hash, root, proof)`` for one ``size`` and ``root``."""

    def __init__(self, size: int, root: bytes) -> None:
        _check_hash(root, "root")
        self.size = size
        self.root = root
        # the last proof that led to the root: its states (fn, sn) -> (position, hash so far)
        self._states: dict[tuple[int, int], tuple[int, bytes]] = {}
        self._proof: tuple[bytes, ...] = ()

    def verify(self, index: int, leaf_hash: bytes, proof: Sequence[bytes]) -> None:
        """Check that ``leaf_hash`` is at ``index`` in the tree; raise as ``verify_inclusion``."""
        size = self.size
        if not 0 <= index < size:
            raise ProofError(f"leaf index {index} is outside a tree of size {size}")
        _check_hash(leaf_hash, "leaf hash")
        _check_proof(
            proof, _path_size(0, index, size), f"inclusion proof of leaf {index} in size {size}"
        )
        proof = tuple(proof)
        known, previous = self._states, self._proof
        states: dict[tuple[int, int], tuple[int, bytes]] = {}
        fn, sn, result = index, size - 1, leaf_hash
        for position, sibling in enumerate(proof):
            state = known.get((fn, sn))
            if (
                state is not None
                and state[1] == result
                and proof[position:] == previous[state[0] :]
            ):
                # The rest is the previous proof's computation, which led to the root. Keep
                # this proof's path (the previous one's above the join) for the next proof.
                shift = position - state[0]
                states.update(
                    (key, (at + shift, digest))
                    for key, (at, digest) in known.items()
                    if at >= state[0]
                )
                self._states, self._proof = states, proof
                return
            states[fn, sn] = (position, result)
            fn, sn, result = path_step(fn, sn, result, sibling)
        if sn != 0:
            raise ProofError("inclusion proof is shorter than the path to the root")
        if result != self.root:
            raise RootMismatchError(self.root, result, f"root of tree size {size}")
        self._states, self._proof = states, proof
