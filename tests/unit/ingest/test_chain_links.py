"""The hash chain at ingest and claims of revoked keys (ingest/chain_links.py), via the verifier.

Attack 1: a re-flashed device continues with a made-up ``prev`` -> the link is flagged.
Attack 3: a thief squats seqs with a stolen key -> once the key is revoked from the theft on,
the device's next key takes those seqs over instead of being quarantined as ``conflict``.
"""

from __future__ import annotations

from chain.device_keys import DeviceKey
from chain.errors import RejectReason
from chain.telemetry import chain_hash
from contracts.topics import HEADER_CHAIN_BROKEN, Source
from ingest.chain_links import is_void
from ingest.dedupe import InMemoryDeviceMessages, StoredMessage
from ingest.key_cache import StaticKeys
from ingest.verifier import Verifier
from ingest.verifier_routing import Decision
from roadledger.settings import Settings
from roadledger.stream import StreamRecord
from roadledger.stream.memory import MemoryStream
from tests.unit.ingest.fleet import T0, Device, raw_record

R = RejectReason
MADE_UP = chain_hash(b"a message this device never sent")


class Feed:
    """Raw records of one device, numbered from offset 0, with a verifier over a dict store."""

    def __init__(self, *records: DeviceKey) -> None:
        self.keys = StaticKeys(records)
        self.store = InMemoryDeviceMessages()
        self.offset = 0
        settings = Settings(verify_workers=0)
        self.verifier = Verifier(settings, MemoryStream(), self.store, self.keys, key_refresh_s=0)

    def records(self, device_id: str, *messages: bytes, recv_ms: int = T0) -> list[StreamRecord]:
        out = []
        for raw in messages:
            out.append(raw_record(raw, device_id, offset=self.offset, recv_ms=recv_ms))
            self.offset += 1
        return out

    async def decide(self, device_id: str, *messages: bytes, recv_ms: int = T0) -> list[Decision]:
        return await self.verifier.decide(self.records(device_id, *messages, recv_ms=recv_ms))


def links(decisions: list[Decision]) -> list[str | None]:
    return [",".join(b.link for b in d.chain_breaks) or None for d in decisions]


def history(device: Device, count: int, start_ms: int = T0 - 600_000) -> list[bytes]:
    return [device.message(start_ms + i * 1000) for i in range(count)]


# --- attack 1: the chain ------------------------------------------------------------------------


async def test_a_reflashed_device_continuing_with_a_made_up_prev_is_flagged() -> None:
    car = Device("veh-1")
    feed = Feed(*car.records)
    first = await feed.decide("veh-1", *history(car, 10))
    assert [d.reason for d in first] == [None] * 10
    assert links(first) == [None] * 10, "a genuine chain has no break"
    # re-flashed: seq 11 with a prev that is not seq 10's hash, odometer 50,000 km lower
    forged = car.message(T0, seq=11, prev=MADE_UP, odo_m=1_000)
    (decision,) = await feed.decide("veh-1", forged)
    assert decision.reason is None, "flagged, not quarantined"
    (broken,) = decision.chain_breaks
    assert broken.link == "10->11"
    assert "is not the hash of the seq 10 accepted from raw:0:9" in broken.detail
    headers = dict(decision.headers())
    assert headers[HEADER_CHAIN_BROKEN] == b"10->11"
    assert b"veh-1 seq 10 -> 11" in headers["detail"]
    # what follows the break chains to it: one break, not one per message
    (after,) = await feed.decide("veh-1", car.message(T0 + 1000, seq=12))
    assert after.chain_breaks == ()


async def test_out_of_order_arrival_is_normal_and_judged_when_the_predecessor_arrives() -> None:
    car = Device("veh-1")
    feed = Feed(*car.records)
    m1, m2, m3, m4 = history(car, 4)
    assert links(await feed.decide("veh-1", m1, m3)) == [None, None]  # seq 2 not here yet
    assert links(await feed.decide("veh-1", m4, m2)) == [None, None]  # both links hold


