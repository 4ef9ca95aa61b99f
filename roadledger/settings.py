"""RoadLedger settings: the one place that owns configuration.

Every value comes from a ``ROADLEDGER_*`` environment variable (or its default). Build a
:class:`Settings` once at the entry point with :func:`load_settings` and pass it down; tests
construct ``Settings(...)`` directly instead of patching globals.

Outside ``ROADLEDGER_ENV=development`` the insecure defaults (the well-known local database
password, an API secret left unset) are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_DATABASE_PASSWORD", "Endpoint", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "ROADLEDGER_"
# Read by the shell scripts or by one command (`roadledger api bootstrap` reads its password),
# not by Settings; allowed so the typo check does not refuse them.
SCRIPT_VARIABLES = frozenset({"ROADLEDGER_PYTHON", "ROADLEDGER_BOOTSTRAP_PASSWORD"})
DEV_DATABASE_PASSWORD = "roadledger-dev"  # noqa: S105 - the local-only default, refused in production
DEV_MQTT_BRIDGE_PASSWORD = "roadledger-bridge-dev"  # noqa: S105 - local-only, refused in production
DEV_MQTT_SIM_PASSWORD = "roadledger-sim-dev"  # noqa: S105 - local-only, refused in production


class SettingsError(ValueError):
    """A ``ROADLEDGER_*`` value is malformed or insecure; the message names the variable."""


class Endpoint:
    """A host and TCP port parsed from a URL or ``host:port``."""

    __slots__ = ("host", "port")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in {"localhost", "::1"} or self.host.startswith("127.")


def _port(value: int | None, default: int, what: str) -> int:
    port = default if value is None else value
    if not 0 < port < 65536:
        raise ValueError(f"{what} port {port} is outside 1-65535")
    return port


def _url_endpoint(url: str, schemes: tuple[str, ...], default_port: int) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"expected a {' or '.join(s + '://' for s in schemes)} URL, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    return Endpoint(parts.hostname, _port(port, default_port, parts.scheme))


def _host_port(value: str) -> Endpoint:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {value!r}")
    return Endpoint(host.strip("[]"), _port(int(port), 0, "kafka"))


class Settings(BaseSettings):
    """Configuration of every RoadLedger component (environment variables ``ROADLEDGER_*``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(
        default=Path(".local"),
        description="Project-local state: service data, logs, pid files, caches.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Downloads kept between runs (Maven repository, Kafka jars); "
        "default <data_dir>/cache.",
    )
    shared_dir: Path = Field(
        default=Path("../shared"),
        description="Where known-answer vectors and real traffic data live.",
    )
    database_url: str = (
        f"postgresql://roadledger:{DEV_DATABASE_PASSWORD}@127.0.0.1:55432/roadledger"
    )
    mqtt_url: str = "mqtt://127.0.0.1:51883"
    kafka_bootstrap: str = "127.0.0.1:59092"
    kafka_controller_port: int = Field(default=59093, gt=0, lt=65536)
    kafka_partitions: int = Field(default=3, ge=1, le=1024)
    # Per-request costs dominate at a few thousand messages/s: fuller produce batches and
    # fuller fetches cut the whole pipeline's CPU per message by a fifth (bench/ingest_rate.py:
    # 403 -> 323 us going from 5/64 KiB/20 to 20/512 KiB/100), for at most a few tenths of a
    # second more latency per hop when traffic is light.
    kafka_linger_ms: int = Field(
        default=20, ge=0, le=1000, description="How long a producer waits to fill a batch."
    )
    kafka_fetch_min_bytes: int = Field(
        default=512 * 1024, ge=1, description="A fetch answers once this much is there..."
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=100, ge=0, le=5000, description="...or after this wait."
    )
    kafka_group_instance: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="A stable name for this process in its consumer groups (Kafka static "
        "membership, KIP-345): restarted under the same name, a killed process takes its "
        "partitions back at once instead of waiting out the session timeout (10 s) for Kafka "
        "to drop its old member. Unique per process (two live processes with one name fence "
        "each other); unset: dynamic membership.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    health_dir: Path | None = Field(
        default=None,
        description="Where long-running processes write their health (roadledger health); "
        "default <data_dir>/health.",
    )
    health_interval_s: float = Field(
        default=5.0, gt=0, le=300, description="How often a process writes its health."
    )

    # --- the pipeline ---------------------------------------------------------------------
    origin_prefix: str = Field(
        default="roadledger.local",
        pattern=r"^[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)*$",
        description="Log origins are <prefix>/telemetry/<partition> (C2SP checkpoint origin).",
    )
    log_key_file: Path | None = Field(
        default=None,
        description="The log's signing key (C2SP skey text); default <data_dir>/keys/log.skey, "
        "generated on first use in development only.",
    )
    clock_skew_ms: int = Field(
        default=300_000, ge=0, description="How far in the future a device timestamp may be."
    )
    max_message_age_ms: int = Field(
        default=30 * 24 * 3600 * 1000,
        gt=0,
        description="How old a buffered message may be when it arrives.",
    )
    revocation_grace_ms: int = Field(
        default=300_000,
        ge=0,
        description="How long after a key's revocation a message signed before it (buffered "
        "by the device) is still accepted; later arrivals are revoked_key.",
    )
    verify_workers: int = Field(
        default=2, ge=0, le=64, description="Signature-verifying processes (0: in-process)."
    )
    batch_size: int = Field(default=2000, ge=1, le=100_000, description="Records per batch.")
    bridge_max_inflight: int = Field(
        default=10_000, ge=1, description="MQTT messages the bridge holds before Kafka acks them."
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prefix of every Kafka topic name (several environments on one cluster).",
    )
    # --- MQTT credentials (roadledger/mqtt_auth.py; devices get theirs from the registry) ---
    mqtt_bridge_username: str = Field(
        default="roadledger-bridge",
        pattern=r"^[A-Za-z0-9._-]{1,128}$",
        description="The bridge's MQTT account: reads every device's telemetry topic.",
    )
    mqtt_bridge_password: str = Field(default=DEV_MQTT_BRIDGE_PASSWORD, min_length=1)
    mqtt_sim_username: str = Field(
        default="roadledger-sim",
        pattern=r"^[A-Za-z0-9._-]{1,128}$",
        description="The simulator's MQTT account: publishes for a whole simulated fleet.",
    )
    mqtt_sim_password: str = Field(
        default=DEV_MQTT_SIM_PASSWORD,
        description="Empty: no simulator account on the broker (production).",
    )
    mqtt_autosave_s: int = Field(
        default=1,
        ge=1,
        le=60,
        description="The broker `roadledger services` runs saves its store every this many "
        "seconds: a kill -9 loses what it acknowledged since its last save, which publishers "
        "send again (they keep acknowledged messages mqtt_keep_acked_s; docs/pipeline.md).",
    )
    mqtt_keep_acked_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="How long the simulator keeps a message after its PUBACK, to publish it "
        "again if the connection drops meanwhile: more than the broker's save interval plus "
        "its longest save.",
    )
    mqtt_password_file: Path | None = Field(
        default=None,
        description="The broker's password file (mosquitto_passwd format) the registry writes "
        "device credentials into; default <data_dir>/mosquitto/passwd.",
    )
    bridge_client_id: str = Field(
        default="roadledger-bridge",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="The bridge's MQTT client id: its persistent session on the broker.",
    )
    timescaledb: Literal["auto", "off"] = Field(
        default="auto", description="Use TimescaleDB when the server has it ('off': never)."
    )
    retention_days: int = Field(default=365, ge=1, description="Telemetry kept this long.")
    analytics_warmup_s: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="Stored telemetry of this many seconds before analytics' last commit "
        "replayed when it restarts, so that events spanning a restart are found once (0: none).",
    )
    analytics_warmup_rows: int = Field(
        default=2_000_000, ge=1, description="At most this many rows of each kind replayed."
    )
    api_host: str = Field(default="127.0.0.1", description="Where `roadledger api` listens.")
    api_port: int = Field(default=58080, gt=0, lt=65536)
    api_access_token_s: int = Field(
        default=900, ge=30, le=86_400, description="How long a login's access token lives."
    )
    api_refresh_token_s: int = Field(
        default=30 * 86_400,
        ge=300,
        le=365 * 86_400,
        description="How long a login may be refreshed without a password.",
    )
    api_login_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed logins of one username (or 4x this from one client) within "
        "api_login_window_s before further attempts get 429.",
    )
    api_login_window_s: int = Field(default=900, ge=1, le=86_400)
    api_key_max_days: int = Field(
        default=365, ge=1, le=3650, description="The longest life an API key may be given."
    )
    api_tile_cache_mb: int = Field(
        default=128,
        ge=1,
        le=65_536,
        description="Memory each API process keeps for the logs' hash tiles that proofs are "
        "computed from (a full tile never changes; least recently used ones leave first).",
    )
    audit_checkpoint_interval_ms: int = Field(
        default=1000,
        ge=10,
        le=3_600_000,
        description="How often the API signs a checkpoint of the audit log when it grew.",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        endpoint = _url_endpoint(value, ("postgresql", "postgres"), 5432)
        if not urlsplit(value).path.strip("/"):
            raise ValueError(f"no database name in {_redact(value)!r}")
        del endpoint
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        _url_endpoint(value, ("mqtt", "mqtts"), 1883)
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_kafka(cls, value: str) -> str:
        for server in value.split(","):
            _host_port(server.strip())
        return value

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Settings:
        if self.env != "development":
            password = urlsplit(self.database_url).password
            if password in (None, "", DEV_DATABASE_PASSWORD):
                raise ValueError(
                    "database_url uses the development password (or none); "
                    "set ROADLEDGER_DATABASE_URL with a real secret in production"
                )
            if self.mqtt_bridge_password == DEV_MQTT_BRIDGE_PASSWORD:
                raise ValueError(
                    "ROADLEDGER_MQTT_BRIDGE_PASSWORD is the development password; set a real "
                    "secret in production"
                )
            if self.mqtt_sim_password == DEV_MQTT_SIM_PASSWORD:
                raise ValueError(
                    "ROADLEDGER_MQTT_SIM_PASSWORD is the development password; set a real "
                    "secret, or set it empty for no simulator account"
                )
        return self

    @model_validator(mode="after")
    def _keep_longer_than_the_broker_saves(self) -> Settings:
        if self.mqtt_keep_acked_s <= self.mqtt_autosave_s:
            raise ValueError(
                f"ROADLEDGER_MQTT_KEEP_ACKED_S ({self.mqtt_keep_acked_s:g}) must exceed "
                f"ROADLEDGER_MQTT_AUTOSAVE_S ({self.mqtt_autosave_s}): a publisher would drop "
                "messages a broker killed before its next save had not saved"
            )
        return self

    @property
    def cache(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"

    @property
    def health_path(self) -> Path:
        return self.health_dir if self.health_dir is not None else self.data_dir / "health"

    @property
    def log_key_path(self) -> Path:
        return self.log_key_file if self.log_key_file else self.data_dir / "keys" / "log.skey"

    def topic(self, name: str) -> str:
        """The Kafka topic called ``name`` in DESIGN.md, with this deployment's prefix."""
        return self.topic_prefix + name

    def group(self, name: str) -> str:
        """A Kafka consumer group id, with this deployment's prefix (like topics)."""
        return self.topic_prefix + name

    def log_origin(self, partition: int) -> str:
        """The origin (and key name) of the log that sequences ``partition``."""
        return f"{self.origin_prefix}/telemetry/{partition}"

    @property
    def database(self) -> Endpoint:
        return _url_endpoint(self.database_url, ("postgresql", "postgres"), 5432)

    @property
    def database_name(self) -> str:
        return urlsplit(self.database_url).path.strip("/")

    @property
    def database_user(self) -> str:
        return urlsplit(self.database_url).username or "postgres"

    @property
    def database_password(self) -> str:
        return urlsplit(self.database_url).password or ""

    @property
    def mqtt_password_path(self) -> Path:
        """Where device credentials are written for the broker (``mqtt_password_file``)."""
        if self.mqtt_password_file is not None:
            return self.mqtt_password_file
        return self.data_dir / "mosquitto" / "passwd"

    @property
    def mqtt(self) -> Endpoint:
        return _url_endpoint(self.mqtt_url, ("mqtt", "mqtts"), 1883)

    @property
    def kafka(self) -> list[Endpoint]:
        return [_host_port(server.strip()) for server in self.kafka_bootstrap.split(",")]

    @property
    def vectors_dir(self) -> Path:
        return self.shared_dir / "vectors"

    @property
    def traffic_data_dir(self) -> Path:
        return self.shared_dir / "data"

    def redacted_database_url(self) -> str:
        """The database URL with its password masked, safe to print or log."""
        return _redact(self.database_url)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation failures into one clear line.

    Raises:
        SettingsError: naming the offending ``ROADLEDGER_*`` variable and why it was refused.
    """
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | SCRIPT_VARIABLES
    unknown = sorted(
        name for name in os.environ if name.startswith(ENV_PREFIX) and name not in known
    )
    if unknown:
        raise SettingsError(f"{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            variable = f"{ENV_PREFIX}{field.upper()}" if error["loc"] else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{variable}: {message}")
        raise SettingsError("; ".join(problems)) from None
