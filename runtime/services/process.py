"""Process plumbing for the local services: pid files, ports, readiness waits, stopping.

``down`` must stop only what ``up`` started, so every process is recorded in a pid file and
checked against its command line (a recycled pid is never signalled).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import CommandError

__all__ = [
    "ServiceError",
    "Spawned",
    "as_user",
    "owned_dir",
    "read_pid",
    "running_pid",
    "spawn",
    "stop_pid",
    "tail",
    "wait_for",
]


class ServiceError(CommandError):
    """A local service could not be installed, started, probed or stopped."""


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and its command line has
    ``marker`` (our data directory), else None."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid if marker in _cmdline(pid) else None


def stop_pid(pid: int, what: str, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to ``timeout`` for the process to go, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return
        time.sleep(0.1)
    print(f"{what}: did not stop within {timeout:.0f}s, killing pid {pid}", file=sys.stderr)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child, so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def wait_for(
    probe: Callable[[], bool],
    what: str,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``probe`` until it returns True. Fails early, with the log's tail, if ``alive``
    says the process died; fails after ``timeout`` seconds otherwise."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if probe():
            return
        if alive is not None and not alive():
            raise ServiceError(f"{what} exited during start-up{_log_hint(log)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} not ready after {timeout:.0f}s{_log_hint(log)}")
        time.sleep(delay)  # polling interval of a readiness probe, not synchronisation
        delay = min(delay * 1.5, 0.5)


def _log_hint(log: Path | None) -> str:
    if log is None:
        return ""
    last = tail(log, 1)
    return f" (see {log}: {last})" if last else f" (see {log})"


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` non-empty lines of a text file, joined by ' | '."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return (
        " | ".join(line.strip() for line in text if line.strip())[-600:]
        if lines > 1
        else (next((line.strip() for line in reversed(text) if line.strip()), ""))
    )


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` when we are root (servers that refuse root), else unchanged."""
    if os.geteuid() != 0:
        return list(argv)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServiceError("runuser not found (package util-linux); needed to run servers as root")
    return [runuser, "-u", user, "--", *argv]


def owned_dir(path: Path, user: str) -> Path:
    """Create a directory for a server that runs as ``user`` and return its real path.

    When we are root the directory is owned by ``user``. If ``user`` cannot reach ``path``
    (a checkout under a private home such as /root), the directory is made under /var/tmp
    instead and ``path`` becomes a symlink to it, so the project-local layout still holds.
    """
    if os.geteuid() != 0:
        path.mkdir(parents=True, exist_ok=True)
        return path
    entry = pwd.getpwnam(user)
    real = path.resolve()
    if not _reachable(user, real.parent if not real.exists() else real):
        digest = hashlib.sha256(str(path.parent.resolve()).encode()).hexdigest()[:12]
        real = Path("/var/tmp") / f"roadledger-{digest}" / path.name  # noqa: S108 - see docstring
        if not path.is_symlink():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                raise ServiceError(
                    f"user {user!r} cannot reach {path}; move it away or set ROADLEDGER_DATA_DIR"
                )
            path.symlink_to(real)
    real.mkdir(parents=True, exist_ok=True)
    for directory in (real, real.parent) if real.parent.name.startswith("roadledger-") else (real,):
        os.chmod(directory, 0o755 if directory != real else 0o700)
    os.chown(real, entry.pw_uid, entry.pw_gid)
    return real


def _reachable(user: str, path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(as_user(user, ["test", "-x", str(path)]), check=False)
    return probe.returncode == 0


@dataclass(frozen=True)
class Spawned:
    """A detached server process (own session); ``alive`` reaps it if it died."""

    pid: int

    def alive(self) -> bool:
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return Path(f"/proc/{self.pid}").exists() and not _is_zombie(self.pid)
        return done == 0


def spawn(argv: Sequence[str], log: Path, cwd: Path | None = None) -> Spawned:
    """Start a long-running server in its own session, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, fd, 1),
            (os.POSIX_SPAWN_DUP2, fd, 2),
        ]
        if cwd is not None:
            argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *argv]
        pid = os.posix_spawnp(
            argv[0], list(argv), dict(os.environ), file_actions=actions, setsid=True
        )
    finally:
        os.close(fd)
    return Spawned(pid)
