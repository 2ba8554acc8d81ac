"""Times a user types for questions about the past: RFC 3339, or an age such as ``10m`` meaning that long ago.

Parsed on the client, so a relative age is measured against the client's clock
and the manager only ever sees absolute times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class TimeError(ValueError):
    """A time that is not RFC 3339, an age or ``now``; the message says what is accepted."""


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``2026-12-03T08:00:00Z`` (any offset), ``now``, or an age (``90s``, ``10m``, ``1h``, ``2d``) before ``now``."""
    now = now if now is not None else datetime.now(UTC)
    value = text.strip()
    if value.lower() == "now":
        return now
    try:
        # The config package loads every config model (pydantic): only ages need its duration parser.
        from navigator.config.types import parse_duration

        return now - timedelta(seconds=parse_duration(value))
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
