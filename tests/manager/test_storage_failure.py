"""A storage failure is not the edge's fault: the ack says RETRY, nothing changes, the resend applies."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, full_state, pod
from navigator.v1 import sync_pb2


@pytest.fixture
def manager_options(tmp_path: Path) -> dict[str, Any]:
    # Give up quickly when another process holds the database's write lock.
    return {"storage_options": {"path": str(tmp_path / "navigator.db"), "busy_timeout": 0.2}}


async def test_storage_failure_acks_retry_and_the_resend_applies(
    edges: RawEdges, manager: TestManager, tmp_path: Path
) -> None:
    edge = await edges.claimed("east", "edge-1")
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
    blocker = sqlite3.connect(tmp_path / "navigator.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        ack = await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("b")]}))
        assert ack.status == sync_pb2.ACK_STATUS_RETRY and "locked" in ack.error
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert [p["name"] for p in await manager.resources(kind="pods")] == ["a"]
    row = await manager.cluster("east")
    assert row is not None and row["connected"]
    ack = await edge.send_state(full_state("east", "edge-1", 3, {"pods": [pod("b")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    assert [p["name"] for p in await manager.resources(kind="pods")] == ["b"]
