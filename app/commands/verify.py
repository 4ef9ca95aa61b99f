"""``roadledger verify``: check a mileage certificate offline, as an insurer would.

The checks live in :mod:`chain.certificate_verify`; this module reads the file and the keys,
prints a short summary when everything holds, and otherwise turns the first failure into one
line ``roadledger verify: <item>: <detail>`` (exit 1). Unusable input exits 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from app.commands._args import non_negative_int
from contracts.errors import CommandError

if TYPE_CHECKING:
    from chain.certificate_verify import VerificationReport
    from chain.mileage import Gap
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "check a mileage certificate offline: signatures, proofs, hash chain, summary"

DESCRIPTION = """\
Check a vehicle's mileage certificate with nothing but public keys. Nothing is contacted.

The certificate (JSON, roadledger/mileage-certificate/v1) holds the vehicle's signed messages
for a time range, its device key records, and for each an inclusion proof to one checkpoint
of the RoadLedger log, signed by the log and cosigned by witnesses. It passes only if all of
these hold:

  - the log signed the checkpoint (--log-key);
  - at least K of the witnesses you trust cosigned it (--witness-key, --min-witnesses);
  - every device key record and every message is in that log (inclusion proofs);
  - every message is signed by a key of the vehicle that was valid (not revoked) at the
    message's time, and lies in the certificate's time range;
  - consecutive messages are hash-chained (nothing inserted, altered or re-signed);
  - the summary (distance, gaps, anomalies) is what the messages add up to;
  - with --device / --vin: it is the certificate of the vehicle you expect.

Keys are verifier keys in the C2SP form name+keyid+base64, given as text or as @FILE (a file
holding the key). Get them from the log operator and the witnesses, not from whoever sent the
certificate.

Example:

  roadledger verify veh-0042-2026-01.json --device veh-0042 --vin WVWZZZ1JZXW000001 \\
      --log-key @roadledger-log.vkey \\
      --witness-key 'witness.example/w1+5d3c378c+BF...' \\
      --witness-key @w2.vkey --witness-key @w3.vkey --min-witnesses 2

Output: a short summary on success: whose certificate it is (device, VIN, vehicle class and
owner organisation from the certified key records), the range, what the messages cover and
how much of the range they leave uncovered at each end, distances, gaps, anomalies. Gaps are
messages missing from the vehicle's sequence; anomalies (odometer rollback, odometer vs GNSS
mismatch, clock going back, a broken hash chain, a message sequenced after its key's
revocation) are facts the certificate proves, for you to judge. Nothing proves that the
vehicle sent no message before the first or after the last one shown. On failure, one line
naming the first part that failed:

  roadledger verify: messages[12]: bad_signature: the signature verifies under none of ...

The certificate is read in bounded memory, one message at a time: at most 512 MiB and
500,000 messages (docs/mileage-certificate.md states every limit).

Exit status: 0 the certificate verifies; 1 it does not (the line says why), or it is not the
--device / --vin given; 2 unusable input (unreadable file, malformed key, bad arguments)."""

_V = TypeVar("_V")
_LIST_LIMIT = 10  # gaps/anomalies printed before "... and N more"


def configure(parser: argparse.ArgumentParser) -> None:
    """Register the certificate argument and the key options."""
    parser.add_argument(
        "certificate", metavar="CERT", help="the certificate file (JSON), or - to read stdin"
    )
    parser.add_argument(
        "--log-key",
        action="append",
        required=True,
        metavar="VKEY",
        help="the log's verifier key, or @FILE; repeat to accept any of several "
        "(e.g. around a log key rotation)",
    )
    parser.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a trusted witness's verifier key, or @FILE (repeat for each witness)",
    )
    parser.add_argument(
        "--min-witnesses",
        type=non_negative_int,
        metavar="K",
        help="how many of the --witness-key witnesses must have cosigned (default: all of them)",
    )
    parser.add_argument(
        "--device",
        metavar="DEVICE_ID",
        help="fail unless the certificate is for this device id",
    )
    parser.add_argument(
        "--vin",
        metavar="VIN",
        help="fail unless every certified key record of the vehicle states this VIN",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Verify; print the summary and return 0, or raise :class:`CommandError`."""
    del settings  # verification is configured by its arguments only
    from chain.certificate_verify import verify_certificate_file
    from chain.cosignature import CosignatureVerifier
    from chain.errors import CertificateError
    from chain.note_signers import Ed25519Verifier

    log_keys = [_verifier(Ed25519Verifier.from_vkey, t, "--log-key") for t in args.log_key]
    witnesses = [
        _verifier(CosignatureVerifier.from_vkey, t, "--witness-key") for t in args.witness_key
    ]
    names = [w.name for w in witnesses]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise CommandError(f"--witness-key: witness {duplicates[0]} given twice", 2)
    k = len(witnesses) if args.min_witnesses is None else args.min_witnesses
    if k > len(witnesses):
        raise CommandError(f"--min-witnesses {k} but only {len(witnesses)} --witness-key given", 2)
    with _open(args.certificate) as stream:
        try:
            result = verify_certificate_file(
                stream,
                log_keys,
                witnesses,
                k,
                expected_device_id=args.device,
                expected_vin=args.vin,
            )
        except CertificateError as exc:
            raise CommandError(_one_line(f"{exc.item}: {exc.detail}"), 1) from None
        except OSError as exc:
            raise CommandError(
                f"cannot read certificate {args.certificate}: {exc.strerror or exc}", 2
            ) from None
    _print_summary(result, len(witnesses))
    return 0


# --- input ------------------------------------------------------------------------------------


