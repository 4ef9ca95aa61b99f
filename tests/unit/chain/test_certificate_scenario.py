"""A realistic mileage certificate built from scratch, shared by the certificate tests.

One vehicle drives east through Berlin for a few minutes, signing a message every 10 s with a
hash chain; seq 9 never reached the ledger (a gap). The log interleaves other devices' entries
and receives the vehicle's messages out of order, as buffering devices send them. The log
signs a checkpoint and three witnesses cosign it. Options build the variants a test needs
(a broken ``prev`` signed by the device itself, a revocation, a key rotation).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from chain.certificate import MileageCertificate
from chain.certificate_build import build_certificate
from chain.certificate_signers import KnownSigners
from chain.certificate_verify import VerifiedCertificate, verify_certificate
from chain.checkpoint import Checkpoint, sign_checkpoint
from chain.cosignature import CosignatureSigner, CosignatureVerifier
from chain.device_keys import DeviceKey
from chain.entries import device_key_entry
from chain.errors import CertificateError
from chain.keys import Ed25519PrivateKey
from chain.log import InMemoryMerkleLog
from chain.note_signers import Ed25519Signer, Ed25519Verifier
from chain.telemetry import DeviceKind, Telemetry, TelemetryMessage, chain_hash, sign_telemetry
from chain.witness import MemoryWitnessStateStore, Witness

ORIGIN = "roadledger.example/log-0"
DEVICE = "veh-0042"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 10_000
FROM_MS = T0
TO_MS = T0 + 3_600_000
COSIGN_TIME = 1_767_229_200  # POSIX seconds, when the witnesses cosigned
WITNESS_NAMES = ("witness.example/w1", "witness.example/w2", "witness.example/w3")
LAST_SEQ = 21
MISSING_SEQ = 9
START_ODOMETER_M = 48_211_350
START_LAT_E7, START_LON_E7 = 525_200_000, 134_050_000


def _seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def device_private_key(label: str = "device key 1") -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_bytes(_seed(label))


def log_signer() -> Ed25519Signer:
    return Ed25519Signer(ORIGIN, _seed("log key"))


def witness_signer(name: str) -> CosignatureSigner:
    return CosignatureSigner(name, _seed(f"witness {name}"), clock=lambda: COSIGN_TIME)


def ts_of(seq: int) -> int:
    return T0 + 5_000 + (seq - 1) * STEP_MS


def leg_m(seq: int) -> int:
    """Metres driven between seq - 1 and seq: 100..140 m per 10 s (36..50 km/h)."""
    return 100 + (seq % 5) * 10


@dataclass
class Scenario:
    certificate: MileageCertificate
    log: InMemoryMerkleLog
    records: list[DeviceKey]
    raw_messages: dict[int, bytes]  # seq -> JWS, including ones left out of the certificate
    leaf_of: dict[int, int]  # seq -> leaf index in the log
    signed_checkpoint_text: str
    witnesses: list[CosignatureSigner] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.certificate.to_json()

    @property
    def log_verifier(self) -> Ed25519Verifier:
        return log_signer().verifier()

    @property
    def witness_verifiers(self) -> list[CosignatureVerifier]:
        return [w.verifier() for w in self.witnesses]

    def verify(
        self,
        certificate: MileageCertificate | str | None = None,
        *,
        min_witnesses: int | None = None,
        witness_verifiers: Sequence[CosignatureVerifier] | None = None,
        known_signers: KnownSigners | None = None,
        parsed_messages: Sequence[TelemetryMessage] = (),
    ) -> VerifiedCertificate:
        witnesses = self.witness_verifiers if witness_verifiers is None else witness_verifiers
        k = len(witnesses) if min_witnesses is None else min_witnesses
        return verify_certificate(
            self.text if certificate is None else certificate, self.log_verifier, witnesses, k,
            known_signers=known_signers, parsed_messages=parsed_messages,
        )  # fmt: skip

    def index_of(self, seq: int) -> int:
        """Position of ``seq`` in the certificate's messages."""
        seqs = [json.loads(_payload(m.jws))["seq"] for m in self.certificate.messages]
        return seqs.index(seq)


