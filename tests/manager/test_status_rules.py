"""The status rules as functions of the times they are given: the sync rule and the copy-age rule."""

from __future__ import annotations

import pytest

from navigator.config.manager import StatusSection
from navigator.manager.status import RECORD_EVERY, Status, cluster_status, max_age, status_at

#: interval 30s: the sync rule allows 30 * 2 + 10 = 70s.
DEFAULTS = StatusSection()
STRICT = StatusSection(max_age=5.0)


def now_status(last_sync: float, fresh_as_of: float | None, config: StatusSection = DEFAULTS) -> Status:
    return cluster_status(
        connected=True, connected_since=0.0, last_sync=last_sync, sync_interval=30.0, now=1000.0,
        config=config, fresh_as_of=fresh_as_of,
    )  # fmt: skip


def test_max_age_defaults_to_the_sync_rule() -> None:
    assert max_age(30.0, DEFAULTS) == 70.0
    assert max_age(30.0, STRICT) == 5.0


@pytest.mark.parametrize(
    ("last_sync", "fresh_as_of", "config", "expected"),
    [
        (999.0, 990.0, DEFAULTS, Status.HEALTHY),
        (999.0, 930.0, DEFAULTS, Status.HEALTHY),  # 70s old: at the bound
        (999.0, 929.0, DEFAULTS, Status.STALE),  # synced a second ago, but the copy is 71s old
        (999.0, None, DEFAULTS, Status.HEALTHY),  # nothing known since the upgrade: the sync rule alone
        (920.0, 999.0, DEFAULTS, Status.STALE),  # a fresh copy does not excuse a sync too long ago
        (999.0, 994.0, STRICT, Status.STALE),
        (999.0, 996.0, STRICT, Status.HEALTHY),
        (999.0, 1010.0, STRICT, Status.HEALTHY),  # an edge clock ahead of the manager's: young
    ],
)
def test_a_connected_cluster_is_stale_when_its_copy_is_too_old(
    last_sync: float, fresh_as_of: float | None, config: StatusSection, expected: Status
) -> None:
    assert now_status(last_sync, fresh_as_of, config) is expected


def test_the_copy_age_rule_leaves_the_other_states_alone() -> None:
    def status(connected: bool, connected_since: float | None) -> Status:
        return cluster_status(connected=connected, connected_since=connected_since, last_sync=999.0,
                              sync_interval=30.0, now=1000.0, config=STRICT, fresh_as_of=0.0)  # fmt: skip

    assert status(False, None) is Status.DISCONNECTED
    assert status(True, 999.5) is Status.INITIALIZING


def test_the_past_applies_the_copy_age_rule_with_the_record_slack() -> None:
    def then(fresh_as_of: float) -> Status:
        return status_at(last_sync=999.0, sync_interval=30.0, at=1000.0, config=STRICT, fresh_as_of=fresh_as_of)

    assert then(1000.0 - 5.0 - RECORD_EVERY) is Status.HEALTHY
    assert then(1000.0 - 6.0 - RECORD_EVERY) is Status.STALE
