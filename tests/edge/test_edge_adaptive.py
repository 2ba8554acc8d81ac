from __future__ import annotations

from navigator.config.edge import AdaptiveConfig
from navigator.edge.adaptive import AdaptiveInterval


def interval(**kw: float) -> AdaptiveInterval:
    return AdaptiveInterval(30.0, AdaptiveConfig(min_interval=5, max_interval=300, busy_changes=50, **kw))


def test_busy_syncs_shorten_toward_min_interval() -> None:
    a = interval()
    assert [a.observe(500) for _ in range(4)] == [15.0, 7.5, 5.0, 5.0]


def test_quiet_syncs_lengthen_back_to_base_and_not_beyond() -> None:
    a = interval()
    for _ in range(3):
        a.observe(1000)
    assert a.current == 5.0
    assert [a.observe(0) for _ in range(5)] == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_threshold_and_unknown_changes() -> None:
    a = interval()
    assert a.observe(49) == 30.0
    assert a.observe(50) == 15.0
    assert a.observe(None) == 15.0  # unknown (first collection): keep the current interval


def test_disabled_keeps_the_base_interval() -> None:
    a = AdaptiveInterval(30.0, AdaptiveConfig(enabled=False))
    assert a.observe(10_000) == 30.0


def test_never_beyond_max_interval() -> None:
    a = AdaptiveInterval(30.0, AdaptiveConfig(min_interval=1, max_interval=20))
    assert a.current == 20.0
    assert a.observe(0) == 20.0
