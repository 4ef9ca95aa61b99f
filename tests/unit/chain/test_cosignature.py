"""tlog-cosignature v1 (Ed25519): known answers, interoperability vectors and k-of-n policy."""

from __future__ import annotations

import hashlib

import pytest

from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.cosignature import (
    MAX_TIMESTAMP,
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    cosign,
    cosigned_message,
    verify_cosignatures,
)
from chain.errors import EncodingError, SignatureError
from chain.note import Note, NoteSignature
from chain.note_keys import compute_key_id
from chain.note_signers import Ed25519Signer, Ed25519Verifier

# c2sp.org/tlog-cosignature: example checkpoint, its cosignature line and the signed message.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_COSIGNATURE_LINE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_MESSAGE = (
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
# transparency-dev/formats v0.1.1 note/note_cosigv1_test.go.
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
FORMATS_TIMESTAMP_SIG = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJ"
    "XORmnFBOBA=="
)

# Interoperability vector, made once with the seeds below: the log signature and the first
# cosignature line are ours and were verified by golang.org/x/mod/sumdb/note v0.43.0 with
# transparency-dev/formats v0.1.1 NewVerifierForCosignatureV1; the second cosignature line was
# produced by formats' NewSignerForCosignatureV1 (+ x/mod note.Sign) from WITNESS_SEED.
LOG_SEED = hashlib.sha256(b"log seed").digest()
WITNESS_SEED = hashlib.sha256(b"witness seed").digest()
LOG_NAME = "example.com/roadledger/log-0"
WITNESS_NAME = "witness.example/w1"
INTEROP_BODY = f"{LOG_NAME}\n42\nSBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\next line\n"
INTEROP_LOG_VKEY = f"{LOG_NAME}+9114c0df+AdPgSH/KWo1eEN1qvW/iMdtrMFviaDgjoj/M3xYpcYNH"
INTEROP_WITNESS_VKEY = f"{WITNESS_NAME}+dbde64cc+BN+GARmBG3ZTJJSX8/UQnTezIZRqgCkLwWQCBUNSL47c"
INTEROP_LOG_LINE = (
    f"— {LOG_NAME} kRTA3xXQ8Ahb9bOgR85xZzbS4wX8pKB+okpZQeiMWQDhyExyemqH6gUUbxUybTq4hZ+sbU5iiZzd3l"
    "1SnOnYHEcDGgQ=\n"
)
OUR_COSIGNATURE_LINE = (
    f"— {WITNESS_NAME} 295kzAAAAABm/qTPv507ttB6v9URzJ4toh8oj5r4Wd4VP+dVBIFLIB+z4pVq0+W2fVz1XfXKVE7P"
    "7OGegpAAxjovtDXr5IiwK0VHCg==\n"
)
GO_COSIGNATURE_LINE = (
    f"— {WITNESS_NAME} 295kzAAAAABrCJ2+gn89WKBo34hPl4C2ha9si3DKKWun3fICdU9iAWE6r714tPSiODKSVduK6d+u"
    "DHL5kFGYyQE6aL2666/RP1RrAA==\n"
)

ORIGIN = "roadledger.example/log-0"
ROOT = hashlib.sha256(b"root").digest()


def witness(name: str, now: int = 1_700_000_000) -> CosignatureSigner:
    return CosignatureSigner(name, hashlib.sha256(f"w {name}".encode()).digest(), clock=lambda: now)


def log_signer() -> Ed25519Signer:
    return Ed25519Signer(ORIGIN, hashlib.sha256(b"the log").digest())


def cosigned_note(
    signers: list[CosignatureSigner], cp: Checkpoint | None = None
) -> tuple[str, Ed25519Verifier]:
    log = log_signer()
    checkpoint = cp or Checkpoint(ORIGIN, 10, ROOT)
    signed = sign_checkpoint(checkpoint, log)
    lines = [cosign(checkpoint, s).to_note_signature() for s in signers]
    return signed.with_signature_lines(lines).to_text(), log.verifier()


# --- known answers ----------------------------------------------------------------------------


def test_signed_message_matches_the_spec_example() -> None:
    assert cosigned_message(SPEC_BODY, 1679315147) == SPEC_MESSAGE.encode()
    assert cosigned_message(Checkpoint.from_text(SPEC_BODY), 1679315147) == SPEC_MESSAGE.encode()


def test_spec_example_cosignature_line_parses() -> None:
    # Its timestamp is the one in the spec's signed-message example.
    cosig = Cosignature.from_line(SPEC_COSIGNATURE_LINE)
    assert cosig.name == "witness.example.com/w1"
    assert cosig.key_id == 0x8D66CF3F
    assert cosig.timestamp == 1679315147
    assert cosig.to_line() == SPEC_COSIGNATURE_LINE


def test_formats_timestamp_vector() -> None:
    cosig = Cosignature.from_line(f"— w {FORMATS_TIMESTAMP_SIG}")
    assert cosig.timestamp == 1727964367


