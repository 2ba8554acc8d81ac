"""Freshness you can see: per-object observation times, the copy's age and lag, STALE by age, metrics.

Raw edges over real gRPC into a real manager on SQLite. Times are set in the
states the edges send and read from the manager's clock (``SyncContext.clock``),
never measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client.parser import text_string_to_metric_families

from navigator import metrics
from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, delta_state, full_state, pod
from navigator.v1 import sync_pb2


@pytest.fixture
def manager_options() -> dict[str, Any]:
    # The sync rule allows 300s * 2 + 10s; the copy may be 30s old.
    return {"status": {"max_age": "30s"}}


def observed(item: Any, when: float) -> Any:
    """``item`` (a wire Resource or ResourceKey) as observed by the edge at ``when`` (epoch seconds)."""
    item.observed_at.FromNanoseconds(int(when * 1e9))
    return item


def rfc3339(seconds: float) -> str:
    """As rows print times (protobuf's JSON form)."""
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp.ToJsonString()


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_delta_carries_each_objects_observation_time_to_changes_and_the_cluster(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=300, protocol_version=2)
    start = float(int(time.time())) - 20
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}, timestamp=start))
    [full_row] = await manager.clusters()
    assert full_row["fresh_as_of"] == rfc3339(start)
    full_changes = await manager.changes(cluster="east")
    assert {c["observed_at"] for c in full_changes} == {rfc3339(start)}
    applied = parse(full_changes[0]["applied_at"])
    assert full_row["lag_seconds"] == pytest.approx((applied - parse(rfc3339(start))).total_seconds(), abs=1e-6)

    seen_a, seen_c, seen_b_gone, sent = start + 1, start + 2, start + 3, start + 4
    delta = delta_state(
        "east", "edge-1", 2,
        [observed(pod("a", resource_version="2", data={"phase": "Failed"}), seen_a),
         observed(pod("c"), seen_c)],
        [observed(sync_pb2.ResourceKey(kind="pods", namespace="default", name="b"), seen_b_gone)],
        timestamp=sent,
    )  # fmt: skip
    ack = await edge.send_state(delta)
    assert (ack.added, ack.modified, ack.deleted) == (1, 1, 1)
    changes = {c["name"]: c for c in await manager.changes(cluster="east", since=applied + timedelta(microseconds=1))}
    assert {name: c["observed_at"] for name, c in changes.items()} == {
        "a": rfc3339(seen_a), "c": rfc3339(seen_c), "b": rfc3339(seen_b_gone)
    }  # fmt: skip
    [row] = await manager.clusters()
    assert row["fresh_as_of"] == rfc3339(sent)
    delta_applied = parse(changes["a"]["applied_at"])
    newest = parse(rfc3339(seen_b_gone))
    assert row["lag_seconds"] == pytest.approx((delta_applied - newest).total_seconds(), abs=1e-6)
    assert row["status"] == "HEALTHY"


async def test_a_protocol_1_delta_falls_back_to_the_states_time(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=300, protocol_version=1)
    now = float(int(time.time()))  # whole seconds: exact on the wire and in RFC 3339
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}, timestamp=now - 5))
    delta = delta_state("east", "edge-1", 2, [pod("c")], [sync_pb2.ResourceKey(kind="pods", name="a",
                                                                                namespace="default")],
                        timestamp=now - 1)  # fmt: skip
    await edge.send_state(delta)
    changes = await manager.changes(cluster="east")  # newest first: the delta's two, then the FULL's
    assert {(c["type"], c["name"], c["observed_at"]) for c in changes[:2]} == {
        ("DELETED", "a", rfc3339(now - 1)), ("ADDED", "c", rfc3339(now - 1))
    }  # fmt: skip
    [row] = await manager.clusters()
    assert row["fresh_as_of"] == rfc3339(now - 1)


async def test_a_state_that_changes_nothing_keeps_the_lag_and_moves_fresh_as_of(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=300, protocol_version=2)
    now = float(int(time.time()))  # whole seconds: exact on the wire and in RFC 3339
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}, timestamp=now - 10))
    [first] = await manager.clusters()
    await edge.send_state(delta_state("east", "edge-1", 2, timestamp=now - 2))  # the watch had nothing new
    [second] = await manager.clusters()
    assert second["lag_seconds"] == first["lag_seconds"]
    assert (first["fresh_as_of"], second["fresh_as_of"]) == (rfc3339(now - 10), rfc3339(now - 2))


async def test_stale_while_connected_when_the_copy_is_older_than_max_age(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=300, protocol_version=2)
    now = float(int(time.time()))  # whole seconds: exact on the wire and in RFC 3339
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}, timestamp=now))
    ctx = manager.manager.context
    ctx.clock = lambda: now + 20  # the copy is 20s old: within max_age (30s)
    [row] = await manager.clusters()
    assert (row["status"], row["connected"]) == ("HEALTHY", True)
    ctx.clock = lambda: now + 45  # 45s old: STALE, although the last sync (rule: 610s) is recent enough
    [row] = await manager.clusters()
    assert (row["status"], row["connected"]) == ("STALE", True)

    # An edge that keeps syncing but describes the cluster as it was a minute ago is STALE too.
    await edge.send_state(delta_state("east", "edge-1", 2, timestamp=now - 15))
    [row] = await manager.clusters()
    assert row["status"] == "STALE" and row["fresh_as_of"] == rfc3339(now - 15)
    await edge.send_state(delta_state("east", "edge-1", 3, timestamp=now + 44))
    [row] = await manager.clusters()
    assert row["status"] == "HEALTHY"


