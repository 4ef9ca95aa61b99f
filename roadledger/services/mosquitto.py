"""Mosquitto from Debian's packages on loopback, with persistence on.

Persistence means QoS 1 messages queued for an offline persistent session survive a broker
restart. The broker drops root privileges to the ``mosquitto`` user, which owns its directory.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from roadledger.services.base import ServiceStatus
from roadledger.services.packages import ensure_packages
from roadledger.services.process import (
    ServiceError,
    owned_dir,
    port_open,
    running_pid,
    spawn,
    stop_pid,
    wait_for,
)
from roadledger.settings import Endpoint, Settings

__all__ = ["MosquittoService", "mqtt_ready", "write_config"]

SERVER_USER = "mosquitto"
_PROBE_ID = b"roadledger-probe"
# MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keep-alive 10 s, client id.
_CONNECT_BODY = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(_PROBE_ID).to_bytes(2, "big") + _PROBE_ID
_CONNECT = bytes([0x10, len(_CONNECT_BODY)]) + _CONNECT_BODY


def mqtt_ready(endpoint: Endpoint, timeout: float = 1.0) -> bool:
    """True when the broker answers an MQTT CONNECT with an accepting CONNACK."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            sock.sendall(_CONNECT)
            reply = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return reply == b"\x20\x02\x00\x00"


def write_config(home: Path, endpoint: Endpoint, user: str | None) -> Path:
    """Write a broker configuration for ``endpoint`` with its state under ``home``."""
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(data, user, user)
    conf = home / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                "# Written by `roadledger services up`; edits are overwritten.",
                f"listener {endpoint.port} {endpoint.host}",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {data}/",
                # Saved every 30 s: a kill -9 loses what was queued since (docs/pipeline.md).
                # autosave_on_changes was tried and reverted: with it, Mosquitto 2.0 handed a
                # persistent session's acknowledged messages out again to its next connection.
                "autosave_interval 30",
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
        conf = write_config(real, self.endpoint, user)
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
        return ServiceStatus(self.name, "running", f"{where} pid {pid}, {ready}, persistence on")
