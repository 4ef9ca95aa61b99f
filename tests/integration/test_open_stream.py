"""One way to the stream for every command: ``open_stream``, and one line when Kafka is down.

Against the real broker started by ``roadledger services``; "down" is a loopback port nothing
listens on. A source test keeps every shipped module but the kernel's opening one from
building a stream (or a pool) itself.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from contracts.errors import Unavailable
from roadledger.settings import Settings
from roadledger.stream.errors import StreamError
from roadledger.stream.kafka import KafkaStream
from roadledger.stream.memory import MemoryStream
from roadledger.stream.opening import StreamUnavailable, open_stream, require_broker
from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("chain", "contracts", "roadledger", "runtime", "ingest", "analytics", "device_sim",
           "api", "app")  # fmt: skip
# Who may call what: the one opening place of each.
OPENERS = {
    "KafkaStream": "roadledger/stream/opening.py",
    "MemoryStream": "roadledger/stream/opening.py",
    "create_pool": "roadledger/db/pool.py",
}


def test_open_stream_chooses_kafka_or_memory(settings: Settings) -> None:
    assert isinstance(open_stream(settings), KafkaStream)
    memory = open_stream(settings, in_memory=True)
    assert isinstance(memory, MemoryStream)


@pytest.mark.kafka
async def test_a_running_broker_is_required_in_passing(kafka: Settings) -> None:
    await asyncio.wait_for(require_broker(kafka), 10)


async def test_a_broker_that_is_down_is_one_line(settings: Settings) -> None:
    port = free_port()
    down = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
    with pytest.raises(StreamUnavailable) as refused:
        await asyncio.wait_for(require_broker(down, timeout_s=2), 10)
    assert isinstance(refused.value, Unavailable)  # the CLI's one line, exit 2
    assert isinstance(refused.value, StreamError)
    message = str(refused.value)
    assert message.startswith(f"cannot reach Kafka at 127.0.0.1:{port}: 127.0.0.1:{port}: ")
    assert "refused" in message.lower()
    assert "\n" not in message


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in OPENERS:
                names.add(name)
    return names


def test_only_the_opening_modules_build_streams_and_pools() -> None:
    found: dict[str, list[str]] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            for name in _calls(path):
                if OPENERS[name] != relative:
                    found.setdefault(name, []).append(relative)
    assert found == {}
    assert _calls(ROOT / "roadledger/stream/opening.py") == {"KafkaStream", "MemoryStream"}