def _payload(jws: str) -> bytes:
    segment = jws.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def make_scenario(
    *,
    bad_prev_seq: int | None = None,
    revoke_at_seq: int | None = None,
    rotate_at_seq: int | None = None,
    odometer: Callable[[int, int], int] | None = None,
    to_ms: int = TO_MS,
    extra_records: Sequence[DeviceKey] = (),
) -> Scenario:
    """Build the log, checkpoint, cosignatures and certificate.

    ``bad_prev_seq``: that message carries a wrong ``prev`` but is signed by the device.
    ``revoke_at_seq``: a later record revokes the key at that message's ``ts``.
    ``rotate_at_seq``: from that message on the device signs with a new key; the old key is
    revoked at that ``ts`` and the new key registered from it.
    ``odometer(seq, honest_value)``: what the device reports instead of the honest odometer.
    ``extra_records``: key records logged after all the others.
    """
    key1 = device_private_key()
    key2 = device_private_key("device key 2")
    record1 = DeviceKey(
        device_id=DEVICE,
        public_key=key1.public_key,
        owner_org="fleet-berlin",
        kind=DeviceKind.VEHICLE,
        valid_from_ms=T0 - 86_400_000,
        vin="WVWZZZ1JZXW000001",
        vehicle_class="M1",
    )
    records = [record1]
    log = InMemoryMerkleLog()
    for i in range(5):
        log.append(b"other device entry %d" % i)
    key_leaves = [log.append(device_key_entry(record1))]
    if revoke_at_seq is not None:
        records.append(record1.revoke(ts_of(revoke_at_seq)))
    if rotate_at_seq is not None:
        records.append(record1.revoke(ts_of(rotate_at_seq)))
        records.append(
            DeviceKey(
                device_id=DEVICE,
                public_key=key2.public_key,
                owner_org="fleet-berlin",
                kind=DeviceKind.VEHICLE,
                valid_from_ms=ts_of(rotate_at_seq),
                vin="WVWZZZ1JZXW000001",
                vehicle_class="M1",
            )
        )
    records.extend(extra_records)

    raw: dict[int, bytes] = {}
    prev = ""
    odo, lat, lon = START_ODOMETER_M, START_LAT_E7, START_LON_E7
    for seq in range(1, LAST_SEQ + 1):
        if seq > 1:
            metres = leg_m(seq)
            odo += metres + 1  # the odometer reads 1 m more per leg than the straight line
            metres_per_e7 = 111_320 * math.cos(math.radians(lat / 1e7)) / 1e7
            lon += round(metres / metres_per_e7)
        signing_key = key2 if rotate_at_seq is not None and seq >= rotate_at_seq else key1
        telemetry = Telemetry(
            dev=DEVICE,
            seq=seq,
            prev=chain_hash(b"not the previous message") if seq == bad_prev_seq else prev,
            ts=ts_of(seq),
            odo_m=odo if odometer is None else odometer(seq, odo),
            lat_e7=lat,
            lon_e7=lon,
            spd_cms=leg_m(seq) * 10,
            hdg_cdeg=9000,
        )
        raw[seq] = sign_telemetry(signing_key, telemetry)
        prev = chain_hash(raw[seq])

    # Delivery out of order: pairs swapped, other devices' entries in between, seq 9 lost.
    order = [s for pair in zip(range(2, 22, 2), range(1, 22, 2), strict=False) for s in pair]
    order += [s for s in range(1, LAST_SEQ + 1) if s not in order]
    leaf_of: dict[int, int] = {}
    for n, seq in enumerate(order):
        if seq == MISSING_SEQ:
            continue
        leaf_of[seq] = log.append(raw[seq])
        if n % 4 == 3:
            log.append(b"another vehicle's message %d" % n)
        if n == 10:
            key_leaves.extend(log.append(device_key_entry(r)) for r in records[1:])
    for i in range(3):
        log.append(b"later entry %d" % i)

    signer = log_signer()
    signed = sign_checkpoint(Checkpoint(ORIGIN, log.size, log.root()), signer)
    witnesses = [witness_signer(name) for name in WITNESS_NAMES]
    for w in witnesses:
        line = Witness(w, MemoryWitnessStateStore()).add_checkpoint(
            signed.to_text(), 0, [], signer.verifier()
        )
        signed = signed.with_signature_lines(line)
    text = signed.to_text()

    certificate = build_certificate(
        DEVICE,
        FROM_MS,
        to_ms,
        messages=[(raw[s], leaf) for s, leaf in leaf_of.items()],
        key_entries=[
            (device_key_entry(r), leaf) for r, leaf in zip(records, key_leaves, strict=True)
        ],
        proof_source=log.inclusion_proof,
        signed_checkpoint_text=text,
    )
    return Scenario(certificate, log, records, raw, leaf_of, text, witnesses)


# --- editing a certificate's JSON -------------------------------------------------------------


def edit(text: str, change: Callable[[dict[str, Any]], object]) -> str:
    """The certificate text after ``change`` mutated its decoded JSON object."""
    obj = json.loads(text)
    change(obj)
    return json.dumps(obj, indent=2, ensure_ascii=False)


def flip_b64(text: str, position: int = 0) -> str:
    """Standard base64 ``text`` with one byte of the decoded value flipped."""
    data = bytearray(base64.b64decode(text))
    data[position] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- expecting a verification failure ---------------------------------------------------------

Change = Callable[[dict[str, Any]], object]


def failure(scenario: Scenario, text: str | bytes, **kwargs: Any) -> CertificateError:
    """The error verifying ``text`` raises (it must raise)."""
    with pytest.raises(CertificateError) as info:
        scenario.verify(text.decode() if isinstance(text, bytes) else text, **kwargs)
    return info.value


def expect(scenario: Scenario, change: Change, item: str, **kwargs: Any) -> CertificateError:
    """The error of the scenario's certificate after ``change``; it must name ``item``."""
    error = failure(scenario, edit(scenario.text, change), **kwargs)
    assert error.item == item, str(error)
    assert str(error) == f"{error.item}: {error.detail}"
    assert "\n" not in str(error)
    return error


# --- the scenario itself is what the tests assume ---------------------------------------------


def test_scenario_is_as_described() -> None:
    scenario = make_scenario()
    cert = scenario.certificate
    seqs = [scenario.index_of(s) for s in range(1, LAST_SEQ + 1) if s != MISSING_SEQ]
    assert seqs == list(range(LAST_SEQ - 1)), "messages are sorted by seq"
    assert len(cert.messages) == 20
    assert [m.leaf_index for m in cert.messages] != sorted(m.leaf_index for m in cert.messages)
    assert cert.checkpoint.count("\u2014 ") == 4  # the log and three witnesses
    assert len(cert.device_keys) == 1


def test_rotation_scenario_logs_three_records_in_order() -> None:
    scenario = make_scenario(rotate_at_seq=12)
    leaves = [k.leaf_index for k in scenario.certificate.device_keys]
    assert len(leaves) == 3
    assert leaves == sorted(leaves)
