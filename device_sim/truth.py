"""Ground truth of a simulation run: what was published, and what the pipeline should do with it.

The truth file is JSON lines (UTF-8, one object per line, ``\\n``-terminated). Every object has a
``kind``; readers must ignore kinds and members they do not know. In file order:

``run`` (first line, exactly one)
    ``format`` (1), ``seed``, ``start_ms``, ``end_ms`` (simulated time covered), ``interval_ms``
    (each device reports this often), ``vehicles``, ``rsus``, ``rate`` (messages per simulated
    second), ``id_prefix``, ``network`` (the :class:`~device_sim.network.NetworkSpec` as an
    object) and ``scenarios``: a list of ``{"name", "type", "devices", "from_ms", "to_ms",
    "params"}``, the devices each scenario was applied to.

``message`` (one per MQTT publish, in publish order)
    ``i`` (publish index from 0), ``device`` (the device id in the topic), ``seq`` and ``ts``
    (from the payload; ``null`` when the bytes are not a parseable message), ``sha256`` (hex
    SHA-256 of the exact published bytes, the ledger's entry), ``publish_at_ms`` (simulated
    time of the publish), ``scenario`` (the scenario names that shaped this message joined by
    ``+``, or ``null``) and ``expected``, the outcome a correct pipeline produces:

    - ``"stored"``: valid and new; stored and sequenced exactly once;
    - ``"duplicate"``: the same bytes were published earlier and expected ``stored``: counted,
      stored once (the earlier line is the one stored);
    - ``"quarantine:<reason>"``: quarantined with that :class:`chain.errors.RejectReason`
      (``bad_signature``, ``unknown_device``, ``revoked_key``, ``clock_skew``, ``conflict``,
      ``schema``, ``malformed``, ...). Re-sent copies of a quarantined message are
      quarantined again for the same reason.

    The expectation assumes the pipeline's documented check order (signature, schema, key
    status, dedupe, clock skew, conflict), that the fleet was registered (``roadledger sim``
    without ``--no-register``, or an earlier identical run), and that per-device publish order
    is preserved (MQTT QoS 1 per topic, Kafka key = device id).

``warning`` (one per event analytics should report, after the messages; ``scenario`` is
``natural`` for one no scenario caused)
    ``type`` (``odometer_rollback``, ``teleport``, ``drift_off_road``, ``replay``,
    ``forged_signature``, ``tampered_payload``, ``unknown_device``, ``revoked_key_use``,
    ``clock_skew``, ``conflict``, ``silent_device``, ``odo_gnss_mismatch``, ``speeding`` and
    ``geofence`` (also without a scenario: ordinary drivers and trucks do it),
    ``rsu_contradiction``: ``device`` is the vehicle, ``detail`` names the ``rsu``;
    ``congestion``: ``device`` is ``segment:<segment_id>``, seqs ``null``),
    ``device``, ``scenario`` (its name),
    ``from_ts`` / ``to_ts`` (true time of the first and last affected message, ms),
    ``from_seq`` / ``to_seq`` (or ``null``), ``messages`` (how many were affected),
    ``detail`` (type-specific numbers, e.g. ``from_odo_m``/``to_odo_m``, ``distance_m``) and
    ``required`` (``false``: the scenario was injected but never became observable by the
    rule that defines the type, e.g. a blocker whose vehicle drove too little of the
    stretch it needs; a warning about it is right, but its absence costs no recall. Absent
    means ``true``).

``summary`` (last line, when the run ended normally)
    ``messages`` (lines of kind message), ``expected`` (count per outcome), ``warnings``
    (required events only),
    ``published`` and ``acked`` (``null`` for a dry run) and ``complete`` (every publish
    acknowledged by the broker).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["FORMAT", "MessageTruth", "TruthFile", "TruthWriter", "WarningTruth", "read_truth"]

FORMAT = 1


def _int(value: int | None) -> str:
    return "null" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class MessageTruth:
    """One published MQTT message and its expected outcome."""

    i: int
    device: str
    seq: int | None
    ts: int | None
    sha256: str
    publish_at_ms: int
    scenario: str | None
    expected: str

    def to_json(self) -> str:
        # By hand: this runs once per message. Ids and names need no escaping (checked
        # patterns), json.dumps is used where that is not guaranteed.
        scenario = "null" if self.scenario is None else json.dumps(self.scenario)
        return (
            f'{{"kind":"message","i":{self.i},"device":{json.dumps(self.device)},'
            f'"seq":{_int(self.seq)},"ts":{_int(self.ts)},"sha256":"{self.sha256}",'
            f'"publish_at_ms":{self.publish_at_ms},"scenario":{scenario},'
            f'"expected":"{self.expected}"}}'
        )

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> MessageTruth:
        return cls(**{name: obj[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class WarningTruth:
    """A scenario event that analytics should warn about."""

    type: str
    device: str
    scenario: str
    from_ts: int
    to_ts: int
    from_seq: int | None
    to_seq: int | None
    messages: int
    detail: dict[str, Any] = field(default_factory=dict)
    required: bool = True

    def to_json(self) -> str:
        return json.dumps({"kind": "warning", **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> WarningTruth:
        optional = {"detail", "required"}
        return cls(
            **{
                name: obj[name]
                for name in cls.__dataclass_fields__
                if name not in optional or name in obj
            }
        )


@dataclass(slots=True)
class TruthFile:
    """A parsed truth file (see the module docstring)."""

    run: dict[str, Any]
    messages: list[MessageTruth]
    warnings: list[WarningTruth]  # the required events
    summary: dict[str, Any] | None
    optional: list[WarningTruth] = field(default_factory=list)  # injected, never observable

    def expected_counts(self) -> Counter[str]:
        """How many messages are expected to end in each outcome."""
        return Counter(m.expected for m in self.messages)


class TruthWriter:
    """Writes a truth file line by line; usable as a context manager."""

    def __init__(self, target: Path | IO[str]) -> None:
        self._owned = isinstance(target, Path)
        self._out: IO[str] = (
            target.open("w", encoding="utf-8") if isinstance(target, Path) else target
        )
        self.counts: Counter[str] = Counter()
        self.warnings = 0

    def run(self, info: dict[str, Any]) -> None:
        self._line(json.dumps({"kind": "run", "format": FORMAT, **info}, separators=(",", ":")))

    def message(self, truth: MessageTruth) -> None:
        self.counts[truth.expected] += 1
        self._line(truth.to_json())

    def warning(self, truth: WarningTruth) -> None:
        self.warnings += truth.required
        self._line(truth.to_json())

    def summary(self, published: int | None, acked: int | None) -> None:
        complete = published is not None and acked == published
        line = {
            "kind": "summary",
            "messages": sum(self.counts.values()),
            "expected": dict(sorted(self.counts.items())),
            "warnings": self.warnings,
            "published": published,
            "acked": acked,
            "complete": complete,
        }
        self._line(json.dumps(line, separators=(",", ":")))

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")

    def close(self) -> None:
        if self._owned:
            self._out.close()
        else:
            self._out.flush()

    def __enter__(self) -> TruthWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or "kind" not in obj:
                raise ValueError(f"{path}:{number}: expected an object with a 'kind'")
            yield obj


def read_truth(path: Path) -> TruthFile:
    """Parse a truth file; raises ``ValueError`` naming the line of a malformed one."""
    run: dict[str, Any] | None = None
    messages: list[MessageTruth] = []
    warnings: list[WarningTruth] = []
    optional: list[WarningTruth] = []
    summary: dict[str, Any] | None = None
    for obj in _lines(path):
        kind = obj.pop("kind")
        try:
            if kind == "run":
                run = obj
            elif kind == "message":
                messages.append(MessageTruth.from_dict(obj))
            elif kind == "warning":
                event = WarningTruth.from_dict(obj)
                (warnings if event.required else optional).append(event)
            elif kind == "summary":
                summary = obj
        except KeyError as exc:
            raise ValueError(f"{path}: {kind} line without {exc}") from None
    if run is None:
        raise ValueError(f"{path}: no run line")
    return TruthFile(
        run=run, messages=messages, warnings=warnings, summary=summary, optional=optional
    )
