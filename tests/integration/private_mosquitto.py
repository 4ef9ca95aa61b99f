"""A private Mosquitto for the fault tests: SIGKILLed and restarted without touching the shared
broker every other test uses.

The project's own broker service (``runtime.services.mosquitto``: its configuration, its
persistence) on a free loopback port, with its state under ``<data dir>/private/<id>`` (the
``mosquitto`` user must reach it, which the pytest temporary directory does not allow), removed
afterwards. ``private_services`` does the same for PostgreSQL and Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from roadledger.settings import Settings
from runtime.services.mosquitto import MosquittoService
from tests.integration.conftest import free_port
from tests.support.pipeline import wait_until

__all__ = ["PrivateMosquitto", "private_mosquitto"]


@dataclass
class PrivateMosquitto:
    """The settings that reach the private broker, and the faults it can suffer."""

    settings: Settings
    service: MosquittoService

    def kill(self) -> None:
        """SIGKILL the broker: no goodbye, nothing saved beyond what it already wrote."""
        pid = self.service._pid()
        assert pid is not None, "the private Mosquitto is not running"
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # our child: reap it, no zombie
            os.waitpid(pid, 0)

    def start(self) -> None:
        """Start it again on the same port and data (returns once it answers MQTT)."""
        self.service.up()

    async def wait_saved(self, within_s: float = 15.0) -> None:
        """Until the broker has replaced its store file twice since the call: the second save
        began after the first had ended, so it holds everything acknowledged before the call
        (Mosquitto writes ``mosquitto.db.new`` and renames it over the old store)."""
        store = self.service.home / "data" / "mosquitto.db"

        def version() -> tuple[int, int] | None:
            try:
                stat = store.stat()
            except FileNotFoundError:
                return None
            return stat.st_ino, stat.st_mtime_ns

        seen = [version()]

        async def saved_twice() -> bool:
            if (now := version()) != seen[-1]:
                seen.append(now)
            return len(seen) >= 3

        await wait_until(saved_twice, "the broker to save its store twice", within_s)


@contextlib.asynccontextmanager
async def private_mosquitto(base: Settings) -> AsyncIterator[PrivateMosquitto]:
    """Start a private broker; PostgreSQL and Kafka stay those of ``base``."""
    home = (base.data_dir / "private" / uuid.uuid4().hex[:10]).resolve()
    home.mkdir(parents=True)
    home.chmod(0o755)
    settings = base.model_copy(
        update={
            "data_dir": home,
            "cache_dir": base.cache.resolve(),
            "mqtt_url": f"mqtt://127.0.0.1:{free_port()}",
        }
    )
    broker = PrivateMosquitto(settings, MosquittoService(settings))
    try:
        await asyncio.to_thread(broker.start)
        yield broker
    finally:
        await asyncio.to_thread(broker.service.down)
        shutil.rmtree(home, ignore_errors=True)
