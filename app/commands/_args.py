"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse

__all__ = ["non_negative_int", "positive_float"]


def non_negative_int(text: str) -> int:
    """A canonical decimal integer >= 0 (no sign, no leading zeros), for argparse ``type=``."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative decimal integer")
    return int(text)


def positive_float(text: str) -> float:
    """A number > 0, for argparse ``type=``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value
