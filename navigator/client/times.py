"""Times a user types for questions about the past: RFC 3339, or an age such as ``10m`` meaning that long ago.

Parsed on the client, so a relative age is measured against the client's clock
and the manager only ever sees absolute times.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class TimeError(ValueError):
    """A time that is not RFC 3339, an age or ``now``; the message says what is accepted."""


def duration_seconds(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``250ms``, ``2d`` or a number of seconds, as config files write durations.

    The same grammar as ``navigator.config.types.parse_duration``, without the config
    models: the query commands start in a fraction of the time without pydantic.
    Raises ``ValueError`` saying what is accepted.
    """
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"invalid duration {text!r}: use 30s, 5m, 1h or a number of seconds")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``2026-12-03T08:00:00Z`` (any offset), ``now``, or an age (``90s``, ``10m``, ``1h``, ``2d``) before ``now``."""
    now = now if now is not None else datetime.now(UTC)
    value = text.strip()
    if value.lower() == "now":
        return now
    try:
        return now - timedelta(seconds=duration_seconds(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise TimeError(
            f"invalid time {text!r}: use RFC 3339 (2026-12-03T08:00:00Z), an age such as 10m, 1h or 2d, or now"
        ) from None
    if when.tzinfo is None:
        raise TimeError(f"time {text!r} has no time zone: add Z (UTC) or an offset such as +02:00")
    return when.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def human_duration(seconds: float) -> str:
    """An age as kubectl shows one (k8s.io/apimachinery/pkg/util/duration.HumanDuration): 45s, 5m30s,
    45m, 5h30m, 30h, 5d3h, 45d, 2y100d; ``<invalid>`` more than a second in the future (clock skew)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        y = h // (24 * 365)
        d = (h % (24 * 365)) // 24
        return f"{y}y{d}d" if d else f"{y}y"
    return f"{h // (24 * 365)}y"
