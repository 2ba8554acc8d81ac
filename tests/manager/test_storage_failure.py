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


async def test_a_storage_failure_shows_on_the_cluster_until_a_state_applies_again(
    edges: RawEdges, manager: TestManager, tmp_path: Path
) -> None:
    """Not INITIALIZING, not HEALTHY: STALE, saying what storage said and since when (kept in memory)."""
    edge = await edges.claimed("east", "edge-1", protocol_version=2)
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
    blocker = sqlite3.connect(tmp_path / "navigator.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        ack = await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("b")]}))
        assert ack.status == sync_pb2.ACK_STATUS_RETRY
        row = await manager.cluster("east")
        assert row is not None and (row["status"], row["connected"]) == ("STALE", True)
        assert row["status_reason"].startswith("storage error since ") and "locked" in row["status_reason"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await edge.send_state(full_state("east", "edge-1", 3, {"pods": [pod("b")]}))).status == (
        sync_pb2.ACK_STATUS_APPLIED
    )
    row = await manager.cluster("east")
    assert row is not None and (row["status"], row["status_reason"]) == ("HEALTHY", "")


async def test_a_full_disk_shows_as_the_storage_error(edges: RawEdges, manager: TestManager) -> None:
    """SQLite may not grow the file (``max_page_count``): what a full disk does to it."""
    backend: Any = manager.storage
    edge = await edges.claimed("east", "edge-1", protocol_version=2)
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
    with backend._write_lock:  # the SQLite backend's one writing connection: the limit is per connection
        pages = backend._writer.execute("PRAGMA page_count").fetchone()[0]
        backend._writer.execute(f"PRAGMA max_page_count={pages}")
    try:
        big = [pod(f"p{i}", labels={"payload": "x" * 60}) for i in range(2000)]
        ack = await edge.send_state(full_state("east", "edge-1", 2, {"pods": big}))
        assert ack.status == sync_pb2.ACK_STATUS_RETRY and "full" in ack.error
        row = await manager.cluster("east")
        assert row is not None and row["status"] == "STALE"
        assert row["status_reason"].startswith("storage error since ")
        assert row["status_reason"].endswith("database or disk is full")
    finally:
        with backend._write_lock:
            backend._writer.execute("PRAGMA max_page_count=1073741823")
    assert (await edge.send_state(full_state("east", "edge-1", 3, {"pods": [pod("b")]}))).status == (
        sync_pb2.ACK_STATUS_APPLIED
    )
    row = await manager.cluster("east")
    assert row is not None and (row["status"], row["status_reason"]) == ("HEALTHY", "")


async def test_a_claim_storage_refuses_shows_the_cluster_with_the_error(
    edges: RawEdges, manager: TestManager, tmp_path: Path
) -> None:
    """A cluster whose very first write fails has no stored record: it is listed all the same, saying why."""
    blocker = sqlite3.connect(tmp_path / "navigator.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        await edges.claimed("east", "edge-1", protocol_version=2)
        rows = await manager.wait_for(
            lambda rs: any(r["cluster"] == "east" and "storage error" in r["status_reason"] for r in rs), timeout=30
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    (row,) = [r for r in rows if r["cluster"] == "east"]
    assert row["status"] in ("STALE", "DISCONNECTED") and "locked" in row["status_reason"]