def _open(name: str) -> IO[bytes]:
    """The certificate as a seekable stream: verification reads it twice.

    stdin is copied to a temporary file first, at most one byte over the size limit, so a
    stream too large fails in the reader with the limit named, not by filling memory.
    """
    from chain.certificate_stream import MAX_CERTIFICATE_BYTES

    try:
        if name != "-":
            return Path(name).open("rb")
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it (with)
        shutil.copyfileobj(_Capped(sys.stdin.buffer, MAX_CERTIFICATE_BYTES + 1), spool)
        spool.seek(0)
        return spool
    except OSError as exc:
        shown = "stdin" if name == "-" else name
        raise CommandError(f"cannot read certificate {shown}: {exc.strerror or exc}", 2) from None


class _Capped:
    """A reader that ends after ``limit`` bytes of ``stream``."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream, self._left = stream, limit

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._stream.read(size) if size else b""
        self._left -= len(data)
        return data


def _key_text(value: str, option: str) -> str:
    if not value.startswith("@"):
        return value.strip()
    path = value[1:]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(
            f"{option} {value}: cannot read {path}: {exc.strerror or exc}", 2
        ) from None
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError(f"{option} {value}: {path} is not UTF-8 text", 2) from None


def _verifier(parse: Callable[[str], _V], value: str, option: str) -> _V:
    from chain.errors import EncodingError

    text = _key_text(value, option)
    try:
        return parse(text)
    except EncodingError as exc:
        where = value if value.startswith("@") else "VKEY"
        raise CommandError(_one_line(f"{option} {where}: {exc}"), 2) from None


def _one_line(text: str) -> str:
    """Control characters escaped, so a hostile certificate cannot forge extra output lines."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# --- output -----------------------------------------------------------------------------------


def _utc(ms: int) -> str:
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def _km(metres: int) -> str:
    return f"{metres / 1000:,.3f} km"


def _gap(gap: Gap) -> str:
    first, last = gap.after_seq + 1, gap.before_seq - 1
    return f"seq {first}" if first == last else f"seq {first}..{last} ({gap.missing} messages)"


def _limited(items: list[str]) -> list[str]:
    if len(items) <= _LIST_LIMIT:
        return items
    return [*items[:_LIST_LIMIT], f"... and {len(items) - _LIST_LIMIT} more"]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _duration(ms: int) -> str:
    """``2 d 3 h``, ``56 min 35 s``, ``5 s``: the two largest units, ``none`` for zero."""
    if ms <= 0:
        return "none"
    if ms < 1000:
        return f"{ms} ms"
    parts: list[str] = []
    rest = ms // 1000
    for unit, seconds in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if rest >= seconds or parts:
            count, rest = divmod(rest, seconds)
            if count:
                parts.append(f"{count} {unit}")
            if len(parts) == 2 or (parts and not rest):
                break
    return " ".join(parts)


def _vehicle(result: VerificationReport) -> list[str]:
    def one(vin: str | None, vehicle_class: str | None, owner: str) -> str:
        return f"VIN {vin or 'not stated'}, class {vehicle_class or 'not stated'}, owner {owner}"

    identities = result.identities
    latest = result.device_keys[-1]
    lines = [f"  vehicle:     {one(latest.vin, latest.vehicle_class, latest.owner_org)}"]
    if len(identities) > 1:  # records of one device that disagree: worth a close look
        lines.append(f"    the {len(result.device_keys)} key records state {len(identities)}:")
        lines.extend(f"    {one(i.vin, i.vehicle_class, i.owner_org)}" for i in identities)
    return lines


def _print_summary(result: VerificationReport, witness_count: int) -> None:
    s, cp = result.summary, result.checkpoint
    lines = [
        f"OK mileage certificate for {result.device_id}",
        *_vehicle(result),
        f"  range:       {_utc(result.from_ms)} .. {_utc(result.to_ms)} (end excluded)",
        f"  messages:    {s.message_count}, seq {s.first_seq}..{s.last_seq}, "
        f"{_utc(result.first_ts_ms)} .. {_utc(result.last_ts_ms)}",
        f"  uncovered:   {_duration(result.missing_at_start_ms)} at the start, "
        f"{_duration(result.missing_at_end_ms)} at the end of the range",
        f"  distance:    {_km(s.distance_m)} by odometer ({s.odometer_start_m} m -> "
        f"{s.odometer_end_m} m), {_km(s.gnss_distance_m)} by GNSS",
    ]
    if s.gaps:
        missing = _plural(sum(g.missing for g in s.gaps), "message")
        lines.append(f"  gaps:        {len(s.gaps)}, {missing} missing")
        lines.extend(f"    {line}" for line in _limited([_gap(g) for g in s.gaps]))
    else:
        lines.append("  gaps:        none")
    if s.anomalies:
        lines.append(f"  anomalies:   {len(s.anomalies)}")
        anomalies = [f"seq {a.seq} {a.kind}: {a.detail}" for a in s.anomalies]
        lines.extend(f"    {line}" for line in _limited(anomalies))
    else:
        lines.append("  anomalies:   none")
    lines.append(
        f"  checkpoint:  {cp.origin} size {cp.size}, signed by log key {result.log_key_name}"
    )
    if witness_count:
        cosigned = ", ".join(result.witnesses) or "none"
        lines.append(
            f"  witnesses:   {len(result.witnesses)} of {witness_count} cosigned ({cosigned}), "
            f"{result.min_witnesses} required"
        )
    else:
        lines.append("  witnesses:   none given: only the log's signature vouches for the log")
    print("\n".join(_one_line(line) for line in lines))
