"""``roadledger rules``: organisation keys, sign/check/publish rules versions, inspect them."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands._args import non_negative_int
from contracts.access import OrgKind
from contracts.errors import CommandError
from roadledger.settings import Settings

if TYPE_CHECKING:
    from chain.keys import Ed25519PrivateKey, Ed25519PublicKey
    from contracts.rules.model import RuleSet, RuleVersion

HELP = "publish signed, versioned rules (speed limits, geofences, thresholds; docs/rules.md)"
DESCRIPTION = """\
Authorities publish rules as data: a JSON document (format: docs/rules.md) signed with the
organisation's Ed25519 key. A published version is verified against the organisation's
registered key, must have a higher version than the rule set's latest, is stored with its
signed bytes and written into the ledger; it applies from its effective_from_ms, and only
inside the publishing authority's jurisdiction (which must hold its geofences and segments).

examples:
  roadledger rules keygen --out police.key              # prints the public key
  roadledger rules register-key metro-police k1 --key-file police.key --org-name "Metro Police" \
      --jurisdiction '[[524000000,132000000],[524000000,136000000],[527000000,134000000]]'
  roadledger rules check city.json                      # offline: is the document valid?
  roadledger rules sign city.json --key-file police.key --kid k1 --out city.jws
  roadledger rules check city.jws --public-key PUBLIC_KEY   # offline: signature too
  roadledger rules publish city.jws
  roadledger rules list
  roadledger rules show --at 1764000000000 --where 525000000,134000000  # in force there then
  roadledger rules revoke-key metro-police k1"""


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    keygen = actions.add_parser("keygen", help="make an organisation key pair")
    keygen.add_argument("--out", type=Path, required=True, help="private key file (mode 0600)")

    register = actions.add_parser("register-key", help="register an organisation's signing key")
    register.add_argument("org_id", help="organisation id, as in the rules' org_id")
    register.add_argument("key_id", help="key id, as in the signature's kid (e.g. k1)")
    key = register.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", metavar="B64URL", help="Ed25519 public key, base64url")
    key.add_argument("--key-file", type=Path, metavar="FILE", help="a key file from `keygen`")
    register.add_argument("--org-name", help="organisation name, if new (default: its id)")
    register.add_argument(
        "--org-kind",
        default="authority",
        choices=[kind.value for kind in OrgKind],
        help="if new (default: authority)",
    )
    register.add_argument("--valid-from", type=non_negative_int, metavar="MS", help="default: now")
    register.add_argument(
        "--jurisdiction",
        type=_polygon,
        metavar="JSON",
        help="set the authority's jurisdiction: a polygon, [[lat_e7, lon_e7], ...]",
    )

    revoke = actions.add_parser("revoke-key", help="refuse documents signed with a key from now")
    revoke.add_argument("org_id")
    revoke.add_argument("key_id")
    revoke.add_argument("--at", type=non_negative_int, metavar="MS", help="default: now")

    sign = actions.add_parser("sign", help="sign a rules document (checked first)")
    sign.add_argument("rules", type=Path, help="the rules JSON file")
    sign.add_argument("--key-file", type=Path, required=True, help="private key from `keygen`")
    sign.add_argument("--kid", required=True, help="the key id registered with register-key")
    sign.add_argument("--out", type=Path, required=True, help="signed output (compact JWS)")

    check = actions.add_parser("check", help="check a rules file or signed rules, offline")
    check.add_argument("file", type=Path, help="a rules JSON file or a signed .jws")
    check.add_argument("--public-key", metavar="B64URL", help="verify the signature too")

    publish = actions.add_parser("publish", help="verify, store and ledger a signed version")
    publish.add_argument("signed", type=Path, help="a signed rules file from `sign`")

    actions.add_parser("list", help="list every published version")

    show = actions.add_parser("show", help="print the rules in force at a time")
    show.add_argument("--at", type=non_negative_int, metavar="MS", help="default: now")
    show.add_argument(
        "--where",
        type=_position,
        metavar="LAT_E7,LON_E7",
        help="the rules at this position (default: those applying everywhere)",
    )


def _polygon(text: str) -> list[tuple[int, int]]:
    import json

    try:
        vertices = [(lat, lon) for lat, lon in json.loads(text)]
    except (ValueError, TypeError):
        vertices = []
    if not vertices or any(type(c) is not int for v in vertices for c in v):
        raise argparse.ArgumentTypeError("expected [[lat_e7, lon_e7], ...] (integers)")
    return vertices


def _position(text: str) -> tuple[int, int]:
    try:
        lat, lon = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected LAT_E7,LON_E7 (integers)") from None
    return lat, lon


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "keygen":
        from app.commands.devices import _keygen

        return _keygen(args.out)
    if args.action == "sign":
        return _sign(args)
    if args.action == "check":
        return _check(args)
    # Read before connecting: a file refused for its size costs no database work.
    signed = _read_rules(args.signed).strip() if args.action == "publish" else b""
    return asyncio.run(_run_db(args, settings, signed))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}", 2) from None


def _read_rules(path: Path) -> bytes:
    """A rules document or signed rules, refused unread past ``MAX_SIGNED_BYTES`` (the larger
    limit; each form is then held to its own by the parser)."""
    from contracts.rules.limits import MAX_SIGNED_BYTES

    try:
        with path.open("rb") as file:
            data = file.read(MAX_SIGNED_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}", 2) from None
    if len(data) > MAX_SIGNED_BYTES:
        raise CommandError(
            f"{path}: refused: over {MAX_SIGNED_BYTES} bytes, the limit of signed rules", 1
        )
    return data


def _private_key(path: Path) -> Ed25519PrivateKey:
    from chain.errors import EncodingError
    from chain.keys import Ed25519PrivateKey as PrivateKey

    try:
        return PrivateKey.from_b64url(_read(path).decode("ascii", "replace").strip())
    except EncodingError as exc:
        raise CommandError(f"--key-file: {exc}", 2) from None


def _public_key(text: str | None, key_file: Path | None) -> Ed25519PublicKey:
    from chain.errors import EncodingError
    from chain.keys import Ed25519PublicKey as PublicKey

    if key_file is not None:
        return _private_key(key_file).public_key
    try:
        return PublicKey.from_b64url(text or "")
    except EncodingError as exc:
        raise CommandError(f"--public-key: {exc}", 2) from None


def _sign(args: argparse.Namespace) -> int:
    from contracts.rules.parse import RulesError
    from contracts.rules.signing import sign_rules

    key = _private_key(args.key_file)
    try:
        signed = sign_rules(key, args.kid, _read_rules(args.rules))
    except RulesError as exc:
        raise CommandError(f"{args.rules}: {exc}", 1) from None
    try:
        args.out.write_bytes(signed + b"\n")
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror}", 2) from None
    print(f"signed {args.rules} with kid {args.kid} -> {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from contracts.rules.parse import RulesError, parse_rules
    from contracts.rules.signing import SignedRules

    data = _read_rules(args.file)
    try:
        if data.lstrip().startswith(b"{"):
            if args.public_key:
                raise CommandError(f"{args.file}: unsigned rules have no signature to verify", 1)
            print(f"valid, unsigned: {parse_rules(data).label}")
            return 0
        envelope = SignedRules.from_bytes(data)
        if args.public_key is None:
            print(f"valid, signature not checked (kid {envelope.kid}): {envelope.rules().label}")
            return 0
        rules = envelope.verify(_public_key(args.public_key, None))
    except RulesError as exc:
        raise CommandError(f"{args.file}: refused: {exc}", 1) from None
    print(f"valid, signature verifies (kid {envelope.kid}): {rules.label}")
    return 0


async def _run_db(args: argparse.Namespace, settings: Settings, signed: bytes) -> int:
    from contracts.rules.parse import RulesError
    from roadledger import rules_store as store
    from roadledger.db.pool import open_database
    from roadledger.db.schema import apply_schema
    from roadledger.registry import DeviceRegistry
    from roadledger.rules_areas import set_jurisdiction

    now = time.time_ns() // 1_000_000
    pool = await open_database(settings)
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn)
            try:
                if args.action == "register-key":
                    key = _public_key(args.public_key, args.key_file)
                    await DeviceRegistry(pool).ensure_organisation(
                        args.org_id, args.org_name or args.org_id, args.org_kind
                    )
                    if args.jurisdiction is not None:
                        await set_jurisdiction(conn, args.org_id, args.jurisdiction)
                    at = now if args.valid_from is None else args.valid_from
                    await store.add_organisation_key(conn, args.org_id, args.key_id, key, at)
                    print(f"registered key {args.key_id} of {args.org_id}: {key.to_b64url()}")
                elif args.action == "revoke-key":
                    at = now if args.at is None else args.at
                    await store.revoke_organisation_key(conn, args.org_id, args.key_id, at)
                    print(f"revoked key {args.key_id} of {args.org_id} from {at}")
                elif args.action == "publish":
                    rules = await store.publish_rules(conn, signed, now)
                    print(f"published {rules.label}, in force from {rules.effective_from_ms}")
                elif args.action == "list":
                    for v in await store.list_rule_versions(conn):
                        print(_summary(v))
                else:
                    book = await store.load_rulebook(conn)
                    in_force = book.in_force(now if args.at is None else args.at)
                    _print_in_force(in_force if args.where is None else in_force.at(*args.where))
            except RulesError as exc:
                raise CommandError(f"refused: {exc}", 1) from None
    finally:
        await pool.close()
    return 0


def _summary(v: RuleVersion) -> str:
    return (
        f"{v.label:<32} effective_from_ms={v.effective_from_ms} "
        f"speed_limits={len(v.speed_limits)} geofences={len(v.geofences)} "
        f"thresholds={len(v.thresholds)}"
    )


def _print_in_force(rules: RuleSet) -> None:
    from contracts.rules.thresholds import THRESHOLDS

    print(f"in force: {rules.label}")
    for v in rules.versions:
        print(f"  {_summary(v)}")
    for v in rules.placed:  # not asked --where: each applies inside its authority's area only
        print(f"  {_summary(v)} (inside the jurisdiction of {v.org_id}; see --where)")
    for name in THRESHOLDS:
        value, label = rules.threshold(name)
        print(f"  threshold {name} = {value} {THRESHOLDS[name].unit} ({label})")
