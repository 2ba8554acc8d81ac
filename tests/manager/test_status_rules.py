"""The status rules as functions of what they are given: the sync rule, the copy-age rule, what the edge
reports and what storage says, each with the reason it gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from navigator.config.manager import StatusSection
from navigator.interfaces import KindErrorRecord
from navigator.manager.status import (
    RECORD_EVERY,
    Status,
    StorageFailure,
    Verdict,
    clock,
    cluster_verdict,
    max_age,
    verdict_at,
)

#: interval 30s: the sync rule allows 30 * 2 + 10 = 70s.
DEFAULTS = StatusSection()
STRICT = StatusSection(max_age=5.0)


def now_status(last_sync: float, fresh_as_of: float | None, config: StatusSection = DEFAULTS) -> Status:
    return cluster_verdict(
        connected=True, connected_since=0.0, last_sync=last_sync, sync_interval=30.0, now=1000.0,
        config=config, fresh_as_of=fresh_as_of,
    ).status  # fmt: skip


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
        return cluster_verdict(connected=connected, connected_since=connected_since, last_sync=999.0,
                               sync_interval=30.0, now=1000.0, config=STRICT, fresh_as_of=0.0).status  # fmt: skip

    assert status(False, None) is Status.DISCONNECTED
    assert status(True, 999.5) is Status.INITIALIZING


def test_the_past_applies_the_copy_age_rule_with_the_record_slack() -> None:
    def then(fresh_as_of: float) -> Status:
        return verdict_at(last_sync=999.0, sync_interval=30.0, at=1000.0, config=STRICT, fresh_as_of=fresh_as_of).status

    assert then(1000.0 - 5.0 - RECORD_EVERY) is Status.HEALTHY
    assert then(1000.0 - 6.0 - RECORD_EVERY) is Status.STALE


# -- reasons: what the edge reports, what storage says ------------------------------------------------

API_DOWN = "cannot reach the Kubernetes API at http://10.0.0.1:6443: no answer to GET /version within 5s"
KINDS = ("endpointslices", "pods", "services")


def verdict(**overrides: object) -> Verdict:
    values: dict[str, object] = {
        "connected": True, "connected_since": 0.0, "last_sync": 999.0, "sync_interval": 30.0, "now": 1000.0,
        "config": DEFAULTS, "fresh_as_of": 990.0,
    }  # fmt: skip
    values.update(overrides)
    return cluster_verdict(**values)  # type: ignore[arg-type]


def since(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_a_healthy_cluster_has_no_reason() -> None:
    assert verdict() == Verdict(Status.HEALTHY, "")


def test_an_edge_that_cannot_reach_its_api_makes_the_cluster_stale_and_says_since_when() -> None:
    errors = [KindErrorRecord(kind, API_DOWN, 0, True, since(960.0)) for kind in KINDS]
    result = verdict(errors=errors, kinds=KINDS)
    assert result.status is Status.STALE
    assert result.reason == f"the edge cannot read any kind since {clock(960.0)}: {API_DOWN}"


def test_kinds_failing_alike_are_named_together_and_the_http_status_is_shown() -> None:
    errors = [
        KindErrorRecord("pods", "watch failed: Service Unavailable", 503, True, since(950.0)),
        KindErrorRecord("services", "watch failed: Service Unavailable", 503, True, since(940.0)),
    ]
    result = verdict(errors=errors, kinds=KINDS)
    assert result.status is Status.STALE
    assert result.reason == f"the edge cannot read pods, services since {clock(940.0)}: watch failed: Service Unavailable (HTTP 503)"


def test_a_storage_failure_is_stale_with_its_reason_even_before_any_state_applied() -> None:
    failure = StorageFailure("database or disk is full", 980.0)
    initializing = verdict(last_sync=None, storage=failure)
    assert initializing == Verdict(Status.STALE, f"storage error since {clock(980.0)}: database or disk is full")
    assert verdict(storage=failure).status is Status.STALE
    assert verdict(last_sync=None) == Verdict(Status.INITIALIZING, "the edge connected; no state applied yet")


def test_a_disconnected_cluster_keeps_its_status_and_says_why() -> None:
    failure = StorageFailure("database is locked", 980.0)
    result = verdict(connected=False, storage=failure)
    assert result.status is Status.DISCONNECTED
    assert result.reason.startswith("no edge connected; last state applied") and "database is locked" in result.reason


def test_the_time_rules_say_how_long() -> None:
    silent = verdict(last_sync=900.0, fresh_as_of=900.0)
    assert silent.status is Status.STALE
    assert "no state applied for 100s" in silent.reason and "the copy is 100s old" in silent.reason
    old_copy = verdict(fresh_as_of=900.0)
    assert old_copy.status is Status.STALE and old_copy.reason.startswith("the copy is 100s old")


def test_the_past_counts_the_errors_its_record_kept() -> None:
    errors = [KindErrorRecord("pods", "forbidden", 403)]
    assert verdict_at(last_sync=999.0, sync_interval=30.0, at=1000.0, config=DEFAULTS, errors=errors) == Verdict(
        Status.STALE, "the edge cannot read pods: forbidden (HTTP 403)"
    )
