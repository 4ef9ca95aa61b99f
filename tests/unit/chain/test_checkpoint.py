"""C2SP tlog-checkpoint bodies and log-signed checkpoints."""

from __future__ import annotations

import hashlib

import pytest

from chain.checkpoint import MAX_TREE_SIZE, Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.errors import EncodingError, SignatureError
from chain.note import Note, NoteSignature
from chain.note_signers import Ed25519Signer

# c2sp.org/tlog-checkpoint example.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_NOTE = (
    SPEC_BODY + "\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRD"
    "e4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
ROOT = hashlib.sha256(b"root").digest()
ORIGIN = "roadledger.example/log-0"


def log_signer(name: str = ORIGIN, label: str = "") -> Ed25519Signer:
    return Ed25519Signer(name, hashlib.sha256(f"log {name} {label}".encode()).digest())


def test_spec_example_body_round_trips() -> None:
    cp = Checkpoint.from_text(SPEC_BODY)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash.hex() == "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"
    assert cp.extensions == ()
    assert cp.to_text() == SPEC_BODY


def test_spec_example_note_round_trips() -> None:
    signed = SignedCheckpoint.from_text(SPEC_NOTE)
    assert signed.checkpoint.size == 20852163
    assert signed.to_text() == SPEC_NOTE


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest()),
        Checkpoint(ORIGIN, 1, ROOT),
        Checkpoint(ORIGIN, MAX_TREE_SIZE, ROOT, ("ext one", "ext two with spaces")),
        Checkpoint("origin with spaces and ünïcode", 5, ROOT),
    ],
)
def test_format_then_parse_is_equal(cp: Checkpoint) -> None:
    text = cp.to_text()
    assert text.endswith("\n")
    assert Checkpoint.from_text(text) == cp
    assert Checkpoint.from_text(text).to_text() == text


def test_extension_lines_round_trip_text() -> None:
    text = f"{ORIGIN}\n7\n{SPEC_BODY.split(chr(10))[2]}\nrekor: extension\nsecond\n"
    cp = Checkpoint.from_text(text)
    assert cp.extensions == ("rekor: extension", "second")
    assert cp.to_text() == text


B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n01\n{B64}\n",  # leading zero
        f"{ORIGIN}\n00\n{B64}\n",
        f"{ORIGIN}\n-1\n{B64}\n",
        f"{ORIGIN}\n+1\n{B64}\n",
        f"{ORIGIN}\n 1\n{B64}\n",
        f"{ORIGIN}\n1.0\n{B64}\n",
        f"{ORIGIN}\n١\n{B64}\n",  # Arabic-Indic digit: int() would take it
        f"{ORIGIN}\n{MAX_TREE_SIZE + 1}\n{B64}\n",
        f"{ORIGIN}\n1\n{B64[:-4]}\n",  # short root
        f"{ORIGIN}\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",  # non-canonical
        f"{ORIGIN}\n1\n{B64.rstrip('=')}\n",  # unpadded
        f"{ORIGIN}\n1\n{B64}",  # no final newline
        f"{ORIGIN}\n1\n",  # two lines
        f"{ORIGIN}\n1\n{B64}\n\n",  # empty extension line
        f"\n1\n{B64}\n",  # empty origin
        f"{ORIGIN}\t\n1\n{B64}\n",  # control character
        "",
    ],
)
def test_malformed_bodies_are_refused(text: str) -> None:
    with pytest.raises(EncodingError):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        (ORIGIN, -1, ROOT, ()),
        (ORIGIN, MAX_TREE_SIZE + 1, ROOT, ()),
        (ORIGIN, True, ROOT, ()),
        (ORIGIN, 1, ROOT[:31], ()),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, ("two\nlines",)),
    ],
)
def test_invalid_checkpoints_cannot_be_built(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(EncodingError):
        Checkpoint(origin, size, root, extensions)


def test_sign_and_open() -> None:
    log = log_signer()
    cp = Checkpoint(ORIGIN, 42, ROOT)
    signed = sign_checkpoint(cp, log)
    text = signed.to_text()
    assert text.startswith(cp.to_text() + "\n— " + ORIGIN + " ")
    opened = SignedCheckpoint.open(text, log.verifier())
    assert opened.checkpoint == cp
    assert opened == SignedCheckpoint.from_text(text)
    both = [log_signer(label="old").verifier(), log.verifier()]
    assert SignedCheckpoint.open(text, both).checkpoint == cp


def test_open_with_the_wrong_log_key_fails() -> None:
    text = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), log_signer()).to_text()
    with pytest.raises(SignatureError, match="not signed by the log key"):
        SignedCheckpoint.open(text, log_signer(label="other").verifier())


def test_tampered_root_fails() -> None:
    log = log_signer()
    text = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), log).to_text()
    other = Checkpoint(ORIGIN, 42, hashlib.sha256(b"other").digest()).to_text()
    tampered = text.replace(Checkpoint(ORIGIN, 42, ROOT).to_text(), other)
    with pytest.raises(SignatureError):
        SignedCheckpoint.open(tampered, log.verifier())


def test_tampered_size_fails() -> None:
    log = log_signer()
    text = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), log).to_text()
    with pytest.raises(SignatureError):
        SignedCheckpoint.open(text.replace("\n42\n", "\n43\n"), log.verifier())


def test_with_signature_lines_merges_and_drops_repeats() -> None:
    log = log_signer()
    signed = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), log)
    extra = NoteSignature("witness.example/w1", 0x01020304, b"\x00" * 72)
    once = signed.with_signature_lines(extra.to_line())
    twice = once.with_signature_lines([extra])
    assert once == twice
    assert once.signatures == (signed.signatures[0], extra)
    assert once.to_text() == signed.to_text() + extra.to_line()
    # Unknown lines do not stop the log signature from verifying.
    SignedCheckpoint.open(once.to_text(), log.verifier())
    assert once.keep_signatures(signed.signatures) == signed


def test_with_signature_lines_refuses_malformed_text() -> None:
    signed = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), log_signer())
    with pytest.raises(EncodingError):
        signed.with_signature_lines("— w1 AAAA")  # no final newline
    with pytest.raises(EncodingError):
        signed.with_signature_lines("not a signature line\n")


def test_note_whose_text_is_not_a_checkpoint_is_refused() -> None:
    note = Note("just text\n", (NoteSignature("k", 1, b"s"),)).to_text()
    with pytest.raises(EncodingError):
        SignedCheckpoint.from_text(note)
    with pytest.raises(EncodingError, match="not the checkpoint body"):
        SignedCheckpoint(
            Checkpoint(ORIGIN, 1, ROOT), Note("just text\n", (NoteSignature("k", 1, b"s"),))
        )
