"""A real manager in the test's own event loop: ``async with run_test_manager(tmp_path) as mgr``.

It listens on 127.0.0.1 with a free port (gRPC by default, or the in-process
transport), stores into a SQLite file under ``tmp_path`` unless told
otherwise, and offers query helpers that go through the manager's real query
service. ``restart()`` keeps the address and the database, like restarting the
process::

    async with run_test_manager(tmp_path, tokens={"east": "s3cret"}, grace_period=0.5) as mgr:
        edge_config = {"manager": mgr.edge_settings("east"), ...}
        ...
        await mgr.wait_for_status("east", "HEALTHY")
        pods = await mgr.resources(kind="pods", namespace="default")
        changes = await mgr.changes(kind="pods", since=started)   # history, newest first
        before = await mgr.resources(kind="pods", at=started)     # the pods as they were then
        async for change in mgr.watch(kind="pods", initial=True):  # live, as `navigator watch` shows them
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from navigator.client.client import (
    AsyncQueryClient,
    changes_request,
    diff_request,
    list_request,
    timestamp,
    watch_request,
)
from navigator.client.rows import change_row, cluster_row, diff_row, record_dict, resource_row
from navigator.config.manager import ManagerConfig
from navigator.interfaces import StorageBackend
from navigator.manager.app import Manager
from navigator.manager.readers import IN_PROCESS
from navigator.v1 import query_pb2


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def test_manager_config(
    tmp_path: Path,
    *,
    grace_period: float = 1.0,
    tokens: Mapping[str, str] | None = None,
    storage: str = "sqlite",
    storage_options: Mapping[str, Any] | None = None,
    transport: str = "grpc",
    transport_options: Mapping[str, Any] | None = None,
    sinks: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> ManagerConfig:
    """The config ``run_test_manager`` uses; ``overrides`` deep-merge into it (e.g. ``status={"slack": 0}``)."""
    data: dict[str, Any] = {
        "manager_id": "test-manager",
        "listen": "127.0.0.1:0",
        "grace_period": grace_period,
        "storage": {
            "plugin": storage,
            "options": dict(storage_options) if storage_options is not None else {"path": str(tmp_path / "navigator.db")},
        },
        "transport": {"plugin": transport, "options": dict(transport_options or {})},
        "sinks": sinks or [],
    }
    if tokens is not None:
        data["auth"] = {"tokens": dict(tokens)}
    return ManagerConfig.model_validate(_merge(data, overrides))


test_manager_config.__test__ = False  # type: ignore[attr-defined]


class TestManager:
    """A running manager and helpers to look at what it holds (as the manager's own process: every cluster,
    whatever ``auth.readers`` says; ``query_client(token)`` asks as a reader, over gRPC)."""

    __test__ = False

    def __init__(self, config: ManagerConfig) -> None:
        self.config = config
        self.manager = Manager(config)

    async def start(self) -> None:
        await self.manager.start()
        # Later restarts bind the same address, so edges configured with it reconnect.
        self.config = self.config.model_copy(update={"listen": self.manager.address})
        self.manager.config = self.config

    async def stop(self) -> None:
        await self.manager.stop(grace=1.0)

    async def restart(self) -> None:
        """Stop and start again on the same address and storage, like a process restart."""
        await self.stop()
        self.manager = Manager(self.config)
        await self.start()

    @property
    def address(self) -> str:
        return self.manager.address

    @property
    def storage(self) -> StorageBackend:
        return self.manager.backend

    def edge_settings(self, cluster: str | None = None) -> dict[str, Any]:
        """The ``manager:`` section of an edge config that reaches this manager (with the cluster's token)."""
        settings: dict[str, Any] = {"address": self.address}
        if cluster is not None and self.config.auth is not None and cluster in self.config.auth.tokens:
            settings["token"] = self.config.auth.tokens[cluster]
        return settings

    def query_client(self, token: str | None = None) -> AsyncQueryClient:
        """A real gRPC Query client (gRPC transport only), presenting ``token`` (a reader's, ``auth.readers``)."""
        return AsyncQueryClient(self.address, token=token)

    async def clusters(self, at: datetime | None = None) -> list[dict[str, Any]]:
        """Rows as ``navigator query clusters`` prints them; with ``at``, as they were then."""
        response = await self.manager.list_clusters(query_pb2.ListClustersRequest(at=timestamp(at)), IN_PROCESS)
        return [cluster_row(c) for c in response.clusters]

    async def cluster(self, cluster: str) -> dict[str, Any] | None:
        response = await self.manager.list_clusters(query_pb2.ListClustersRequest(cluster=cluster), IN_PROCESS)
        return cluster_row(response.clusters[0]) if response.clusters else None

    async def resources(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Rows as ``navigator query`` prints them: a kind view when ``kind`` is given, else ``resources``."""
        request = list_request(kind, cluster, namespace, selector, name, None, at)
        rows = []
        async for page in self.manager.list_resources(request, IN_PROCESS):
            rows += [resource_row(record_dict(r), kind or "resources") for r in page.resources]
        return rows

    async def changes(self, **filters: Any) -> list[dict[str, Any]]:
        """Recorded changes, newest first, as ``navigator query changes -o json`` prints them.

        ``filters`` are ``changes_request``'s: cluster, kind, namespace, selector, name, since, until, limit.
        """
        rows = []
        async for page in self.manager.list_changes(changes_request(**filters), IN_PROCESS):
            rows += [change_row(r) for r in page.changes]
        return rows

    async def diff(self, from_time: datetime, to_time: datetime | None = None, **filters: Any) -> list[dict[str, Any]]:
        """What changed between two times, as ``navigator query diff -o json`` prints it (filters: cluster, kind,
        namespace, selector)."""
        rows = []
        async for page in self.manager.diff(diff_request(from_time, to_time, **filters), IN_PROCESS):
            rows += [diff_row(r) for r in page.entries]
        return rows

    async def watch(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Changes as the manager applies them (``query changes`` rows), through its own watch service.

        ``filters`` are ``watch_request``'s: kind, cluster, namespace, selector, name, initial. The
        watch subscribes when the first row is asked for; ``len(mgr.manager.feed)`` counts the watches.
        """
        async with contextlib.aclosing(self.manager.watch(watch_request(**filters), IN_PROCESS)) as pages:
            async for page in pages:
                for record in page.changes:
                    yield change_row(record)

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0, interval: float = 0.05
    ) -> list[dict[str, Any]]:
        """Poll ``clusters()`` until ``predicate`` holds; raise ``TimeoutError`` with the last rows."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.clusters()
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout:g}s; clusters: {rows}")
            await asyncio.sleep(interval)

    async def wait_for_status(self, cluster: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
        rows = await self.wait_for(
            lambda rs: any(r["cluster"] == cluster and r["status"] == status for r in rs), timeout
        )
        return next(r for r in rows if r["cluster"] == cluster)


@asynccontextmanager
async def run_test_manager(tmp_path: Path, **options: Any) -> AsyncIterator[TestManager]:
    """Start a manager (see ``test_manager_config`` for options), yield it, stop it."""
    mgr = TestManager(test_manager_config(tmp_path, **options))
    await mgr.start()
    try:
        yield mgr
    finally:
        await mgr.stop()
