"""History through the Query service: ``at`` for resources and clusters, ListChanges and Diff.

A real manager (gRPC, SQLite file) is fed a short story by a raw edge; the
questions go through the manager's query service and, where the wire matters
(status codes, paging), through the real gRPC client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from navigator.client.client import AsyncQueryClient, InvalidQuery, QueryError
from navigator.interfaces import StorageError
from navigator.manager.query_service import HISTORY_OFF, diff_records
from navigator.resource import Resource, StoredResource
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, delta_state, full_state, pod, resource
from navigator.v1 import query_pb2, query_pb2_grpc, sync_pb2


def now() -> datetime:
    return datetime.now(UTC)


async def tick() -> datetime:
    """A time strictly between two applied states."""
    await asyncio.sleep(0.02)
    moment = now()
    await asyncio.sleep(0.02)
    return moment


def gone(name: str, namespace: str = "shop", kind: str = "pods") -> sync_pb2.ResourceKey:
    return sync_pb2.ResourceKey(kind=kind, namespace=namespace, name=name)


@dataclass
class Story:
    """The manager and the times between its chapters."""

    mgr: TestManager
    #: Before anything was applied.
    t0: datetime
    #: After the first FULL state: web-1 (app=web), web-2, db-1 (Running) in shop, coredns, a service.
    t1: datetime
    #: After a DELTA: web-1 relabelled tier=gold (rv 2), db-1 Failed (rv 2), web-2 deleted, web-3 added.
    t2: datetime
    #: After web-1 was deleted, and db-1 re-created with a new uid.
    t3: datetime


def shop_pod(name: str, rv: str = "1", phase: str = "Running", **labels: str) -> sync_pb2.Resource:
    return pod(name, "shop", resource_version=rv, labels={"app": name.split("-")[0], **labels}, data={"phase": phase})


async def tell(mgr: TestManager) -> Story:
    t0 = await tick()
    async with RawEdge(mgr.address) as east, RawEdge(mgr.address) as west:
        await east.identify("east", "edge-east", sync_interval=2.0)
        await west.identify("west", "edge-west", sync_interval=2.0)
        first = {
            "pods": [shop_pod("web-1"), shop_pod("web-2"), shop_pod("db-1"), pod("coredns", "kube-system")],
            "services": [resource("services", "web", "shop", labels={"app": "web"}, data={"type": "ClusterIP"})],
        }
        assert (await east.send_state(full_state("east", "edge-east", 1, first))).added == 5
        await west.send_state(full_state("west", "edge-west", 1, {"pods": [pod("coredns", "kube-system")]}))
        t1 = await tick()
        ack = await east.send_state(
            delta_state(
                "east", "edge-east", 2,
                [shop_pod("web-1", "2", tier="gold"), shop_pod("db-1", "2", phase="Failed"), shop_pod("web-3")],
                [gone("web-2")],
            )
        )  # fmt: skip
        assert (ack.added, ack.modified, ack.deleted) == (1, 2, 1)
        t2 = await tick()
        recreated = pod("db-1", "shop", uid="db-1-again", resource_version="7", labels={"app": "db"})
        ack = await east.send_state(delta_state("east", "edge-east", 3, [recreated], [gone("web-1")]))
        assert (ack.added, ack.deleted) == (1, 2)
        t3 = await tick()
    return Story(mgr, t0, t1, t2, t3)


@pytest.fixture
async def story(tmp_path: Path) -> AsyncIterator[Story]:
    async with run_test_manager(tmp_path) as mgr:
        yield await tell(mgr)


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in rows]


def summary(rows: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {(r["type"], r["name"], *r["changed_fields"]) for r in rows}


# -- resources and clusters at a time ----------------------------------------------------


async def test_resources_at_a_time_are_the_objects_as_they_were(story: Story) -> None:
    mgr = story.mgr
    assert await mgr.resources("pods", "east", "shop", at=story.t0) == []
    at1 = await mgr.resources("pods", "east", "shop", at=story.t1)
    assert names(at1) == ["db-1", "web-1", "web-2"]
    assert at1[1]["labels"] == {"app": "web"} and at1[1]["resource_version"] == "1"
    at2 = {r["name"]: r for r in await mgr.resources("pods", "east", "shop", at=story.t2)}
    assert sorted(at2) == ["db-1", "web-1", "web-3"]
    assert at2["web-1"]["labels"] == {"app": "web", "tier": "gold"} and at2["db-1"]["phase"] == "Failed"
    at3 = await mgr.resources("pods", "east", "shop", at=story.t3)
    assert [(r["name"], r["uid"]) for r in at3] == [("db-1", "db-1-again"), ("web-3", at2["web-3"]["uid"])]
    # The deleted pod is still there at a time before its deletion, and gone now.
    assert "web-1" not in names(await mgr.resources("pods", "east", "shop"))


async def test_filters_apply_to_the_past(story: Story) -> None:
    mgr = story.mgr
    assert await mgr.resources("pods", selector="tier=gold", at=story.t1) == []
    assert names(await mgr.resources("pods", selector="tier=gold", at=story.t2)) == ["web-1"]
    everywhere = await mgr.resources("pods", name="coredns", at=story.t1)
    assert [(r["cluster"], r["namespace"]) for r in everywhere] == [("east", "kube-system"), ("west", "kube-system")]
    assert names(await mgr.resources("services", at=story.t3)) == ["web"]
    assert names(await mgr.resources(cluster="west", at=story.t2)) == ["coredns"]


async def test_clusters_at_a_time_have_their_counts_and_status_then(story: Story) -> None:
    mgr = story.mgr
    assert await mgr.clusters(at=story.t0) == []
    east, west = await mgr.clusters(at=story.t1)
    assert (east["cluster"], west["cluster"]) == ("east", "west")
    assert east["counts"] == {"pods": 4, "services": 1} and west["counts"] == {"pods": 1, "services": 0}
    assert east["status"] == "HEALTHY" and east["connected"] is False and east["edge_id"] == "edge-east"
    assert east["last_sync"] is not None and datetime.fromisoformat(east["last_sync"]) <= story.t1
    [east3] = [c for c in await mgr.clusters(at=story.t3) if c["cluster"] == "east"]
    assert east3["counts"] == {"pods": 3, "services": 1}  # web-1, web-2 gone; web-3 and the new db-1


async def test_the_status_then_turns_stale_long_after_the_last_sync(tmp_path: Path) -> None:
    # status.slack 0 and a 0.1 s interval: stale after 0.2 s + the 60 s between kept records.
    async with run_test_manager(tmp_path, status={"slack": 0}) as mgr:
        async with RawEdge(mgr.address) as edge:
            await edge.identify("east", "edge-east", sync_interval=0.1)
            await edge.send_state(full_state("east", "edge-east", 1, {"pods": [pod("a")]}))
        applied = await tick()
        [row] = await mgr.clusters(at=applied)
        assert row["status"] == "HEALTHY"
        # Now that edge is gone: now is "STALE then" once enough time has passed; simulate with the clock.
        mgr.manager.context.clock = lambda: time.time() + 120
        [later] = await mgr.clusters(at=applied + timedelta(seconds=61))
        assert later["status"] == "STALE" and later["counts"] == {"pods": 1}
        [current] = await mgr.clusters()
        assert current["status"] == "DISCONNECTED"


# -- ListChanges -------------------------------------------------------------------------


async def test_changes_newest_first_with_the_changed_fields(story: Story) -> None:
    rows = await story.mgr.changes(cluster="east", kind="pods", namespace="shop")
    chapters = [
        {(r["type"], r["name"], *r["changed_fields"]) for r in rows if lo <= datetime.fromisoformat(r["applied_at"]) < hi}
        for lo, hi in ((story.t2, story.t3), (story.t1, story.t2), (story.t0, story.t1))
    ]  # fmt: skip
    assert chapters == [
        {("DELETED", "web-1"), ("DELETED", "db-1"), ("ADDED", "db-1")},
        {("MODIFIED", "web-1", "labels"), ("MODIFIED", "db-1", "phase"), ("DELETED", "web-2"), ("ADDED", "web-3")},
        {("ADDED", "web-1"), ("ADDED", "web-2"), ("ADDED", "db-1")},
    ]
    assert sum(len(c) for c in chapters) == len(rows)
    stamps = [r["applied_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    # Within the re-creation the DELETED of the old uid comes after (is older than) its ADDED.
    recreated = [(r["type"], r["uid"]) for r in rows if r["name"] == "db-1"][:2]
    assert recreated[0] == ("ADDED", "db-1-again") and recreated[1][0] == "DELETED"


async def test_a_change_row_carries_the_object_after_it(story: Story) -> None:
    [modified] = await story.mgr.changes(name="web-1", since=story.t1, until=story.t2)
    assert {k: modified[k] for k in ("type", "cluster", "kind", "namespace", "name", "resource_version")} == {
        "type": "MODIFIED", "cluster": "east", "kind": "pods", "namespace": "shop", "name": "web-1",
        "resource_version": "2",
    }  # fmt: skip
    assert modified["old_resource_version"] == "1" and modified["changed_fields"] == ["labels"]
    assert modified["labels"] == {"app": "web", "tier": "gold"} and modified["data"]["phase"] == "Running"
    assert modified["applied_at"].endswith("Z") and modified["observed_at"].endswith("Z")
    assert story.t1 < datetime.fromisoformat(modified["applied_at"]) < story.t2
    [deleted] = await story.mgr.changes(name="web-1", since=story.t2)
    assert (deleted["type"], deleted["resource_version"], deleted["data"], deleted["labels"]) == ("DELETED", "2", None, {})


async def test_changes_filters(story: Story) -> None:
    mgr = story.mgr
    assert summary(await mgr.changes(cluster="west")) == {("ADDED", "coredns")}
    assert summary(await mgr.changes(kind="services")) == {("ADDED", "web")}
    assert {r["cluster"] for r in await mgr.changes(namespace="kube-system")} == {"east", "west"}
    assert summary(await mgr.changes(selector="tier=gold")) == {("MODIFIED", "web-1", "labels"), ("DELETED", "web-1")}
    assert summary(await mgr.changes(cluster="east", since=story.t1, until=story.t2, selector="app=db")) == {
        ("MODIFIED", "db-1", "phase")
    }
    assert await mgr.changes(until=story.t0) == []
    assert await mgr.changes(since=story.t3) == []
    newest_two = await mgr.changes(cluster="east", limit=2)
    assert newest_two == (await mgr.changes(cluster="east"))[:2]


async def test_changes_arrive_in_pages_over_grpc(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("big", "edge-big")
        pods = [pod(f"p{i:04}", labels={"i": str(i)}) for i in range(1200)]
        before = await tick()
        await edge.send_state(full_state("big", "edge-big", 1, {"pods": pods}))
        async with AsyncQueryClient(mgr.address) as client:
            rows = [r async for r in client.changes(cluster="big")]
            assert len(rows) == 1200 and {r["type"] for r in rows} == {"ADDED"}
            diff = [r async for r in client.diff(before)]
            assert len(diff) == 1200 and diff[0]["name"] == "p0000" and diff[-1]["name"] == "p1199"
            at = [r async for r in client.resources(kind="pods", at=now())]
            assert len(at) == 1200


# -- Diff --------------------------------------------------------------------------------


async def test_diff_between_two_times(story: Story) -> None:
    rows = await story.mgr.diff(story.t1, story.t2, cluster="east")
    assert [(r["type"], r["name"], r["changed_fields"]) for r in rows] == [
        ("CHANGED", "db-1", ["phase"]),
        ("CHANGED", "web-1", ["labels"]),
        ("REMOVED", "web-2", []),
        ("ADDED", "web-3", []),
    ]
    web1 = rows[1]
    assert (web1["old_resource_version"], web1["resource_version"], web1["labels"]["tier"]) == ("1", "2", "gold")
    assert rows[2]["data"]["phase"] == "Running" and rows[2]["old_resource_version"] == "1"
    assert rows[3]["old_resource_version"] is None and rows[3]["resource_version"] == "1"


async def test_diff_to_now_shows_deletions_and_recreations(story: Story) -> None:
    rows = await story.mgr.diff(story.t1, cluster="east", namespace="shop")
    assert [(r["type"], r["name"], r["uid"]) for r in rows if r["name"] == "db-1"] == [
        ("REMOVED", "db-1", rows[0]["uid"]),
        ("ADDED", "db-1", "db-1-again"),
    ]
    assert {(r["type"], r["name"]) for r in rows if r["name"] != "db-1"} == {
        ("REMOVED", "web-1"), ("REMOVED", "web-2"), ("ADDED", "web-3"),
    }  # fmt: skip
    assert await story.mgr.diff(story.t3) == []
    assert await story.mgr.diff(story.t1, story.t1) == []
    assert [r["name"] for r in await story.mgr.diff(story.t0, story.t1, kind="services")] == ["web"]
    assert [r["name"] for r in await story.mgr.diff(story.t1, story.t2, selector="tier=gold")] == ["web-1"]


# -- errors ------------------------------------------------------------------------------


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        result = call
        if hasattr(result, "__aiter__"):
            [_ async for _ in result]
        else:
            await result
    return caught.value.code(), caught.value.details() or ""


async def test_bad_requests_are_invalid_argument(story: Story) -> None:
    later = now() + timedelta(hours=1)
    async with grpc.aio.insecure_channel(story.mgr.address) as channel:
        stub = query_pb2_grpc.QueryStub(channel)

        def stamp(value: datetime) -> Any:
            message = query_pb2.ListChangesRequest().since
            message.FromDatetime(value)
            return message

        cases = [
            (stub.ListChanges(query_pb2.ListChangesRequest(label_selector="app in (web")), "cannot parse"),
            (stub.ListChanges(query_pb2.ListChangesRequest(since=stamp(later))), "is in the future"),
            (stub.ListChanges(query_pb2.ListChangesRequest(since=stamp(story.t2), until=stamp(story.t1))),
             "is after until"),
            (stub.ListResources(query_pb2.ListResourcesRequest(at=stamp(later))), "at "),
            (stub.ListClusters(query_pb2.ListClustersRequest(at=stamp(later))), "is in the future"),
            (stub.Diff(query_pb2.DiffRequest()), "from_time is required"),
            (stub.Diff(query_pb2.DiffRequest(from_time=stamp(story.t2), to_time=stamp(story.t1))),
             "is after to_time"),
            (stub.Diff(query_pb2.DiffRequest(from_time=stamp(story.t1), label_selector="a in (")), "cannot parse"),
        ]  # fmt: skip
        for call, message in cases:
            code, details = await status_of(call)
            assert code is grpc.StatusCode.INVALID_ARGUMENT, details
            assert message in details


async def test_a_time_older_than_the_retention_says_so(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, history={"retention": "1h"}) as mgr:
        long_ago = now() - timedelta(hours=2)
        async with AsyncQueryClient(mgr.address) as client:
            for ask in (
                lambda: client.resources(at=long_ago),
                lambda: client.diff(long_ago),
            ):
                with pytest.raises(InvalidQuery, match=r"is older than the history retention \(1h\): the manager "
                                                       r"answers for times after"):  # fmt: skip
                    [r async for r in ask()]
            with pytest.raises(InvalidQuery, match="older than the history retention"):
                await client.clusters(at=long_ago)
            # For changes, an early `since` only means "everything kept".
            assert [r async for r in client.changes(since=long_ago)] == []
            assert await client.clusters(at=now() - timedelta(minutes=30)) == []


async def test_history_off_is_failed_precondition_saying_so(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, history={"retention": "off"}) as mgr:
        async with RawEdge(mgr.address) as edge:
            await edge.identify("east", "edge-east")
            await edge.send_state(full_state("east", "edge-east", 1, {"pods": [pod("a")]}))
        earlier = now() - timedelta(minutes=1)
        async with grpc.aio.insecure_channel(mgr.address) as channel:
            stub = query_pb2_grpc.QueryStub(channel)
            request = query_pb2.ListResourcesRequest()
            request.at.FromDatetime(earlier)
            clusters = query_pb2.ListClustersRequest()
            clusters.at.FromDatetime(earlier)
            diff = query_pb2.DiffRequest()
            diff.from_time.FromDatetime(earlier)
            for call in (
                stub.ListChanges(query_pb2.ListChangesRequest()),
                stub.Diff(diff),
                stub.ListResources(request),
                stub.ListClusters(clusters),
            ):
                code, details = await status_of(call)
                assert (code, details) == (grpc.StatusCode.FAILED_PRECONDITION, HISTORY_OFF)
        async with AsyncQueryClient(mgr.address) as client:
            with pytest.raises(QueryError, match=r"cannot answer: history is off \(history.retention: off"):
                [r async for r in client.changes()]
            # The present still answers.
            assert [r["name"] async for r in client.resources(kind="pods")] == ["a"]


def test_diff_merges_two_ordered_streams_and_refuses_disorder() -> None:
    def item(cluster: str, name: str, rv: str = "1", uid: str = "u") -> StoredResource:
        return StoredResource(cluster, Resource("pods", "ns", name, f"{uid}-{name}", rv, {}, {"rv": rv}))

    old = [item("a", "x"), item("a", "y"), item("b", "x", uid="old")]
    new = [item("a", "y", "2"), item("a", "z"), item("b", "x", uid="new"), item("c", "x")]
    assert [(r.type, r.cluster, r.name, tuple(r.changed_fields)) for r in diff_records(old, new)] == [
        ("REMOVED", "a", "x", ()),
        ("CHANGED", "a", "y", ("rv",)),
        ("ADDED", "a", "z", ()),
        ("REMOVED", "b", "x", ()),
        ("ADDED", "b", "x", ()),
        ("ADDED", "c", "x", ()),
    ]
    with pytest.raises(StorageError, match="out of"):
        list(diff_records([item("b", "x"), item("a", "x")], []))
