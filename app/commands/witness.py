"""``roadledger witness``: run a checkpoint witness (C2SP tlog-witness) from the command line.

Three actions: ``keygen`` makes a witness key, ``add-checkpoint`` verifies a log checkpoint
against the witness's state and cosigns it, ``verify`` checks a cosigned checkpoint against a
k-of-n witness policy. The logic lives in :mod:`chain.witness` and :mod:`chain.cosignature`;
this module reads files, maps ``chain`` errors to one-line messages and never prints a private
key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands._args import non_negative_int
from contracts.errors import CommandError

if TYPE_CHECKING:
    from chain.cosignature import CosignatureSigner
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "run a checkpoint witness: make its key, cosign checkpoints, verify cosignatures"

DESCRIPTION = """\
A witness is an independent party that remembers, for each log, the latest checkpoint it
cosigned. It cosigns a new checkpoint only if the log signed it and a consistency proof shows
the new tree extends the old one, so a log cannot show different histories to different
people without a witness noticing. Formats: C2SP signed-note, tlog-checkpoint,
tlog-cosignature (Ed25519 cosignature/v1) and tlog-witness; see docs/ledger-formats.md.

Getting started:

  1. Make the witness key (once). The private key goes to a file only you can read; the
     verifier key is printed, give it to everyone who checks cosignatures:

       roadledger witness keygen --name witness.example.org/w1 --out w1.key

  2. Cosign a checkpoint. The log operator gives you its verifier key (once), then for each
     new checkpoint: the checkpoint note, the size of the checkpoint you cosigned last
     (0 the first time) and a consistency proof from that size (one base64 hash per line):

       roadledger witness add-checkpoint --key w1.key --state ./witness-state \\
           --log-key 'roadledger.example/log-0+1a2b3c4d+AZ...' \\
           --checkpoint checkpoint.txt --old-size 1200 --proof proof.txt

     On success it prints one cosignature line to append to the checkpoint note.

  3. Anyone checks a cosigned checkpoint against a policy, e.g. 2 of 3 witnesses:

       roadledger witness verify --checkpoint cosigned.txt --log-key 'roadledger...' \\
           --witness-key 'w1+...' --witness-key 'w2+...' --witness-key 'w3+...' \\
           --min-witnesses 2

Exit status: 0 done; 1 refused (bad signature, fork, rollback, old size mismatch, policy not
met); 2 unusable input (unreadable file, malformed key, bad arguments)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Register the ``keygen``, ``add-checkpoint`` and ``verify`` actions."""
    actions = parser.add_subparsers(dest="witness_action", metavar="ACTION", required=True)

    keygen = actions.add_parser(
        "keygen",
        help="make a witness key pair",
        description=(
            "Make an Ed25519 witness key. The private key is written to --out with mode 0600 "
            "(an existing file is never overwritten); the verifier key "
            "(name+keyid+base64, signature type 0x04) is printed on stdout."
        ),
    )
    keygen.add_argument(
        "--name",
        required=True,
        help="witness name, ideally a schema-less URL you control, e.g. witness.example.org/w1",
    )
    keygen.add_argument(
        "--out", required=True, type=Path, metavar="FILE", help="private key file to create"
    )

    add = actions.add_parser(
        "add-checkpoint",
        help="verify a checkpoint and cosign it",
        description=(
            "Verify a log-signed checkpoint against what this witness cosigned before and "
            "cosign it. Prints the cosignature line on success; on refusal prints one line "
            "saying why (fork, rollback, old size mismatch with the size the witness has, bad "
            "signature or proof) and exits 1. State is kept per log origin in --state."
        ),
    )
    add.add_argument(
        "--key",
        required=True,
        type=Path,
        metavar="FILE",
        help="witness private key file (from keygen)",
    )
    add.add_argument(
        "--state",
        required=True,
        type=Path,
        metavar="DIR",
        help="directory holding the latest cosigned checkpoint of each log",
    )
    add.add_argument(
        "--log-key",
        required=True,
        metavar="VKEY",
        help="the log's verifier key (name+keyid+base64); name = checkpoint origin",
    )
    add.add_argument(
        "--checkpoint",
        required=True,
        metavar="FILE",
        help="signed checkpoint note ('-' reads stdin)",
    )
    add.add_argument(
        "--old-size",
        required=True,
        type=non_negative_int,
        metavar="N",
        help="size of the checkpoint this witness last cosigned for the log (0 at first)",
    )
    add.add_argument(
        "--proof",
        type=Path,
        metavar="FILE",
        help="consistency proof from --old-size: one base64 hash per line "
        "(omit when --old-size is 0 or equals the checkpoint size)",
    )
    add.add_argument(
        "--evidence",
        type=Path,
        metavar="FILE",
        help="on a fork or rollback, also write both checkpoints and the proof here",
    )

    verify = actions.add_parser(
        "verify",
        help="check a cosigned checkpoint against a k-of-n witness policy",
        description=(
            "Check the log's signature on a checkpoint and that at least --min-witnesses of "
            "the given witnesses cosigned it. Signature lines of other keys are ignored."
        ),
    )
    verify.add_argument(
        "--checkpoint",
        required=True,
        metavar="FILE",
        help="cosigned checkpoint note ('-' reads stdin)",
    )
    verify.add_argument("--log-key", required=True, metavar="VKEY", help="the log's verifier key")
    verify.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a trusted witness's verifier key (repeat for each witness)",
    )
    verify.add_argument(
        "--min-witnesses",
        type=non_negative_int,
        metavar="K",
        help="cosignatures required (default: all --witness-key given)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen action; failures are raised as :class:`CommandError`."""
    del settings  # the witness is configured by its arguments only
    action = args.witness_action
    if action == "keygen":
        return _keygen(args)
    if action == "add-checkpoint":
        return _add_checkpoint(args)
    return _verify(args)


