"""Reading a mileage certificate from a file in bounded memory, one array element at a time.

A certificate can be large (a message with its proof is ~1.5 KB), and a hostile one can be
anything, so :func:`read_head` and :func:`iter_messages` never hold more than one element of
``messages`` or ``device_keys`` in memory, and refuse, naming the part, input beyond these
limits (stated in ``docs/mileage-certificate.md``):

=========================  ===================================================================
:data:`MAX_CERTIFICATE_BYTES`  the whole file; a larger one fails before anything is parsed
:data:`MAX_MESSAGES`           elements of ``messages``
:data:`MAX_DEVICE_KEYS`        elements of ``device_keys``
:data:`MAX_ITEM_CHARS`         one element of ``messages`` or ``device_keys`` (JSON text)
:data:`MAX_SUMMARY_CHARS`      the ``summary`` member (its gaps and anomalies)
:data:`MAX_MEMBER_CHARS`       any other member (the checkpoint note is at most 1 MiB)
=========================  ===================================================================

The file is read twice: :func:`read_head` validates the whole document (the same strict rules
and ``format`` errors as :meth:`MileageCertificate.from_json`) and keeps everything but the
messages; :func:`iter_messages` then reads it again from the start and yields the messages.
So members may come in any order, and a format error anywhere is reported before any
signature is checked. Errors are :class:`~chain.errors.CertificateError` with item
``"format"``.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from chain.certificate import FORMAT
from chain.certificate_json import (
    _MEMBERS,
    _members,
    key_from_dict,
    message_from_dict,
    summary_from_dict,
)
from chain.certificate_parts import CertifiedKeyRecord, CertifiedMessage, _bad, check_header
from chain.errors import CertificateError
from chain.mileage import MileageSummary
from chain.strict_json import _DECODER, _Rejected

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "MAX_DEVICE_KEYS",
    "MAX_ITEM_CHARS",
    "MAX_MEMBER_CHARS",
    "MAX_MESSAGES",
    "MAX_SUMMARY_CHARS",
    "CertificateHead",
    "iter_messages",
    "read_head",
]

MAX_CERTIFICATE_BYTES = 512 * 1024 * 1024
MAX_MESSAGES = 500_000
MAX_DEVICE_KEYS = 1_000
MAX_ITEM_CHARS = 64 * 1024  # a JWS is at most 16 KiB, a proof at most 64 hashes (~3 KiB)
MAX_SUMMARY_CHARS = 16 * 1024 * 1024
MAX_MEMBER_CHARS = 4 * 1024 * 1024

_CHUNK = 64 * 1024
_END = -2  # the event after an array's last element
_WS = re.compile(r"[ \t\n\r]*")
_ARRAYS = {"messages": (MAX_MESSAGES, message_from_dict), "device_keys": (MAX_DEVICE_KEYS, None)}


def _format(detail: str) -> CertificateError:
    return CertificateError("format", detail)


@dataclass(frozen=True)
class CertificateHead:
    """Everything of a validated certificate but its messages (see :func:`read_head`)."""

    device_id: str
    from_ms: int
    to_ms: int
    checkpoint: str
    device_keys: tuple[CertifiedKeyRecord, ...]
    summary: MileageSummary
    message_count: int


class _Text:
    """UTF-8 text of a binary stream, decoded chunk by chunk, read through a window."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._read = 0
        self._lines = 0  # newlines in text already dropped from the window
        self._column = 0  # characters after the last of them
        size = _remaining(stream)
        if size is not None and size > MAX_CERTIFICATE_BYTES:  # fail before reading anything
            raise _format(
                f"certificate: {size} bytes, larger than the limit of {MAX_CERTIFICATE_BYTES} bytes"
            )
        self._fill(_CHUNK)
        if self.buf.startswith("\ufeff"):
            raise _format("certificate: not JSON: starts with a byte order mark")

    def _fill(self, at_least: int) -> None:
        """Read at least ``at_least`` more bytes (fewer at the end of the file)."""
        if self.eof:
            return
        if self.pos > _CHUNK:  # drop what was consumed, keeping line numbers right
            dropped = self.buf[: self.pos]
            newlines = dropped.count("\n")
            self._lines += newlines
            self._column = (
                len(dropped) - dropped.rfind("\n") - 1 if newlines else self._column + len(dropped)
            )
            self.buf, self.pos = self.buf[self.pos :], 0
        data = self._stream.read(max(at_least, _CHUNK))
        self._read += len(data)
        if self._read > MAX_CERTIFICATE_BYTES:
            raise _format(f"certificate: larger than the limit of {MAX_CERTIFICATE_BYTES} bytes")
        try:
            self.buf += self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise _format("certificate: not UTF-8 text") from None
        self.eof = not data

    def where(self, pos: int) -> str:
        line = self._lines + self.buf.count("\n", 0, pos) + 1
        newline = self.buf.rfind("\n", 0, pos)
        column = pos - newline if newline >= 0 else self._column + pos + 1
        return f"line {line} column {column}"

    def not_json(self, msg: str, pos: int) -> CertificateError:
        return _format(f"certificate: not JSON: {msg} at {self.where(pos)}")

    def peek(self) -> str:
        """The next character after white space ('' at the end), not consumed."""
        while True:
            match = _WS.match(self.buf, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self._fill(_CHUNK)

    def expect(self, chars: str, message: str) -> str:
        char = self.peek()
        if not char or char not in chars:
            raise self.not_json(message, self.pos)
        self.pos += 1
        return char

    def value(self, limit: int, path: str) -> Any:
        """Decode the JSON value at the window's position, of at most ``limit`` characters."""
        self.peek()
        while True:
            start = self.pos
            try:
                obj, end = _DECODER.raw_decode(self.buf, start)
            except _Rejected as exc:
                raise _format(f"certificate: {exc}") from None
            except json.JSONDecodeError as exc:
                # Cut off by the window's end, or really malformed? The decoder reports an
                # unfinished string at its start and anything else unfinished at the end.
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - 8
                if cut and not self.eof:
                    self._more(start, limit, path)
                    continue
                raise self.not_json(exc.msg, exc.pos) from None
            except ValueError as exc:  # NaN / Infinity
                raise _format(f"certificate: not JSON: {exc}") from None
            except RecursionError:
                raise _format("certificate: nested too deeply") from None
            if end - start > limit:
                raise _format(f"{path}: larger than the limit of {limit} characters")
            if end == len(self.buf) and not self.eof:  # a number may go on in the next chunk
                self._more(start, limit, path)
                continue
            self.pos = end
            return obj

    def _more(self, start: int, limit: int, path: str) -> None:
        held = len(self.buf) - start
        if held > limit:
            raise _format(f"{path}: larger than the limit of {limit} characters")
        self._fill(held)  # doubling the window: linear, however the value is cut


def _remaining(stream: IO[bytes]) -> int | None:
    """Bytes from the stream's position to its end, if it can tell without reading."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except OSError:
        return None
    return end - here


def _events(stream: IO[bytes]) -> Iterator[tuple[str, int, Any]]:
    """``(member, -1, value)`` for scalar members, ``(array, i, element)`` for array elements.

    Also ``(array, _END, count)`` at the end of each array. Checks JSON syntax, duplicate
    members at the top level (the decoder checks nested ones) and the limits.
    """
    text = _Text(stream)
    if text.peek() != "{":
        text.value(MAX_MEMBER_CHARS, "certificate")
        raise _format("certificate: not a JSON object")
    text.pos += 1
    seen: set[str] = set()
    if text.peek() == "}":
        text.pos += 1
    else:
        while True:
            if text.peek() != '"':
                raise text.not_json("Expecting property name enclosed in double quotes", text.pos)
            name = text.value(MAX_MEMBER_CHARS, "certificate")
            if name in seen:
                raise _format(f"certificate: duplicate member {name!r:.66}")
            seen.add(name)
            text.expect(":", "Expecting ':' delimiter")
            if name in _ARRAYS and text.peek() == "[":
                yield from _array(text, name)
            else:
                limit = MAX_SUMMARY_CHARS if name == "summary" else MAX_MEMBER_CHARS
                yield name, -1, text.value(limit, name)
            if text.expect(",}", "Expecting ',' delimiter") == "}":
                break
    if text.peek():
        raise text.not_json("Extra data", text.pos)


def _array(text: _Text, name: str) -> Iterator[tuple[str, int, Any]]:
    limit = _ARRAYS[name][0]
    text.pos += 1  # the [
    count = 0
    if text.peek() == "]":
        text.pos += 1
    else:
        while True:
            if count == limit:
                raise _format(f"{name}: more than the limit of {limit} elements")
            yield name, count, text.value(MAX_ITEM_CHARS, f"{name}[{count}]")
            count += 1
            if text.expect(",]", "Expecting ',' delimiter") == "]":
                break
    yield name, _END, count


def read_head(stream: IO[bytes]) -> CertificateHead:
    """Validate the whole certificate in ``stream`` (from its current position); keep its head.

    Memory: the device keys, the summary and one element at a time, whatever the file's size.
    """
    scalars: dict[str, Any] = {}
    keys: list[CertifiedKeyRecord] = []
    counts: dict[str, int] = {}
    for name, i, value in _events(stream):
        if name == "format":
            if value != FORMAT:
                raise _format(f"unsupported version {value!r:.80}; this verifier reads {FORMAT}")
            scalars[name] = value
        elif name == "messages" and i >= 0:
            message_from_dict(value, i)  # checked and dropped: iter_messages reads it again
        elif name == "device_keys" and i >= 0:
            keys.append(key_from_dict(value, i))
        elif name in _ARRAYS and i == _END:
            if value == 0:
                raise _bad(name, "expected at least one element")
            counts[name] = value
        else:
            scalars[name] = value
    if "format" not in scalars:
        raise _format(f'no "format" member: not a {FORMAT} document')
    present = dict.fromkeys([*scalars, *counts])
    _members(present, _MEMBERS, "certificate")  # missing or unknown members
    for name in _ARRAYS:
        if name not in counts:
            raise _bad(name, "expected an array")
    check_header(scalars["device_id"], scalars["from_ms"], scalars["to_ms"], scalars["checkpoint"])
    return CertificateHead(
        device_id=scalars["device_id"],
        from_ms=scalars["from_ms"],
        to_ms=scalars["to_ms"],
        checkpoint=scalars["checkpoint"],
        device_keys=tuple(keys),
        summary=summary_from_dict(scalars["summary"]),
        message_count=counts["messages"],
    )


def iter_messages(stream: IO[bytes]) -> Iterator[CertifiedMessage]:
    """The messages of a certificate that :func:`read_head` accepted, read again from the
    stream's current position; one element in memory at a time."""
    for name, i, value in _events(stream):
        if name == "messages" and i >= 0:
            yield message_from_dict(value, i)


def open_bytes(data: bytes) -> IO[bytes]:
    """``data`` as a stream for :func:`read_head` / :func:`iter_messages`."""
    return io.BytesIO(data)
