"""Cluster status follows the edge's declared interval; a restart keeps state and shows DISCONNECTED."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, full_state, pod


@pytest.fixture
def manager_options() -> dict[str, Any]:
    # HEALTHY while the last sync is younger than 0.3s * 1 + 0.1s.
    return {"status": {"stale_after": 1.0, "slack": 0.1}}


async def test_status_transitions_follow_the_declared_interval(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=0.3, metadata={"region": "us-east-1"})
    row = await manager.wait_for_status("east", "INITIALIZING")
    assert row["connected"] and row["last_sync"] is None and row["metadata"] == {"region": "us-east-1"}
    assert row["sync_interval"] == 0.3

    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
    row = await manager.wait_for_status("east", "HEALTHY", timeout=0.3)
    assert row["last_sync"] is not None and row["last_sync"].endswith("Z")
    assert row["counts"] == {"pods": 1}

    await manager.wait_for_status("east", "STALE", timeout=2)
    await edge.heartbeat()  # alive, but a heartbeat is not a sync
    await asyncio.sleep(0.05)
    assert (await manager.cluster("east") or {})["status"] == "STALE"
    await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("a")]}))
    await manager.wait_for_status("east", "HEALTHY", timeout=0.3)

    await edge.close()
    row = await manager.wait_for_status("east", "DISCONNECTED")
    assert not row["connected"] and row["edge_id"] == "edge-1" and row["counts"] == {"pods": 1}


async def test_a_slower_edge_gets_a_longer_threshold(edges: RawEdges, manager: TestManager) -> None:
    fast = await edges.claimed("east", "fast", sync_interval=0.2)
    slow = await edges.claimed("west", "slow", sync_interval=5)
    await fast.send_state(full_state("east", "fast", 1, {"pods": []}))
    await slow.send_state(full_state("west", "slow", 1, {"pods": []}))
    await asyncio.sleep(0.5)
    statuses = {r["cluster"]: r["status"] for r in await manager.clusters()}
    assert statuses == {"east": "STALE", "west": "HEALTHY"}


async def test_restart_keeps_state_and_shows_disconnected_until_the_edge_returns(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1", sync_interval=30)
    await edge.send_state(full_state("east", "edge-1", 7, {"pods": [pod("a"), pod("b")]}))
    await manager.wait_for_status("east", "HEALTHY")
    await manager.restart()

    row = await manager.cluster("east")
    assert row is not None
    assert (row["status"], row["connected"], row["edge_id"]) == ("DISCONNECTED", False, "edge-1")
    assert row["counts"] == {"pods": 2}
    assert [p["name"] for p in await manager.resources(kind="pods")] == ["a", "b"]

    # The edge reconnects (same address after the restart) and learns where it left off.
    back = edges.connect(edges.tokens["east"])
    answer = await back.identify("east", "edge-1", sync_interval=30)
    assert answer is not None and answer.accept.last_sequence == 7
    assert (await manager.wait_for_status("east", "INITIALIZING"))["counts"] == {"pods": 2}
    await back.send_state(full_state("east", "edge-1", 8, {"pods": [pod("a")]}))
    await manager.wait_for_status("east", "HEALTHY")


async def test_a_restarted_manager_accepts_any_edge_for_a_disconnected_cluster(
    edges: RawEdges, manager: TestManager
) -> None:
    await edges.claimed("east", "edge-1")
    await manager.restart()
    # Claims are not persisted by the in-memory claims: a standby may take over right away.
    await edges.claimed("east", "edge-2")
