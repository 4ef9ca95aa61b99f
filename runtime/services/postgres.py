"""PostgreSQL from Debian's packages, run on loopback from a project-local data directory.

The server listens on TCP only (no Unix socket) with SCRAM passwords: a generated superuser
password kept in the data directory, and the application role/database of
``ROADLEDGER_DATABASE_URL``. TimescaleDB is preloaded and its extension created when the
server has the library, unless ``ROADLEDGER_TIMESCALEDB=off``; otherwise the project runs on
plain PostgreSQL partitioning. (``off`` is for a new data directory: a database that already
has the extension keeps needing it preloaded.)
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import asyncpg

from roadledger.settings import Settings
from roadledger.tcp_probe import port_open
from runtime.services.base import ServiceStatus
from runtime.services.packages import ensure_packages
from runtime.services.process import (
    ServiceError,
    as_user,
    owned_dir,
    running_pid,
    tail,
)

__all__ = ["PostgresService", "database_mode"]

SERVER_USER = "postgres"
CONF_NAME = "roadledger.conf"


def _bindir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else Path()


class PostgresService:
    """The project's PostgreSQL server (see module docstring)."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint = settings.database
        self.home = settings.data_dir / "postgres"

    @property
    def managed(self) -> bool:
        return self.endpoint.is_loopback

    @property
    def _data(self) -> Path:
        return self.home.resolve() / "data"

    def _pid(self) -> int | None:
        return running_pid(self._data / "postmaster.pid", str(self._data))

    def up(self) -> ServiceStatus:
        if not self.managed:
            return self.status()
        if self._pid() is None:
            self._start()
        asyncio.run(self._ensure_database())
        return self.status()

    def _start(self) -> None:
        if port_open(self.endpoint.host, self.endpoint.port):
            raise ServiceError(
                f"port {self.endpoint.port} on {self.endpoint.host} (postgres) is already in use "
                f"by another process; stop it or set ROADLEDGER_DATABASE_URL to another port"
            )
        bindir = _bindir()
        if not (bindir / "postgres").exists():
            ensure_packages(["postgresql"], "the PostgreSQL server")
            bindir = _bindir()
        self.home = owned_dir(self.settings.data_dir / "postgres", SERVER_USER)
        data = self._data
        if not (data / "PG_VERSION").exists():
            self._initdb(bindir, data)
        self._write_conf(bindir, data)
        print(f"postgres: starting on {self.endpoint}", flush=True)
        log = self.home / "postgres.log"
        result = subprocess.run(
            as_user(
                SERVER_USER,
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                ],
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"postgres did not start: {tail(log, 1) or result.stderr.strip()}")

    def _initdb(self, bindir: Path, data: Path) -> None:
        print(f"postgres: initialising a new cluster in {data}", flush=True)
        password_file = self.home / "superuser.password"
        password_file.write_text(secrets.token_urlsafe(24) + "\n")
        os.chmod(password_file, 0o600)
        if os.geteuid() == 0:
            shutil.chown(password_file, SERVER_USER, SERVER_USER)
        result = subprocess.run(
            as_user(
                SERVER_USER,
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    f"--pwfile={password_file}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")

    def _write_conf(self, bindir: Path, data: Path) -> None:
        wanted = self.settings.timescaledb != "off"
        preload = "timescaledb" if wanted and _has_timescaledb(bindir) else ""
        conf = "\n".join(
            [
                "# Written by `roadledger services up`; edits are overwritten.",
                "listen_addresses = '127.0.0.1'"
                if self.endpoint.host != "::1"
                else "listen_addresses = '::1'",
                f"port = {self.endpoint.port}",
                "unix_socket_directories = ''",
                f"shared_preload_libraries = '{preload}'",
                "max_connections = 200",
                # A million-leaf log with its indexes is ~600 MB: keep it in buffers, so proof
                # reads never wait to evict pages that ingestion dirtied.
                "shared_buffers = '2GB'",
                "max_wal_size = '4GB'",
                "checkpoint_timeout = '15min'",
                "checkpoint_completion_target = 0.9",
                "timescaledb.telemetry_level = 'off'" if preload else "",
                "",
            ]
        )
        (data / CONF_NAME).write_text(conf)
        main_conf = data / "postgresql.conf"
        text = main_conf.read_text()
        if CONF_NAME not in text:
            main_conf.write_text(text + f"\ninclude_if_exists = '{CONF_NAME}'\n")

    async def _superuser(self) -> asyncpg.Connection:
        password = (self.home.resolve() / "superuser.password").read_text().strip()
        return await asyncpg.connect(
            host=self.endpoint.host,
            port=self.endpoint.port,
            user="postgres",
            password=password,
            database="postgres",
            timeout=10,
        )

    async def _ensure_database(self) -> None:
        s = self.settings
        conn = await self._superuser()
        try:
            role_exists = await conn.fetchval(
                "SELECT 1 FROM pg_roles WHERE rolname = $1", s.database_user
            )
            verb = "ALTER" if role_exists else "CREATE"
            statement = await conn.fetchval(
                f"SELECT format('{verb} ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                s.database_user,
                s.database_password,
            )
            await conn.execute(statement)
            if not await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", s.database_name
            ):
                print(f"postgres: creating database {s.database_name}", flush=True)
                await conn.execute(
                    await conn.fetchval(
                        "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
                        s.database_name,
                        s.database_user,
                    )
                )
        finally:
            await conn.close()
        password = (self.home.resolve() / "superuser.password").read_text().strip()
        conn = await asyncpg.connect(
            host=self.endpoint.host,
            port=self.endpoint.port,
            user="postgres",
            password=password,
            database=s.database_name,
            timeout=10,
        )
        try:
            if (
                await conn.fetchval(
                    "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
                )
                and await conn.fetchval("SHOW shared_preload_libraries") == "timescaledb"
            ):
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        finally:
            await conn.close()

    def down(self) -> ServiceStatus:
        if self.managed and self._pid() is not None:
            print("postgres: stopping", flush=True)
            subprocess.run(
                as_user(
                    SERVER_USER,
                    [
                        str(_bindir() / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self._data),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "60",
                    ],
                ),
                capture_output=True,
                check=False,
            )
        return self.status()

    def status(self) -> ServiceStatus:
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        if not self.managed:
            reachable = port_open(self.endpoint.host, self.endpoint.port)
            return ServiceStatus.remote(self.name, reachable, where)
        pid = self._pid()
        if pid is None:
            return ServiceStatus(self.name, "stopped", f"{where}, data {self._data}")
        mode = asyncio.run(database_mode(self.settings))
        return ServiceStatus(self.name, "running", f"{where} pid {pid}, {mode}")


def _has_timescaledb(bindir: Path) -> bool:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        libdir = subprocess.run(
            [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False
        ).stdout.strip()
    else:
        libdir = str(bindir.parent / "lib")
    return any(Path(libdir).glob("timescaledb*.so"))


async def database_mode(settings: Settings) -> str:
    """'timescaledb X.Y.Z' or 'plain PostgreSQL N (no timescaledb)', asked of the database."""
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"database not reachable ({type(exc).__name__})"
    try:
        version = await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
        server = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    major = re.match(r"\d+", str(server))
    if version:
        return f"timescaledb {version} on PostgreSQL {server}"
    return f"plain PostgreSQL {major.group(0) if major else server} (no timescaledb)"