@pytest.mark.parametrize("manager_options", [{"status": {"stale_after": 2, "slack": 10}}])
async def test_max_age_defaults_to_the_sync_rule(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=30, protocol_version=2)
    now = float(int(time.time())) + 1  # after the claim: a sync before it would be INITIALIZING
    manager.manager.context.clock = lambda: now
    # 30s * 2 + 10s = 70s: a copy 60s old is HEALTHY, one 80s old STALE, right after it was applied.
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}, timestamp=now - 60))
    assert [r["status"] for r in await manager.clusters()] == ["HEALTHY"]
    await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("a")]}, timestamp=now - 80))
    assert [r["status"] for r in await manager.clusters()] == ["STALE"]


async def test_the_past_keeps_freshness_and_the_status_it_gave(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=300, protocol_version=2)
    now = float(int(time.time()))  # whole seconds: exact on the wire and in RFC 3339
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}, timestamp=now - 5))
    [now_row] = await manager.clusters()
    [then] = await manager.clusters(at=parse(now_row["last_sync"]))
    assert (then["fresh_as_of"], then["lag_seconds"]) == (now_row["fresh_as_of"], now_row["lag_seconds"])
    assert then["status"] == "HEALTHY"


async def test_an_observation_time_that_is_no_time_is_refused_and_nothing_changes(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=300, protocol_version=2)
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
    bad = pod("b")
    bad.observed_at.seconds = 10**13
    ack = await edge.send_state(delta_state("east", "edge-1", 2, [bad]))
    assert ack.status == sync_pb2.ACK_STATUS_INVALID and "observed_at is not a valid time" in ack.error
    assert [p["name"] for p in await manager.resources(kind="pods")] == ["a"]


# -- metrics --------------------------------------------------------------------------------------


@pytest.fixture
def metrics_server() -> Iterator[metrics.MetricsServer]:
    running = metrics.start_metrics_server("127.0.0.1", 0)
    try:
        yield running
    finally:
        running.close()


def scrape(server: metrics.MetricsServer) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(httpx.get(server.url, timeout=5).text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def test_propagation_histogram_and_per_cluster_gauges_on_the_metrics_endpoint(
    edges: RawEdges, manager: TestManager, metrics_server: metrics.MetricsServer
) -> None:
    cluster = "east"
    edge = await edges.claimed(cluster, "edge-1", sync_interval=300, protocol_version=2)
    now = float(int(time.time()))  # whole seconds: exact on the wire and in RFC 3339
    before = scrape(metrics_server)
    count = before.get("navigator_propagation_seconds_count", {}).get((), 0.0)
    slow = before.get("navigator_propagation_seconds_bucket", {}).get((("le", "60.0"),), 0.0)

    # A FULL: no histogram samples (its objects all carry the state's time), but the gauges.
    await edge.send_state(full_state(cluster, "edge-1", 1, {"pods": [pod("a"), pod("b")]}, timestamp=now - 100))
    after_full = scrape(metrics_server)
    assert after_full["navigator_propagation_seconds_count"][()] == count
    assert after_full["navigator_copy_age_seconds"][(("cluster", cluster),)] >= 100
    [row] = await manager.clusters()
    assert after_full["navigator_propagation_lag_seconds"][(("cluster", cluster),)] == row["lag_seconds"]

    # A DELTA of three changes: three samples, one of them observed 90s before it was applied.
    delta = delta_state(
        cluster, "edge-1", 2,
        [observed(pod("a", resource_version="2", data={"phase": "Failed"}), now - 90), observed(pod("c"), now - 1)],
        [observed(sync_pb2.ResourceKey(kind="pods", namespace="default", name="b"), now - 1)],
        timestamp=now - 0.5,
    )  # fmt: skip
    await edge.send_state(delta)
    after = scrape(metrics_server)
    assert after["navigator_propagation_seconds_count"][()] == count + 3
    assert after["navigator_propagation_seconds_bucket"][(("le", "60.0"),)] == slow + 2  # the 90s one is above
    [row] = await manager.clusters()
    assert after["navigator_propagation_lag_seconds"][(("cluster", cluster),)] == row["lag_seconds"]
    assert after["navigator_copy_age_seconds"][(("cluster", cluster),)] >= 0.5

    # The edge leaves: another manager may serve the cluster now, so this one stops reporting it.
    await edge.close()
    await manager.wait_for_status(cluster, "DISCONNECTED")
    gone = scrape(metrics_server)
    assert (("cluster", cluster),) not in gone.get("navigator_copy_age_seconds", {})
    assert (("cluster", cluster),) not in gone.get("navigator_propagation_lag_seconds", {})
