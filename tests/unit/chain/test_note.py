"""C2SP signed notes: known answers from Go's sumdb/note and the spec, round trips, refusals."""

from __future__ import annotations

import base64
import hashlib

import pytest

from chain.errors import EncodingError, SignatureError
from chain.note import MAX_SIGNATURES, Note, NoteSignature, add_signatures, open_note, sign_note
from chain.note_keys import SignerKey, VerifierKey, compute_key_id
from chain.note_signers import Ed25519Signer, Ed25519Verifier

# golang.org/x/mod/sumdb/note (package documentation and note_test.go).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_LINE = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
)
ENOCH_LINE = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox3"
    "3WWd1RvMc+QQ=\n"
)
PETER_NOTE = PETER_TEXT + "\n" + PETER_LINE
DOUBLE_NOTE = PETER_NOTE + ENOCH_LINE

# c2sp.org/signed-note, "Verifier keys / Example".
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (
    "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ON"
    "ncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def signer(name: str, label: str = "") -> Ed25519Signer:
    return Ed25519Signer(name, hashlib.sha256(f"seed {name} {label}".encode()).digest())


def flip_signature_bit(note: str, line_index: int = 0) -> str:
    parsed = Note.from_text(note)
    sigs = list(parsed.signatures)
    raw = bytearray(sigs[line_index].signature)
    raw[0] ^= 0x01
    sigs[line_index] = NoteSignature(sigs[line_index].name, sigs[line_index].key_id, bytes(raw))
    return Note(parsed.text, tuple(sigs)).to_text()


# --- known answers ----------------------------------------------------------------------------


def test_go_signer_key_derives_published_verifier_key() -> None:
    peter = Ed25519Signer.from_skey(PETER_SKEY)
    assert peter.to_vkey() == PETER_VKEY
    assert peter.key_id == 0xC74F20A3
    assert compute_key_id("PeterNeumann", 0x01, peter.public_key) == 0xC74F20A3
    assert peter.to_skey() == PETER_SKEY


def test_signing_go_example_reproduces_published_note() -> None:
    # Ed25519 is deterministic: same key + same text must give the exact published bytes.
    assert sign_note(PETER_TEXT, [Ed25519Signer.from_skey(PETER_SKEY)]) == PETER_NOTE


def test_open_go_example_note() -> None:
    result = open_note(PETER_NOTE, [Ed25519Verifier.from_vkey(PETER_VKEY)])
    assert result.text == PETER_TEXT
    assert result.signer_names == ("PeterNeumann",)
    assert result.verified[0].key_id == 0xC74F20A3


def test_open_go_doubly_signed_note_with_both_keys() -> None:
    verifiers = [Ed25519Verifier.from_vkey(PETER_VKEY), Ed25519Verifier.from_vkey(ENOCH_VKEY)]
    result = open_note(DOUBLE_NOTE, verifiers)
    assert result.signer_names == ("PeterNeumann", "EnochRoot")
    assert result.unverified == ()


def test_unknown_signer_is_ignored() -> None:
    result = open_note(DOUBLE_NOTE, [Ed25519Verifier.from_vkey(ENOCH_VKEY)])
    assert result.signer_names == ("EnochRoot",)
    assert [s.name for s in result.unverified] == ["PeterNeumann"]


def test_spec_example_note_verifies() -> None:
    result = open_note(FOO_NOTE, [Ed25519Verifier.from_vkey(FOO_VKEY)])
    assert result.text == "This is an example message.\n"
    assert result.signer_names == ("example.com/foo",)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("vkey", [PETER_VKEY, ENOCH_VKEY, FOO_VKEY])
def test_vkey_parse_then_format_is_identical(vkey: str) -> None:
    assert VerifierKey.from_text(vkey).to_text() == vkey
    assert Ed25519Verifier.from_vkey(vkey).to_vkey() == vkey


def test_vkey_format_then_parse_is_equal() -> None:
    key = VerifierKey.create("example.org/log", 0x01, bytes(range(32)))
    assert VerifierKey.from_text(key.to_text()) == key
    verifier = signer("example.org/log").verifier()
    assert Ed25519Verifier.from_vkey(verifier.to_vkey()) == verifier


def test_skey_round_trips_and_never_shows_the_seed() -> None:
    key = SignerKey.from_text(PETER_SKEY)
    assert key.to_text() == PETER_SKEY
    assert SignerKey.from_text(key.to_text()) == key
    seed_b64 = PETER_SKEY.rsplit("+", 1)[1]
    assert seed_b64 not in repr(key)
    assert seed_b64 not in repr(Ed25519Signer.from_skey(PETER_SKEY))


@pytest.mark.parametrize("note", [PETER_NOTE, DOUBLE_NOTE, FOO_NOTE])
def test_note_parse_then_format_is_identical(note: str) -> None:
    assert Note.from_text(note).to_text() == note
    assert Note.from_text(note.encode()).to_text() == note


def test_note_format_then_parse_is_equal() -> None:
    note = Note(
        "line one\n\nline three after an empty line\n",
        (NoteSignature("a.example/k", 0x01020304, b"\x05" * 64), NoteSignature("b", 7, b"x")),
    )
    assert Note.from_text(note.to_text()) == note


def test_text_with_empty_lines_is_split_at_the_last_blank_line() -> None:
    s = signer("example.org/k")
    text = "first\n\nsecond\n\n"
    note = sign_note(text, [s])
    result = open_note(note, [s.verifier()])
    assert result.text == text


def test_add_signatures_keeps_existing_lines() -> None:
    enoch = signer("EnochRoot", "not the real one")
    both = add_signatures(PETER_NOTE, [enoch])
    assert both.startswith(PETER_NOTE)
    result = open_note(both, [Ed25519Verifier.from_vkey(PETER_VKEY), enoch.verifier()])
    assert result.signer_names == ("PeterNeumann", "EnochRoot")


# --- refusals ---------------------------------------------------------------------------------


def test_flipped_byte_in_body_fails() -> None:
    tampered = PETER_NOTE.replace("cryptography", "cryptographY")
    with pytest.raises(SignatureError, match="PeterNeumann"):
        open_note(tampered, [Ed25519Verifier.from_vkey(PETER_VKEY)])


def test_flipped_bit_in_signature_fails() -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(flip_signature_bit(PETER_NOTE), [Ed25519Verifier.from_vkey(PETER_VKEY)])


def test_bad_signature_of_a_known_key_rejects_the_whole_note() -> None:
    # Enoch's line is bad; Peter's is fine. A known key's failure rejects the note.
    verifiers = [Ed25519Verifier.from_vkey(PETER_VKEY), Ed25519Verifier.from_vkey(ENOCH_VKEY)]
    with pytest.raises(SignatureError, match="EnochRoot"):
        open_note(flip_signature_bit(DOUBLE_NOTE, 1), verifiers)


def test_same_key_under_another_name_is_not_trusted() -> None:
    peter = Ed25519Verifier.from_vkey(PETER_VKEY)
    impostor = Ed25519Verifier("PeterNeumann2", peter.public_key)
    with pytest.raises(SignatureError, match="no signature from a trusted key"):
        open_note(PETER_NOTE, [impostor])


def test_wrong_key_id_is_not_trusted() -> None:
    parsed = Note.from_text(PETER_NOTE)
    sig = parsed.signatures[0]
    renamed = Note(parsed.text, (NoteSignature(sig.name, sig.key_id ^ 1, sig.signature),))
    with pytest.raises(SignatureError, match="no signature from a trusted key"):
        open_note(renamed.to_text(), [Ed25519Verifier.from_vkey(PETER_VKEY)])


def test_other_key_with_same_name_and_id_fails() -> None:
    # A verifier configured with the right name and ID but another key: a real mismatch.
    class Lying:
        name = "PeterNeumann"
        key_id = 0xC74F20A3

        def verify(self, message: bytes, signature: bytes) -> bool:
            return signer("x").verifier().verify(message, signature)

    with pytest.raises(SignatureError, match="does not verify"):
        open_note(PETER_NOTE, [Lying()])


def test_ambiguous_verifiers_are_refused() -> None:
    peter = Ed25519Verifier.from_vkey(PETER_VKEY)

    class Clash:
        name = peter.name
        key_id = peter.key_id

        def verify(self, message: bytes, signature: bytes) -> bool:
            return True

    with pytest.raises(SignatureError, match="share name"):
        open_note(PETER_NOTE, [peter, Clash()])


def test_no_trusted_signature_fails() -> None:
    with pytest.raises(SignatureError):
        open_note(PETER_NOTE, [])


def _go_manglings(key: str) -> list[str]:
    out = []
    raw = key.encode()
    for i in range(len(raw)):
        for delta in (1, -1):
            changed = bytearray(raw)
            changed[i] = (changed[i] + delta) % 256
            out.append(changed.decode("latin-1"))
    out += [key[:i] for i in range(len(key))] + [key[i:] for i in range(1, len(key))]
    return out


def test_every_mangled_vkey_is_refused() -> None:
    # As Go's TestNewVerifier: no changed byte, prefix or suffix yields a valid key.
    for mangled in _go_manglings(PETER_VKEY):
        with pytest.raises(EncodingError):
            Ed25519Verifier.from_vkey(mangled)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # uppercase hex
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 digits
        "PeterNeumann+c74f20a3",  # no key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # empty name
        # Go's own negative cases: wrong-length key and unknown algorithm, with adjusted IDs.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        # A cosignature (type 0x04) key is not a note key.
        "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
    ],
)
def test_malformed_vkeys_are_refused(vkey: str) -> None:
    with pytest.raises(EncodingError):
        Ed25519Verifier.from_vkey(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        PETER_SKEY.replace("PRIVATE+KEY", "PRIVATE+KEYS"),
        PETER_SKEY.replace("c74f20a3", "c74f20a4"),  # ID does not match the seed
        PETER_SKEY[:-4],
        PETER_VKEY,
    ],
)
def test_malformed_skeys_are_refused(skey: str) -> None:
    with pytest.raises(EncodingError):
        Ed25519Signer.from_skey(skey)


