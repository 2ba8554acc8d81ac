from __future__ import annotations

import random

from navigator.backoff import Backoff
from navigator.config.common import BackoffConfig


def test_grows_exponentially_up_to_max_without_jitter() -> None:
    backoff = Backoff(BackoffConfig(initial=1, max=10, multiplier=2, jitter=0))
    assert [backoff.next() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    backoff.reset()
    assert backoff.next() == 1


def test_jitter_stays_within_its_fraction_and_under_max() -> None:
    backoff = Backoff(BackoffConfig(initial=1, max=8, multiplier=2, jitter=0.5), random.Random(7))
    waits = [backoff.next() for _ in range(200)]
    for attempt, wait in enumerate(waits):
        base = min(8.0, 2.0**attempt)
        assert base * 0.5 <= wait <= min(8.0, base * 1.5)
    assert len({round(w, 6) for w in waits[:5]}) == 5  # randomised, not lockstep


def test_very_long_outages_do_not_overflow() -> None:
    backoff = Backoff(BackoffConfig(initial=1, max=60, multiplier=3, jitter=0))
    for _ in range(2000):
        wait = backoff.next()
    assert wait == 60