async def test_a_successor_that_came_first_is_checked_against_its_late_predecessor() -> None:
    car = Device("veh-1")
    feed = Feed(*car.records)
    genuine = history(car, 3)
    forged_4 = car.message(T0, seq=4, prev=MADE_UP, odo_m=1_000)
    await feed.decide("veh-1", genuine[0], genuine[1])
    (early,) = await feed.decide("veh-1", forged_4)
    assert early.chain_breaks == (), "seq 3 is unknown yet: nothing to judge"
    (late,) = await feed.decide("veh-1", genuine[2])
    assert late.reason is None, "the arriving predecessor is not refused"
    assert links([late]) == ["3->4"]
    assert "the seq 4 accepted earlier from raw:0:2 names prev" in late.chain_breaks[0].detail


async def test_a_break_inside_one_batch_is_reported_once_and_again_after_a_crash() -> None:
    car = Device("veh-1")
    feed = Feed(*car.records)
    messages = [*history(car, 3), car.message(T0, seq=4, prev=MADE_UP)]
    records = feed.records("veh-1", messages[3], *messages[:3])  # successor first, same batch
    decisions = await feed.verifier.decide(records)
    # both ends are in the batch: the later end (whose prev is wrong) carries it
    assert links(decisions) == ["3->4", None, None, None]
    again = await feed.verifier.decide(records)  # killed before the commit: read again
    assert [d.replay for d in again] == [True] * 4
    assert links(again) == links(decisions)


async def test_a_record_carries_both_links_when_both_are_broken() -> None:
    # seq 5 arrives last and fits neither its stored predecessor nor its stored successor
    car = Device("veh-1")
    feed = Feed(*car.records)
    m = history(car, 6)
    await feed.decide("veh-1", *m[:4], m[5])
    intruder = car.message(T0, seq=5, prev=MADE_UP, odo_m=3)
    (decision,) = await feed.decide("veh-1", intruder)
    assert links([decision]) == ["4->5,5->6"]
    assert dict(decision.headers())[HEADER_CHAIN_BROKEN] == b"4->5,5->6"
    assert feed.verifier.stats.chain_broken == 0, "counted once committed, not by decide()"


async def test_a_conflict_or_duplicate_is_not_judged_for_links() -> None:
    car = Device("veh-1")
    feed = Feed(*car.records)
    m1, m2 = history(car, 2)
    other_2 = car.message(T0, seq=2, prev=MADE_UP, odo_m=5)
    decisions = await feed.decide("veh-1", m1, m2, m2, other_2)
    assert [d.reason for d in decisions] == [None, None, R.DUPLICATE, R.CONFLICT]
    assert links(decisions) == [None] * 4


# --- attack 3: seqs squatted with a stolen key ------------------------------------------------

STOLEN_AT = T0 - 3_600_000  # the key was stolen an hour before the operator noticed (T0)


def squatting() -> tuple[Device, Device, list[bytes]]:
    """The genuine car at seq 10 and a thief with its key who sent seq 11..60 after the theft."""
    car = Device("veh-1", key_name="k1", valid_from_ms=T0 - 10 * 86_400_000)
    thief = Device("veh-1", key_name="k1", valid_from_ms=T0 - 10 * 86_400_000)
    genuine = history(car, 10, start_ms=STOLEN_AT - 60_000)
    thief.seq, thief.prev = car.seq, car.prev  # it read the device's last message off the air
    squats = [thief.message(STOLEN_AT + i * 1000, odo_m=5) for i in range(50)]
    return car, thief, [*genuine, *squats]


