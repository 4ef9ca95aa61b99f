"""Apache Kafka, a real single-node KRaft broker from the official jars on Maven Central.

Maven resolves the pinned ``kafka_2.13`` artifact and its runtime dependencies into a
project-local repository; the broker runs with the machine's Java (17 or newer), its storage
formatted once for a standalone controller quorum. The DESIGN.md topics are created with
``ROADLEDGER_KAFKA_PARTITIONS`` partitions (at least 3 by default).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from contracts.topics import KAFKA_TOPICS
from roadledger.settings import Endpoint, Settings
from roadledger.tcp_probe import port_open
from runtime.services.base import ServiceStatus
from runtime.services.packages import ensure_packages
from runtime.services.process import (
    ServiceError,
    Spawned,
    running_pid,
    spawn,
    stop_pid,
    wait_for,
)

__all__ = [
    "KAFKA_VERSION",
    "KafkaService",
    "delete_topics",
    "ensure_topics",
    "java_major_version",
    "new_cluster_id",
]

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.16"
JAVA_MIN = 17

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `roadledger services up`: the Kafka broker's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.roadledger.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <!-- Pinned: a transitive slf4j-api 1.7 would otherwise win and silence the broker log. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """# Written by `roadledger services up`.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def java_major_version(java: str = "java") -> int | None:
    """The major version of ``java``, or None when it cannot be run."""
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding. Like Kafka's own
    ``random-uuid``, never one starting with '-': the storage tool would take it for an
    option (1 id in 64 did, failing the format with "--cluster-id: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService:
    """The project's Kafka broker (see module docstring)."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint = settings.kafka[0]
        self.controller = Endpoint(self.endpoint.host, settings.kafka_controller_port)
        self.home = settings.data_dir / "kafka"

    @property
    def managed(self) -> bool:
        return len(self.settings.kafka) == 1 and self.endpoint.is_loopback

    def _pid(self) -> int | None:
        return running_pid(self.home / "kafka.pid", str(self.home.resolve() / "server.properties"))

    def up(self) -> ServiceStatus:
        if not self.managed:
            self._wait_ready(timeout=30, process=None)
            asyncio.run(ensure_topics(self.settings))
            return self.status()
        if self._pid() is None:
            self._start()
        asyncio.run(ensure_topics(self.settings))
        return self.status()

    def _start(self) -> None:
        for endpoint, what in (
            (self.endpoint, "ROADLEDGER_KAFKA_BOOTSTRAP"),
            (self.controller, "ROADLEDGER_KAFKA_CONTROLLER_PORT"),
        ):
            if port_open(endpoint.host, endpoint.port):
                raise ServiceError(
                    f"port {endpoint.port} on {endpoint.host} (kafka) is already in use by "
                    f"another process; stop it or set {what} to another port"
                )
        java = self._java()
        self.home.mkdir(parents=True, exist_ok=True)
        home = self.home.resolve()
        libs = self._resolve_jars(self.settings.cache.resolve() / "kafka")
        config = self._write_config(home)
        classpath = f"{libs}/*"
        if not (home / "data" / "meta.properties").exists():
            self._format(java, classpath, config)
        print(
            f"kafka: starting Apache Kafka {KAFKA_VERSION} (KRaft) on {self.endpoint}", flush=True
        )
        process = spawn(
            [
                java,
                "-Xms256m",
                "-Xmx1g",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ],
            home / "kafka.log",
        )
        (home / "kafka.pid").write_text(f"{process.pid}\n")
        self._wait_ready(timeout=120, process=process)

    def _java(self) -> str:
        java = shutil.which("java")
        version = java_major_version(java) if java else None
        if java is None or version is None:
            raise ServiceError(
                f"Java not found: Kafka {KAFKA_VERSION} needs Java {JAVA_MIN} or newer "
                f"(e.g. apt-get install openjdk-17-jre-headless)"
            )
        if version < JAVA_MIN:
            raise ServiceError(
                f"Java {version} found at {java}: Kafka {KAFKA_VERSION} needs Java {JAVA_MIN}+"
            )
        return java

    def _resolve_jars(self, cache: Path) -> Path:
        """The broker's classpath directory, resolved by Maven once per pinned recipe."""
        recipe = _POM.format(
            scala=SCALA_VERSION, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION, slf4j=SLF4J_VERSION
        )
        libs = cache / f"libs-{KAFKA_VERSION}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"
        if (libs / ".complete").exists():
            return libs
        cache.mkdir(parents=True, exist_ok=True)
        if shutil.which("mvn") is None:
            ensure_packages(["maven"], "resolving the Kafka jars")
        print(
            f"kafka: resolving Apache Kafka {KAFKA_VERSION} with Maven into {cache / 'm2'} "
            "(first run only)",
            flush=True,
        )
        pom = cache / "pom.xml"
        pom.write_text(recipe)
        log = cache / "maven.log"
        with log.open("w") as out:
            result = subprocess.run(
                [
                    "mvn",
                    "-B",
                    "-f",
                    str(pom),
                    f"-Dmaven.repo.local={cache / 'm2'}",
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={libs}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            errors = [
                line
                for line in log.read_text(errors="replace").splitlines()
                if line.startswith("[ERROR]") and line.strip() != "[ERROR]"
            ]
            cause = errors[0].removeprefix("[ERROR] ") if errors else f"exit {result.returncode}"
            raise ServiceError(
                f"Maven could not resolve Kafka {KAFKA_VERSION}: {cause[:300]} (full log: {log})"
            )
        (libs / ".complete").write_text(KAFKA_VERSION + "\n")
        return libs

    def _write_config(self, home: Path) -> Path:
        (home / "log4j2.properties").write_text(_LOG4J2)
        config = home / "server.properties"
        broker, controller = self.endpoint, self.controller
        partitions = self.settings.kafka_partitions
        config.write_text(
            "\n".join(
                [
                    "# Written by `roadledger services up`; edits are overwritten.",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={controller.host}:{controller.port}",
                    f"listeners=PLAINTEXT://{broker.host}:{broker.port},"
                    f"CONTROLLER://{controller.host}:{controller.port}",
                    f"advertised.listeners=PLAINTEXT://{broker.host}:{broker.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={home / 'data'}",
                    f"num.partitions={partitions}",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=5",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=3",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "min.insync.replicas=1",
                    "",
                ]
            )
        )
        return config

    def _format(self, java: str, classpath: str, config: Path) -> None:
        cluster_id = new_cluster_id()
        print("kafka: formatting KRaft storage (first run only)", flush=True)
        result = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                f"-Dlog4j2.configurationFile={config.parent}/log4j2.properties",
                "kafka.tools.StorageTool",
                "format",
                "--config",
                str(config),
                "--cluster-id",
                cluster_id,
                "--standalone",
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()
            raise ServiceError(f"kafka storage format failed: {output[-1] if output else ''}")

    def _wait_ready(self, timeout: float, process: Spawned | None) -> None:
        wait_for(
            lambda: _broker_ready(self.settings),
            f"kafka at {self.settings.kafka_bootstrap}",
            timeout=timeout,
            alive=process.alive if process is not None else None,
            log=self.home / "kafka.log",
        )

    def down(self) -> ServiceStatus:
        pid = self._pid() if self.managed else None
        if pid is not None:
            print("kafka: stopping", flush=True)
            stop_pid(pid, "kafka", timeout=60)
        return self.status()

    def status(self) -> ServiceStatus:
        where = self.settings.kafka_bootstrap
        if not self.managed:
            return ServiceStatus.remote(self.name, _broker_ready(self.settings), where)
        pid = self._pid()
        if pid is None:
            return ServiceStatus(self.name, "stopped", where)
        topics = asyncio.run(_describe_topics(self.settings))
        return ServiceStatus(
            self.name, "running", f"{where} pid {pid}, Kafka {KAFKA_VERSION} KRaft, {topics}"
        )


def _broker_ready(settings: Settings) -> bool:
    endpoint = settings.kafka[0]
    if not port_open(endpoint.host, endpoint.port):
        return False
    try:
        asyncio.run(_list_topics(settings))
    except Exception:
        return False
    return True


async def _list_topics(settings: Settings) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def _describe_topics(settings: Settings) -> str:
    try:
        wanted = {settings.topic(name) for name in KAFKA_TOPICS}
        names = sorted(set(await _list_topics(settings)) & wanted)
    except Exception as exc:
        return f"topics unknown ({type(exc).__name__})"
    return f"topics {', '.join(names) or 'none'}"


async def delete_topics(settings: Settings) -> None:
    """Delete the DESIGN.md topics under ``settings.topic_prefix`` (scratch pipelines, tests)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(name) for name in KAFKA_TOPICS])
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> None:
    """Create the DESIGN.md topics (idempotent); grow any that has too few partitions."""
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15000
    )
    await admin.start()
    try:
        wanted = {settings.topic(name): config for name, config in KAFKA_TOPICS.items()}
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.kafka_partitions, 1, topic_configs=config)
            for name, config in wanted.items()
            if name not in existing
        ]
        if missing:
            print(
                f"kafka: creating topics {', '.join(t.name for t in missing)} "
                f"({settings.kafka_partitions} partitions each)",
                flush=True,
            )
            await admin.create_topics(missing)
        described = await admin.describe_topics([n for n in wanted if n in existing])
        grow = {
            str(topic["topic"]): NewPartitions(settings.kafka_partitions)
            for topic in described
            if len(topic["partitions"]) < settings.kafka_partitions
        }
        if grow:
            await admin.create_partitions(grow)
    finally:
        await admin.close()
