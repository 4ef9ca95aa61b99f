"""``roadledger proof``: check RFC 9162 Merkle roots and proofs, as an auditor would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.errors import CommandError

if TYPE_CHECKING:
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "check Merkle roots and proofs (RFC 9162) you were handed, offline"

DESCRIPTION = """\
Check RFC 9162 Merkle-tree roots, inclusion proofs and consistency proofs with RoadLedger's
own verifier. Nothing is contacted: only the file you give is read.

An inclusion proof shows that one entry is in a log of a given size; a consistency proof
shows that a larger log still contains a smaller one unchanged (no history was rewritten).

Run `roadledger proof check --help` for the file format."""

CHECK_HELP = "verify every case in a JSON proof file; exit 0 only if all pass"

CHECK_DESCRIPTION = """\
Verify every case in FILE and print one line per failure, then `N passed, M failed`.

FILE is JSON shaped like shared/vectors/rfc9162-merkle.json; every section may be absent:
  leaves_hex        the log entries, hex (their leaf hashes are checked if
  leaf_hashes_hex   both lists are given)
  roots             [{"size": 3, "root_hex": "..."}]: checked against the leaves,
                    and used as the roots of the proofs below
  inclusion         [{"index": 2, "size": 5, "proof_hex": [...]}] and optionally
                    leaf_hash_hex (or leaf_hex) and root_hex
  consistency       [{"size1": 3, "size2": 7, "proof_hex": [...]}] and optionally
                    root1_hex, root2_hex
  negative          cases shaped as above plus "kind": "inclusion" or
                    "consistency": they pass only if they are REJECTED
Any case may carry "desc", which failure lines repeat.

Exit status: 0 every case passed, 1 some case failed, 2 the file is unreadable,
malformed (the message names the field) or larger than 64 MiB. Time is linear in the
file's size (plus log n per proof).

Example:
  roadledger proof check ../shared/vectors/rfc9162-merkle.json"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` action."""
    actions = parser.add_subparsers(dest="proof_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help=CHECK_HELP,
        description=CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", metavar="FILE", help="the JSON proof file, or - for stdin")
    check.add_argument(
        "-v", "--verbose", action="store_true", help="also print a line for every passed case"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen action; return the exit code."""
    del settings  # checking proofs needs no configuration
    if args.proof_action == "check":
        return _check(args.file, verbose=args.verbose)
    raise CommandError(f"unknown action {args.proof_action!r}", exit_code=2)  # pragma: no cover


def _check(file: str, *, verbose: bool) -> int:
    from chain.errors import EncodingError
    from chain.proof_file import MAX_PROOF_FILE_BYTES, ProofFile, summarize

    name = "stdin" if file == "-" else file
    try:
        # One byte more than the limit is enough to know the file is too large.
        if file == "-":
            text = sys.stdin.buffer.read(MAX_PROOF_FILE_BYTES + 1)
        else:
            with Path(file).open("rb") as stream:
                text = stream.read(MAX_PROOF_FILE_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror or exc}", exit_code=2) from None
    try:
        proof_file = ProofFile.from_json(text)
    except EncodingError as exc:
        raise CommandError(f"{name}: {exc}", exit_code=2) from None
    for note in proof_file.notes:
        print(f"note: {note}", file=sys.stderr)
    results = proof_file.check()
    for result in results:
        if not result.passed:
            print(f"FAIL {result}")
        elif verbose:
            print(f"ok   {result}")
    print(summarize(results))
    return 0 if all(result.passed for result in results) else 1
