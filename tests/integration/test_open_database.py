"""One way into PostgreSQL for every command: a server that is down or refuses us is one line.

``open_database`` (commands that run once) and ``wait_for_pool`` (long-running processes, which
wait out a server that is down) turn what waiting cannot mend into ``DatabaseUnavailable``; the
command line prints it on one line and exits 2. Against the real server: a wrong password and a
missing database; "down" is a loopback port nothing listens on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from contracts.errors import Unavailable
from roadledger.db.pool import DatabaseUnavailable, open_database, wait_for_pool
from roadledger.resilience import Dependency
from roadledger.settings import Settings
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.postgres]

ROADLEDGER = str(Path(sys.executable).parent / "roadledger")
WRONG = "not-the-password-4b1d"


def _url(settings: Settings, *, password: str | None = None, port: int | None = None,
         database: str | None = None) -> str:  # fmt: skip
    parts = urlsplit(settings.database_url)
    user = parts.username or ""
    netloc = f"{user}:{password if password is not None else parts.password}@{parts.hostname}"
    netloc += f":{port or parts.port}"
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


async def test_a_wrong_password_is_unavailable_without_the_password(settings: Settings) -> None:
    wrong = settings.model_copy(update={"database_url": _url(settings, password=WRONG)})
    with pytest.raises(DatabaseUnavailable) as refused:
        await open_database(wrong)
    assert isinstance(refused.value, Unavailable)
    message = str(refused.value)
    assert message.startswith("cannot connect to PostgreSQL at ")
    assert "password authentication failed" in message
    assert WRONG not in message
    assert "\n" not in message


async def test_a_missing_database_is_unavailable(settings: Settings) -> None:
    missing = settings.model_copy(update={"database_url": _url(settings, database="no_such_db")})
    with pytest.raises(DatabaseUnavailable, match='database "no_such_db" does not exist'):
        await open_database(missing)


async def test_a_server_that_is_down_is_unavailable_at_once(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": _url(settings, port=free_port())})
    with pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL at"):
        await asyncio.wait_for(open_database(down), 30)


async def test_a_long_running_process_does_not_wait_for_a_wrong_password(
    settings: Settings,
) -> None:
    wrong = settings.model_copy(update={"database_url": _url(settings, password=WRONG)})
    database = Dependency("PostgreSQL", logging.getLogger("test"))
    with pytest.raises(DatabaseUnavailable, match="password authentication failed"):
        await asyncio.wait_for(wait_for_pool(wrong, asyncio.Event(), database), 30)
    assert database.outages == 0  # refused at once, not waited out as an outage


@pytest.mark.parametrize(
    ("command", "port_down"),
    [
        (["ledger", "check"], True),
        (["devices", "list"], True),
        (["sequencer"], False),  # a wrong password: waiting would not mend it
    ],
)
def test_the_command_line_says_it_in_one_line(
    settings: Settings, command: list[str], port_down: bool
) -> None:
    url = _url(settings, port=free_port()) if port_down else _url(settings, password=WRONG)
    env = {**os.environ, "ROADLEDGER_DATABASE_URL": url}
    done = subprocess.run(
        [ROADLEDGER, *command], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"roadledger {command[0]}: cannot connect to PostgreSQL at ")
    assert WRONG not in done.stderr
