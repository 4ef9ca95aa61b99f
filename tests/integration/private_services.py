"""Private PostgreSQL and Kafka instances for the fault tests: killed, paused and restarted
without touching the shared services every other test uses.

Each instance is the project's own service (``runtime.services``) on free loopback ports,
with its state under ``<data dir>/private/<id>`` (the server users must reach it, which the
pytest temporary directory does not allow), removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from roadledger.settings import Settings
from roadledger.tcp_probe import port_open
from runtime.services.kafka import KafkaService
from runtime.services.postgres import SERVER_USER, PostgresService, _bindir
from runtime.services.process import as_user, wait_for
from tests.integration.conftest import free_port

__all__ = ["PrivateServices", "private_services"]


@dataclass
class PrivateServices:
    """The settings that reach the private instances, and the faults they can suffer."""

    settings: Settings
    postgres: PostgresService | None
    kafka: KafkaService | None

    def postgres_immediate_stop(self) -> None:
        """``pg_ctl stop -m immediate``: every backend killed, no checkpoint (a crash)."""
        assert self.postgres is not None
        data = self.postgres.home.resolve() / "data"
        subprocess.run(
            as_user(SERVER_USER, [str(_bindir() / "pg_ctl"), "stop", "-D", str(data),
                                  "-m", "immediate", "-w", "-t", "30"]),
            check=True, capture_output=True,
        )  # fmt: skip

    def postgres_start(self) -> None:
        assert self.postgres is not None
        self.postgres.up()

    def kafka_signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the broker (SIGSTOP/SIGCONT pause it); SIGKILL kills it and
        returns once it is gone (its ports free for a restart)."""
        assert self.kafka is not None
        pid = self.kafka._pid()
        assert pid is not None, "the private Kafka is not running"
        os.kill(pid, signum)
        if signum == signal.SIGKILL:
            kafka = self.kafka
            # Its pid goes before its sockets do: wait for the ports too.
            wait_for(
                lambda: (
                    kafka._pid() is None
                    and not port_open(kafka.endpoint.host, kafka.endpoint.port)
                    and not port_open(kafka.controller.host, kafka.controller.port)
                ),
                "the killed Kafka to be gone",
                30,
            )

    def kafka_start(self) -> None:
        assert self.kafka is not None
        self.kafka.up()


@contextlib.asynccontextmanager
async def private_services(
    base: Settings, *, postgres: bool = True, kafka: bool = False
) -> AsyncIterator[PrivateServices]:
    """Start the chosen private instances; the shared ones stand in for the others."""
    home = (base.data_dir / "private" / uuid.uuid4().hex[:10]).resolve()
    home.mkdir(parents=True)
    home.chmod(0o755)
    update: dict[str, object] = {"data_dir": home, "cache_dir": base.cache.resolve()}
    if postgres:
        update["database_url"] = (
            f"postgresql://roadledger:roadledger-dev@127.0.0.1:{free_port()}/roadledger"
        )
    if kafka:
        update["kafka_bootstrap"] = f"127.0.0.1:{free_port()}"
        update["kafka_controller_port"] = free_port()
    settings = base.model_copy(update=update)
    services = PrivateServices(
        settings,
        PostgresService(settings) if postgres else None,
        KafkaService(settings) if kafka else None,
    )
    try:
        for service in (services.postgres, services.kafka):
            if service is not None:
                await asyncio.to_thread(service.up)
        yield services
    finally:
        for service in (services.kafka, services.postgres):
            if service is not None:
                with contextlib.suppress(Exception):
                    if service is services.kafka:
                        services.kafka_signal(signal.SIGCONT)
                await asyncio.to_thread(service.down)
        shutil.rmtree(home, ignore_errors=True)
