"""The certificates that test ``roadledger verify``, as one corpus for every verifier.

Each case is a certificate file (bytes), the trust an insurer gives (log and witness vkeys,
K, the expected device and VIN) and the item the change was made to break (None: it must
verify); the cases are in :mod:`tests.support.certificate_corpus_cases`. The in-browser
verifier (``dashboard/static/verifier``) is held to the same certificates as the Python one:
:func:`python_verdict` is what ``roadledger verify`` concludes, :func:`write_corpus` writes
the files and a manifest the JavaScript runs read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

from chain.certificate_build import build_certificate
from chain.certificate_verify import verify_certificate_file
from chain.cosignature import CosignatureVerifier
from chain.entries import device_key_entry
from chain.errors import CertificateError
from chain.note_signers import Ed25519Verifier
from tests.support.certificate_corpus_cases import add_head_cases, add_message_cases
from tests.support.certificate_corpus_edge import add_edge_cases
from tests.support.certificate_corpus_edits import (
    VIN,
    Builder,
    Case,
    Change,
    all_of,
    bump,
    checkpoint_line,
    drop_cosignature,
    hide,
    swap,
)
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    TO_MS,
    WITNESS_NAMES,
    Scenario,
    flip_b64,
    make_scenario,
    ts_of,
)

__all__ = ["Case", "all_cases", "python_verdict", "write_corpus"]


def python_verdict(case: Case) -> tuple[str, str] | None:
    """None if ``roadledger verify`` accepts the case, else ``(item, detail)`` of its failure."""
    log_keys = [Ed25519Verifier.from_vkey(k) for k in case.log_keys]
    witnesses = [CosignatureVerifier.from_vkey(k) for k in case.witness_keys]
    k = len(witnesses) if case.min_witnesses is None else case.min_witnesses
    try:
        verify_certificate_file(
            io.BytesIO(case.data), log_keys, witnesses, k,
            expected_device_id=case.device, expected_vin=case.vin,
        )  # fmt: skip
    except CertificateError as exc:
        return exc.item, exc.detail
    return None


def write_corpus(cases: list[Case], directory: Path) -> Path:
    """Each case as ``<name>.json`` in ``directory``, and ``manifest.json`` listing them."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = []
    for case in cases:
        path = directory / f"{case.name}.json"
        path.write_bytes(case.data)
        manifest.append({"name": case.name, "file": str(path), "trust": case.trust()})
    target = directory / "manifest.json"
    target.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return target


def _summary_cases(b: Builder, s: Scenario) -> None:
    for name, change in [
        ("first_seq", bump("first_seq")),
        ("last_seq", bump("last_seq", -1)),
        ("message_count", bump("message_count")),
        ("odometer_start_m", bump("odometer_start_m")),
        ("odometer_end_m", bump("odometer_end_m", 1000)),
        ("distance_m", bump("distance_m")),
        ("gnss_distance_m", bump("gnss_distance_m", -1)),
    ]:
        b.add(f"summary-{name}", s, f"summary.{name}", change=change)
    b.add(
        "summary-gap-changed",
        s,
        "summary.gaps",
        change=lambda o: o["summary"]["gaps"][0].update(before_seq=11),
    )
    b.add("summary-gaps-dropped", s, "summary.gaps", change=lambda o: o["summary"].update(gaps=[]))
    made_up = {"seq": 4, "kind": "odometer_rollback", "detail": "made up \u2014 \x01"}
    b.add(
        "summary-anomaly-made-up",
        s,
        "summary.anomalies",
        change=lambda o: o["summary"]["anomalies"].append(made_up),
    )
    # The order in which failures are reported: everything from one item on is broken.
    order: list[tuple[str, Change]] = [
        ("format", lambda o: o.update(extra=True)),
        ("checkpoint", checkpoint_line(2, flip_b64)),
        ("cosignatures", drop_cosignature(WITNESS_NAMES[0])),
        ("device_keys[0]", lambda o: o["device_keys"][0].update(leaf_index=4)),
        (
            "messages[1]",
            lambda o: o["messages"][1].update(leaf_index=o["messages"][1]["leaf_index"] + 1),
        ),
        ("summary.distance_m", bump("distance_m")),
    ]
    for first in range(len(order)):
        item = order[first][0]
        b.add(f"order-{first}-{item}", s, item, change=all_of(*(c for _, c in order[first:])))


