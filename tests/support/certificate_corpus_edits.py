"""Edits of a certificate, as the certificate unit tests make them, and the corpus's cases.

:class:`Case` is one certificate of the corpus (:mod:`tests.support.certificate_corpus`);
the edits are those of ``tests/unit/chain/test_certificate_*.py`` and
``tests/unit/test_cli_verify*.py``, applied to the same scenario.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.telemetry import Telemetry, sign_telemetry
from tests.unit.chain.test_certificate_scenario import (
    Scenario,
    b64url,
    b64url_decode,
    device_private_key,
    edit,
    flip_b64,
)

__all__ = ["VIN", "Builder", "Case", "Change"]

VIN = "WVWZZZ1JZXW000001"
Change = Callable[[dict[str, Any]], object]


@dataclass(frozen=True)
class Case:
    """One certificate and the trust it is checked with."""

    name: str
    data: bytes
    log_keys: list[str]
    witness_keys: list[str]
    breaks: str | None
    """The item the case was made to fail, or None if it must verify."""
    min_witnesses: int | None = None
    device: str | None = None
    vin: str | None = None

    def trust(self) -> dict[str, Any]:
        """The trust as the JS verifier takes it (``verifyCertificate(bytes, trust)``)."""
        return {
            "logKeys": self.log_keys,
            "witnessKeys": self.witness_keys,
            "minWitnesses": self.min_witnesses,
            "expectedDeviceId": self.device,
            "expectedVin": self.vin,
        }


# --- edits, as the unit tests make them -------------------------------------------------------


def checkpoint_line(index: int, new: Callable[[str], str]) -> Change:
    def change(obj: dict[str, Any]) -> None:
        lines = obj["checkpoint"].split("\n")
        lines[index] = new(lines[index])
        obj["checkpoint"] = "\n".join(lines)

    return change


def flip_signature_line(position: int) -> Callable[[str], str]:
    def flip(line: str) -> str:
        prefix, _, sig = line.rpartition(" ")
        return f"{prefix} {flip_b64(sig, position)}"

    return flip


def drop_cosignature(name: str) -> Change:
    def change(obj: dict[str, Any]) -> None:
        lines = obj["checkpoint"].split("\n")
        obj["checkpoint"] = "\n".join(x for x in lines if not x.startswith(f"\u2014 {name} "))

    return change


def jws_edit(i: int, part: int, new: Callable[[bytes], bytes]) -> Change:
    def change(obj: dict[str, Any]) -> None:
        parts = obj["messages"][i]["jws"].split(".")
        parts[part] = b64url(new(b64url_decode(parts[part])))
        obj["messages"][i]["jws"] = ".".join(parts)

    return change


def odo_minus_1000(payload: bytes) -> bytes:
    data = json.loads(payload)
    data["odo_m"] -= 1000
    return json.dumps(data, separators=(",", ":")).encode()


def flip_byte(position: int, bit: int) -> Callable[[bytes], bytes]:
    def flip(data: bytes) -> bytes:
        changed = bytearray(data)
        changed[position] ^= bit
        return bytes(changed)

    return flip


def hide(kind: str) -> Change:
    def change(obj: dict[str, Any]) -> None:
        anomalies = obj["summary"]["anomalies"]
        obj["summary"]["anomalies"] = [a for a in anomalies if a["kind"] != kind]

    return change


def bump(name: str, by: int = 1) -> Change:
    return lambda o: o["summary"].update({name: o["summary"][name] + by})


def all_of(*changes: Change) -> Change:
    def change(obj: dict[str, Any]) -> None:
        for one in changes:
            one(obj)

    return change


def key_entry(entry: bytes) -> Change:
    return lambda o: o["device_keys"][0].update(entry=base64.b64encode(entry).decode())


def signed(telemetry: Telemetry) -> str:
    return sign_telemetry(device_private_key(), telemetry).decode()


def swap(member: str, i: int, j: int) -> Change:
    def change(obj: dict[str, Any]) -> None:
        items = obj[member]
        items[i], items[j] = items[j], items[i]

    return change


# --- the corpus -------------------------------------------------------------------------------


class Builder:
    def __init__(self) -> None:
        self.cases: list[Case] = []

    def add(
        self,
        name: str,
        scenario: Scenario,
        breaks: str | None,
        data: str | bytes | None = None,
        change: Change | None = None,
        **trust: Any,
    ) -> None:
        text = scenario.text if data is None and change is None else data
        if change is not None:
            text = edit(scenario.text, change)
        assert text is not None
        keys: dict[str, Any] = {
            "log_keys": [scenario.log_verifier.to_vkey()],
            "witness_keys": [w.verifier().to_vkey() for w in scenario.witnesses],
        }
        keys.update(trust)
        raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        self.cases.append(Case(name, raw, breaks=breaks, **keys))
