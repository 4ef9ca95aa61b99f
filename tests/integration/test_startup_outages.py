"""Every long-running command started while a dependency is down waits for it instead of
dying with a traceback: one "unavailable" line, still running while the dependency stays
away, and a SIGTERM during that wait ends it within 5 s with exit code 0.

"Down" is a loopback port nothing listens on (``free_port``): no shared service is touched.
The commands that do reach their other dependencies use the shared ones under their own topic
prefix, so they disturb nobody.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from roadledger.settings import Settings
from tests.integration.conftest import free_port
from tests.support.pipeline import wait_until_sync

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.mqtt, pytest.mark.faults]

ROADLEDGER = str(Path(sys.executable).parent / "roadledger")
OBSERVED_S = 4.0  # how long the outage is watched for repeated lines
STOP_WITHIN_S = 5.0

# (command, which dependency is down, the line its outage is announced with)
CASES = [
    (["ingest"], "database", "PostgreSQL unavailable"),
    (["ingest"], "kafka", "Kafka unavailable"),
    (["sequencer"], "database", "PostgreSQL unavailable"),
    (["sequencer"], "kafka", "Kafka unavailable"),
    (["analytics", "run"], "database", "PostgreSQL unavailable"),
    (["analytics", "run"], "kafka", "Kafka unavailable"),
    (["forecast", "run", "--every", "300", "--quiet"], "database", "PostgreSQL unavailable"),
    (["bridge"], "kafka", "Kafka unavailable"),
    (["bridge"], "mqtt", "MQTT unavailable"),
]


def _poll(
    condition: Callable[[], bool],
    what: str,
    within_s: float,
    process: subprocess.Popen[bytes],
    log: Path,
) -> None:
    """Until ``condition`` holds; fail with the log's tail, at once if ``process`` exited."""

    def holds() -> bool:
        if condition():
            return True
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        return False

    wait_until_sync(
        holds, what, within_s, every_s=0.1, observed=lambda: "\n" + log.read_text()[-3000:]
    )


@pytest.mark.parametrize(
    ("command", "down", "announced"), CASES, ids=[f"{c[0]}-{d}" for c, d, _ in CASES]
)
def test_started_with_a_dependency_down_it_waits_and_stops_on_sigterm(
    settings: Settings, tmp_path: Path, command: list[str], down: str, announced: str
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "ROADLEDGER_TOPIC_PREFIX": f"test-startup-{uuid.uuid4().hex[:8]}.",
        "ROADLEDGER_DATA_DIR": str(tmp_path / "data"),
    }
    if down == "database":
        env["ROADLEDGER_DATABASE_URL"] = f"postgresql://roadledger:x@{closed}/roadledger"
    elif down == "kafka":
        env["ROADLEDGER_KAFKA_BOOTSTRAP"] = closed
    else:
        env["ROADLEDGER_MQTT_URL"] = f"mqtt://{closed}"
        env["ROADLEDGER_BRIDGE_CLIENT_ID"] = f"test-startup-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "process.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ROADLEDGER, *command], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _poll(lambda: announced in log.read_text(), announced, 60, process, log)
        waited_from = time.monotonic()
        while time.monotonic() - waited_from < OBSERVED_S:  # the outage goes on
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)  # watching a period of time is the point, not a synchronisation
        text = log.read_text()
        assert text.count(announced) == 1, f"one line per outage, not per retry:\n{text}"
        assert "Traceback" not in text, text
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {STOP_WITHIN_S} s after SIGTERM:\n{log.read_text()[-3000:]}"
            ) from None
        print(f"{' '.join(command)}: exit {code} {time.monotonic() - started:.1f} s after SIGTERM")
        assert code == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
        unable = log.read_text().count("Unable connect")
        assert unable <= 1, f"aiokafka's retries are folded, got {unable} lines"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
