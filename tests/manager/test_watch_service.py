"""The Watch RPC through a real manager (real gRPC, SQLite file): initial objects, live changes, filters,
deletions under a selector, refusals, and a stalled watcher cut off with the manager's memory bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from navigator.client.client import AsyncQueryClient, InvalidQuery, WatchEnded
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, RawEdges, delta_state, full_state, pod
from navigator.testing.waiting import until
from navigator.v1 import query_pb2, query_pb2_grpc, sync_pb2

WAIT = 20.0


def shop_pod(
    name: str, app: str = "web", rv: str = "1", ready: bool = True, namespace: str = "shop"
) -> sync_pb2.Resource:
    return pod(name, namespace, labels={"app": app}, resource_version=rv, data={"ready": ready})


def gone(name: str, namespace: str = "shop") -> sync_pb2.ResourceKey:
    return sync_pb2.ResourceKey(kind="pods", namespace=namespace, name=name)


class Watcher:
    """One watch through the real async client, read in the background from the start.

    ``next(n)`` returns the next ``n`` rows, ``until(name)`` the rows up to one about ``name``;
    an error that ended the watch is raised by the read that reaches it.
    """

    def __init__(self, client: AsyncQueryClient, **filters: Any) -> None:
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(client.watch(**filters)))

    async def _read(self, rows: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for row in rows:
                self._queue.put_nowait(row)
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def next(self, n: int = 1) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            item = await asyncio.wait_for(self._queue.get(), WAIT)
            if isinstance(item, BaseException):
                raise item
            out.append(item)
        return out

    async def until(self, name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while not rows or rows[-1]["name"] != name:
            rows += await self.next()
        return rows

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task])


WatchFactory = Callable[..., Watcher]


@pytest.fixture
async def watch() -> AsyncIterator[WatchFactory]:
    """``watch(client, **filters)`` starts a ``Watcher``; every one is stopped at the end."""
    started: list[Watcher] = []

    def start(client: AsyncQueryClient, **filters: Any) -> Watcher:
        started.append(Watcher(client, **filters))
        return started[-1]

    yield start
    for watcher in started:
        await watcher.close()


async def subscribed(mgr: TestManager, count: int = 1) -> None:
    """The manager has the watch's subscription (changes from now on reach it)."""
    await until(lambda: len(mgr.manager.feed) == count, f"{count} watch subscriptions")


@pytest.fixture
async def client(manager: TestManager) -> AsyncIterator[AsyncQueryClient]:
    async with AsyncQueryClient(manager.address) as c:
        yield c