def _subject_cases(b: Builder, s: Scenario) -> None:
    b.add("valid-expected-device-and-vin", s, None, device=DEVICE, vin=VIN)
    b.add("device-id-another", s, "device_id", device="veh-0099")
    b.add("vin-another", s, "vin", vin="WVWZZZ1JZXW000002")


def _scenario_cases(b: Builder) -> None:
    forged = make_scenario(bad_prev_seq=5)
    b.add("valid-stated-chain-break", forged, None)
    b.add("chain-break-hidden", forged, "chain[seq 4->5]", change=hide("chain_broken"))
    revoked = make_scenario(revoke_at_seq=15)
    b.add("revoked-key-before-a-message", revoked, f"messages[{revoked.index_of(15)}]")
    original = make_scenario().records[0]
    final = make_scenario(revoke_at_seq=15, extra_records=[original])
    b.add("revocation-is-final", final, f"messages[{final.index_of(15)}]")
    earlier = make_scenario(revoke_at_seq=15, extra_records=[original.revoke(ts_of(12))])
    b.add("later-record-revokes-earlier", earlier, f"messages[{earlier.index_of(12)}]")
    rotated = make_scenario(rotate_at_seq=12)
    b.add("valid-rotation", rotated, None)
    b.add("keys-out-of-log-order", rotated, "device_keys[1]", change=swap("device_keys", 0, 1))
    honest = make_scenario()
    index = rotated.index_of(15)
    old = honest.certificate.messages[index].jws
    b.add(
        "old-key-after-rotation",
        rotated,
        f"messages[{index}]",
        change=lambda o: o["messages"][index].update(jws=old),
    )
    late = make_scenario(revoke_at_seq=22)
    b.add("valid-sequenced-after-revocation", late, None)
    b.add(
        "sequenced-after-revocation-hidden",
        late,
        "summary.anomalies",
        change=hide("sequenced_after_revocation"),
    )
    rolled = make_scenario(odometer=lambda seq, odo: odo - 5000 if seq >= 14 else odo)
    b.add("valid-odometer-rollback-stated", rolled, None)
    b.add(
        "odometer-rollback-hidden",
        rolled,
        "summary.anomalies",
        change=lambda o: o["summary"].update(anomalies=[]),
    )
    jumpy = make_scenario(odometer=lambda seq, odo: odo + 3000 * (seq >= 6) + 9000 * (seq >= 16))
    b.add("valid-odometer-reads-high-stated", jumpy, None)
    reflashed = make_scenario(bad_prev_seq=11)
    widened = build_certificate(
        DEVICE,
        ts_of(11),
        TO_MS,
        messages=[
            (reflashed.raw_messages[q], leaf) for q, leaf in reflashed.leaf_of.items() if q >= 11
        ],
        key_entries=[
            (
                device_key_entry(reflashed.records[0]),
                reflashed.certificate.device_keys[0].leaf_index,
            )
        ],
        proof_source=reflashed.log.inclusion_proof,
        signed_checkpoint_text=reflashed.signed_checkpoint_text,
        predecessor=(reflashed.raw_messages[10], reflashed.leaf_of[10]),
    )
    b.add("valid-break-before-the-range", reflashed, None, data=widened.to_json())


def all_cases() -> Iterator[Case]:
    """Every case of the corpus, valid ones included (a few seconds: it signs and hashes)."""
    b = Builder()
    s = make_scenario()
    b.add("valid", s, None)
    add_head_cases(b, s)
    add_message_cases(b, s)
    _summary_cases(b, s)
    _subject_cases(b, s)
    _scenario_cases(b)
    add_edge_cases(b, s)
    yield from b.cases
