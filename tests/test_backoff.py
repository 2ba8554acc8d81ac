from __future__ import annotations

import random

import pytest

from navigator.backoff import Backoff, BackoffPolicy
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


def test_a_plugin_policy_paces_like_the_yaml_sections() -> None:
    policy, config = BackoffPolicy(initial=0.5, max=4.0), BackoffConfig(initial=0.5, max=4.0)
    assert (policy.multiplier, policy.jitter) == (config.multiplier, config.jitter) == (2.0, 0.2)
    assert [Backoff(policy).base(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    same = [Backoff(policy, random.Random(3)) for _ in range(2)]
    assert [same[0].next() for _ in range(6)] == [same[1].next() for _ in range(6)]  # a seeded rng repeats


@pytest.mark.parametrize(
    "settings",
    [{"initial": -1.0}, {"initial": 5.0, "max": 1.0}, {"multiplier": 0.5}, {"jitter": 1.5}],
)
def test_a_policy_refuses_settings_that_cannot_pace(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        BackoffPolicy(**settings)
