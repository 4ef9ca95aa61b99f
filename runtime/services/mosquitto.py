"""Mosquitto from Debian's packages on loopback: durable for QoS 1, anonymous refused.

Persistence: the store is saved every ``mqtt_autosave_s`` seconds (1). A kill -9 loses what
the broker acknowledged since its last save; publishers keep each acknowledged message a few
seconds (``mqtt_keep_acked_s``) and send it again after a reconnect, and the bridge's queue is
redelivered from the last save (duplicates, absorbed by ingest). Saving after every change
would close the broker's window alone, but each save rewrites the whole store: with a backlog
(Kafka away, the bridge waiting) the broker slowed to ~45 messages/s (docs/pipeline.md).

Authentication: ``allow_anonymous false``, a password file (``<home>/passwd`` unless
``ROADLEDGER_MQTT_PASSWORD_FILE`` says otherwise) holding the bridge's and the simulator's
accounts from settings and each device's credential issued by the registry, and an ACL
(``<home>/acl``) so a device publishes only to its own topic (:mod:`roadledger.mqtt_auth`).
:meth:`MosquittoService.reload` makes the running broker read both again (SIGHUP).

The broker drops root privileges to the ``mosquitto`` user, which owns its directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from roadledger.mqtt_auth import (
    MqttAccount,
    PasswordFile,
    acl_text,
    bridge_account,
    reload_broker,
    sim_account,
)
from roadledger.settings import Endpoint, Settings
from roadledger.tcp_probe import connect_tcp, port_open
from runtime.services.base import ServiceStatus
from runtime.services.packages import ensure_packages
from runtime.services.process import (
    ServiceError,
    owned_dir,
    running_pid,
    spawn,
    stop_pid,
    wait_for,
)

__all__ = [
    "MosquittoService",
    "broker_password_file",
    "mqtt_ready",
    "service_accounts",
    "write_auth_files",
    "write_config",
]

SERVER_USER = "mosquitto"
_LARGE_STORE_BYTES = 64 << 20
_PROBE_ID = b"roadledger-probe"
# MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keep-alive 10 s, client id.
_CONNECT_BODY = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(_PROBE_ID).to_bytes(2, "big") + _PROBE_ID
_CONNECT = bytes([0x10, len(_CONNECT_BODY)]) + _CONNECT_BODY


def mqtt_ready(endpoint: Endpoint, timeout: float = 1.0) -> bool:
    """True when the broker answers an MQTT CONNECT with a CONNACK: accepted, or refused for
    want of credentials (this probe has none; the broker is up either way)."""
    try:
        with connect_tcp(endpoint.host, endpoint.port, timeout) as sock:
            sock.sendall(_CONNECT)
            reply = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    # 0: accepted; 4: bad user name or password; 5: not authorized
    return reply in (b"\x20\x02\x00\x00", b"\x20\x02\x00\x04", b"\x20\x02\x00\x05")


def service_accounts(settings: Settings) -> list[MqttAccount]:
    """The bridge's account and, unless its password is empty, the simulator's."""
    sim = sim_account(settings)
    return [bridge_account(settings), *([sim] if sim else [])]


def broker_password_file(settings: Settings) -> PasswordFile:
    """The password file the broker of ``settings`` reads (owned by its user when we are root)."""
    return PasswordFile(
        settings.mqtt_password_path, owner=SERVER_USER if os.geteuid() == 0 else None
    )


def write_auth_files(
    directory: Path,
    settings: Settings,
    *,
    user: str | None,
    password_file: Path | None = None,
    mode: int = 0o600,
) -> tuple[Path, Path]:
    """Write the ACL (``<directory>/acl``) and add the service accounts of ``settings`` to the
    password file (``<directory>/passwd`` unless given), keeping the device lines it holds.
    Returns both paths. ``user``: the broker's user, who gets to own them (we are root)."""
    directory.mkdir(parents=True, exist_ok=True)
    passwd = PasswordFile(password_file or directory / "passwd", owner=user, mode=mode)
    passwd.set_many(service_accounts(settings))
    if mode != 0o600:
        passwd.path.chmod(mode)
    acl = directory / "acl"
    sim = sim_account(settings)
    acl.write_text(acl_text(settings.mqtt_bridge_username, sim.username if sim else None))
    if user is not None:
        shutil.chown(acl, user, user)
    return passwd.path, acl