def test_formats_cosignature_vkey_parses_with_type_0x04_key_id() -> None:
    verifier = CosignatureVerifier.from_vkey(REMORA_VKEY)
    assert verifier.key_id == 0xDA77ADE7
    assert compute_key_id(verifier.name, 0x04, verifier.public_key) == 0xDA77ADE7
    assert verifier.to_vkey() == REMORA_VKEY


def test_plain_note_vkey_is_not_a_cosignature_key() -> None:
    with pytest.raises(EncodingError, match="0x04"):
        CosignatureVerifier.from_vkey(INTEROP_LOG_VKEY)


def test_interop_keys_derive_from_seeds() -> None:
    assert Ed25519Signer(LOG_NAME, LOG_SEED).to_vkey() == INTEROP_LOG_VKEY
    assert CosignatureSigner(WITNESS_NAME, WITNESS_SEED).to_vkey() == INTEROP_WITNESS_VKEY


def test_our_cosignature_is_byte_exact() -> None:
    signer = CosignatureSigner(WITNESS_NAME, WITNESS_SEED)
    cosig = cosign(Checkpoint.from_text(INTEROP_BODY), signer, timestamp=1727964367)
    assert cosig.to_line() == OUR_COSIGNATURE_LINE


@pytest.mark.parametrize("line", [OUR_COSIGNATURE_LINE, GO_COSIGNATURE_LINE])
def test_interop_cosigned_checkpoint_verifies(line: str) -> None:
    note = INTEROP_BODY + "\n" + INTEROP_LOG_LINE + line
    result = verify_cosignatures(
        note,
        Ed25519Verifier.from_vkey(INTEROP_LOG_VKEY),
        [CosignatureVerifier.from_vkey(INTEROP_WITNESS_VKEY)],
        1,
    )
    assert result.witnesses == (WITNESS_NAME,)
    assert result.checkpoint.extensions == ("ext line",)


def test_go_cosignature_timestamp() -> None:
    assert Cosignature.from_line(GO_COSIGNATURE_LINE).timestamp == 1795726782


# --- signing and parsing ----------------------------------------------------------------------


def test_key_id_uses_signature_type_0x04() -> None:
    w = witness("w1.example")
    assert w.key_id == compute_key_id("w1.example", 0x04, w.public_key)
    assert w.key_id != compute_key_id("w1.example", 0x01, w.public_key)


def test_cosignature_line_round_trips_both_ways() -> None:
    cosig = cosign(Checkpoint(ORIGIN, 10, ROOT), witness("w1"))
    line = cosig.to_line()
    assert Cosignature.from_line(line) == cosig
    assert Cosignature.from_line(line).to_line() == line
    assert cosig.timestamp == 1_700_000_000


def test_keys_round_trip() -> None:
    w = witness("w1")
    again = CosignatureSigner.from_skey(w.to_skey())
    assert again.to_vkey() == w.to_vkey()
    assert CosignatureVerifier.from_vkey(w.to_vkey()) == w.verifier()
    assert w.to_skey().split("+", 4)[4] not in repr(w)


def test_plain_ed25519_skey_can_cosign_with_the_0x04_key_id() -> None:
    plain = Ed25519Signer(WITNESS_NAME, WITNESS_SEED)
    cosigner = CosignatureSigner.from_skey(plain.to_skey())
    assert cosigner.to_vkey() == INTEROP_WITNESS_VKEY


def test_timestamp_is_signed() -> None:
    note, log = cosigned_note([witness("w1")])
    parsed = Note.from_text(note)
    sig = parsed.signatures[1]
    changed = (int.from_bytes(sig.signature[:8], "big") + 1).to_bytes(8, "big")
    forged = NoteSignature(sig.name, sig.key_id, changed + sig.signature[8:])
    text = Note(parsed.text, (parsed.signatures[0], forged)).to_text()
    with pytest.raises(SignatureError, match="does not verify"):
        verify_cosignatures(text, log, [witness("w1").verifier()], 1)


def test_extension_lines_are_signed() -> None:
    cp = Checkpoint(ORIGIN, 10, ROOT, ("ext",))
    cosig = cosign(cp, witness("w1"))
    other = Checkpoint(ORIGIN, 10, ROOT, ("exu",)).to_text().encode()
    assert (
        witness("w1").verifier().verify(cp.to_text().encode(), cosig.to_note_signature().signature)
    )
    assert not witness("w1").verifier().verify(other, cosig.to_note_signature().signature)


