"""The witness: cosign consistent growth, refuse forks and rollbacks, keep state durably."""

from __future__ import annotations

import hashlib

import pytest

from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.cosignature import Cosignature, CosignatureSigner, verify_cosignatures
from chain.errors import ConsistencyError, EncodingError, ProofError, SignatureError
from chain.hashing import EMPTY_ROOT
from chain.log import InMemoryMerkleLog
from chain.note_signers import Ed25519Signer
from chain.witness import (
    MAX_PROOF_HASHES,
    MemoryWitnessStateStore,
    OldSizeMismatchError,
    UnknownLogError,
    Witness,
    WitnessStateStore,
)

ORIGIN = "roadledger.example/log-0"
NOW = 1_700_000_000


class Log:
    """A log for tests: an in-memory Merkle tree and the key that signs its checkpoints."""

    def __init__(self, prefix: bytes = b"entry", key_label: str = "log key") -> None:
        self.tree = InMemoryMerkleLog()
        self.prefix = prefix
        self.signer = Ed25519Signer(ORIGIN, hashlib.sha256(key_label.encode()).digest())

    def grow_to(self, size: int) -> None:
        while self.tree.size < size:
            self.tree.append(self.prefix + b"-%d" % self.tree.size)

    def checkpoint(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        cp = Checkpoint(ORIGIN, size, self.tree.root_at(size))
        return sign_checkpoint(cp, self.signer).to_text()

    def proof(self, old: int, new: int) -> list[bytes]:
        return self.tree.consistency_proof(old, new) if old else []


def make_witness(store: WitnessStateStore | None = None, now: int = NOW) -> Witness:
    signer = CosignatureSigner(
        "witness.example/w1", hashlib.sha256(b"w1").digest(), clock=lambda: now
    )
    return Witness(signer, store or MemoryWitnessStateStore())


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness() -> Witness:
    return make_witness()


def cosign_sizes(witness: Witness, log: Log, *sizes: int) -> list[str]:
    lines = []
    old = 0
    for size in sizes:
        log.grow_to(size)
        lines.append(
            witness.add_checkpoint(
                log.checkpoint(size), old, log.proof(old, size), log.signer.verifier()
            )
        )
        old = size
    return lines


# --- acceptance -------------------------------------------------------------------------------


def test_first_checkpoint_is_cosigned(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    line = witness.add_checkpoint(log.checkpoint(), 0, [], log.signer.verifier())
    cosig = Cosignature.from_line(line)
    assert line.endswith("\n")
    assert line.startswith("— witness.example/w1 ")
    assert cosig.timestamp == NOW
    note = SignedCheckpoint.from_text(log.checkpoint()).with_signature_lines(line).to_text()
    result = verify_cosignatures(note, log.signer.verifier(), [witness.verifier()], 1)
    assert result.witnesses == ("witness.example/w1",)


def test_state_holds_log_signature_and_cosignature(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    text = log.checkpoint()
    # A stranger's line in the submission is not kept.
    stranger = SignedCheckpoint.from_text(text).with_signature_lines(
        "— stranger.example AAAAAQAAAAAAAAAAAAAAAA==\n"
    )
    line = witness.add_checkpoint(stranger.to_text(), 0, [], log.signer.verifier())
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.to_text() == text + line
    assert witness.latest("other.example/log") is None


def test_consistent_growth_is_cosigned(witness: Witness, log: Log) -> None:
    lines = cosign_sizes(witness, log, 3, 7, 8, 16, 17)
    assert len(lines) == 5
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 17


def test_same_checkpoint_twice_is_idempotent(witness: Witness, log: Log) -> None:
    first = cosign_sizes(witness, log, 5)[0]
    before = witness.latest(ORIGIN)
    again = witness.add_checkpoint(log.checkpoint(5), 5, [], log.signer.verifier())
    assert again == first  # same clock, deterministic Ed25519: the very same line
    assert witness.latest(ORIGIN) == before


def test_cosignature_time_never_goes_back(log: Log) -> None:
    store = MemoryWitnessStateStore()
    cosign_sizes(make_witness(store, now=NOW), log, 3)
    later = make_witness(store, now=NOW - 3600)  # the clock stepped back an hour
    log.grow_to(5)
    line = later.add_checkpoint(log.checkpoint(), 3, log.proof(3, 5), log.signer.verifier())
    assert Cosignature.from_line(line).timestamp == NOW
    later_still = make_witness(store, now=NOW + 10)
    log.grow_to(6)
    line = later_still.add_checkpoint(log.checkpoint(), 5, log.proof(5, 6), log.signer.verifier())
    assert Cosignature.from_line(line).timestamp == NOW + 10


def test_empty_tree_checkpoint(witness: Witness, log: Log) -> None:
    witness.add_checkpoint(log.checkpoint(0), 0, [], log.signer.verifier())
    log.grow_to(4)
    witness.add_checkpoint(log.checkpoint(), 0, [], log.signer.verifier())
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 4


# --- refusals ---------------------------------------------------------------------------------


def test_rollback_is_refused_with_evidence(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3, 7)
    before = witness.latest(ORIGIN)
    with pytest.raises(ConsistencyError, match="rollback") as info:
        witness.add_checkpoint(log.checkpoint(3), 7, [], log.signer.verifier())
    err = info.value
    assert isinstance(err.old, SignedCheckpoint)
    assert err.old.checkpoint.size == 7
    assert isinstance(err.new, SignedCheckpoint)
    assert err.new.checkpoint.size == 3
    assert err.proof == ()
    assert witness.latest(ORIGIN) == before


def test_fork_at_same_size_is_refused_with_evidence(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 5)
    fork = Log(prefix=b"forked")  # same key, other history
    fork.grow_to(5)
    with pytest.raises(ConsistencyError, match="fork") as info:
        witness.add_checkpoint(fork.checkpoint(), 5, [], fork.signer.verifier())
    err = info.value
    assert isinstance(err.old, SignedCheckpoint)
    assert isinstance(err.new, SignedCheckpoint)
    assert err.old.checkpoint.size == err.new.checkpoint.size == 5
    assert err.old.checkpoint.root_hash == log.tree.root_at(5)
    assert err.new.checkpoint.root_hash == fork.tree.root_at(5)
    # Both are signed by the log: the evidence stands on its own.
    SignedCheckpoint.open(err.old.to_text(), log.signer.verifier())
    SignedCheckpoint.open(err.new.to_text(), log.signer.verifier())


def test_fork_is_refused_even_with_a_wrong_old_size(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 5)
    fork = Log(prefix=b"forked")
    fork.grow_to(5)
    with pytest.raises(ConsistencyError, match="fork"):
        witness.add_checkpoint(fork.checkpoint(), 0, [], fork.signer.verifier())


def test_inconsistent_growth_is_refused_with_evidence(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    fork = Log(prefix=b"forked")
    fork.grow_to(8)
    proof = fork.proof(3, 8)
    with pytest.raises(ConsistencyError, match="not proven consistent") as info:
        witness.add_checkpoint(fork.checkpoint(), 3, proof, fork.signer.verifier())
    err = info.value
    assert isinstance(err.old, SignedCheckpoint)
    assert err.old.checkpoint.size == 3
    assert isinstance(err.new, SignedCheckpoint)
    assert err.new.checkpoint.size == 8
    assert err.proof == tuple(proof)
    assert isinstance(err.__cause__, ProofError)
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 3


def test_corrupted_proof_is_refused(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    log.grow_to(8)
    proof = log.proof(3, 8)
    proof[-1] = bytes([proof[-1][0] ^ 1]) + proof[-1][1:]
    with pytest.raises(ConsistencyError):
        witness.add_checkpoint(log.checkpoint(), 3, proof, log.signer.verifier())
    with pytest.raises(ConsistencyError):
        witness.add_checkpoint(log.checkpoint(), 3, log.proof(3, 8)[:-1], log.signer.verifier())


def test_old_size_mismatch_carries_the_known_size(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    log.grow_to(8)
    with pytest.raises(OldSizeMismatchError) as info:
        witness.add_checkpoint(log.checkpoint(), 5, log.proof(5, 8), log.signer.verifier())
    assert info.value.known_size == 3
    assert info.value.old_size == 5
    assert not isinstance(info.value, ConsistencyError)  # a stale client, not misbehaviour


def test_old_size_mismatch_on_a_fresh_witness(witness: Witness, log: Log) -> None:
    log.grow_to(8)
    with pytest.raises(OldSizeMismatchError) as info:
        witness.add_checkpoint(log.checkpoint(), 3, log.proof(3, 8), log.signer.verifier())
    assert info.value.known_size == 0
    assert witness.latest(ORIGIN) is None


def test_bad_log_signature_is_refused(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    other_key = Log(key_label="other key")
    with pytest.raises(SignatureError, match="not signed by the log key"):
        witness.add_checkpoint(log.checkpoint(), 0, [], other_key.signer.verifier())
    tampered = log.checkpoint().replace("\n3\n", "\n4\n")
    with pytest.raises(SignatureError):
        witness.add_checkpoint(tampered, 0, [], log.signer.verifier())
    assert witness.latest(ORIGIN) is None


def test_origin_must_be_the_log_key_name(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    elsewhere = Ed25519Signer("elsewhere.example/log", hashlib.sha256(b"log key").digest())
    with pytest.raises(UnknownLogError):
        witness.add_checkpoint(log.checkpoint(), 0, [], elsewhere.verifier())


def test_old_size_larger_than_size_is_a_bad_request(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    with pytest.raises(EncodingError, match="larger than"):
        witness.add_checkpoint(log.checkpoint(), 4, [], log.signer.verifier())


def test_proof_from_size_zero_must_be_empty(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    with pytest.raises(ProofError):
        witness.add_checkpoint(log.checkpoint(), 0, [b"\x00" * 32], log.signer.verifier())


def test_same_size_with_a_proof_is_refused(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    with pytest.raises(ProofError):
        witness.add_checkpoint(log.checkpoint(3), 3, [b"\x00" * 32], log.signer.verifier())


def test_empty_tree_must_have_the_empty_root(witness: Witness, log: Log) -> None:
    bad = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x01" * 32), log.signer).to_text()
    with pytest.raises(ProofError, match="empty-tree root"):
        witness.add_checkpoint(bad, 0, [], log.signer.verifier())
    good = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), log.signer).to_text()
    witness.add_checkpoint(good, 0, [], log.signer.verifier())


@pytest.mark.parametrize(
    ("old_size", "proof"),
    [(-1, []), (True, []), (3, [b"\x00" * 31]), (3, [b"\x00" * 32] * (MAX_PROOF_HASHES + 1))],
)
def test_malformed_arguments(witness: Witness, log: Log, old_size: int, proof: list[bytes]) -> None:
    log.grow_to(8)
    with pytest.raises(EncodingError):
        witness.add_checkpoint(log.checkpoint(), old_size, proof, log.signer.verifier())


def test_malformed_checkpoint_note(witness: Witness, log: Log) -> None:
    with pytest.raises(EncodingError):
        witness.add_checkpoint("not a note", 0, [], log.signer.verifier())
