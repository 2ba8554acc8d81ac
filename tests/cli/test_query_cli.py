"""``navigator query`` as a real process against a real manager: filters, JSON shapes, tables, the joined view."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, full_state, pod, resource
from navigator.v1 import sync_pb2

COMMAND = [sys.executable, "-m", "navigator.cli.main", "query"]


def service(name: str, namespace: str = "shop") -> sync_pb2.Resource:
    data = {
        "type": "ClusterIP",
        "cluster_ip": "10.96.0.10",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}],
    }
    return resource("services", name, namespace, labels={"app": name}, data=data)


def endpointslice(service_name: str, pods: list[tuple[str, str, bool]], namespace: str = "shop") -> sync_pb2.Resource:
    endpoints = [
        {
            "addresses": [ip], "ready": ready, "serving": ready, "terminating": False, "node_name": "node-1",
            "zone": "a", "target_ref": {"kind": "Pod", "namespace": namespace, "name": name, "uid": f"uid-{name}"},
        }
        for name, ip, ready in pods
    ]  # fmt: skip
    data = {
        "service": service_name,
        "address_type": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    labels = {"kubernetes.io/service-name": service_name}
    return resource("endpointslices", f"{service_name}-abcde", namespace, labels=labels, data=data)


def shop_pod(name: str, ip: str, ready: bool, app: str = "web") -> sync_pb2.Resource:
    data = {"phase": "Running", "pod_ip": ip, "node_name": "node-1", "ready": ready, "restarts": 0}
    return pod(name, "shop", labels={"app": app, "tier": "frontend" if app == "web" else "backend"}, data=data)


@pytest.fixture
async def populated(tmp_path: Path) -> AsyncIterator[TestManager]:
    async with run_test_manager(tmp_path) as mgr:
        for cluster, web_ready in (("east", True), ("west", False)):
            async with RawEdge(mgr.address) as edge:
                await edge.identify(cluster, f"edge-{cluster}", metadata={"region": cluster})
                state = full_state(
                    cluster,
                    f"edge-{cluster}",
                    1,
                    {
                        "services": [service("web"), service("db")],
                        "endpointslices": [
                            endpointslice("web", [("web-1", "10.0.0.1", True), ("web-2", "10.0.0.2", web_ready)])
                        ],
                        "pods": [
                            shop_pod("web-1", "10.0.0.1", True),
                            shop_pod("web-2", "10.0.0.2", web_ready),
                            shop_pod("db-1", "10.0.0.3", True, app="db"),
                            pod("coredns", "kube-system"),
                        ],
                    },
                )
                assert (await edge.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
        yield mgr


async def navigator(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def as_json(mgr: TestManager, *args: str) -> list[dict[str, Any]]:
    code, out, err = await navigator(*args, "--manager", mgr.address, "-o", "json")
    assert code == 0, err
    rows: list[dict[str, Any]] = orjson.loads(out)
    return rows


async def test_clusters_json(populated: TestManager) -> None:
    rows = await as_json(populated, "clusters")
    assert [r["cluster"] for r in rows] == ["east", "west"]
    east = rows[0]
    assert set(east) >= {"cluster", "edge_id", "status", "connected", "last_sync", "metadata", "counts", "errors"}
    assert east["edge_id"] == "edge-east" and east["status"] == "DISCONNECTED" and east["connected"] is False
    assert east["counts"] == {"endpointslices": 1, "pods": 4, "services": 2}
    assert east["metadata"] == {"region": "east"} and east["errors"] == []
    assert east["last_sync"].endswith("Z")


async def test_pods_filters_and_shape(populated: TestManager) -> None:
    rows = await as_json(populated, "pods", "-n", "shop", "-l", "app=web,tier!=db", "--cluster", "west")
    assert [(r["cluster"], r["name"]) for r in rows] == [("west", "web-1"), ("west", "web-2")]
    web2 = rows[1]
    for key in ("cluster", "namespace", "name", "uid", "resource_version", "labels", "phase", "pod_ip", "node_name"):
        assert key in web2
    assert (web2["ready"], web2["pod_ip"], web2["labels"]["app"]) == (False, "10.0.0.2", "web")
    assert len(await as_json(populated, "pods")) == 8
    assert [r["name"] for r in await as_json(populated, "pods", "-l", "app in (db)")] == ["db-1", "db-1"]
    assert await as_json(populated, "pods", "-l", "!app", "-n", "shop") == []


async def test_services_and_endpointslices_shape(populated: TestManager) -> None:
    [svc] = await as_json(populated, "services", "--cluster", "east", "--name", "web")
    assert (svc["type"], svc["cluster_ip"], svc["selector"]) == ("ClusterIP", "10.96.0.10", {"app": "web"})
    assert svc["ports"] == [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}]
    [eps] = await as_json(populated, "endpointslices", "--cluster", "west")
    assert (eps["service"], eps["address_type"]) == ("web", "IPv4")
    assert set(eps["endpoints"][0]) == {"addresses", "ready", "serving", "terminating", "node_name", "zone", "target_ref"}
    assert eps["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


async def test_resources_any_kind(populated: TestManager) -> None:
    rows = await as_json(populated, "resources", "--kind", "pods", "-n", "kube-system")
    assert [(r["cluster"], r["kind"], r["name"]) for r in rows] == [("east", "pods", "coredns"), ("west", "pods", "coredns")]
    assert rows[0]["data"]["phase"] == "Running" and rows[0]["labels"] == {}
    assert len(await as_json(populated, "resources")) == 2 * 7


async def test_joined_service_view(populated: TestManager) -> None:
    views = await as_json(populated, "service", "web", "-n", "shop")
    assert [v["cluster"] for v in views] == ["east", "west"]
    east, west = views
    assert (east["cluster_ip"], east["ready_endpoints"], west["ready_endpoints"]) == ("10.96.0.10", 2, 1)
    assert [(e["pod"], e["ready"], e["pod_ready"]) for e in west["endpoints"]] == [
        ("web-1", True, True),
        ("web-2", False, False),
    ]
    code, out, err = await navigator("service", "web", "-n", "shop", "--manager", populated.address)
    assert code == 0, err
    assert "web-2" in out and "10.96.0.10" in out
    code, _, err = await navigator("service", "nope", "-n", "shop", "--manager", populated.address)
    assert code == 2 and "shop/nope was not found" in err


async def test_tables(populated: TestManager) -> None:
    for view, expected in (("clusters", "DISCONNECTED"), ("pods", "web-2"), ("services", "80/TCP→8080"),
                           ("endpointslices", "1/2"), ("resources", "coredns")):  # fmt: skip
        code, out, err = await navigator(view, "--manager", populated.address)
        assert code == 0, err
        assert expected in out, out


async def test_manager_address_from_the_environment(populated: TestManager) -> None:
    code, out, _ = await navigator("clusters", "-o", "json", env={"NAVIGATOR_MANAGER": populated.address})
    assert code == 0 and len(orjson.loads(out)) == 2


async def test_unreachable_manager_is_one_line_and_exit_1() -> None:
    code, out, err = await navigator("pods", "--manager", "127.0.0.1:1", "--timeout", "5")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cannot reach the manager at 127.0.0.1:1")


async def test_a_bad_selector_is_a_clear_error(populated: TestManager) -> None:
    code, _, err = await navigator("pods", "-l", "app in (web", "--manager", populated.address)
    assert code == 2 and "label selector" in err and "Traceback" not in err
