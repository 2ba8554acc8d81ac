"""Argument types shared by the sub-commands: a bad value is named by argparse, never a traceback."""

from __future__ import annotations

import argparse

from navigator.client.times import duration_seconds


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected at least {least}, got {value}")
    return value


def count(text: str) -> int:
    """A whole number, zero or more."""
    return _whole(text, 0)


def positive_int(text: str) -> int:
    return _whole(text, 1)


def port(text: str) -> int:
    value = _whole(text, 0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value}")
    return value


def rate(text: str) -> float:
    """A non-negative number (per second, or seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def duration(text: str) -> float:
    """A positive duration: ``30s``, ``5m``, ``1h`` or seconds."""
    try:
        value = duration_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return value
