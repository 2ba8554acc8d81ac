"""Group commit through real sessions: many edges' states at once, each acked with its own outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, full_state, pod
from navigator.v1 import sync_pb2

CLUSTERS = [f"c{i:02d}" for i in range(12)]


@pytest.fixture
def manager_options() -> dict[str, Any]:
    return {"tokens": {c: f"{c}-token" for c in CLUSTERS}}


@pytest.fixture
async def many(manager: TestManager) -> Any:
    opened = RawEdges(manager.address, {c: f"{c}-token" for c in CLUSTERS})
    yield opened
    await opened.close()


async def test_many_edges_at_once_each_get_their_own_ack(many: RawEdges, manager: TestManager) -> None:
    clusters = CLUSTERS
    claimed = [await many.claimed(c, f"edge-{c}") for c in clusters]
    first = await claimed[0].send_state(full_state("c00", "edge-c00", 1, {"pods": [pod("p", resource_version="5")]}))
    assert first.status == sync_pb2.ACK_STATUS_APPLIED
    states = [
        full_state(c, f"edge-{c}", 2, {"pods": [pod(f"{c}-{n}") for n in range(50)]}) for c in clusters
    ]
    # c00 moves its object back (same uid, an older resourceVersion): refused by storage, alone.
    states[0] = full_state("c00", "edge-c00", 2, {"pods": [pod("p", resource_version="4")]})
    acks = await asyncio.gather(*(edge.send_state(s) for edge, s in zip(claimed, states, strict=True)))
    assert acks[0].status == sync_pb2.ACK_STATUS_INVALID and "not applied" in acks[0].error
    assert [a.status for a in acks[1:]] == [sync_pb2.ACK_STATUS_APPLIED] * 11
    assert all(a.added == 50 for a in acks[1:])
    for c in clusters[1:]:
        assert len(await manager.resources(kind="pods", cluster=c)) == 50
    [kept] = await manager.resources(kind="pods", cluster="c00")
    assert kept["resource_version"] == "5"
    # The refused edge's stream goes on.
    again = await claimed[0].send_state(full_state("c00", "edge-c00", 3, {"pods": [pod("p", resource_version="6")]}))
    assert again.status == sync_pb2.ACK_STATUS_APPLIED