def test_plain_note_signature_does_not_count_as_cosignature() -> None:
    # Same key and name, but signed as a plain note (type 0x01): a different key ID.
    seed = hashlib.sha256(b"w w1").digest()
    log = log_signer()
    cp = Checkpoint(ORIGIN, 10, ROOT)
    plain = Ed25519Signer("w1", seed)
    signed = sign_checkpoint(cp, log)
    line = NoteSignature("w1", plain.key_id, plain.sign(cp.to_text().encode()))
    text = signed.with_signature_lines([line]).to_text()
    with pytest.raises(SignatureError, match="0 of the required 1"):
        verify_cosignatures(text, log.verifier(), [witness("w1").verifier()], 1)


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP + 1])
def test_timestamp_out_of_range_is_refused(timestamp: int) -> None:
    with pytest.raises(EncodingError):
        cosigned_message(SPEC_BODY, timestamp)


def test_timestamp_above_2_63_is_not_valid() -> None:
    w = witness("w1")
    body = Checkpoint(ORIGIN, 10, ROOT).to_text().encode()
    sig = w.sign_at(body, 5)
    assert w.verifier().verify(body, sig)
    assert not w.verifier().verify(body, (1 << 63).to_bytes(8, "big") + sig[8:])
    with pytest.raises(EncodingError):
        Cosignature("w1", 1, 1 << 63, sig[8:])


@pytest.mark.parametrize("raw_len", [4 + 64, 4 + 71, 4 + 73])  # key ID + wrong signature lengths
def test_wrong_cosignature_length_is_refused(raw_len: int) -> None:
    import base64

    line = "— w " + base64.b64encode(b"\x00" * raw_len).decode()
    with pytest.raises(EncodingError):
        Cosignature.from_line(line)


# --- k-of-n policy ----------------------------------------------------------------------------


def test_two_of_three() -> None:
    w1, w2, w3 = witness("w1"), witness("w2"), witness("w3")
    note, log = cosigned_note([w1, w3])
    result = verify_cosignatures(note, log, [w1.verifier(), w2.verifier(), w3.verifier()], 2)
    assert result.witnesses == ("w1", "w3")
    assert result.missing == ("w2",)
    assert [c.name for c in result.cosignatures] == ["w1", "w3"]
    assert result.checkpoint == Checkpoint(ORIGIN, 10, ROOT)


def test_shortfall_names_who_is_missing() -> None:
    w1, w2, w3 = witness("w1"), witness("w2"), witness("w3")
    note, log = cosigned_note([w1])
    with pytest.raises(SignatureError) as info:
        verify_cosignatures(note, log, [w1.verifier(), w2.verifier(), w3.verifier()], 2)
    message = str(info.value)
    assert "1 of the required 2" in message
    assert "cosigned: w1" in message
    assert "missing: w2, w3" in message


def test_one_witness_signing_twice_counts_once() -> None:
    w1, w2 = witness("w1"), witness("w2")
    w1_later = witness("w1", now=1_700_000_500)
    note, log = cosigned_note([w1, w1_later])
    assert len(Note.from_text(note).signatures) == 3
    with pytest.raises(SignatureError, match="1 of the required 2"):
        verify_cosignatures(note, log, [w1.verifier(), w2.verifier()], 2)
    result = verify_cosignatures(note, log, [w1.verifier(), w2.verifier()], 1)
    assert result.cosignatures[0].timestamp == 1_700_000_500  # the latest one is reported


def test_unknown_witnesses_are_ignored() -> None:
    w1, stranger = witness("w1"), witness("stranger")
    note, log = cosigned_note([stranger, w1])
    assert verify_cosignatures(note, log, [w1.verifier()], 1).witnesses == ("w1",)


def test_zero_required_still_needs_the_log_signature() -> None:
    note, log = cosigned_note([])
    assert verify_cosignatures(note, log, [], 0).witnesses == ()
    other_log = Ed25519Signer(ORIGIN, hashlib.sha256(b"other log").digest()).verifier()
    with pytest.raises(SignatureError, match="not signed by the log key"):
        verify_cosignatures(note, other_log, [], 0)


def test_cosignature_over_a_different_checkpoint_fails() -> None:
    w1 = witness("w1")
    log = log_signer()
    cp, other = Checkpoint(ORIGIN, 10, ROOT), Checkpoint(ORIGIN, 11, ROOT)
    text = (
        sign_checkpoint(cp, log)
        .with_signature_lines([cosign(other, w1).to_note_signature()])
        .to_text()
    )
    with pytest.raises(SignatureError, match="w1"):
        verify_cosignatures(text, log.verifier(), [w1.verifier()], 1)


@pytest.mark.parametrize("k", [-1, 2])
def test_impossible_policy_is_a_value_error(k: int) -> None:
    note, log = cosigned_note([witness("w1")])
    with pytest.raises(ValueError, match="impossible"):
        verify_cosignatures(note, log, [witness("w1").verifier()], k)


def test_cosigned_checkpoint_opens_as_signed_checkpoint() -> None:
    note, log = cosigned_note([witness("w1"), witness("w2")])
    assert SignedCheckpoint.open(note, log).checkpoint.size == 10
