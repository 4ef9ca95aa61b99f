"""``roadledger devices``: register devices, rotate and revoke their keys, inspect them."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands._args import non_negative_int
from contracts.access import OrgKind
from contracts.errors import CommandError
from roadledger.settings import Settings

if TYPE_CHECKING:
    from chain.keys import Ed25519PublicKey
    from roadledger.device_admin import MqttIssued, MqttRemoved
    from roadledger.registry import DeviceCredentials, DeviceRegistry

HELP = "register devices and rotate or revoke their keys (the device registry)"
DESCRIPTION = """\
The device registry: which organisation owns a device, and every key it ever had with the
time from which (and, once rotated or revoked, until which) the key is valid. Messages are
judged by the key valid at the message's own time: revoking a key rejects the device's later
messages and keeps its earlier ones. Every change is also written into the device's ledger.

MQTT: `register` and `rotate` issue the device its broker credential (username = device id,
a new random password printed once; the broker's password file keeps only its hash), and
`revoke` removes it. A device may publish only to roadledger/v1/telemetry/<its device id>.
The broker that `roadledger services` runs is reloaded at once (SIGHUP; a device connected
with a removed credential is disconnected); a broker elsewhere must read the same password
file (ROADLEDGER_MQTT_PASSWORD_FILE) and be sent SIGHUP by its operator.

examples:
  roadledger devices keygen --out veh-1.key          # a key pair for a new device
  roadledger devices register veh-1 --owner fleet-a --kind vehicle \\
      --public-key 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo --vin WVWZZZ1JZXW000001
  roadledger devices rotate veh-1 --public-key NEW_KEY
  roadledger devices revoke veh-1 --at 1764000000000
  roadledger devices mqtt-credentials veh-1             # a new MQTT password (the old one ends)
  roadledger devices broker-files .local/docker-mosquitto --readable   # for docker compose
  roadledger devices show veh-1
  roadledger devices list --owner fleet-a"""


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    keygen = actions.add_parser("keygen", help="make a device key pair; print the public key")
    keygen.add_argument("--out", type=Path, required=True, help="private key file (mode 0600)")

    register = actions.add_parser("register", help="register a device with its first key")
    register.add_argument("device_id", help="device id, as in the message kid (e.g. veh-1)")
    register.add_argument("--owner", required=True, help="owning organisation id")
    register.add_argument(
        "--owner-name", help="organisation name, if the organisation is new (default: its id)"
    )
    register.add_argument(
        "--owner-kind",
        default="fleet_owner",
        choices=[kind.value for kind in OrgKind],
        help="organisation kind, if new (default: fleet_owner)",
    )
    register.add_argument("--kind", choices=("vehicle", "rsu"), required=True)
    _key_arguments(register)
    register.add_argument("--vin", help="vehicle identification number (vehicles only)")
    register.add_argument("--class", dest="vehicle_class", help="vehicle class, e.g. car, truck")
    register.add_argument(
        "--valid-from", type=non_negative_int, metavar="MS", help="ms since epoch (default: now)"
    )

    rotate = actions.add_parser("rotate", help="replace the device's key from a point in time")
    rotate.add_argument("device_id")
    _key_arguments(rotate)
    rotate.add_argument("--at", type=non_negative_int, metavar="MS", help="default: now")

    revoke = actions.add_parser("revoke", help="end the device's keys from a point in time")
    revoke.add_argument("device_id")
    revoke.add_argument(
        "--at", type=non_negative_int, metavar="MS", help="ms since epoch (default: now)"
    )

    creds = actions.add_parser(
        "mqtt-credentials", help="issue the device a new MQTT password (or --revoke it)"
    )
    creds.add_argument("device_id")
    creds.add_argument(
        "--revoke", action="store_true", help="remove its MQTT credential instead (keys stay)"
    )

    files = actions.add_parser(
        "broker-files",
        help="write the ACL and the service accounts into DIR for a broker run elsewhere",
    )
    files.add_argument("directory", type=Path, metavar="DIR")
    files.add_argument(
        "--readable",
        action="store_true",
        help="make the password file world-readable (a container's broker runs as a user we "
        "cannot give it to; it holds only hashes)",
    )

    show = actions.add_parser("show", help="print a device's key history")
    show.add_argument("device_id")

    listing = actions.add_parser("list", help="list registered devices")
    listing.add_argument("--owner", help="only this organisation's devices")


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", metavar="B64URL", help="Ed25519 public key, base64url")
    key.add_argument(
        "--key-file", type=Path, metavar="FILE", help="a private key file from `keygen`"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "keygen":
        return _keygen(args.out)
    if args.action == "broker-files":
        return _broker_files(args.directory, settings, readable=args.readable)
    return asyncio.run(_run_registry(args, settings))


def _keygen(out: Path) -> int:
    from chain.keys import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{out} exists; refusing to overwrite a key", 2) from None
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror}", 2) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(key.to_b64url() + "\n")
    print(key.public_key.to_b64url())
    return 0


def _broker_files(directory: Path, settings: Settings, *, readable: bool) -> int:
    from roadledger.mqtt_auth import MqttAuthError
    from runtime.services.mosquitto import write_auth_files

    try:
        passwd, acl = write_auth_files(
            directory, settings, user=None, mode=0o644 if readable else 0o600
        )
    except (MqttAuthError, OSError) as exc:
        raise CommandError(str(exc), 2) from None
    print(f"{passwd}: the service accounts (device lines kept)\n{acl}: the ACL")
    if passwd.resolve() != settings.mqtt_password_path.resolve():
        print(f"  set ROADLEDGER_MQTT_PASSWORD_FILE={passwd} so that device credentials go there")
    return 0


def _public_key(args: argparse.Namespace) -> Ed25519PublicKey:
    from chain.errors import EncodingError
    from chain.keys import Ed25519PrivateKey
    from chain.keys import Ed25519PublicKey as PublicKey

    try:
        if args.public_key is not None:
            return PublicKey.from_b64url(args.public_key)
        text = Path(args.key_file).read_text().strip()
        return Ed25519PrivateKey.from_b64url(text).public_key
    except EncodingError as exc:
        raise CommandError(f"--public-key/--key-file: {exc}", 2) from None
    except OSError as exc:
        raise CommandError(f"cannot read {args.key_file}: {exc.strerror}", 2) from None


async def _run_registry(args: argparse.Namespace, settings: Settings) -> int:
    from chain.device_keys import DeviceKey
    from chain.errors import EncodingError
    from chain.telemetry import DeviceKind
    from roadledger.db.pool import open_database
    from roadledger.db.schema import apply_schema
    from roadledger.device_admin import (
        issue_mqtt,
        register_device,
        remove_mqtt,
        revoke_device,
        rotate_device_key,
    )
    from roadledger.registry import DeviceRegistry, RegistryError

    now = time.time_ns() // 1_000_000
    pool = await open_database(settings)
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn)
        registry = DeviceRegistry(pool)
        credentials = device_credentials(registry, settings)
        if args.action == "register":
            key = _public_key(args)
            try:
                record = DeviceKey(
                    device_id=args.device_id,
                    public_key=key,
                    owner_org=args.owner,
                    kind=DeviceKind(args.kind),
                    valid_from_ms=now if args.valid_from is None else args.valid_from,
                    vin=args.vin,
                    vehicle_class=args.vehicle_class,
                )
            except EncodingError as exc:
                raise CommandError(str(exc), 2) from None
            await registry.ensure_organisation(
                args.owner, args.owner_name or args.owner, args.owner_kind
            )
            new, issued = await register_device(credentials, record, now_ms=now)
            verb = "registered" if new else "already registered (unchanged)"
            print(f"{record.device_id}: {verb}, key {record.key_id} from {record.valid_from_ms}")
            if issued is not None:
                _print_issued(issued, settings)
            else:
                print(f"  (no new MQTT credential; `devices mqtt-credentials {args.device_id}` "
                      "issues one once a key is valid)")  # fmt: skip
        elif args.action == "rotate":
            key = _public_key(args)
            at = now if args.at is None else args.at
            record, issued = await rotate_device_key(
                credentials, args.device_id, key, at_ms=at, now_ms=now
            )
            print(f"{record.device_id}: key {record.key_id} valid from {record.valid_from_ms}")
            _print_issued(issued, settings)
        elif args.action == "revoke":
            at = now if args.at is None else args.at
            ended, removed = await revoke_device(credentials, args.device_id, at_ms=at)
            for record in ended:
                print(f"{record.device_id}: key {record.key_id} revoked at {record.revoked_at_ms}")
            if not ended:
                print(f"{args.device_id}: every key had already ended")
            _print_removed(args.device_id, removed, settings)
        elif args.action == "mqtt-credentials":
            if args.revoke:
                _print_removed(args.device_id, remove_mqtt(credentials, args.device_id), settings)
            else:
                _print_issued(await issue_mqtt(credentials, args.device_id, now_ms=now), settings)
        elif args.action == "show":
            keys = await registry.keys(args.device_id)
            if not keys:
                raise CommandError(f"device {args.device_id} is not registered")
            first = keys[0]
            print(f"{first.device_id}: {first.kind.value} of {first.owner_org}")
            for record in keys:
                until = "" if record.revoked_at_ms is None else f" until {record.revoked_at_ms}"
                print(f"  key {record.key_id} {record.public_key.to_b64url()} "
                      f"from {record.valid_from_ms}{until}")  # fmt: skip
        else:
            for device_id, owner, kind in await registry.devices(args.owner):
                print(f"{device_id}\t{kind}\t{owner}")
    except RegistryError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await pool.close()
    return 0


def device_credentials(registry: DeviceRegistry, settings: Settings) -> DeviceCredentials:
    """Devices' MQTT credentials as the broker of ``settings`` reads them: its password file,
    reloaded at once when it is the broker `roadledger services` runs (``roadledger api`` uses
    the same)."""
    from roadledger.registry import DeviceCredentials
    from runtime.services.mosquitto import MosquittoService, broker_password_file

    return DeviceCredentials(
        registry,
        broker_password_file(settings),
        MosquittoService(settings).reload,
        reserved=(settings.mqtt_bridge_username, settings.mqtt_sim_username),
    )


def _print_issued(issued: MqttIssued, settings: Settings) -> None:
    print(f"{issued.username}: MQTT username {issued.username} password {issued.password}")
    print("  (shown only now: the broker keeps only its hash; any earlier password has ended)")
    _reload_note(issued.broker_reloaded, settings)


def _print_removed(device_id: str, removed: MqttRemoved, settings: Settings) -> None:
    if not removed.removed:
        print(f"{device_id}: no MQTT credential to remove")
        return
    print(f"{device_id}: MQTT credential removed")
    _reload_note(removed.broker_reloaded, settings)


def _reload_note(reloaded: bool, settings: Settings) -> None:
    if reloaded:
        print("  the broker has reloaded its password file")
    else:
        print(f"  password file {settings.mqtt_password_path}: make the broker read it again "
              "(SIGHUP, e.g. `docker compose kill -s HUP mosquitto`)")  # fmt: skip
