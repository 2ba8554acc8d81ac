"""Times users type: RFC 3339 with a zone, an age meaning that long ago, or now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from navigator.client.times import TimeError, parse_time, rfc3339

NOW = datetime(2026, 12, 3, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - timedelta(minutes=10)),
        ("1h", NOW - timedelta(hours=1)),
        ("2d", NOW - timedelta(days=2)),
        ("90", NOW - timedelta(seconds=90)),
        ("now", NOW),
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        ("2026-12-01T12:00:00+02:00", datetime(2026, 12, 1, 10, tzinfo=UTC)),
        (" 2026-12-01T10:00:00.250000Z ", datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_accepted(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "invalid time 'yesterday': use RFC 3339"),
        ("-5m", "invalid time '-5m'"),
        ("2026-12-01T10:00:00", "has no time zone: add Z"),
        ("2026-12-01", "has no time zone"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(TimeError, match=message):
        parse_time(text, NOW)


def test_rfc3339_is_utc_with_z() -> None:
    assert rfc3339(datetime(2026, 12, 1, 12, tzinfo=UTC) + timedelta(microseconds=5)) == "2026-12-01T12:00:00.000005Z"
