"""The Query client over real gRPC: paging, filters, rows, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from navigator.client.client import AsyncQueryClient, QueryClient, QueryError
from navigator.testing.manager import run_test_manager
from navigator.testing.raw_edge import RawEdge, full_state, pod


async def test_paging_filters_and_both_clients(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-1")
        pods = [pod(f"p{i:04}", "big" if i % 2 else "small", labels={"i": str(i)}) for i in range(1200)]
        await edge.send_state(full_state("east", "edge-1", 1, {"pods": pods}))

        async with AsyncQueryClient(mgr.address) as client:
            rows = [r async for r in client.resources(kind="pods")]
            assert len(rows) == 1200  # more than one page
            keys = [(r["namespace"], r["name"]) for r in rows]
            assert keys == sorted(keys)
            small = [r async for r in client.resources(kind="pods", namespace="small", limit=3)]
            assert [r["name"] for r in small] == ["p0000", "p0002", "p0004"]
            [one] = [r async for r in client.resources(selector="i=7")]
            assert (one["namespace"], one["data"]["ready"], one["labels"]) == ("big", True, {"i": "7"})
            [cluster] = await client.clusters()
            assert cluster["counts"] == {"pods": 1200}
            assert await client.clusters("nowhere") == []

        def blocking() -> int:
            with QueryClient(mgr.address) as client:
                return sum(1 for _ in client.resources(kind="pods", cluster="east", namespace="big"))

        assert await asyncio.to_thread(blocking) == 600


async def test_invalid_selector_is_a_query_error(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr, AsyncQueryClient(mgr.address) as client:
        with pytest.raises(QueryError, match="invalid query: cannot parse"):
            [r async for r in client.resources(selector="a in (b")]


def test_unreachable_manager() -> None:
    with QueryClient("127.0.0.1:1", timeout=5) as client, pytest.raises(QueryError, match="cannot reach the manager"):
        client.clusters()


async def test_a_client_that_stops_reading_does_not_hold_the_manager(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-1")
        await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod(f"p{i}") for i in range(3000)]}))
        for _ in range(3):
            client = AsyncQueryClient(mgr.address)
            stream = client.resources(kind="pods")
            await anext(stream)
            await stream.aclose()
            await client.close()
        # The manager still answers, and shuts down promptly (no stuck producer threads).
        async with AsyncQueryClient(mgr.address) as client:
            assert len(await client.clusters()) == 1
