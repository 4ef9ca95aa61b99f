"""In-browser certificate verification (issue 12's floor: 10,000 messages in < 5 s).

Run from the project root::

    .venv/bin/python bench/browser_verify.py                 # 10,000 messages, best of 3
    .venv/bin/python bench/browser_verify.py --messages 2000 --repeat 1

Builds one valid certificate of ``--messages`` hash-chained messages of one vehicle, logged
among other entries, signed by the log and cosigned by three witnesses, then checks the same
file with both verifiers:

- ``python``: ``chain.certificate_verify.verify_certificate_file``, what ``roadledger verify``
  runs (streaming, one message at a time);
- ``browser``: ``dashboard/static/verifier/verify.html`` in headless Chromium
  (``/usr/bin/chromium``), served on loopback; the file is chosen in the page's file input,
  and the time is the page's own, from reading the file to the verdict (``data-ms``), beside
  the wall time from choosing the file to the verdict as Playwright sees it.

Each time is the best of ``--repeat`` runs. Figures go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the harness

from chain.certificate_build import build_certificate
from chain.certificate_verify import verify_certificate_file
from chain.checkpoint import Checkpoint, sign_checkpoint
from chain.cosignature import cosign
from chain.device_keys import DeviceKey
from chain.entries import device_key_entry
from chain.log import InMemoryMerkleLog
from chain.telemetry import DeviceKind, Telemetry, chain_hash, sign_telemetry
from tests.support.static_browser import chromium_page, static_server
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    ORIGIN,
    T0,
    WITNESS_NAMES,
    device_private_key,
    log_signer,
    witness_signer,
)

STATIC = Path(__file__).resolve().parents[1] / "dashboard" / "static"
FLOOR_S = 5.0


def certificate(messages: int) -> bytes:
    """A valid certificate of ``messages`` messages, 10 s apart, other entries interleaved."""
    key = device_private_key()
    record = DeviceKey(
        device_id=DEVICE, public_key=key.public_key, owner_org="fleet-berlin",
        kind=DeviceKind.VEHICLE, valid_from_ms=T0 - 1, vin="WVWZZZ1JZXW000001",
        vehicle_class="M1",
    )  # fmt: skip
    log = InMemoryMerkleLog()
    key_leaf = log.append(device_key_entry(record))
    pairs, prev, odo, lon = [], "", 48_211_350, 134_050_000
    for seq in range(1, messages + 1):
        odo += 121
        lon += 1_770
        telemetry = Telemetry(
            dev=DEVICE, seq=seq, prev=prev, ts=T0 + seq * 10_000, odo_m=odo,
            lat_e7=525_200_000, lon_e7=lon, spd_cms=1200, hdg_cdeg=9000,
        )  # fmt: skip
        raw = sign_telemetry(key, telemetry)
        prev = chain_hash(raw)
        pairs.append((raw, log.append(raw)))
        log.append(b"another vehicle's message %d" % seq)
    signed = sign_checkpoint(Checkpoint(ORIGIN, log.size, log.root()), log_signer())
    lines = [
        cosign(signed.checkpoint, witness_signer(n)).to_note_signature() for n in WITNESS_NAMES
    ]
    text = signed.with_signature_lines(lines).to_text()
    to_ms = T0 + (messages + 1) * 10_000
    cert = build_certificate(
        DEVICE, T0, to_ms, pairs, [(device_key_entry(record), key_leaf)], log.inclusion_proof, text
    )
    return cert.to_json().encode()


def python_seconds(data: bytes, log_vkey: str, witness_vkeys: list[str]) -> float:
    from chain.cosignature import CosignatureVerifier
    from chain.note_signers import Ed25519Verifier

    log_key = Ed25519Verifier.from_vkey(log_vkey)
    witnesses = [CosignatureVerifier.from_vkey(v) for v in witness_vkeys]
    started = time.perf_counter()
    report = verify_certificate_file(io.BytesIO(data), [log_key], witnesses, len(witnesses))
    elapsed = time.perf_counter() - started
    assert report.summary.message_count > 0
    return elapsed


_DONE = "#result[data-verdict=verified], #result[data-verdict=failed], #result[data-verdict=error]"


def browser_seconds(
    path: Path, log_vkey: str, witness_vkeys: list[str], repeat: int
) -> list[tuple[float, float]]:
    """(page time, wall time from choosing the file to the verdict) per run, in seconds."""
    runs: list[tuple[float, float]] = []
    with static_server(STATIC) as base, chromium_page() as (page, record):
        page.goto(f"{base}verifier/verify.html")
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#log-keys", log_vkey)
        page.fill("#witness-keys", "\n".join(witness_vkeys))
        for _ in range(repeat):
            page.evaluate("() => { document.getElementById('result').dataset.verdict = 'none'; }")
            started = time.perf_counter()
            page.set_input_files("#file", str(path))
            page.wait_for_selector(_DONE, state="attached", timeout=120_000)
            wall = time.perf_counter() - started
            verdict = page.get_attribute("#result", "data-verdict")
            if verdict != "verified":
                raise SystemExit(
                    f"the page did not verify the certificate: {page.inner_text('#result')}"
                )
            runs.append((int(page.get_attribute("#result", "data-ms") or 0) / 1000, wall))
        if record.console_errors or record.page_errors or record.blocked:
            raise SystemExit(f"console errors or requests off loopback: {record}")
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"building a certificate of {args.messages:,} messages ...", file=sys.stderr)
    data = certificate(args.messages)
    log_vkey = log_signer().verifier().to_vkey()
    witness_vkeys = [witness_signer(n).verifier().to_vkey() for n in WITNESS_NAMES]
    print(f"{len(data):,} bytes; verifying with Python ...", file=sys.stderr)
    py = min(python_seconds(data, log_vkey, witness_vkeys) for _ in range(args.repeat))
    print("verifying in headless Chromium ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "certificate.json"
        path.write_bytes(data)
        runs = browser_seconds(path, log_vkey, witness_vkeys, args.repeat)
    page = min(r[0] for r in runs)
    wall = min(r[1] for r in runs)
    print(f"certificate:        {args.messages:,} messages, {len(data) / 1e6:.1f} MB, 3 witnesses")
    print(f"python verifier:    {py:6.2f} s  (roadledger verify's verify_certificate_file)")
    print(
        f"browser verifier:   {page:6.2f} s  (the page's time, file read to verdict; "
        f"{wall:.2f} s from choosing the file)"
    )
    print(f"browser / python:   {page / py:6.2f}x")
    verdict = "meets" if page < FLOOR_S else "MISSES"
    print(f"floor:              < {FLOOR_S:.0f} s for 10,000 messages in the browser: {verdict}")
    return 0 if page < FLOOR_S else 1


if __name__ == "__main__":
    sys.exit(main())
