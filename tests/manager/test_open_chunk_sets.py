"""Open chunk sets (docs/protocol.md): a FULL whose chunks leave while the edge still collects it.

The manager offers them in its Accept, checks and stages each chunk as it arrives, and
applies the set atomically on the chunk marked ``last``, which alone carries the header.
"""

from __future__ import annotations

import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdge, RawEdges, chunked, full_state, pod
from navigator.v1 import sync_pb2

APPLIED, BUFFERED, INVALID = (
    sync_pb2.ACK_STATUS_APPLIED,
    sync_pb2.ACK_STATUS_BUFFERED,
    sync_pb2.ACK_STATUS_INVALID,
)


@pytest.fixture
async def edge(edges: RawEdges) -> RawEdge:
    return await edges.claimed("east", "edge-1")


async def pod_names(manager: TestManager) -> list[str]:
    return [p["name"] for p in await manager.resources(kind="pods", cluster="east")]


def open_set(sequence: int, names: list[str], per_chunk: int, **kwargs: object) -> list[sync_pb2.ClusterState]:
    state = full_state("east", "edge-1", sequence, {"pods": [pod(n, **kwargs) for n in names]})  # type: ignore[arg-type]
    return chunked(state, per_chunk, open_set=True)


async def test_the_manager_offers_open_chunk_sets(edges: RawEdges) -> None:
    async with edges.connect("east-token") as raw:
        answer = await raw.identify("east", "edge-1")
    assert answer is not None and answer.accept.open_chunk_sets


async def test_an_open_set_is_applied_whole_on_its_last_chunk(edge: RawEdge, manager: TestManager) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("old"), pod("p00")]}))
    chunks = open_set(10, [f"p{i:02}" for i in range(25)], 10)
    assert [c.chunk.count for c in chunks] == [0, 0, 0] and [c.chunk.last for c in chunks] == [False, False, True]
    assert not chunks[0].kinds and list(chunks[-1].kinds) == ["pods"]
    for chunk in chunks[:-1]:
        ack = await edge.send_state(chunk)
        assert (ack.sequence, ack.status) == (chunk.sequence, BUFFERED)
        assert await pod_names(manager) == ["old", "p00"]  # nothing of the set before its last chunk
    ack = await edge.send_state(chunks[-1])
    assert (ack.sequence, ack.status, ack.added, ack.modified, ack.deleted) == (12, APPLIED, 24, 0, 1)
    assert await pod_names(manager) == [f"p{i:02}" for i in range(25)]
    [record] = [c for c in await manager.clusters() if c["cluster"] == "east"]
    assert record["counts"] == {"pods": 25}


async def test_a_set_of_one_open_chunk(edge: RawEdge, manager: TestManager) -> None:
    [only] = open_set(3, ["a", "b"], 10)
    assert only.chunk.last and only.chunk.index == 0
    ack = await edge.send_state(only)
    assert (ack.status, ack.added) == (APPLIED, 2)
    assert await pod_names(manager) == ["a", "b"]


async def test_a_header_before_the_last_chunk_is_refused(edge: RawEdge, manager: TestManager) -> None:
    chunks = open_set(10, ["a", "b", "c"], 1)
    chunks[1].kinds.append("pods")
    assert (await edge.send_state(chunks[0])).status == BUFFERED
    ack = await edge.send_state(chunks[1])
    assert ack.status == INVALID and "only the last chunk of an open set may carry kinds" in ack.error
    # The set is gone: its last chunk alone does not complete anything.
    ack = await edge.send_state(chunks[2])
    assert ack.status == INVALID and "without the set's earlier chunks" in ack.error
    assert await pod_names(manager) == []


async def test_a_bad_object_in_an_early_chunk_discards_the_set(edge: RawEdge, manager: TestManager) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("kept")]}))
    chunks = open_set(10, ["a", "b", "c", "d"], 2)
    chunks[0].resources[1].uid = ""
    ack = await edge.send_state(chunks[0])
    assert ack.status == INVALID and "resource pods/default/b needs kind, name and uid" in ack.error
    for chunk in chunks[1:]:
        assert (await edge.send_state(chunk)).status == INVALID
    assert await pod_names(manager) == ["kept"]


async def test_oversized_labels_in_a_later_chunk_discard_the_set(edge: RawEdge, manager: TestManager) -> None:
    """A chunk's sizes come from the copy the manager digests: labels too big are still refused."""
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("kept")]}))
    chunks = open_set(10, ["a", "b", "c", "d", "e", "f"], 2)
    chunks[1].resources[0].labels.update({f"k{i}": "v" * 1000 for i in range(100)})
    assert (await edge.send_state(chunks[0])).status == BUFFERED
    ack = await edge.send_state(chunks[1])
    assert ack.status == INVALID and "resource pods/default/c takes" in ack.error
    assert "besides its payload" in ack.error
    assert (await edge.send_state(chunks[2])).status == INVALID
    assert await pod_names(manager) == ["kept"]


async def test_an_object_sent_twice_across_chunks_is_refused(edge: RawEdge, manager: TestManager) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("kept")]}))
    chunks = open_set(10, ["a", "b", "a"], 2)
    assert (await edge.send_state(chunks[0])).status == BUFFERED
    ack = await edge.send_state(chunks[1])
    assert ack.status == INVALID and "resource pods/default/a appears more than once" in ack.error
    assert await pod_names(manager) == ["kept"]


async def test_counts_on_the_last_chunk_are_checked_against_the_whole_set(
    edge: RawEdge, manager: TestManager
) -> None:
    chunks = open_set(10, ["a", "b", "c"], 2)
    chunks[-1].counts["pods"] = 2
    assert (await edge.send_state(chunks[0])).status == BUFFERED
    ack = await edge.send_state(chunks[1])
    assert ack.status == INVALID and "counts say 2 pods but the state holds 3" in ack.error
    assert await pod_names(manager) == []


async def test_a_new_set_discards_an_open_one(edge: RawEdge, manager: TestManager) -> None:
    abandoned = open_set(10, ["x", "y", "z"], 1)
    assert (await edge.send_state(abandoned[0])).status == BUFFERED
    closed = chunked(full_state("east", "edge-1", 11, {"pods": [pod("a"), pod("b")]}), 1)
    assert [(await edge.send_state(c)).status for c in closed] == [BUFFERED, APPLIED]
    assert await pod_names(manager) == ["a", "b"]


async def test_a_chunk_with_another_timestamp_is_refused(edge: RawEdge, manager: TestManager) -> None:
    chunks = open_set(10, ["a", "b"], 1)
    chunks[1].timestamp.seconds += 1
    assert (await edge.send_state(chunks[0])).status == BUFFERED
    ack = await edge.send_state(chunks[1])
    assert ack.status == INVALID and "timestamp differs from the set's first chunk" in ack.error


@pytest.mark.parametrize("manager_options", [{"limits": {"max_chunks": 2}}])
async def test_max_chunks_bounds_an_open_set(edge: RawEdge, manager: TestManager) -> None:
    chunks = open_set(10, ["a", "b", "c"], 1)
    assert [(await edge.send_state(c)).status for c in chunks[:2]] == [BUFFERED, BUFFERED]
    ack = await edge.send_state(chunks[2])
    assert ack.status == INVALID and "more than limits.max_chunks (2)" in ack.error
