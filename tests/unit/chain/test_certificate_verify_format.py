"""Verifying a mileage certificate: what the format refuses is a ``format`` error naming the member.

A member is removed, added, retyped or mis-encoded in the scenario's certificate, and the
error is a ``format`` error whose detail starts with the member's path.
"""

from __future__ import annotations

from typing import Any

import pytest

from chain.certificate_verify import verify_certificate
from chain.errors import CertificateError
from tests.unit.chain.test_certificate_scenario import Change, Scenario, expect, failure

# --- format -----------------------------------------------------------------------------------


def _message0(obj: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = obj["messages"][0]
    return message


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda o: o.update(extra=1), "certificate: unknown member 'extra'"),
        (lambda o: o.pop("summary"), "certificate: missing ['summary']"),
        (lambda o: _message0(o).update(note="hi"), "messages[0]: unknown member 'note'"),
        (lambda o: o["summary"].update(speed=1), "summary: unknown member 'speed'"),
        (
            lambda o: o["summary"]["gaps"][0].pop("before_seq"),
            "summary.gaps[0]: missing ['before_seq']",
        ),
        (
            lambda o: o.update(format="roadledger/mileage-certificate/v2"),
            "unsupported version 'roadledger/mileage-certificate/v2'; "
            "this verifier reads roadledger/mileage-certificate/v1",
        ),
        (lambda o: o.pop("format"), 'no "format" member: not a roadledger/mileage-certificate/v1'),
        (
            lambda o: _message0(o).update(leaf_index=7.0),
            "messages[0].leaf_index: expected an integer, got float",
        ),
        (
            lambda o: _message0(o).update(leaf_index=True),
            "messages[0].leaf_index: expected an integer, got bool",
        ),
        (lambda o: _message0(o).update(leaf_index=-1), "messages[0].leaf_index: -1 outside"),
        (lambda o: _message0(o).update(jws=None), "messages[0].jws: expected a string"),
        (
            lambda o: _message0(o)["inclusion_proof"].__setitem__(0, "not base64!"),
            "messages[0].inclusion_proof[0]: base64: not padded standard base64",
        ),
        (
            lambda o: _message0(o)["inclusion_proof"].__setitem__(0, "AAAA"),
            "messages[0].inclusion_proof[0]: expected a 32-byte hash",
        ),
        (
            lambda o: _message0(o).update(inclusion_proof=["AAAA"] * 65),
            "messages[0].inclusion_proof: expected an array of at most 64",
        ),
        (lambda o: o.update(messages=[]), "messages: expected at least one element"),
        (lambda o: o.update(device_keys={}), "device_keys: expected an array"),
        (lambda o: o.update(device_id="veh 42"), "device_id: expected an id matching"),
        (lambda o: o.update(to_ms=o["from_ms"]), "to_ms: 1767225600000 is not after from_ms"),
        (lambda o: o.update(checkpoint=1), "checkpoint: expected a string, got int"),
        (
            lambda o: o["summary"].update(message_count=0),
            "summary.message_count: 0 outside [1, 9007199254740991]",
        ),
        (
            lambda o: o["summary"]["anomalies"].append({"seq": 3, "kind": 1, "detail": ""}),
            "summary.anomalies[0].kind: expected a string, got int",
        ),
        (
            lambda o: o["device_keys"][0].update(entry="cm9hZA"),
            "device_keys[0].entry: base64: not padded standard base64",
        ),
    ],
)
def test_format_errors_name_the_member(scenario: Scenario, change: Change, detail: str) -> None:
    error = expect(scenario, change, "format")
    assert error.detail.startswith(detail)


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "certificate: not JSON: Expecting value at line 1 column 1"),
        (b"[]", "certificate: not a JSON object"),
        (b'{"format": NaN}', "certificate: not JSON: NaN is not JSON"),
        (b'{"format": "\xff"}', "certificate: not UTF-8 text"),
        (b"\xef\xbb\xbf{}", "certificate: not JSON: starts with a byte order mark"),
    ],
)
def test_not_a_json_object_is_format(scenario: Scenario, data: bytes, detail: str) -> None:
    with pytest.raises(CertificateError) as info:
        verify_certificate(data, scenario.log_verifier, [], 0)
    assert info.value.item == "format"
    assert info.value.detail.startswith(detail)


def test_duplicate_member_is_format(scenario: Scenario) -> None:
    text = scenario.text.replace('"device_id": ', '"device_id": "veh-0042", "device_id": ', 1)
    error = failure(scenario, text)
    assert (error.item, error.detail) == ("format", "certificate: duplicate member 'device_id'")
    nested = scenario.text.replace('"leaf_index": ', '"leaf_index": 1, "leaf_index": ', 1)
    assert failure(scenario, nested).item == "format"


def test_version_is_checked_before_members(scenario: Scenario) -> None:
    def v2(obj: dict[str, Any]) -> None:
        obj.update(format="roadledger/mileage-certificate/v2", new_member=[])

    assert expect(scenario, v2, "format").detail.startswith("unsupported version")
