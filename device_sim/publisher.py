"""Publishing a run over MQTT: QoS 1, paced by a token bucket, every PUBACK awaited.

One paho-mqtt client (callback API version 2, MQTT 3.1.1) driven from the caller's thread:
no network thread, so a publish writes straight to the socket and PUBACKs are read in the same
loop (two threads would only fight over the GIL). The in-flight window is kept here, not by
paho: paho's own ``max_inflight_messages`` scans every message in flight on each PUBACK, which
caps a window of thousands at a few thousand messages per second. While publishing a batch the
socket is corked, so the kernel sends full segments instead of one per message.

Pacing: at most ``rate`` publishes per second (token bucket, bursts of up to 100 ms worth), and
with ``realtime`` no message before its ``publish_at_ms`` on the wall clock. A message that
cannot be sent because the connection dropped stays queued in paho and is resent (DUP) after
the automatic reconnect; the run fails with :class:`PublishError` only if the broker stays
away or stops acknowledging.

Durable, not just acknowledged: a broker acknowledges a message before it saves it (Mosquitto
saves its store every ``mqtt_autosave_s`` seconds), so a broker killed before its next save
loses what it acknowledged since the last one. The publisher therefore keeps each message for
``keep_acked_s`` after its PUBACK (longer than the save interval plus a save) and, when the
connection drops, publishes again everything acknowledged within that window (duplicates,
which ingest's dedupe absorbs). A run ends only when its last message has been kept that long.
A device's firmware owes the broker the same.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from device_sim.emitter import Outgoing
from device_sim.errors import PublishError
from roadledger.mqtt_auth import MqttAccount
from roadledger.settings import Endpoint

__all__ = ["MqttPublisher", "PublishProgress", "PublishReport", "TokenBucket"]

_BATCH = 256  # publishes between two looks at the socket
# Subscribed to once at the end of a run, only for the broker's SUBACK (nothing is sent there;
# the broker's ACL refuses it to a publishing account, which answers just as well).
_OK = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN)


@dataclass(frozen=True, slots=True)
class PublishProgress:
    """Where a publish run is: handed to the progress callback about twice a second."""

    published: int
    acked: int
    total: int | None
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Acknowledged messages per second so far."""
        return self.acked / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PublishReport:
    """The outcome of :meth:`MqttPublisher.publish`: every published message was acked."""

    published: int
    acked: int
    elapsed_s: float
    reconnects: int
    resent: int = 0  # acknowledged but not known saved when the connection dropped: sent again

    @property
    def rate(self) -> float:
        return self.acked / self.elapsed_s if self.elapsed_s > 0 else 0.0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (``rate`` None: unlimited)."""

    def __init__(self, rate: float | None, now: float, burst: float | None = None) -> None:
        if rate is not None and not rate > 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, (rate or 0.0) * 0.1)
        self._tokens = min(1.0, self.burst)
        self._at = now

    def available(self, now: float) -> int:
        """Whole tokens available at ``now`` (monotonic seconds)."""
        if self.rate is None:
            return 1 << 30
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def take(self, count: int) -> None:
        if self.rate is not None:
            self._tokens -= count

    def wait_s(self, count: float = 1.0) -> float:
        """Seconds until ``count`` whole tokens are saved up (after :meth:`available`)."""
        if self.rate is None or self._tokens >= count:
            return 0.0
        return (min(count, self.burst) - self._tokens) / self.rate

    @property
    def batch(self) -> float:
        """Tokens worth waiting for when empty: 10 ms of rate (so a paced publisher wakes up
        about a hundred times a second, not once per message)."""
        return 1.0 if self.rate is None else max(1.0, min(self.burst, self.rate / 100))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class MqttPublisher:
    """Publishes :class:`~device_sim.simulation.Outgoing` messages to one broker, as
    ``account``: the simulator's service account (``roadledger.mqtt_auth.sim_account``, which
    may publish for every device of the simulated fleet) or one device's own credential (which
    may publish only to that device's topic)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        account: MqttAccount | None = None,
        rate: float | None = None,
        realtime: bool = False,
        max_inflight: int = 5000,
        client_id: str | None = None,
        progress: Callable[[PublishProgress], None] | None = None,
        progress_every_s: float = 0.5,
        timeout_s: float = 60.0,
        keep_acked_s: float = 5.0,
        wall_ms: Callable[[], int] = _wall_ms,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.rate = rate
        self.realtime = realtime
        self.max_inflight = max_inflight
        self.client_id = client_id or f"roadledger-sim-{uuid.uuid4().hex[:12]}"
        self._progress = progress
        self._progress_every_s = progress_every_s
        self._timeout_s = timeout_s
        self._keep_acked_s = keep_acked_s
        self._wall_ms = wall_ms
        self._clock = clock
        self._acked = 0  # first PUBACKs of distinct messages
        self._acks = 0  # every PUBACK (progress)
        self._sent = 0  # publishes written, resends included: their send numbers
        self._in_flight: dict[int, tuple[int, Outgoing, bool]] = {}  # mid -> (send no, msg, resend)
        # PUBACKed, maybe not saved yet: (when its PUBACK came, message), oldest first
        self._unsaved: collections.deque[tuple[float, Outgoing]] = collections.deque()
        self._resent = 0
        self._connected = False
        self._refused: str | None = None
        self._reconnects = 0
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if account is not None:  # the broker refuses anonymous clients
            self._client.username_pw_set(account.username, account.password)
        self._client.max_inflight_messages_set(0)  # unlimited in paho: the window is ours
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            self._connected = True

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected = False

    def _on_publish(self, client: Any, userdata: Any, mid: Any, reason: Any, props: Any) -> None:
        self._acks += 1
        entry = self._in_flight.pop(mid, None)
        if entry is None:
            return
        _, message, resend = entry
        if not resend:
            self._acked += 1
        self._unsaved.append((self._clock(), message))

    def _forget_saved(self) -> None:
        """Drop what was acknowledged longer than ``keep_acked_s`` ago: saved by now."""
        unsaved, saved_before = self._unsaved, self._clock() - self._keep_acked_s
        while unsaved and unsaved[0][0] <= saved_before:
            unsaved.popleft()

    def _send(self, message: Outgoing, *, resend: bool = False) -> None:
        info = self._client.publish(message.topic, message.payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishError(f"publish to {message.topic} failed: {mqtt.error_string(info.rc)}")
        self._in_flight[info.mid] = (self._sent, message, resend)
        self._sent += 1

    def _resend_unsaved(self) -> None:
        """After a reconnect: what was acknowledged but not known saved may have died with the
        broker; publish it again."""
        unsaved, self._unsaved = self._unsaved, collections.deque()
        for _, message in unsaved:
            self._send(message, resend=True)
            self._resent += 1

    def _pump(self, timeout: float, *, wake_on_ack: bool = True) -> None:
        """Wait up to ``timeout`` for the socket, then read PUBACKs and write what is queued.
        ``wake_on_ack=False``: sleep the whole timeout; acks wait in the socket buffer and are
        read in one go afterwards (far fewer wake-ups while pacing)."""
        client = self._client
        sock = client.socket()
        if sock is None:
            self._connected = False
            return
        if not wake_on_ack and timeout > 0:
            select.select([], [sock] if client.want_write() else [], [], timeout)
            timeout = 0.0
        readable, writable, _ = select.select(
            [sock], [sock] if client.want_write() else [], [], timeout
        )
        rc = client.loop_read() if readable else MQTTErrorCode.MQTT_ERR_SUCCESS
        if rc in _OK and writable:
            rc = client.loop_write()
        if rc in _OK:
            rc = client.loop_misc()
        if rc not in _OK:
            self._connected = False

    def _connect(self, deadline: float) -> None:
        """(Re)connect and wait for CONNACK; paho then resends unacknowledged messages."""
        delay = 0.1
        while True:
            try:
                if self._reconnects:
                    self._client.reconnect()
                else:
                    self._client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
                while not self._connected and self._refused is None and time.monotonic() < deadline:
                    self._pump(min(0.2, max(0.0, deadline - time.monotonic())))
            except OSError as exc:
                if time.monotonic() + delay > deadline:
                    raise PublishError(
                        f"cannot connect to MQTT broker {self.endpoint}: {exc}"
                    ) from None
            if self._refused is not None:
                raise PublishError(
                    f"MQTT broker {self.endpoint} refused the connection: {self._refused}"
                )
            if self._connected:
                return
            if time.monotonic() + delay > deadline:
                raise PublishError(f"no CONNACK from MQTT broker {self.endpoint}")
            time.sleep(delay)  # back off before the next attempt; nothing to wait on
            delay = min(2.0, delay * 2)

    def _cork(self, on: bool) -> None:
        sock = self._client.socket()
        if hasattr(socket, "TCP_CORK") and isinstance(sock, socket.socket):
            # Not TCP or not Linux: batching is an optimisation only.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))

    def publish(self, messages: Iterable[Outgoing], total: int | None = None) -> PublishReport:
        """Publish every message in order, wait for all PUBACKs, disconnect; raise
        :class:`PublishError` if the broker is unreachable or stops acknowledging."""
        started = time.monotonic()
        self._connect(started + self._timeout_s)
        bucket = TokenBucket(self.rate, started)
        pending = iter(messages)
        nxt = next(pending, None)
        published = 0
        last_progress, last_ack, last_ack_at = started, 0, started
        while nxt is not None or self._in_flight or self._unsaved:
            if not self._connected:
                self._reconnects += 1
                self._connect(time.monotonic() + self._timeout_s)
                self._resend_unsaved()
                continue
            self._forget_saved()
            tokens = bucket.available(time.monotonic())
            budget = min(tokens, self.max_inflight - len(self._in_flight), _BATCH)
            sent, wait = 0, 0.5  # wait: until the next message is due (realtime)
            if budget > 0 and nxt is not None:
                wall = self._wall_ms() if self.realtime else 0
                self._cork(True)
                while sent < budget and nxt is not None:
                    if self.realtime and nxt.publish_at_ms > wall:
                        wait = max(0.001, (nxt.publish_at_ms - wall) / 1000)
                        break
                    self._send(nxt)
                    sent += 1
                    nxt = next(pending, None)
                self._cork(False)
                bucket.take(sent)
                published += sent
            # Room to send more: poll the socket if a batch of tokens is there, else sleep
            # until it is (acks wait in the socket buffer meanwhile). Otherwise sleep until a
            # PUBACK arrives or the next message is due.
            room = self.max_inflight - len(self._in_flight)
            if nxt is not None and wait == 0.5 and room > 0:
                bucket.available(time.monotonic())
                need = bucket.wait_s(bucket.batch)
                self._pump(min(need, 0.5), wake_on_ack=False)
            else:
                self._pump(min(wait, 0.5))
            now = time.monotonic()
            waiting = bool(self._in_flight)
            if self._acks != last_ack or not waiting:
                last_ack, last_ack_at = self._acks, now
            elif now - last_ack_at > self._timeout_s:
                raise PublishError(
                    f"{len(self._in_flight)} messages not acknowledged by {self.endpoint} "
                    f"within {self._timeout_s:g} s"
                )
            if self._progress is not None and now - last_progress >= self._progress_every_s:
                last_progress = now
                self._progress(PublishProgress(published, self._acked, total, now - started))
        elapsed = time.monotonic() - started
        self._client.disconnect()
        if self._progress is not None:
            self._progress(PublishProgress(published, self._acked, total, elapsed))
        return PublishReport(published, self._acked, elapsed, self._reconnects, self._resent)
