"""Strict JSON: the one place that parses JSON in chain/.

Signed and hashed documents must mean one thing only, so the parser refuses what lenient
parsers accept silently: duplicate member names (at any depth), ``NaN``/``Infinity``, integer
literals longer than 20 digits (every 64-bit integer fits; longer ones are absurd here and
would make ``int()`` work on kilobytes of digits), text that is not UTF-8, and a top level that
is not an object.

Errors: :class:`~chain.errors.EncodingError` when the input is not well-formed JSON of that
shape, and its subclass :class:`JsonContentError` when it is well-formed but its content is
refused (duplicates, absurd integers), so callers can map the two to different reasons.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chain.errors import EncodingError

__all__ = ["JsonContentError", "dumps_canonical", "loads_object"]

_MAX_INT_DIGITS = 20


class JsonContentError(EncodingError):
    """Well-formed JSON whose content is refused (a duplicate member, an absurd integer)."""


class _Rejected(Exception):
    pass


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        names = [name for name, _ in pairs]
        duplicate = next(n for n in names if names.count(n) > 1)
        raise _Rejected(f"duplicate member {duplicate!r:.66}")
    return obj


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Rejected(f"integer literal of {len(text)} characters")
    return int(text)


def _parse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


# One decoder for all calls: json.loads(**hooks) would build a new one per document.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_pairs, parse_int=_parse_int, parse_constant=_parse_constant
)
# The same without the per-integer hook, for documents with no run of more than 20 digits
# anywhere (so no integer literal that long): the common case, a Python call per number less.
_FAST_DECODER = json.JSONDecoder(object_pairs_hook=_object_pairs, parse_constant=_parse_constant)
_LONG_DIGIT_RUN = re.compile(f"[0-9]{{{_MAX_INT_DIGITS + 1}}}")


def loads_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse ``data`` as one strict JSON object; messages start with ``what``.

    Raises:
        JsonContentError: duplicate member names or an integer literal over 20 digits.
        EncodingError: not UTF-8, not JSON, nested too deeply, or not an object.
    """
    try:
        # explicit decode: json.loads(bytes) would also accept UTF-16/32
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise EncodingError(f"{what}: not UTF-8 text") from None
    if text.startswith("\ufeff"):
        raise EncodingError(f"{what}: not JSON: starts with a byte order mark")
    try:
        decoder = _DECODER if _LONG_DIGIT_RUN.search(text) else _FAST_DECODER
        obj = decoder.decode(text)
    except _Rejected as exc:
        raise JsonContentError(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise EncodingError(
            f"{what}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN / Infinity, refused by _parse_constant
        raise EncodingError(f"{what}: not JSON: {exc}") from None
    except RecursionError:
        raise EncodingError(f"{what}: nested too deeply") from None
    if not isinstance(obj, dict):
        raise EncodingError(f"{what}: not a JSON object")
    return obj


def dumps_canonical(obj: object) -> str:
    """Compact JSON with sorted keys: the form that is signed or hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
