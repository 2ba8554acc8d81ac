"""A real manager serving the HTTP API (gRPC, SQLite, ``http.listen`` on a free port) with two clusters sent by
raw edges, an HTTP client for it, and real Chromium for the dashboard tests.

Chromium is Debian's ``chromium`` package: under ``CI=true`` the session installs it
when it is absent (as root, with apt-get); elsewhere, without it, the browser tests
skip, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, endpointslice, full_state, pod, service
from navigator.v1 import sync_pb2

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

EDGE_TOKENS = {"east": "east-edge-token", "west": "west-edge-token"}

#: Reader tokens: one reads everything, one only the cluster east.
READERS = [
    {"name": "ops", "token": "ops-reader-token"},
    {"name": "east-team", "token": "east-reader-token", "clusters": ["east"]},
]


def shop_pod(name: str, ip: str, ready: bool, app: str = "web") -> sync_pb2.Resource:
    data = {"phase": "Running", "pod_ip": ip, "node_name": "node-1", "ready": ready, "restarts": 0}
    return pod(name, "shop", uid=f"uid-{name}", labels={"app": app, "tier": "frontend" if app == "web" else "backend"},
               data=data)  # fmt: skip


def cluster_state(cluster: str, sequence: int, web_ready: bool) -> sync_pb2.ClusterState:
    return full_state(
        cluster,
        f"edge-{cluster}",
        sequence,
        {
            "services": [service("web", uid="svc-web"), service("db", uid="svc-db")],
            "endpointslices": [endpointslice("web", [("web-1", "10.0.0.1", True), ("web-2", "10.0.0.2", web_ready)])],
            "pods": [
                shop_pod("web-1", "10.0.0.1", True),
                shop_pod("web-2", "10.0.0.2", web_ready),
                shop_pod("db-1", "10.0.0.3", True, app="db"),
                pod("coredns", "kube-system", uid="uid-coredns"),
            ],
        },
    )


@dataclass
class Served:
    """The manager, its HTTP base URL and the connected edges (by cluster), for tests to send more."""

    mgr: TestManager
    url: str
    edges: dict[str, RawEdge]


@pytest.fixture
def web_options() -> dict[str, Any]:
    """Override in a module to start the manager differently (e.g. with readers)."""
    return {}


async def serve(tmp_path: Path, stack: AsyncExitStack, **web_options: Any) -> Served:
    """A manager with HTTP on a free port; east (every web pod ready) and west (web-2 not ready), each with its
    edge still connected. Everything stops with ``stack``."""
    options: dict[str, Any] = {"http": {"listen": "127.0.0.1:0"}, "tokens": EDGE_TOKENS, **web_options}
    mgr = await stack.enter_async_context(run_test_manager(tmp_path, **options))
    edges: dict[str, RawEdge] = {}
    for sequence, (cluster, web_ready) in enumerate((("east", True), ("west", False)), start=1):
        edge = await stack.enter_async_context(RawEdge(mgr.address, EDGE_TOKENS[cluster]))
        await edge.identify(cluster, f"edge-{cluster}", metadata={"region": cluster})
        ack = await edge.send_state(cluster_state(cluster, sequence, web_ready))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        edges[cluster] = edge
    assert mgr.manager.http_url is not None
    return Served(mgr, mgr.manager.http_url.rstrip("/"), edges)


@pytest.fixture
async def served(tmp_path: Path, web_options: dict[str, Any]) -> AsyncIterator[Served]:
    async with AsyncExitStack() as stack:
        yield await serve(tmp_path, stack, **web_options)


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def chromium() -> Iterator[str]:
    """The path of Debian's Chromium; installed here under CI=true when absent, else the test skips."""
    if not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() == "true":
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            pytest.fail("CI=true: the browser tests need Chromium, and it cannot be installed (needs root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "update"], check=True, env=env)  # a fresh image has no package lists
        subprocess.run([apt, "install", "-y", "chromium"], check=True, env=env)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the dashboard tests drive Debian's Chromium, and there is none at {CHROMIUM} "
                    "(apt-get install chromium; under CI=true the tests install it)")
    yield CHROMIUM
