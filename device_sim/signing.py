"""What a device's firmware does: encode a payload, sign it as a compact JWS, chain it.

The encoder writes the same bytes as :func:`chain.telemetry.sign_telemetry` (compact JSON,
wire member order, header ``{"alg":"Ed25519","kid":dev}``) without building and validating a
:class:`chain.telemetry.Telemetry` for every message, which is most of the cost when a run
signs hundreds of thousands of them. ``tests/unit/device_sim/test_signing.py`` pins the two to
byte equality; the values come from the simulator and are in range by construction.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from functools import partial

import nacl.bindings

from chain.jws import SIGNING_ALG, JwsHeader
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DEVICE_ID_RE
from device_sim.observing import Sighting

__all__ = ["ChainedSigner", "b64url", "digest_prev"]


def b64url(data: bytes) -> bytes:
    """Unpadded base64url (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _detached(message: bytes, secret: bytes) -> bytes:
    signed: bytes = nacl.bindings.crypto_sign(message, secret)
    return signed[:64]


def digest_prev(digest: bytes) -> str:
    """``prev`` of the next message, from the SHA-256 of this one."""
    return b64url(digest).decode("ascii")


class ChainedSigner:
    """Signs one device's messages, numbering them from ``seq`` 1 and chaining ``prev``.

    :meth:`vehicle` / :meth:`rsu` produce the device's next message; :meth:`sign_payload` signs
    arbitrary payload bytes under the device's header without touching the chain (scenarios
    use it for equivocating or schema-breaking messages).
    """

    __slots__ = (
        "_head",
        "_prefix",
        "_sign",
        "device_id",
        "last_digest",
        "last_payload",
        "prev",
        "seq",
    )

    def __init__(self, device_id: str, key: Ed25519PrivateKey) -> None:
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise ValueError(f"device id {device_id!r} does not match {DEVICE_ID_RE.pattern}")
        self.device_id = device_id
        self._prefix = b64url(JwsHeader(SIGNING_ALG, device_id).to_json()) + b"."
        # The libsodium binding directly: pynacl's SigningKey.sign builds a SignedMessage per
        # call, a third of the signing cost. Same RFC 8032 signature (the tests pin it).
        secret = nacl.bindings.crypto_sign_seed_keypair(key.to_bytes())[1]
        self._sign = partial(_detached, secret=secret)
        self._head = '{"v":1,"dev":"' + device_id + '","seq":'
        self.seq = 0
        self.prev = ""
        self.last_digest = b""  # SHA-256 of the last chained message
        self.last_payload = b""  # its payload bytes

    def sign_payload(self, payload: bytes) -> bytes:
        """The compact JWS of ``payload`` under this device's header and key."""
        signing_input = self._prefix + b64url(payload)
        return signing_input + b"." + b64url(self._sign(signing_input))

    def _chain(self, raw: bytes) -> bytes:
        digest = hashlib.sha256(raw).digest()
        self.last_digest = digest
        self.prev = digest_prev(digest)
        return raw

    def vehicle_payload(
        self,
        seq: int,
        prev: str,
        ts: int,
        odo_m: int,
        lat_e7: int,
        lon_e7: int,
        spd_cms: int,
        hdg_cdeg: int,
    ) -> bytes:
        """A vehicle payload in wire order (no signing, no chain update)."""
        return (
            f'{self._head}{seq},"prev":"{prev}","ts":{ts},"odo_m":{odo_m},"lat_e7":{lat_e7},'
            f'"lon_e7":{lon_e7},"spd_cms":{spd_cms},"hdg_cdeg":{hdg_cdeg}}}'
        ).encode("ascii")

    def rsu_payload(
        self, seq: int, prev: str, ts: int, lat_e7: int, lon_e7: int, obs: Sequence[Sighting]
    ) -> bytes:
        """An RSU payload in wire order (no signing, no chain update)."""
        items = ",".join(
            f'{{"veh":"{o.veh}","ts":{o.ts},"lat_e7":{o.lat_e7},"lon_e7":{o.lon_e7}}}' for o in obs
        )
        return (
            f'{self._head}{seq},"prev":"{prev}","ts":{ts},"lat_e7":{lat_e7},"lon_e7":{lon_e7},"obs":[{items}]}}'
        ).encode("ascii")

    def next_vehicle(
        self, ts: int, odo_m: int, lat_e7: int, lon_e7: int, spd_cms: int, hdg_cdeg: int
    ) -> bytes:
        """The device's next vehicle message; advances ``seq`` and ``prev``."""
        self.seq += 1
        payload = self.vehicle_payload(
            self.seq, self.prev, ts, odo_m, lat_e7, lon_e7, spd_cms, hdg_cdeg
        )
        self.last_payload = payload
        return self._chain(self.sign_payload(payload))

    def next_rsu(self, ts: int, lat_e7: int, lon_e7: int, obs: Sequence[Sighting]) -> bytes:
        """The device's next RSU message; advances ``seq`` and ``prev``."""
        self.seq += 1
        payload = self.rsu_payload(self.seq, self.prev, ts, lat_e7, lon_e7, obs)
        self.last_payload = payload
        return self._chain(self.sign_payload(payload))