def _line(name: str, raw: bytes) -> str:
    return f"— {name} {base64.b64encode(raw).decode()}\n"


@pytest.mark.parametrize(
    "note",
    [
        PETER_TEXT + PETER_LINE,  # no blank line
        PETER_NOTE[:-1],  # no final newline
        PETER_TEXT + "\n",  # no signature lines
        PETER_TEXT + "\n" + PETER_LINE.replace("—", "-"),  # hyphen, not em dash
        PETER_TEXT + "\n" + PETER_LINE.replace("— ", "—"),  # no space after dash
        PETER_TEXT + "\n" + PETER_LINE.replace("Neumann ", "Neumann  "),  # two spaces
        PETER_TEXT.replace("problem,", "problem,\t") + "\n" + PETER_LINE,  # control character
        PETER_TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_LINE,  # carriage return
        PETER_TEXT + "\n" + _line("short", b"\x00\x00\x00\x01"),  # key ID only
        PETER_TEXT + "\n" + "— x YWJjZA\n",  # unpadded base64
        PETER_TEXT + "\n" + "— x YWJjZR==\n",  # non-canonical base64
        PETER_TEXT + "\n" + _line("a+b", b"\x00" * 10),  # plus in name
        PETER_TEXT + "\n" + _line("", b"\x00" * 10),  # empty name
        PETER_TEXT
        + "\n"
        + "".join(_line(f"k{i}", b"\x00" * 10) for i in range(MAX_SIGNATURES + 1)),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(EncodingError):
        Note.from_text(note)


def test_invalid_utf8_note_is_refused() -> None:
    with pytest.raises(EncodingError, match="UTF-8"):
        Note.from_text(PETER_NOTE.encode().replace(b"cryptography", b"crypt\xffgraphy"))


def test_many_signatures_up_to_the_limit_are_accepted() -> None:
    lines = "".join(_line(f"k{i}", b"\x00" * 10) for i in range(MAX_SIGNATURES - 1))
    note = PETER_NOTE + lines
    assert len(Note.from_text(note).signatures) == MAX_SIGNATURES
    assert open_note(note, [Ed25519Verifier.from_vkey(PETER_VKEY)]).signer_names == (
        "PeterNeumann",
    )


@pytest.mark.parametrize("text", ["no final newline", "tab\there\n", ""])
def test_sign_note_refuses_bad_text(text: str) -> None:
    with pytest.raises(EncodingError):
        sign_note(text, [signer("k")])


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(SignatureError):
        sign_note("text\n", [])


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\nb", "tab\t"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(EncodingError):
        Ed25519Signer(name, b"\x00" * 32)
