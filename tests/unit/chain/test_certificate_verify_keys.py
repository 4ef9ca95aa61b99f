"""Verifying a mileage certificate: the device key records and which key is valid when.

A key record of the scenario's certificate is flipped, replaced or reordered, or the scenario
is rebuilt with revocations and rotations, and the error names the record or the message.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from chain.device_keys import DeviceKey
from chain.entries import device_key_entry
from chain.errors import CertificateError
from chain.telemetry import DeviceKind
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    Scenario,
    device_private_key,
    expect,
    flip_b64,
    make_scenario,
    ts_of,
)

# --- device keys ------------------------------------------------------------------------------


def _key0(obj: dict[str, Any]) -> dict[str, Any]:
    key: dict[str, Any] = obj["device_keys"][0]
    return key


def _with_entry(obj: dict[str, Any], entry: bytes) -> None:
    _key0(obj)["entry"] = base64.b64encode(entry).decode()


def test_key_entry_byte_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        _key0(obj)["entry"] = flip_b64(_key0(obj)["entry"], 0)

    error = expect(scenario, change, "device_keys[0]")
    assert error.detail.startswith("not a device key entry")


def test_key_entry_value_changed(scenario: Scenario) -> None:
    record = scenario.records[0]
    changed = DeviceKey(
        device_id=record.device_id,
        public_key=record.public_key,
        owner_org="someone-else",
        kind=record.kind,
        valid_from_ms=record.valid_from_ms,
    )
    error = expect(scenario, lambda o: _with_entry(o, device_key_entry(changed)), "device_keys[0]")
    assert error.detail.startswith(f"inclusion proof of leaf {_leaf_of_key(scenario)}: ")


def _leaf_of_key(scenario: Scenario) -> int:
    return scenario.certificate.device_keys[0].leaf_index


def test_key_entry_not_canonical(scenario: Scenario) -> None:
    entry = device_key_entry(scenario.records[0]).replace(b'","', b'", "', 1)
    error = expect(scenario, lambda o: _with_entry(o, entry), "device_keys[0]")
    assert "canonical" in error.detail


def test_key_proof_hash_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        proof = _key0(obj)["inclusion_proof"]
        proof[2] = flip_b64(proof[2], 31)

    error = expect(scenario, change, "device_keys[0]")
    assert "mismatch: expected" in error.detail


def test_key_leaf_index_changed(scenario: Scenario) -> None:
    expect(scenario, lambda o: _key0(o).update(leaf_index=4), "device_keys[0]")


def test_key_of_another_device(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: o.update(device_id="veh-0043"), "device_keys[0]")
    assert error.detail == "a record of device veh-0042, the certificate is for veh-0043"


def test_key_of_an_rsu(scenario: Scenario) -> None:
    rsu = DeviceKey(
        device_id=DEVICE,
        public_key=device_private_key().public_key,
        owner_org="city",
        kind=DeviceKind.RSU,
        valid_from_ms=0,
    )
    error = expect(scenario, lambda o: _with_entry(o, device_key_entry(rsu)), "device_keys[0]")
    assert error.detail == "a key of a rsu; mileage needs a vehicle"


def test_key_records_out_of_log_order() -> None:
    rotated = make_scenario(rotate_at_seq=12)

    def swap(obj: dict[str, Any]) -> None:
        keys = obj["device_keys"]
        keys[0], keys[1] = keys[1], keys[0]

    error = expect(rotated, swap, "device_keys[1]")
    assert "key records must be listed in log order" in error.detail


# --- key validity -----------------------------------------------------------------------------


def test_revoked_key_before_a_message() -> None:
    revoked = make_scenario(revoke_at_seq=15)
    assert [k.revoked_at_ms for k in revoked.records] == [None, ts_of(15)]
    index = revoked.index_of(15)
    with pytest.raises(CertificateError) as info:
        revoked.verify()
    assert info.value.item == f"messages[{index}]"
    key_id = revoked.records[0].key_id
    assert info.value.detail == (
        f"seq 15: revoked_key: {DEVICE}: key {key_id} revoked at {ts_of(15)}, message ts "
        f"{ts_of(15)}"
    )


def test_revocation_is_final_even_if_a_later_record_omits_it() -> None:
    # Registration, revocation at seq 15, then the original (unrevoked) record logged again.
    original = make_scenario().records[0]
    revoked = make_scenario(revoke_at_seq=15, extra_records=[original])
    assert [k.revoked_at_ms for k in revoked.records] == [None, ts_of(15), None]
    with pytest.raises(CertificateError) as info:
        revoked.verify()
    assert info.value.item == f"messages[{revoked.index_of(15)}]"
    assert "revoked_key" in info.value.detail


def test_a_later_record_may_revoke_earlier() -> None:
    original = make_scenario().records[0]
    revoked = make_scenario(revoke_at_seq=15, extra_records=[original.revoke(ts_of(12))])
    with pytest.raises(CertificateError) as info:
        revoked.verify()
    assert info.value.item == f"messages[{revoked.index_of(12)}]"


def test_messages_before_a_revocation_and_a_rotation_verify() -> None:
    rotated = make_scenario(rotate_at_seq=12)
    result = rotated.verify()
    assert len(result.device_keys) == 3
    assert result.summary.message_count == 20


def test_old_key_after_rotation_is_revoked() -> None:
    rotated = make_scenario(rotate_at_seq=12)
    honest = make_scenario()  # signed throughout with the first key
    index = rotated.index_of(15)
    old_key_message = honest.certificate.messages[index].jws

    def change(obj: dict[str, Any]) -> None:
        obj["messages"][index]["jws"] = old_key_message

    error = expect(rotated, change, f"messages[{index}]")
    assert error.detail.startswith("seq 15: revoked_key: ")