async def test_squatted_seqs_give_way_to_the_next_key_once_revoked_from_the_theft() -> None:
    car, _, before = squatting()
    feed = Feed(*car.records)
    assert [d.reason for d in await feed.decide("veh-1", *before, recv_ms=STOLEN_AT + 60_000)] == [
        None
    ] * 60, "nobody knew yet: the squats were accepted"
    # the operator rotates to a new key, dated back to the theft
    old, new = car.rotate(STOLEN_AT, "k2")
    feed.keys.replace(feed.keys.keys["veh-1"][0], old)
    feed.keys.add(new)
    resent = [car.message(T0 + i * 1000) for i in range(5)]  # the device's seq 11..15, new key
    decisions = await feed.decide("veh-1", *resent, recv_ms=T0 + 10_000)
    assert [d.reason for d in decisions] == [None] * 5, "not conflict: forwarded"
    assert links(decisions) == [None] * 5, "links to the void squats are not judged"
    assert feed.store.rows[("veh-1", 11)][1] == Source(0, 60)
    # a crash before the commit: the superseding records find their own rows (replays)
    again = await feed.verifier.decide(
        [
            raw_record(raw, "veh-1", offset=60 + i, recv_ms=T0 + 10_000)
            for i, raw in enumerate(resent)
        ]
    )
    assert [(d.reason, d.replay) for d in again] == [(None, True)] * 5
    # the thief's copies of those seqs are refused now, and the new claims are binding
    (late_squat,) = await feed.decide("veh-1", before[10], recv_ms=T0 + 20_000)
    assert late_squat.reason is R.REVOKED_KEY
    rival = car.message(T0 + 9_000, seq=12, prev=car.prev, odo_m=7)
    (conflict,) = await feed.decide("veh-1", rival, recv_ms=T0 + 20_000)
    assert conflict.reason is R.CONFLICT, "a valid claim is never superseded"


async def test_claims_signed_before_the_revocation_time_stay_binding() -> None:
    # Revoked only from when the operator noticed (T0): the squats were signed while the key
    # was valid, exactly like the device's own history, so they keep their seqs.
    car, _, before = squatting()
    feed = Feed(*car.records)
    await feed.decide("veh-1", *before, recv_ms=STOLEN_AT + 60_000)
    old, new = car.rotate(T0, "k2")
    feed.keys.replace(feed.keys.keys["veh-1"][0], old)
    feed.keys.add(new)
    decisions = await feed.decide("veh-1", car.message(T0 + 1000), recv_ms=T0 + 10_000)
    assert [d.reason for d in decisions] == [R.CONFLICT]


def test_a_claim_is_void_only_when_its_key_was_revoked_at_or_before_its_ts() -> None:
    car = Device("veh-1", key_name="k1")
    key = car.record
    row = StoredMessage(b"h" * 32, Source(0, 1), False, b"", key.key_id, T0)
    assert not is_void(row, [key])
    assert not is_void(row, [key.revoke(T0 + 1)])
    assert is_void(row, [key.revoke(T0)])
    assert not is_void(StoredMessage(b"h" * 32, Source(0, 1), False), [key.revoke(T0)])
    other = Device("veh-1", key_name="k9").record.revoke(T0 - 5)
    assert not is_void(row, [other]), "another key's revocation says nothing about this row"


async def test_the_first_valid_conflicting_message_wins_a_void_seq() -> None:
    car, _, before = squatting()
    feed = Feed(*car.records)
    await feed.decide("veh-1", *before, recv_ms=STOLEN_AT + 60_000)
    old, new = car.rotate(STOLEN_AT, "k2")
    feed.keys.replace(feed.keys.keys["veh-1"][0], old)
    feed.keys.add(new)
    prev = car.prev
    a = car.message(T0, seq=11, prev=prev)
    b = car.message(T0, seq=11, prev=prev, odo_m=1)
    decisions = await feed.decide("veh-1", a, b, a, recv_ms=T0 + 1000)
    assert [d.reason for d in decisions] == [None, R.CONFLICT, R.DUPLICATE]
    assert new.key_id != old.key_id