# --- helpers ----------------------------------------------------------------------------------


def _read_text(name: str | Path, what: str) -> str:
    try:
        data = sys.stdin.buffer.read() if str(name) == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {what} {name}: {exc.strerror or exc}", 2) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{what} {name} is not UTF-8 text", 2) from None


def _usage(message: str) -> CommandError:
    return CommandError(message, 2)


def _utc(timestamp: int) -> str:
    try:
        moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"t={timestamp}"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- keygen -----------------------------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    from chain.cosignature import CosignatureSigner
    from chain.errors import EncodingError

    try:
        signer = CosignatureSigner.generate(args.name)
    except EncodingError as exc:
        raise _usage(f"invalid witness name {args.name!r}: {exc}") from None
    out: Path = args.out
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _usage(f"{out} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise _usage(f"cannot create {out}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(signer.to_skey() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _usage(f"cannot write {out}: {exc.strerror or exc}") from None
    print(signer.to_vkey())
    print(
        f"private key written to {out} (mode 0600); share only the verifier key above",
        file=sys.stderr,
    )
    return 0


# --- add-checkpoint ---------------------------------------------------------------------------


def _load_signer(path: Path) -> CosignatureSigner:
    from chain.cosignature import CosignatureSigner
    from chain.errors import EncodingError

    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise _usage(f"cannot read key {path}: {exc.strerror or exc}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise _usage(
            f"key {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    text = _read_text(path, "key").strip("\n")
    try:
        return CosignatureSigner.from_skey(text)
    except EncodingError:
        # The message could quote part of the key: say only what is wrong with the file.
        raise _usage(f"{path} is not a witness private key (PRIVATE+KEY+...)") from None


def _add_checkpoint(args: argparse.Namespace) -> int:
    from chain.errors import ChainError, ConsistencyError, EncodingError, StorageError
    from chain.note_signers import Ed25519Verifier
    from chain.witness import FileWitnessStateStore, Witness, parse_proof_lines

    signer = _load_signer(args.key)
    try:
        log_verifier = Ed25519Verifier.from_vkey(args.log_key)
    except EncodingError as exc:
        raise _usage(f"--log-key: {exc}") from None
    checkpoint = _read_text(args.checkpoint, "checkpoint")
    proof_text = "" if args.proof is None else _read_text(args.proof, "proof")
    if proof_text and not proof_text.endswith("\n"):
        proof_text += "\n"
    try:
        proof = parse_proof_lines(proof_text)
    except EncodingError as exc:
        raise _usage(f"--proof {args.proof}: {exc}") from None
    try:
        store = FileWitnessStateStore(args.state)
    except StorageError as exc:
        raise _usage(str(exc)) from None

    witness = Witness(signer, store)
    try:
        line = witness.add_checkpoint(checkpoint, args.old_size, proof, log_verifier)
    except ConsistencyError as exc:
        if args.evidence is not None:
            _write_evidence(args.evidence, exc)
        raise CommandError(f"refused: {exc}", 1) from None
    except StorageError as exc:
        raise CommandError(f"witness state: {exc}", 1) from None
    except ChainError as exc:
        raise CommandError(f"refused: {exc}", 1) from None
    sys.stdout.write(line)
    return 0


def _write_evidence(path: Path, exc: Exception) -> None:
    from chain.checkpoint import SignedCheckpoint
    from chain.witness import format_proof_lines

    old = getattr(exc, "old", None)
    new = getattr(exc, "new", None)
    proof = getattr(exc, "proof", None) or ()
    parts = [f"# {exc}\n"]
    if isinstance(old, SignedCheckpoint):
        parts.append("# checkpoint the witness had cosigned:\n" + old.to_text())
    if isinstance(new, SignedCheckpoint):
        parts.append("# checkpoint offered (signed by the log):\n" + new.to_text())
    parts.append("# consistency proof offered:\n" + format_proof_lines(list(proof)))
    try:
        path.write_text("\n".join(parts), encoding="utf-8")
    except OSError as err:
        print(
            f"roadledger witness: cannot write evidence {path}: {err.strerror or err}",
            file=sys.stderr,
        )


# --- verify -----------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from chain.cosignature import CosignatureVerifier, verify_cosignatures
    from chain.errors import ChainError, EncodingError
    from chain.note_signers import Ed25519Verifier

    try:
        log_verifier = Ed25519Verifier.from_vkey(args.log_key)
    except EncodingError as exc:
        raise _usage(f"--log-key: {exc}") from None
    witnesses: list[CosignatureVerifier] = []
    for text in args.witness_key:
        try:
            witnesses.append(CosignatureVerifier.from_vkey(text))
        except EncodingError as exc:
            raise _usage(f"--witness-key: {exc}") from None
    k = len(witnesses) if args.min_witnesses is None else args.min_witnesses
    if k > len(witnesses):
        raise _usage(f"--min-witnesses {k} but only {len(witnesses)} --witness-key given")
    note = _read_text(args.checkpoint, "checkpoint")
    try:
        result = verify_cosignatures(note, log_verifier, witnesses, k)
    except ChainError as exc:
        raise CommandError(f"not verified: {exc}", 1) from None
    cp = result.checkpoint
    print(f"OK {cp.origin} size {cp.size} root {cp.to_text().splitlines()[2]}")
    print(f"  signed by log {log_verifier.name}")
    for cosig in result.cosignatures:
        print(f"  cosigned by {cosig.name} at {_utc(cosig.timestamp)}")
    for name in result.missing:
        print(f"  no cosignature from {name}")
    print(f"  policy: {len(result.witnesses)} of {len(witnesses)} witnesses, {k} required")
    return 0
