"""Edge ↔ real manager ↔ simulated cluster, end to end over gRPC and SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from navigator import plugin_manager
from navigator.kubesim import KubeSim
from navigator.testing.edge import run_test_edge
from navigator.testing.manager import run_test_manager

from ..plugins.collectors.test_collector_third_party import widget_plugin


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "e2e"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def names(rows: list[dict[str, Any]]) -> set[str]:
    return {r["name"] for r in rows}


async def eventually(check: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if await check():
                return
        except AssertionError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            assert await check(), "condition not met in time"
            return
        await asyncio.sleep(0.05)


async def test_full_sync_then_watch_changes_reach_the_manager(kubesim: KubeSim, tmp_path: Path) -> None:
    async with (
        run_test_manager(tmp_path, tokens={"sim": "s3cret"}) as mgr,
        run_test_edge(kubesim.kubeconfig_path, kubesim.context, mgr.address, "sim", manager={"token": "s3cret"}),
    ):
        row = await mgr.wait_for_status("sim", "HEALTHY")
        assert row["connected"] and row["errors"] == []
        assert row["counts"] == {k: kubesim.count(k) for k in ("endpointslices", "pods", "services")}
        pods = await mgr.resources(kind="pods")
        assert names(pods) == {p["metadata"]["name"] for p in kubesim.list("pods")}

        svc = kubesim.list("services")[0]["metadata"]
        target = kubesim.list("pods")[0]["metadata"]
        kubesim.create(pod("newcomer"))
        kubesim.delete("services", svc["namespace"], svc["name"])
        kubesim.patch("pods", target["namespace"], target["name"], {"metadata": {"labels": {"tier": "gold"}}})

        async def arrived() -> bool:
            gold = await mgr.resources(kind="pods", selector="tier=gold")
            services = await mgr.resources(kind="services")
            new = await mgr.resources(kind="pods", name="newcomer")
            return names(gold) == {target["name"]} and svc["name"] not in names(services) and len(new) == 1

        await eventually(arrived)


async def test_pods_failing_still_delivers_the_rest_and_shows_the_error(kubesim: KubeSim, tmp_path: Path) -> None:
    kubesim.faults.set("pods", 500)
    async with (
        run_test_manager(tmp_path) as mgr,
        run_test_edge(kubesim.kubeconfig_path, kubesim.context, mgr.address, "sim"),
    ):
        rows = await mgr.wait_for(
            lambda rs: any(r["cluster"] == "sim" and r["errors"] and r["counts"].get("services") for r in rs)
        )
        row = next(r for r in rows if r["cluster"] == "sim")
        assert row["counts"]["services"] == kubesim.count("services")
        assert row["counts"]["endpointslices"] == kubesim.count("endpointslices")
        assert not row["counts"].get("pods")
        (error,) = row["errors"]
        assert error["kind"] == "pods" and error["http_status"] == 500 and not error["cached"]


async def test_cached_pods_are_sent_when_pods_start_failing(kubesim: KubeSim, tmp_path: Path) -> None:
    async with (
        run_test_manager(tmp_path) as mgr,
        run_test_edge(kubesim.kubeconfig_path, kubesim.context, mgr.address, "sim",
                      sync={"mode": "poll", "interval": 0.3}) as edge,
    ):
        await mgr.wait_for_status("sim", "HEALTHY")
        kubesim.faults.set("pods", 500)
        rows = await mgr.wait_for(lambda rs: any(r["cluster"] == "sim" and r["errors"] for r in rs))
        (error,) = next(r for r in rows if r["cluster"] == "sim")["errors"]
        assert error["kind"] == "pods" and error["cached"]
        assert len(await mgr.resources(kind="pods")) == kubesim.count("pods")
        assert edge.stats.invalid == 0
        kubesim.faults.clear()
        await mgr.wait_for(lambda rs: any(r["cluster"] == "sim" and not r["errors"] for r in rs))


async def test_manager_restart_resumes_with_the_changes_made_meanwhile(kubesim: KubeSim, tmp_path: Path) -> None:
    """The manager kept its database: the edge sends what it watched meanwhile, not a snapshot."""
    async with (
        run_test_manager(tmp_path) as mgr,
        run_test_edge(kubesim.kubeconfig_path, kubesim.context, mgr.address, "sim",
                      sync={"full_resync_interval": 3600}) as edge,
    ):
        await mgr.wait_for_status("sim", "HEALTHY")
        await mgr.stop()
        await edge.wait_until(lambda e: not e.connected)
        gone = kubesim.list("services")[0]["metadata"]
        kubesim.delete("services", gone["namespace"], gone["name"])
        kubesim.create(pod("born-while-down"))
        await asyncio.sleep(0.5)
        await mgr.start()
        await edge.wait_until(lambda e: e.stats.accepts >= 2 and e.stats.applied_delta >= 1 and e.stats.resumes >= 1)

        async def arrived() -> bool:
            return len(await mgr.resources(kind="pods", name="born-while-down")) == 1

        await eventually(arrived)
        assert gone["name"] not in names(await mgr.resources(kind="services"))
        assert edge.stats.applied_full == 1  # the one before the restart
        assert sorted(names(await mgr.resources(kind="pods"))) == sorted(p["metadata"]["name"] for p in kubesim.list("pods"))


async def test_standby_edge_takes_over_after_the_grace_period(kubesim: KubeSim, tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, grace_period=0.5) as mgr:
        kube = (kubesim.kubeconfig_path, kubesim.context, mgr.address, "sim")
        async with run_test_edge(*kube, edge_id="primary") as primary:
            await primary.wait_until(lambda e: e.stats.applied_full >= 1)
            async with run_test_edge(*kube, edge_id="standby") as standby:
                await standby.wait_until(lambda e: e.stats.rejects >= 1)
                assert "ALREADY_HELD" in standby.stats.last_reject and not standby.connected
                await primary.stop()
                await standby.wait_until(lambda e: e.stats.applied_full >= 1, timeout=20)
                row = await mgr.wait_for_status("sim", "HEALTHY")
                assert row["edge_id"] == "standby"


async def test_chunked_full_state_is_applied_atomically(kubesim_factory: Any, tmp_path: Path) -> None:
    sim = kubesim_factory(pods=400, services=30, namespaces=3)
    async with (
        run_test_manager(tmp_path, limits={"max_message_size": 64 * 1024}) as mgr,
        run_test_edge(sim.kubeconfig_path, sim.context, mgr.address, "big") as edge,
    ):
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.messages_sent > edge.stats.states_sent  # it took several chunks
        row = await mgr.wait_for_status("big", "HEALTHY")
        assert row["counts"]["pods"] == 400
        assert len(await mgr.resources(kind="pods")) == 400


async def test_third_party_kind_reaches_the_manager(kubesim: KubeSim, tmp_path: Path) -> None:
    kubesim.register_kind("acme.example.com", "v1", "Widget", "widgets")
    kubesim.create({"apiVersion": "acme.example.com/v1", "kind": "Widget",
                    "metadata": {"name": "w1", "namespace": "default", "labels": {"color": "red"}},
                    "spec": {"size": 3, "color": "red"}})
    pm = plugin_manager.load_plugins(
        {"collectors": ["pods"], "serializers": ["protobuf", "json"], "transports": ["grpc"]}
    )
    pm.register(widget_plugin())
    async with (
        run_test_manager(tmp_path) as mgr,
        run_test_edge(kubesim.kubeconfig_path, kubesim.context, mgr.address, "sim", pm=pm,
                      plugins={"collectors": ["pods", "widgets"]}),
    ):
        row = await mgr.wait_for_status("sim", "HEALTHY")
        assert row["counts"]["widgets"] == 1
        (widget,) = await mgr.resources(kind="widgets")
        assert widget["name"] == "w1" and widget["labels"] == {"color": "red"}
        assert (widget["size"], widget["color"]) == (3, "red")


async def test_in_process_transport(kubesim: KubeSim, tmp_path: Path) -> None:
    async with (
        run_test_manager(tmp_path, transport="inprocess") as mgr,
        run_test_edge(kubesim.kubeconfig_path, kubesim.context, mgr.address, "sim",
                      plugins={"transport": "inprocess"}) as edge,
    ):
        row = await mgr.wait_for_status("sim", "HEALTHY")
        assert row["counts"]["pods"] == kubesim.count("pods")
        assert edge.stats.applied_full >= 1
