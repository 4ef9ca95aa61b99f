"""Verifying a mileage certificate: a valid one passes, and every tampered part is named.

Each case changes one part of the realistic certificate of ``test_certificate_scenario`` (a
byte of a hash or signature, a value, a member) and expects the failure to name that part.
This file: the valid certificate, the checkpoint and its cosignatures, and the order in
which failures are reported; the other parts are in ``test_certificate_verify_*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chain.certificate_verify import verify_certificate
from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.cosignature import CosignatureVerifier, cosign
from chain.errors import CertificateError
from chain.note import NoteSignature
from chain.note_signers import Ed25519Signer, Ed25519Verifier
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    LAST_SEQ,
    ORIGIN,
    WITNESS_NAMES,
    Change,
    Scenario,
    device_private_key,
    edit,
    expect,
    failure,
    flip_b64,
    ts_of,
    witness_signer,
)

# --- the valid certificate --------------------------------------------------------------------


def test_valid_certificate_verifies(scenario: Scenario) -> None:
    result = scenario.verify()
    assert result.device_id == DEVICE
    assert result.log_key_name == ORIGIN
    assert result.witnesses == WITNESS_NAMES
    assert result.missing_witnesses == ()
    assert [m.telemetry.seq for m in result.messages] == [s for s in range(1, 22) if s != 9]
    assert [r.public_key for r in result.device_keys] == [device_private_key().public_key]
    assert (result.first_ts_ms, result.last_ts_ms) == (ts_of(1), ts_of(LAST_SEQ))
    summary = result.summary
    assert (summary.first_seq, summary.last_seq, summary.message_count) == (1, 21, 20)
    assert summary.distance_m == summary.odometer_end_m - summary.odometer_start_m == 2420
    assert summary.gnss_distance_m == 2397
    assert [(g.after_seq, g.before_seq) for g in summary.gaps] == [(8, 10)]
    assert summary.anomalies == ()


def test_parsed_certificate_and_bytes_verify_too(scenario: Scenario) -> None:
    assert scenario.verify(scenario.certificate).certificate == scenario.certificate
    result = verify_certificate(
        scenario.text.encode(), [scenario.log_verifier], scenario.witness_verifiers, 3
    )
    assert result.summary == scenario.certificate.summary


def test_verification_uses_nothing_but_the_given_public_keys(scenario: Scenario) -> None:
    # Verifiers rebuilt from their vkey text only: no private key, no log, no network.
    log_key = Ed25519Verifier.from_vkey(scenario.log_verifier.to_vkey())
    witnesses = [CosignatureVerifier.from_vkey(w.to_vkey()) for w in scenario.witnesses]
    assert verify_certificate(scenario.text, log_key, witnesses, 3).device_id == DEVICE


# --- checkpoint -------------------------------------------------------------------------------


def _replace_checkpoint_line(obj: dict[str, Any], index: int, new: Callable[[str], str]) -> None:
    lines = obj["checkpoint"].split("\n")
    lines[index] = new(lines[index])
    obj["checkpoint"] = "\n".join(lines)


def _flip_signature_line(line: str, position: int) -> str:
    prefix, _, sig = line.rpartition(" ")
    return f"{prefix} {flip_b64(sig, position)}"


def test_checkpoint_body_flip(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: _replace_checkpoint_line(o, 2, flip_b64), "checkpoint")
    assert error.detail == (
        f"the signature of log key {ORIGIN} ({scenario.log_verifier.key_id:08x}) does not "
        "verify over the checkpoint body"
    )


def test_checkpoint_tree_size_changed(scenario: Scenario) -> None:
    expect(scenario, lambda o: _replace_checkpoint_line(o, 1, lambda s: "35"), "checkpoint")


def test_log_signature_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        _replace_checkpoint_line(obj, 4, lambda line: _flip_signature_line(line, 10))

    assert "does not verify" in expect(scenario, change, "checkpoint").detail


def test_malformed_checkpoint_note(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["checkpoint"] = obj["checkpoint"].replace("\n\n", "\n")

    assert expect(scenario, change, "checkpoint").detail.startswith("malformed: ")


def test_wrong_log_key_same_name(scenario: Scenario) -> None:
    impostor = Ed25519Signer(ORIGIN, b"\x07" * 32).verifier()
    with pytest.raises(CertificateError) as info:
        verify_certificate(scenario.text, impostor, scenario.witness_verifiers, 3)
    assert info.value.item == "checkpoint"
    assert info.value.detail.startswith(f"not signed by the log key {ORIGIN} (")


def test_wrong_log_key_other_name(scenario: Scenario) -> None:
    other = Ed25519Signer("other.example/log", b"\x07" * 32).verifier()
    with pytest.raises(CertificateError) as info:
        verify_certificate(scenario.text, other, scenario.witness_verifiers, 3)
    assert info.value.item == "checkpoint"
    assert f"signature lines: {ORIGIN} (" in info.value.detail


def test_any_of_several_log_keys(scenario: Scenario) -> None:
    rotated_out = Ed25519Signer(ORIGIN + "-old", b"\x07" * 32).verifier()
    result = verify_certificate(
        scenario.text, [rotated_out, scenario.log_verifier], scenario.witness_verifiers, 3
    )
    assert result.log_key_name == ORIGIN


# --- cosignatures -----------------------------------------------------------------------------


def _drop_cosignature(obj: dict[str, Any], name: str) -> None:
    lines = obj["checkpoint"].split("\n")
    obj["checkpoint"] = "\n".join(line for line in lines if not line.startswith(f"— {name} "))


def test_cosignature_flip_with_k_equal_n(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        _replace_checkpoint_line(obj, 6, lambda line: _flip_signature_line(line, 20))

    error = expect(scenario, change, "cosignatures")
    assert WITNESS_NAMES[1] in error.detail
    assert "does not verify" in error.detail


def test_two_of_three_satisfy_k_two(scenario: Scenario) -> None:
    text = edit(scenario.text, lambda o: _drop_cosignature(o, WITNESS_NAMES[2]))
    result = scenario.verify(text, min_witnesses=2)
    assert result.witnesses == WITNESS_NAMES[:2]
    assert result.missing_witnesses == (WITNESS_NAMES[2],)
    assert result.min_witnesses == 2


def test_two_of_three_fail_k_three_saying_who(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: _drop_cosignature(o, WITNESS_NAMES[2]), "cosignatures")
    assert error.detail == (
        f"checkpoint {ORIGIN} size {scenario.log.size}: 2 of the required 3 witnesses "
        f"cosigned (cosigned: {WITNESS_NAMES[0]}, {WITNESS_NAMES[1]}; missing: {WITNESS_NAMES[2]})"
    )


def test_unknown_extra_cosigners_are_ignored(scenario: Scenario) -> None:
    stranger = witness_signer("stranger.example/w9")
    checkpoint = SignedCheckpoint.from_text(scenario.certificate.checkpoint).checkpoint
    line = cosign(checkpoint, stranger).to_line()
    text = edit(scenario.text, lambda o: o.update(checkpoint=o["checkpoint"] + line))
    assert scenario.verify(text).witnesses == WITNESS_NAMES
    # ... even a stranger's broken line: it is not a key we were told to trust.
    broken = _flip_signature_line(line.rstrip("\n"), 20) + "\n"
    text = edit(scenario.text, lambda o: o.update(checkpoint=o["checkpoint"] + broken))
    assert scenario.verify(text).witnesses == WITNESS_NAMES


def test_no_witness_required(scenario: Scenario) -> None:
    result = scenario.verify(witness_verifiers=[], min_witnesses=0)
    assert result.witnesses == ()


def test_cosignature_of_another_checkpoint_does_not_count(scenario: Scenario) -> None:
    other = Checkpoint(ORIGIN, 3, b"\x01" * 32)
    w3 = witness_signer(WITNESS_NAMES[2])
    foreign = cosign(other, w3).to_note_signature().to_line()

    def change(obj: dict[str, Any]) -> None:
        _drop_cosignature(obj, WITNESS_NAMES[2])
        obj["checkpoint"] += foreign

    assert "does not verify" in expect(scenario, change, "cosignatures").detail


@pytest.mark.parametrize("k", [-1, 4])
def test_impossible_policy_is_a_programming_error(scenario: Scenario, k: int) -> None:
    with pytest.raises(ValueError, match="impossible"):
        scenario.verify(min_witnesses=k)


# --- the first failure wins, in the documented order -----------------------------------------


def _break_summary(obj: dict[str, Any]) -> None:
    obj["summary"]["distance_m"] += 1


def _break_message(obj: dict[str, Any]) -> None:
    obj["messages"][1]["leaf_index"] += 1


def _break_key(obj: dict[str, Any]) -> None:
    obj["device_keys"][0]["leaf_index"] += 1


def _break_cosignature(obj: dict[str, Any]) -> None:
    _drop_cosignature(obj, WITNESS_NAMES[0])


def _break_checkpoint(obj: dict[str, Any]) -> None:
    _replace_checkpoint_line(obj, 2, flip_b64)


def _break_format(obj: dict[str, Any]) -> None:
    obj["extra"] = True


ORDER: list[tuple[str, Change]] = [
    ("format", _break_format),
    ("checkpoint", _break_checkpoint),
    ("cosignatures", _break_cosignature),
    ("device_keys[0]", _break_key),
    ("messages[1]", _break_message),
    ("summary.distance_m", _break_summary),
]


@pytest.mark.parametrize("first", range(len(ORDER)))
def test_first_failing_item_in_fixed_order(scenario: Scenario, first: int) -> None:
    def everything_from_first(obj: dict[str, Any]) -> None:
        for _, change in ORDER[first:]:
            change(obj)

    expect(scenario, everything_from_first, ORDER[first][0])


def test_a_forged_signature_line_named_like_the_log_is_rejected(scenario: Scenario) -> None:
    fake = NoteSignature(ORIGIN, scenario.log_verifier.key_id, b"\x00" * 64).to_line()
    text = edit(scenario.text, lambda o: o.update(checkpoint=o["checkpoint"] + fake))
    assert failure(scenario, text).item == "checkpoint"
