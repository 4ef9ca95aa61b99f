"""Scenario effects on what reaches the broker: tampering, forgeries, copies, delays, garbage.

These run after a device has signed its genuine message (``planned[0]``) and can replace it
(tampered payload), add publishes (forgeries, replays, duplicates, conflicting or malformed or
schema-breaking messages) or delay them (offline buffering). Added messages never consume the
device's ``seq``: the genuine hash chain stays intact except where a scenario replaces a link.
"""

from __future__ import annotations

import hashlib
import re

from chain.errors import RejectReason
from device_sim.assignment import ResolvedScenario
from device_sim.effects import Effect, EffectContext, Emission, Planned, reason_of
from device_sim.fleet import device_private_key
from device_sim.scenarios import ScenarioType
from device_sim.signing import ChainedSigner, b64url

__all__ = ["DELIVERY_EFFECTS", "shift_member"]

_ODO = re.compile(rb'"odo_m":(\d+)')
_LAT = re.compile(rb'"lat_e7":(-?\d+)')


def shift_member(payload: bytes, delta: int) -> bytes:
    """``payload`` with its odometer (vehicles) or its own latitude (RSUs) moved by ``delta``:
    still schema-valid, different bytes."""
    pattern = _ODO if b'"odo_m":' in payload else _LAT
    match = pattern.search(payload)
    if match is None:
        raise ValueError("payload has neither odo_m nor lat_e7")
    value = int(match.group(1))
    new = value + delta if value + delta >= 0 else value - delta
    return payload[: match.start(1)] + str(new).encode() + payload[match.end(1) :]


def _copy(planned: Planned, label: str) -> Planned:
    return Planned(
        planned.device, planned.raw, planned.digest, planned.seq, planned.ts,
        planned.publish_at, planned.intended, [*planned.labels, label], planned.order,
    )  # fmt: skip


def _extra(
    emission: Emission,
    raw: bytes,
    intended: RejectReason | None,
    label: str,
    *,
    parsed: bool = True,
) -> Planned:
    return Planned(
        device=emission.device,
        raw=raw,
        digest=hashlib.sha256(raw).digest(),
        seq=emission.seq if parsed else None,
        ts=emission.ts if parsed else None,
        publish_at=emission.t,
        intended=intended,
        labels=[*emission.labels, label],
    )


class _Counted(Effect):
    """Acts on the first ``messages`` messages from the window start on."""

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        self.left = int(scenario.param("messages"))

    def take(self, emission: Emission) -> bool:
        if self.left <= 0 or emission.t < self.scenario.from_ms:
            return False
        self.left -= 1
        self.note(emission.t, emission.seq)
        return True


class TamperedPayload(_Counted):
    """The payload is altered in transit after signing; the original never arrives."""

    warning_type = "tampered_payload"

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if not self.take(emission):
            return
        header, _, signature = emission.raw.split(b".")
        raw = b".".join((header, b64url(shift_member(emission.payload, -50_000)), signature))
        genuine = planned[0]
        genuine.raw, genuine.digest = raw, hashlib.sha256(raw).digest()
        genuine.intended = RejectReason.BAD_SIGNATURE
        genuine.labels.append(self.name)


class ForgedSignature(_Counted):
    """An attacker injects a lower-odometer copy signed with its own key."""

    warning_type = "forged_signature"

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        self._forger = ChainedSigner(
            device, device_private_key(context.seed, device, role="forger")
        )

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if self.take(emission):
            raw = self._forger.sign_payload(shift_member(emission.payload, -20_000))
            planned.append(_extra(emission, raw, RejectReason.BAD_SIGNATURE, self.name))


class Conflict(_Counted):
    """The device signs a second, different message for a seq it already sent."""

    warning_type = "conflict"

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if self.take(emission):
            raw = emission.signer.sign_payload(shift_member(emission.payload, 7))
            planned.append(_extra(emission, raw, reason_of(emission.reasons), self.name))


class Malformed(_Counted):
    """Garbage on the device's topic: two segments, a bad base64 character, non-JSON payload."""

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if not self.take(emission):
            return
        variant = (self.affected - 1) % 3
        if variant == 0:
            raw = emission.raw.rsplit(b".", 1)[0]
        elif variant == 1:
            raw = emission.raw[:-1] + b"+"
        else:
            raw = emission.signer.sign_payload(b"odo_m=%d" % emission.seq)
        planned.append(_extra(emission, raw, RejectReason.MALFORMED, self.name, parsed=False))


class BadSchema(_Counted):
    """A validly signed message whose ``ts`` is a float: ``schema``."""

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if self.take(emission):
            old = b'"ts":%d,' % emission.ts
            payload = emission.payload.replace(old, b'"ts":%d.0,' % emission.ts, 1)
            raw = emission.signer.sign_payload(payload)
            planned.append(_extra(emission, raw, RejectReason.SCHEMA, self.name))


class DuplicateDelivery(Effect):
    """During the window each message (with probability ``fraction``) is published twice."""

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if self.active(emission.t) and self.rng.random() < self.scenario.param("fraction"):
            planned[0].labels.append(self.name)
            planned.append(_copy(planned[0], self.name))
            self.note(emission.t, emission.seq)


class OfflineBurst(Effect):
    """During the window nothing is published; all of it goes out at the window's end,
    shuffled when ``shuffle`` is 1."""

    warning_type = "silent_device"

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if not self.active(emission.t):
            return
        burst_at = min(self.scenario.to_ms, self.context.end_ms)
        shuffle = self.scenario.param("shuffle") == 1
        for item in planned:
            item.publish_at = max(item.publish_at, burst_at)
            item.order = self.rng.random() if shuffle else 0.5
            item.labels.append(self.name)
        self.detail = {"burst_at_ms": burst_at}
        self.note(emission.t, emission.seq)


class Replay(Effect):
    """At the window start, ``messages`` earlier valid messages are published again."""

    warning_type = "replay"

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        self._history: list[Planned] | None = []

    def after(self, emission: Emission, planned: list[Planned]) -> None:
        if self._history is None:
            return
        if emission.t < self.scenario.from_ms:
            if planned[0].intended is None:
                self._history.append(planned[0])
            return
        count = min(int(self.scenario.param("messages")), len(self._history))
        chosen = sorted(self.rng.sample(range(len(self._history)), count))
        for index in chosen:
            old = self._history[index]
            again = Planned(
                old.device, old.raw, old.digest, old.seq, old.ts, emission.t, None, [self.name]
            )
            planned.append(again)
            self.note(emission.t, old.seq)
        self.detail = {"replayed_seqs": [self._history[i].seq for i in chosen]}
        self._history = None


DELIVERY_EFFECTS: dict[ScenarioType, type[Effect]] = {
    ScenarioType.TAMPERED_PAYLOAD: TamperedPayload,
    ScenarioType.FORGED_SIGNATURE: ForgedSignature,
    ScenarioType.CONFLICT: Conflict,
    ScenarioType.MALFORMED: Malformed,
    ScenarioType.BAD_SCHEMA: BadSchema,
    ScenarioType.DUPLICATE_DELIVERY: DuplicateDelivery,
    ScenarioType.OFFLINE_BURST: OfflineBurst,
    ScenarioType.REPLAY: Replay,
}
