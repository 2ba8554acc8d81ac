"""The sync loop against the simulator: FULL first, then watch DELTAs; poll mode; resyncs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from navigator_plugins.collectors import pods

from navigator.config.edge import EdgeConfig
from navigator.edge.collect import KindCollector
from navigator.edge.kube import KubeClient
from navigator.edge.loop import SyncLoop
from navigator.edge.messages import Delta, FullSnapshot, Outgoing
from navigator.edge.outbox import Outbox
from navigator.kubesim import KubeSim
from navigator.testing.proxy import TcpProxy

from .conftest import PROTOBUF, Running, running, through


@pytest.fixture
def start_loop(kubesim: KubeSim, make_config: Callable[..., EdgeConfig]) -> Callable[..., Any]:
    def start(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Running]:
        return running(make_config("127.0.0.1:1", **overrides))

    return start


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "t"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


async def test_watch_mode_sends_full_then_deltas(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    async with start_loop(sync={"interval": 0.2, "adaptive": {"enabled": False}}) as run:
        first = await run.next()
        assert isinstance(first, FullSnapshot)
        assert sorted(first.kinds) == ["endpointslices", "pods", "services"]
        assert len(first.results["pods"].resources) == kubesim.count("pods")

        quiet = await run.next()
        assert isinstance(quiet, Delta) and quiet.object_count == 0  # "nothing changed" still syncs

        svc = kubesim.list("services")[0]["metadata"]
        target = kubesim.list("pods")[0]["metadata"]
        kubesim.create(pod("newcomer"))
        kubesim.delete("services", svc["namespace"], svc["name"])
        kubesim.patch("pods", target["namespace"], target["name"], {"metadata": {"labels": {"tier": "gold"}}})

        upserts: dict[str, Any] = {}
        deletions: set[str] = set()

        def seen_all(item: Outgoing) -> bool:
            if isinstance(item, Delta):
                upserts.update({r.name: r for r in item.upserts})
                deletions.update(r.name for r in item.deletions if r.kind == "services")
            return "newcomer" in upserts and target["name"] in upserts and svc["name"] in deletions

        await run.until(seen_all)
        assert upserts["newcomer"].kind == "pods" and upserts["newcomer"].data["containers"] == ["c"]
        assert upserts[target["name"]].labels["tier"] == "gold"


async def test_latest_event_per_object_wins(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    async with start_loop(sync={"interval": 2, "adaptive": {"enabled": False}}) as run:
        assert isinstance(await run.next(), FullSnapshot)
        kubesim.create(pod("brief"))
        kubesim.delete("pods", "default", "brief")
        delta = await run.until(lambda i: isinstance(i, Delta) and i.object_count > 0)
        assert isinstance(delta, Delta)
        assert [r.name for r in delta.upserts] == []
        assert [r.name for r in delta.deletions] == ["brief"]


async def test_expired_watch_leads_to_a_full_resync(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    kubesim.faults.set("pods", 410, times=1, verbs=["watch"])
    async with start_loop(sync={"interval": 0.2, "adaptive": {"enabled": False}}) as run:
        assert isinstance(await run.next(), FullSnapshot)
        again = await run.until(lambda i: isinstance(i, FullSnapshot))
        assert isinstance(again, FullSnapshot) and not again.errors


async def test_poll_mode_sends_a_full_state_every_interval(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    async with start_loop(sync={"interval": 0.1, "mode": "poll", "adaptive": {"enabled": False}}) as run:
        items = [await run.next() for _ in range(3)]
        assert all(isinstance(i, FullSnapshot) for i in items)


async def test_request_full_wakes_the_loop_at_once(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    async with start_loop(sync={"interval": 30, "mode": "poll", "adaptive": {"enabled": False}}) as run:
        assert isinstance(await run.next(), FullSnapshot)
        run.loop.request_full()
        assert isinstance(await run.next(timeout=5), FullSnapshot)


async def test_failed_kind_is_retried_at_the_next_sync(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    kubesim.faults.set("pods", 500, verbs=["list"])
    async with start_loop(sync={"interval": 0.2, "adaptive": {"enabled": False}}) as run:
        first = await run.next()
        assert isinstance(first, FullSnapshot)
        assert sorted(first.kinds) == ["endpointslices", "services"]
        assert [e.kind for e in first.errors] == ["pods"] and first.cached_kinds == []
        kubesim.faults.clear()
        healed = await run.until(lambda i: isinstance(i, FullSnapshot))
        assert isinstance(healed, FullSnapshot) and sorted(healed.kinds) == ["endpointslices", "pods", "services"]


async def test_busy_cluster_shortens_the_poll_interval(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    sync = {"interval": 0.4, "mode": "poll", "adaptive": {"min_interval": 0.1, "busy_changes": 5}}
    async with start_loop(sync=sync) as run:
        assert isinstance(await run.next(), FullSnapshot)
        for i in range(10):
            kubesim.create(pod(f"busy-{i}"))

        def has_busy(item: Outgoing) -> bool:
            return isinstance(item, FullSnapshot) and any(r.name == "busy-9" for r in item.results["pods"].resources)

        await run.until(has_busy)
        assert run.loop.stats.interval == pytest.approx(0.2)


async def test_watch_refused_by_rbac_falls_back_to_listing(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    kubesim.faults.set("services", 403, verbs=["watch"])
    async with start_loop(sync={"interval": 0.2, "adaptive": {"enabled": False}}) as run:
        assert isinstance(await run.next(), FullSnapshot)
        again = await run.until(lambda i: isinstance(i, FullSnapshot))
        assert isinstance(again, FullSnapshot) and sorted(again.kinds) == ["endpointslices", "pods", "services"]


async def test_a_watched_change_leaves_within_the_batch_window(kubesim: KubeSim, start_loop: Callable[..., Any]) -> None:
    """The interval (here 60 s) paces only the liveness deltas: a change does not wait for it."""
    sync = {"interval": 60, "batch_window": 0.05, "adaptive": {"enabled": False}}
    async with start_loop(sync=sync) as run:
        assert isinstance(await run.next(), FullSnapshot)
        before = time.time()
        kubesim.create(pod("prompt"))
        delta = await run.until(lambda i: isinstance(i, Delta) and i.object_count > 0, timeout=10)
        assert isinstance(delta, Delta) and [r.name for r in delta.upserts] == ["prompt"]
        # Each object carries when the edge saw it, which the manager turns into propagation lag.
        assert len(delta.upserts_observed) == 1 and before <= delta.upserts_observed[0] <= time.time()


async def test_a_burst_leaves_in_deltas_of_at_most_batch_max_objects(
    kubesim: KubeSim, start_loop: Callable[..., Any]
) -> None:
    sync = {"interval": 60, "batch_window": 0.2, "batch_max_objects": 3, "adaptive": {"enabled": False}}
    async with start_loop(sync=sync) as run:
        assert isinstance(await run.next(), FullSnapshot)
        for i in range(10):
            kubesim.create(pod(f"burst-{i}"))
        seen: list[str] = []
        sizes: list[int] = []

        def all_seen(item: Outgoing) -> bool:
            if isinstance(item, Delta) and item.object_count:
                sizes.append(item.object_count)
                seen.extend(r.name for r in item.upserts)
            return len(seen) >= 10

        await run.until(all_seen)
        assert sorted(seen) == sorted(f"burst-{i}" for i in range(10))
        assert max(sizes) <= 3 and len(sizes) == 4


async def test_changes_merge_while_the_stream_has_not_taken_the_last_state(
    kubesim: KubeSim, start_loop: Callable[..., Any]
) -> None:
    """A slow or disconnected stream gets one delta with the latest version of each object, not a backlog."""
    sync = {"interval": 60, "batch_window": 0.01, "adaptive": {"enabled": False}}
    async with start_loop(sync=sync) as run:
        while len(run.outbox) == 0:  # the FULL, left queued: the stream "has not taken it"
            await asyncio.sleep(0.01)
        kubesim.create(pod("merged", {"step": "0"}))
        for step in range(1, 6):
            kubesim.patch("pods", "default", "merged", {"metadata": {"labels": {"step": str(step)}}})


        def last_step_watched() -> bool:
            return any(r.labels.get("step") == "5" for _, r, _ in run.loop._pending.values())

        while not last_step_watched():  # every event has arrived, and none left meanwhile
            await asyncio.sleep(0.01)
        assert len(run.outbox) == 1
        assert isinstance(await run.next(), FullSnapshot)
        delta = await run.until(lambda i: isinstance(i, Delta) and i.object_count > 0)
        assert isinstance(delta, Delta)
        assert [(r.name, r.labels["step"]) for r in delta.upserts] == [("merged", "5")]


async def test_a_silently_dead_watch_is_reopened_and_misses_nothing(
    kubesim: KubeSim, tmp_path: Path, make_config: Callable[..., EdgeConfig]
) -> None:
    """A connection to the API that goes silent without closing (a proxy dropped it) is noticed by its
    silence: no event and no bookmark for kubernetes.watch_idle_timeout, far sooner than the server's
    290 s watch timeout; the change made meanwhile still arrives."""
    host, port = kubesim.url.removeprefix("http://").split(":")
    with TcpProxy(host, int(port)) as proxy:
        path = through(proxy, kubesim, tmp_path)
        config = make_config("127.0.0.1:1", kubernetes={"kubeconfig": str(path), "watch_idle_timeout": 1.5},
                             sync={"interval": 60, "adaptive": {"enabled": False}})  # fmt: skip
        client = KubeClient.from_config(config.kubernetes)
        outbox = Outbox(100)
        collectors = {c.name: KindCollector(c, client, config.kubernetes, PROTOBUF) for c in (pods.COLLECTOR,)}
        loop = SyncLoop(config, collectors, client, outbox)
        task = asyncio.create_task(loop.run())
        try:
            assert isinstance(await asyncio.wait_for(outbox.get(), 10), FullSnapshot)
            proxy.blackhole(True)
            kubesim.create(pod("made-while-silent"))
            await asyncio.sleep(0.5)
            proxy.blackhole(False)  # the open watch stays dead: its bytes were dropped, it never closes

            async def arrived() -> None:
                while True:
                    item = await outbox.get()
                    if isinstance(item, FullSnapshot):
                        names = [r.name for r in item.results["pods"].resources]
                    else:
                        names = [r.name for r in item.upserts]
                    if "made-while-silent" in names:
                        return

            await asyncio.wait_for(arrived(), 30)
        finally:
            task.cancel()
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            client.close()