@pytest.fixture
async def east(edges: RawEdges) -> RawEdge:
    edge = await edges.claimed("east", "edge-east")
    state = full_state("east", "edge-east", 1, {"pods": [shop_pod("web-1"), shop_pod("web-2"), shop_pod("db-1", "db")],
                                                "services": []})  # fmt: skip
    assert (await edge.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
    return edge


async def apply(
    edge: RawEdge,
    cluster: str,
    sequence: int,
    upserts: Sequence[sync_pb2.Resource] = (),
    deletions: Sequence[sync_pb2.ResourceKey] = (),
) -> None:
    ack = await edge.send_state(delta_state(cluster, f"edge-{cluster}", sequence, upserts, deletions))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED, ack


async def test_initial_objects_then_live_changes_with_their_times(
    manager: TestManager, east: RawEdge, client: AsyncQueryClient, watch: WatchFactory
) -> None:
    w = watch(client, kind="pods", initial=True)
    initial = await w.next(3)
    assert [(r["type"], r["cluster"], r["kind"], r["namespace"], r["name"]) for r in initial] == [
        ("ADDED", "east", "pods", "shop", n) for n in ("db-1", "web-1", "web-2")
    ]
    first = initial[1]
    assert first["labels"] == {"app": "web"} and first["data"]["ready"] is True and first["uid"]
    assert first["applied_at"] is None and first["observed_at"] is None  # a listing, not a change

    await apply(east, "east", 2, [shop_pod("web-1", rv="2", ready=False), shop_pod("web-3")], [gone("db-1")])
    live = await w.next(3)
    assert [(r["type"], r["name"]) for r in live] == [("MODIFIED", "web-1"), ("ADDED", "web-3"), ("DELETED", "db-1")]
    modified, _, deleted = live
    assert modified["changed_fields"] == ["ready"] and modified["data"]["ready"] is False
    assert (modified["resource_version"], modified["old_resource_version"]) == ("2", "1")
    assert modified["applied_at"] and modified["observed_at"] and modified["observed_at"] <= modified["applied_at"]
    assert deleted["data"] is None and deleted["resource_version"] == "1" and deleted["applied_at"]


async def test_filters_and_deletions_under_a_selector(
    manager: TestManager, edges: RawEdges, east: RawEdge, client: AsyncQueryClient, watch: WatchFactory
) -> None:
    west = await edges.claimed("west", "edge-west")
    await west.send_state(full_state("west", "edge-west", 1, {"pods": [shop_pod("web-1")]}))
    w = watch(client, cluster="east", namespace="shop", selector="app=web")
    await subscribed(manager)

    await apply(west, "west", 2, [shop_pod("web-9")], [gone("web-1")])          # another cluster
    await apply(east, "east", 2, [shop_pod("web-4", namespace="other"), shop_pod("db-2", "db")])
    await apply(east, "east", 3, [shop_pod("web-5")])
    await apply(east, "east", 4, [shop_pod("web-5", app="db", rv="2")])         # no longer matches
    # web-2 was never seen by the watch (no --initial): the history knows its last labels matched.
    await apply(east, "east", 5, deletions=[gone("web-2"), gone("db-1"), gone("db-2"), gone("web-5")])
    await apply(east, "east", 6, [shop_pod("marker")])
    rows = await w.until("marker")
    assert [(r["type"], r["cluster"], r["name"]) for r in rows] == [
        ("ADDED", "east", "web-5"),
        ("DELETED", "east", "web-2"),
        ("ADDED", "east", "marker"),
    ]


async def test_invalid_selector_is_refused_as_invalid_argument(
    manager: TestManager, client: AsyncQueryClient, watch: WatchFactory
) -> None:
    with pytest.raises(InvalidQuery, match="label_selector"):
        await watch(client, selector="app in (").next()


async def test_a_watcher_that_leaves_is_forgotten(manager: TestManager, east: RawEdge, watch: WatchFactory) -> None:
    async with AsyncQueryClient(manager.address) as c:
        w = watch(c, kind="pods", initial=True)
        await w.next()
        await subscribed(manager)
    await until(lambda: len(manager.manager.feed) == 0, "the subscription dropped")


@pytest.mark.parametrize("manager_options", [{"watch": {"buffer": 50}}])
async def test_a_stalled_watcher_is_cut_off_and_the_manager_memory_stays_bounded(
    manager: TestManager, east: RawEdge, manager_options: dict[str, Any], watch: WatchFactory
) -> None:
    channel = grpc.aio.insecure_channel(manager.address)
    try:
        call = query_pb2_grpc.QueryStub(channel).Watch(query_pb2.WatchRequest(kind="pods"))
        await subscribed(manager)
        [sub] = list(manager.manager.feed)
        # Nobody reads `call`: big pods fill the connection's buffers, then the subscription's.
        sequence = 2
        while len(manager.manager.feed):
            assert sequence < 2000, "the stalled watcher was never cut off"
            batch = [shop_pod(f"big-{i}", rv=str(sequence)) for i in range(40)]
            for p in batch:
                p.payload = b'{"blob": "' + b"x" * 20_000 + b'"}'
            await apply(east, "east", sequence, batch)
            assert sub.pending <= 50
            sequence += 1
        assert sub.closed and sub.pending == 0 and sub.peak_pending <= 50

        # The call ended at once, without waiting for the reader: what was sent is there, then the reason.
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while (await asyncio.wait_for(call.read(), WAIT)) is not grpc.aio.EOF:
                pass
        assert ended.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "50 changes" in (ended.value.details() or "") and "narrow it" in (ended.value.details() or "")

        # The manager goes on: applies are acknowledged, a new watcher is served.
        async with AsyncQueryClient(manager.address) as c:
            w = watch(c, name="after")
            await subscribed(manager)
            await apply(east, "east", sequence, [shop_pod("after")])
            assert [r["name"] for r in await w.next()] == ["after"]
    finally:
        await channel.close()


async def test_without_history_deletions_under_a_selector_follow_the_initial_listing(
    tmp_path: Path, watch: WatchFactory
) -> None:
    async with run_test_manager(tmp_path, history={"retention": "off"}) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-east")
        await edge.send_state(full_state("east", "edge-east", 1, {"pods": [shop_pod("web-1"), shop_pod("db-1", "db")]}))
        async with AsyncQueryClient(mgr.address) as c:
            w = watch(c, selector="app=web", initial=True)
            assert [r["name"] for r in await w.next()] == ["web-1"]
            await apply(edge, "east", 2, deletions=[gone("db-1"), gone("web-1")])
            await apply(edge, "east", 3, [shop_pod("marker")])
            assert [(r["type"], r["name"]) for r in await w.until("marker")] == [
                ("DELETED", "web-1"), ("ADDED", "marker")
            ]


async def test_a_manager_shutting_down_ends_its_watches_saying_so(tmp_path: Path, watch: WatchFactory) -> None:
    async with run_test_manager(tmp_path) as mgr, AsyncQueryClient(mgr.address) as c:
        w = watch(c)
        task = asyncio.create_task(w.next())
        await subscribed(mgr)
        await mgr.stop()
        with pytest.raises(WatchEnded, match="shutting down"):
            await task


async def test_the_test_harness_watches_in_process(manager: TestManager, east: RawEdge) -> None:
    rows = manager.watch(kind="pods", namespace="shop", initial=True)
    assert [r["name"] for r in [await anext(rows) for _ in range(3)]] == ["db-1", "web-1", "web-2"]
    await apply(east, "east", 2, deletions=[gone("web-2")])
    deleted = await asyncio.wait_for(anext(rows), WAIT)
    assert (deleted["type"], deleted["name"], deleted["cluster"]) == ("DELETED", "web-2", "east")
    await rows.aclose()  # type: ignore[attr-defined]
    assert len(manager.manager.feed) == 0
