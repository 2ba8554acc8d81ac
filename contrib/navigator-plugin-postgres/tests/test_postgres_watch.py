"""``navigator watch`` across managers, end to end: two real managers on one PostgreSQL schema, an edge
syncing through the first, and watchers on the second (the client, the command) that see its changes."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson

from navigator.client.client import AsyncQueryClient
from navigator.kubesim import KubeSim
from navigator.processes import navigator_command
from navigator.testing.edge import run_test_edge
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdges, delta_state, full_state, pod
from navigator.v1 import sync_pb2

TOKENS = {"east": "s3cret"}
WAIT = 20.0


class Watcher:
    """A watch through the real async client, read in the background from the start."""

    def __init__(self, client: AsyncQueryClient, **filters: Any) -> None:
        self.rows: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read(client.watch(**filters)))

    async def _read(self, rows: AsyncIterator[dict[str, Any]]) -> None:
        async for row in rows:
            self.rows.append(row)

    async def until(self, name: str) -> list[dict[str, Any]]:
        await wait_until(lambda: any(r["name"] == name for r in self.rows) or self._task.done(), f"a row for {name}")
        if self._task.done() and self._task.exception() is not None:
            raise AssertionError("the watch ended") from self._task.exception()
        return list(self.rows)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task])


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {WAIT:g}s")
        await asyncio.sleep(0.02)


async def subscribed(mgr: TestManager) -> None:
    await wait_until(lambda: len(mgr.manager.feed) == 1, "the watch subscription")


def shop_pod(name: str, app: str = "web", rv: str = "1", ready: bool = True) -> sync_pb2.Resource:
    return pod(name, "shop", labels={"app": app}, resource_version=rv, data={"ready": ready})


def brief(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["type"], r["cluster"], r["name"]) for r in rows]


async def test_a_watcher_on_a_second_manager_sees_the_changes_applied_by_the_first(
    tmp_path: Path, pg_options: dict[str, Any]
) -> None:
    shared: dict[str, Any] = {"storage": "postgres", "storage_options": pg_options, "tokens": TOKENS}
    async with (
        run_test_manager(tmp_path, manager_id="manager-a", **shared) as first,
        run_test_manager(tmp_path, manager_id="manager-b", **shared) as second,
        AsyncQueryClient(first.address) as on_first,
        AsyncQueryClient(second.address) as on_second,
    ):
        there, here = Watcher(on_second, kind="pods"), Watcher(on_first, kind="pods")
        edges = RawEdges(first.address, TOKENS)
        try:
            await subscribed(second)
            await subscribed(first)
            edge = await edges.claimed("east", "edge-east")
            full = full_state("east", "edge-east", 1, {"pods": [shop_pod("web-1"), shop_pod("db-1", "db")]})
            assert (await edge.send_state(full)).status == sync_pb2.ACK_STATUS_APPLIED
            delta = delta_state("east", "edge-east", 2, [shop_pod("web-1", rv="2", ready=False)],
                                [sync_pb2.ResourceKey(kind="pods", namespace="shop", name="db-1")])  # fmt: skip
            assert (await edge.send_state(delta)).status == sync_pb2.ACK_STATUS_APPLIED
            marker = delta_state("east", "edge-east", 3, [shop_pod("marker")])
            assert (await edge.send_state(marker)).status == sync_pb2.ACK_STATUS_APPLIED

            seen = await there.until("marker")
            assert brief(seen) == [  # a FULL's changes in key order
                ("ADDED", "east", "db-1"),
                ("ADDED", "east", "web-1"),
                ("MODIFIED", "east", "web-1"),
                ("DELETED", "east", "db-1"),
                ("ADDED", "east", "marker"),
            ]
            _, added, modified, deleted, _ = seen
            assert added["labels"] == {"app": "web"} and added["data"]["ready"] is True
            assert modified["data"]["ready"] is False and modified["changed_fields"] == ["ready"]
            assert (modified["resource_version"], modified["old_resource_version"]) == ("2", "1")
            assert modified["applied_at"] and modified["observed_at"]
            assert deleted["resource_version"] == "1" and deleted["data"] is None
            # The manager that applied them tells its own watchers the same, once each.
            assert await here.until("marker") == seen
            await asyncio.sleep(0.5)
            assert len(there.rows) == len(here.rows) == len(seen)
        finally:
            await edges.close()
            await there.close()
            await here.close()


def watch_lines(log: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def test_navigator_watch_on_the_second_manager_shows_what_an_edge_syncs_through_the_first(
    tmp_path: Path, pg_options: dict[str, Any]
) -> None:
    """The real thing: a simulated cluster, a real edge on the first manager, the CLI on the second."""
    shared: dict[str, Any] = {"storage": "postgres", "storage_options": pg_options, "tokens": TOKENS}
    log = tmp_path / "watch.log"
    with KubeSim(pods=5, services=1, namespaces=1, seed=4, kubeconfig_path=tmp_path / "kubeconfig") as sim:
        async with (
            run_test_manager(tmp_path, manager_id="manager-a", **shared) as first,
            run_test_manager(tmp_path, manager_id="manager-b", **shared) as second,
            run_test_edge(sim.kubeconfig_path, sim.context, first.address, "east", manager={"token": TOKENS["east"]}),
        ):
            await first.wait_for_status("east", "HEALTHY")
            with log.open("wb") as out:
                # No Python between fork and exec: gRPC ran in this process (see tests/cli/test_watch.py).
                child = subprocess.Popen(
                    navigator_command("watch", "pods", "--manager", second.address, "-o", "json"),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            try:
                await subscribed(second)
                [one, two, *_] = sim.list("pods")
                sim.patch("pods", one["metadata"]["namespace"], one["metadata"]["name"],
                          {"metadata": {"labels": {"tier": "gold"}}})  # fmt: skip
                sim.delete("pods", two["metadata"]["namespace"], two["metadata"]["name"])
                await wait_until(lambda: len(watch_lines(log)) >= 2, "two lines from navigator watch")
                lines = {(row["type"], row["name"]): row for row in watch_lines(log)}
                modified = lines[("MODIFIED", one["metadata"]["name"])]
                assert modified["cluster"] == "east" and modified["labels"]["tier"] == "gold"
                assert modified["applied_at"] and modified["observed_at"]
                assert ("DELETED", two["metadata"]["name"]) in lines
            finally:
                child.terminate()
                child.wait(timeout=WAIT)