def write_config(
    home: Path,
    endpoint: Endpoint,
    user: str | None,
    settings: Settings,
    *,
    password_file: Path | None = None,
) -> Path:
    """Write a broker configuration for ``endpoint`` with its state under ``home``: the ACL,
    and the service accounts of ``settings`` added to the password file (``<home>/passwd``
    unless given; device lines already there are kept)."""
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data, user, user)
    passwd, acl = write_auth_files(home, settings, user=user, password_file=password_file)
    conf = home / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                "# Written by `roadledger services up`; edits are overwritten.",
                f"listener {endpoint.port} {endpoint.host}",
                "allow_anonymous false",
                f"password_file {passwd}",
                f"acl_file {acl}",
                "persistence true",
                f"persistence_location {data}/",
                # Saved every mqtt_autosave_s seconds, not after every change: a save rewrites
                # the whole store, so per-change saves cost O(backlog) per message and choked
                # the broker whenever the bridge fell behind. Publishers resend what a kill -9
                # took since the last save (docs/pipeline.md).
                "autosave_on_changes false",
                f"autosave_interval {settings.mqtt_autosave_s}",
                # A persistent session of the bridge may be offline for a while: keep its queue.
                "max_queued_messages 1000000",
                "max_queued_bytes 0",
                "max_inflight_messages 1000",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                *([f"user {user}"] if user else []),
                "",
            ]
        )
    )
    return conf


class MosquittoService:
    """The project's MQTT broker (see module docstring)."""

    name = "mosquitto"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint = settings.mqtt
        self.home = settings.data_dir / "mosquitto"

    @property
    def managed(self) -> bool:
        return self.endpoint.is_loopback

    def _pid(self) -> int | None:
        return running_pid(self.home / "mosquitto.pid", str(self.home.resolve()))

    def up(self) -> ServiceStatus:
        if not self.managed or self._pid() is not None:
            return self.status()
        if port_open(self.endpoint.host, self.endpoint.port):
            raise ServiceError(
                f"port {self.endpoint.port} on {self.endpoint.host} (mosquitto) is already in use "
                f"by another process; stop it or set ROADLEDGER_MQTT_URL to another port"
            )
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            ensure_packages(["mosquitto"], "the MQTT broker")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        user = SERVER_USER if os.geteuid() == 0 else None
        real = owned_dir(self.home, SERVER_USER) if user else self.home
        real.mkdir(parents=True, exist_ok=True)
        conf = write_config(
            real,
            self.endpoint,
            user,
            self.settings,
            password_file=self.settings.mqtt_password_path.resolve(),
        )
        store = real / "data" / "mosquitto.db"
        if store.exists() and store.stat().st_size > _LARGE_STORE_BYTES:
            # Every save rewrites the whole store, and it is saved after every change.
            print(
                f"mosquitto: warning: its store {store} holds {store.stat().st_size >> 20} MiB "
                "(abandoned persistent sessions?); each save rewrites all of it, which slows "
                "the broker down. See docs/pipeline.md (MQTT).",
                flush=True,
            )
        print(f"mosquitto: starting on {self.endpoint}", flush=True)
        process = spawn([binary, "-c", str(conf)], real / "mosquitto.log")
        (self.home / "mosquitto.pid").write_text(f"{process.pid}\n")
        wait_for(
            lambda: mqtt_ready(self.endpoint),
            "mosquitto",
            timeout=30,
            alive=process.alive,
            log=real / "mosquitto.log",
        )
        return self.status()

    def reload(self) -> bool:
        """Make the running broker read its password and ACL files again (SIGHUP). False when
        this machine runs no broker for these settings (a broker elsewhere is reloaded by its
        operator)."""
        return reload_broker(self._pid() if self.managed else None)

    def down(self) -> ServiceStatus:
        pid = self._pid() if self.managed else None
        if pid is not None:
            print("mosquitto: stopping", flush=True)
            stop_pid(pid, "mosquitto")
        return self.status()

    def status(self) -> ServiceStatus:
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        if not self.managed:
            return ServiceStatus.remote(self.name, mqtt_ready(self.endpoint), where)
        pid = self._pid()
        if pid is None:
            return ServiceStatus(self.name, "stopped", where)
        ready = "ready" if mqtt_ready(self.endpoint) else "not answering MQTT"
        saves = f"saves every {self.settings.mqtt_autosave_s} s"
        detail = f"{where} pid {pid}, {ready}, {saves}, password + ACL"
        return ServiceStatus(self.name, "running", detail)
