"""``roadledger bridge``: forward device telemetry from MQTT to Kafka ``telemetry.raw``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from contracts.topics import MQTT_TELEMETRY_FILTER, RAW

if TYPE_CHECKING:
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "forward device telemetry from MQTT to Kafka telemetry.raw (at least once)"

DESCRIPTION = f"""\
Subscribe to the devices' signed telemetry on the MQTT broker (ROADLEDGER_MQTT_URL, topic
filter {MQTT_TELEMETRY_FILTER}) and write every message, byte for byte, to the Kafka topic
{RAW} (ROADLEDGER_KAFKA_BOOTSTRAP; ROADLEDGER_TOPIC_PREFIX goes in front), keyed by
device id, with headers mqtt_topic and recv_ms. Runs until SIGTERM or Ctrl-C.

Delivery guarantee (at least once, nothing lost):
  - The bridge keeps a persistent MQTT session (fixed --client-id, clean session off,
    QoS 1), so messages published while it is down wait for it at the broker.
  - A message is acknowledged to the broker only after Kafka has it durably (acks=all,
    idempotent producer), and acknowledgements go out in the order messages arrived.
  - If Kafka is slow or down, at most ROADLEDGER_BRIDGE_MAX_INFLIGHT messages are held;
    then the bridge stops reading from the broker, which keeps the rest queued.
  - Either side may disconnect: MQTT reconnects with backoff and subscribes again; failed
    Kafka sends are retried and never acknowledged until they succeed.
  - On SIGTERM/Ctrl-C it takes no new messages, waits up to --drain-timeout seconds for
    the ones in flight, then disconnects (a second signal stops at once). Whatever was not
    acknowledged (also after a crash or SIGKILL) is delivered again to the next bridge
    with the same --client-id: duplicates are possible, losses are not; the verifier drops
    duplicates.

Run one bridge per --client-id: two processes sharing one id take the session from each
other.

examples:
  roadledger bridge
  ROADLEDGER_LOG_LEVEL=DEBUG roadledger bridge --stats-interval 2"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds >= 0")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("the interval must be more than 0 seconds")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--client-id",
        help="MQTT client id, which names the persistent session "
        "(default: ROADLEDGER_BRIDGE_CLIENT_ID, roadledger-bridge)",
    )
    parser.add_argument(
        "--topic-filter",
        default=MQTT_TELEMETRY_FILTER,
        help="MQTT topic filter; the last topic level is the device id (default: %(default)s)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="on stop, how long to wait for in-flight messages to reach Kafka "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--stats-interval",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how often to log counts and rate (default: %(default)s)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the bridge on Kafka until SIGTERM/SIGINT; 0 after a clean stop."""
    import asyncio
    import logging
    import signal

    from contracts.errors import CommandError
    from ingest.bridge import Bridge
    from roadledger.health import start_reporting_health
    from roadledger.stream.errors import StreamError
    from roadledger.stream.opening import open_stream

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from roadledger.resilience import quiet_client_retries

    quiet_client_retries()  # aiokafka's per-retry lines: the outage is our one line

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and task is not None:  # a second signal: stop without draining
                task.cancel()
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        bridge = Bridge(
            settings,
            open_stream(settings),
            topic_filter=args.topic_filter,
            client_id=args.client_id,
            stats_interval=args.stats_interval,
        )
        start_reporting_health(
            settings, "bridge", bridge.dependencies, stop, metrics=lambda: bridge.stats().samples()
        )
        await bridge.run(stop, drain_timeout=args.drain_timeout)

    try:
        asyncio.run(main())
    except StreamError as exc:
        raise CommandError(str(exc)) from None
    except asyncio.CancelledError:
        raise CommandError(
            "stopped without waiting for messages in flight (the broker delivers them again)",
            130,
        ) from None
    return 0
