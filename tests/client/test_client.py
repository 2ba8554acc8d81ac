"""The Query client over real gRPC: paging, filters, rows, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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


async def test_the_blocking_and_the_asyncio_client_answer_alike(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-1")
        await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod(f"p{i}", labels={"i": str(i)})
                                                                        for i in range(700)]}))  # fmt: skip

        def ask_blocking() -> tuple[list[dict[str, Any]], list[Any], str]:
            with QueryClient(mgr.address) as client:
                rows = list(client.resources(kind="pods", selector="i notin (3)"))
                clusters = [(c["edge_id"], c["counts"]) for c in client.clusters()]
                with pytest.raises(QueryError) as refused:
                    list(client.resources(selector="i>3"))
            return rows, clusters, str(refused.value)

        async with AsyncQueryClient(mgr.address) as client:
            rows = [r async for r in client.resources(kind="pods", selector="i notin (3)")]
            clusters = [(c["edge_id"], c["counts"]) for c in await client.clusters()]
            with pytest.raises(QueryError) as refused:
                [r async for r in client.resources(selector="i>3")]
        assert len(rows) == 699  # more than one page
        assert await asyncio.to_thread(ask_blocking) == (rows, clusters, str(refused.value))
        assert str(refused.value).startswith("invalid query: cannot use '>'")


async def test_an_unreachable_manager_is_the_same_error_for_the_asyncio_client() -> None:
    async with AsyncQueryClient("127.0.0.1:1", timeout=5) as client:
        with pytest.raises(QueryError, match=r"cannot reach the manager at 127\.0\.0\.1:1"):
            [r async for r in client.resources()]
