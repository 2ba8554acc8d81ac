"""The history calls of the Query client over real gRPC: both faces answer alike, errors become QueryErrors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from navigator.client.client import AsyncQueryClient, InvalidQuery, QueryClient, QueryError
from navigator.testing.manager import run_test_manager
from navigator.testing.raw_edge import RawEdge, delta_state, full_state, pod
from navigator.v1 import sync_pb2


async def moment() -> datetime:
    await asyncio.sleep(0.02)
    when = datetime.now(UTC)
    await asyncio.sleep(0.02)
    return when


async def test_the_blocking_and_the_asyncio_client_answer_alike(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-1")
        await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod(f"p{i}", labels={"i": str(i)})
                                                                        for i in range(600)]}))  # fmt: skip
        before = await moment()
        relabelled = pod("p1", resource_version="2", labels={"i": "1", "gold": "yes"})
        await edge.send_state(delta_state("east", "edge-1", 2, [relabelled], [sync_pb2.ResourceKey(
            kind="pods", namespace="default", name="p2")]))  # fmt: skip
        after = await moment()

        def ask_blocking() -> list[Any]:
            with QueryClient(mgr.address) as client:
                return [
                    list(client.changes(cluster="east")),
                    list(client.changes(selector="gold=yes", since=before)),
                    list(client.diff(before, after)),
                    list(client.resources(kind="pods", name="p2", at=before)),
                    client.clusters(at=before),
                ]

        async with AsyncQueryClient(mgr.address) as client:
            answers = [
                [r async for r in client.changes(cluster="east")],
                [r async for r in client.changes(selector="gold=yes", since=before)],
                [r async for r in client.diff(before, after)],
                [r async for r in client.resources(kind="pods", name="p2", at=before)],
                await client.clusters(at=before),
            ]
        assert await asyncio.to_thread(ask_blocking) == answers
        changes, gold, diff, p2, clusters = answers
        assert len(changes) == 602 and {(r["type"], r["name"]) for r in changes[:2]} == {
            ("MODIFIED", "p1"), ("DELETED", "p2")
        }  # fmt: skip
        assert [(r["type"], r["name"], r["changed_fields"]) for r in gold] == [("MODIFIED", "p1", ["labels"])]
        assert [(r["type"], r["name"]) for r in diff] == [("CHANGED", "p1"), ("REMOVED", "p2")]
        assert [r["name"] for r in p2] == ["p2"]
        assert clusters[0]["counts"] == {"pods": 600} and clusters[0]["connected"] is False


async def test_refusals_are_query_errors_naming_the_reason(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, history={"retention": "off"}) as mgr, AsyncQueryClient(mgr.address) as client:
        with pytest.raises(QueryError) as off:
            [r async for r in client.diff(datetime.now(UTC) - timedelta(minutes=1))]
        assert not isinstance(off.value, InvalidQuery)
        assert str(off.value) == (
            f"the manager at {mgr.address} cannot answer: history is off (history.retention: off in the manager "
            "config)"
        )

    async with run_test_manager(tmp_path) as mgr:

        def ask_blocking() -> None:
            with QueryClient(mgr.address) as client:
                list(client.changes(since=datetime.now(UTC) + timedelta(days=1)))

        with pytest.raises(InvalidQuery, match=r"invalid query: since \S+ is in the future"):
            await asyncio.to_thread(ask_blocking)


def test_naive_times_are_refused_before_asking() -> None:
    with QueryClient("127.0.0.1:1") as client, pytest.raises(ValueError, match="has no time zone"):
        list(client.changes(since=datetime(2026, 1, 1)))
