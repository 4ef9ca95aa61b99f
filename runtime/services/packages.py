"""Install missing Debian packages for the local services (PostgreSQL, Mosquitto, Maven)."""

from __future__ import annotations

import os
import shutil
import subprocess

from runtime.services.process import ServiceError

__all__ = ["ensure_packages"]

_updated = False


def ensure_packages(packages: list[str], why: str) -> None:
    """Install ``packages`` with apt-get (as root) unless they are all installed already."""
    global _updated
    missing = [name for name in packages if not _installed(name)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError(
            f"{why} needs the Debian package(s) {' '.join(missing)}; "
            f"install them (sudo apt-get install {' '.join(missing)}) and run again"
        )
    print(f"services: installing {' '.join(missing)} with apt-get (for {why})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        _run(["apt-get", "update", "-qq"], env, "apt-get update")
        _updated = True
    _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env,
        f"apt-get install {' '.join(missing)}",
    )


def _installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "installed"


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()
        raise ServiceError(f"{what} failed: {last[-1] if last else f'exit {result.returncode}'}")
