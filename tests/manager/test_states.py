"""Processing ClusterStates: validate, apply atomically, detect changes, acknowledge every one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdge, RawEdges, chunked, delta_state, full_state, pod, resource
from navigator.v1 import sync_pb2

APPLIED, BUFFERED, INVALID = (
    sync_pb2.ACK_STATUS_APPLIED,
    sync_pb2.ACK_STATUS_BUFFERED,
    sync_pb2.ACK_STATUS_INVALID,
)


async def pod_names(manager: TestManager) -> list[str]:
    return [p["name"] for p in await manager.resources(kind="pods", cluster="east")]


@pytest.fixture
async def edge(edges: RawEdges) -> RawEdge:
    return await edges.claimed("east", "edge-1")


async def test_every_state_is_acked_in_order_with_counts(edge: RawEdge, manager: TestManager) -> None:
    ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")], "services": []}))
    assert (ack.sequence, ack.status, ack.added) == (1, APPLIED, 2)
    ack = await edge.send_state(
        full_state("east", "edge-1", 2, {"pods": [pod("a", resource_version="2"), pod("c")], "services": []})
    )
    assert (ack.sequence, ack.status, ack.added, ack.modified, ack.deleted) == (2, APPLIED, 1, 1, 1)
    # Several states in flight: acks come back one each, in order.
    for seq in (3, 4, 5):
        await edge.send(sync_pb2.EdgeMessage(state=delta_state("east", "edge-1", seq)))
    acks = [await edge.recv() for _ in range(3)]
    assert [(a.ack.sequence, a.ack.status) for a in acks if a] == [(3, APPLIED), (4, APPLIED), (5, APPLIED)]
    assert await pod_names(manager) == ["a", "c"]


async def test_delta_upserts_and_deletes(edge: RawEdge, manager: TestManager) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}))
    gone = sync_pb2.ResourceKey(kind="pods", namespace="default", name="a")
    ack = await edge.send_state(delta_state("east", "edge-1", 2, [pod("c", labels={"app": "new"})], [gone]))
    assert (ack.status, ack.added, ack.deleted) == (APPLIED, 1, 1)
    assert await pod_names(manager) == ["b", "c"]
    [c] = await manager.resources(kind="pods", selector="app=new")
    assert c["name"] == "c" and c["phase"] == "Running"


async def test_chunked_snapshot_is_applied_atomically(edge: RawEdge, manager: TestManager) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("old")]}))
    chunks = chunked(full_state("east", "edge-1", 10, {"pods": [pod(f"p{i:02}") for i in range(25)]}), 10)
    assert len(chunks) == 3
    for chunk in chunks[:-1]:
        ack = await edge.send_state(chunk)
        assert (ack.sequence, ack.status) == (chunk.sequence, BUFFERED)
        assert await pod_names(manager) == ["old"]  # nothing of the set is visible before it is complete
    ack = await edge.send_state(chunks[-1])
    assert (ack.sequence, ack.status, ack.added, ack.deleted) == (12, APPLIED, 25, 1)
    assert len(await pod_names(manager)) == 25


async def test_incomplete_chunk_set_stores_nothing(edge: RawEdge, manager: TestManager, edges: RawEdges) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("old")]}))
    chunks = chunked(full_state("east", "edge-1", 2, {"pods": [pod(f"p{i}") for i in range(9)]}), 3)
    # A non-chunk state in the middle discards the set; its own state is applied normally.
    await edge.send_state(chunks[0])
    ack = await edge.send_state(delta_state("east", "edge-1", 5))
    assert ack.status == APPLIED
    ack = await edge.send_state(_resequenced(chunks[1], 6))
    assert ack.status == INVALID and "without the set's earlier chunks" in ack.error
    assert await pod_names(manager) == ["old"]
    # The stream ends in the middle of a set: nothing of it is stored either.
    await edge.send_state(_resequenced(chunks[0], 7, snapshot=7))
    await edge.close()
    await manager.wait_for_status("east", "DISCONNECTED")
    assert await pod_names(manager) == ["old"]


def _resequenced(chunk: sync_pb2.ClusterState, sequence: int, snapshot: int | None = None) -> sync_pb2.ClusterState:
    copy = sync_pb2.ClusterState()
    copy.CopyFrom(chunk)
    copy.sequence = sequence
    if snapshot is not None:
        copy.chunk.snapshot_sequence = snapshot
    return copy


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda c: setattr(c.chunk, "index", 2), "out of order"),
        (lambda c: setattr(c.chunk, "count", 5), "differs from the set's count"),
        (lambda c: c.kinds.append("services"), "differ from the set's first chunk"),
        (lambda c: setattr(c, "sequence", c.sequence + 1), "does not follow"),
        (lambda c: setattr(c, "type", sync_pb2.STATE_TYPE_DELTA), "only FULL states may be chunked"),
    ],
)
async def test_chunk_mismatch_discards_the_set(
    edge: RawEdge, manager: TestManager, spoil: Any, message: str
) -> None:
    chunks = chunked(full_state("east", "edge-1", 1, {"pods": [pod(f"p{i}") for i in range(9)]}), 3)
    assert (await edge.send_state(chunks[0])).status == BUFFERED
    bad = _resequenced(chunks[1], chunks[1].sequence)
    spoil(bad)
    ack = await edge.send_state(bad)
    assert ack.status == INVALID and message in ack.error
    # The rest of the broken set is refused too, and nothing was stored.
    ack = await edge.send_state(_resequenced(chunks[2], bad.sequence + 1))
    assert ack.status == INVALID
    assert await pod_names(manager) == []
    # The stream survives: a fresh set goes through.
    fresh = chunked(full_state("east", "edge-1", 20, {"pods": [pod("ok1"), pod("ok2")]}), 1)
    acks = [await edge.send_state(c) for c in fresh]
    assert [a.status for a in acks] == [BUFFERED, APPLIED]
    assert await pod_names(manager) == ["ok1", "ok2"]


@pytest.mark.parametrize("manager_options", [{"limits": {"chunk_timeout": 0.3}}])
async def test_a_chunk_set_that_times_out_is_discarded(edge: RawEdge, manager: TestManager) -> None:
    chunks = chunked(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}), 1)
    await edge.send_state(chunks[0])
    await asyncio.sleep(0.4)
    ack = await edge.send_state(chunks[1])
    assert ack.status == INVALID and "without the set's earlier chunks" in ack.error
    assert await pod_names(manager) == []


def _state(**changes: Any) -> sync_pb2.ClusterState:
    state = full_state("east", "edge-1", 2, {"pods": [pod("new")]})
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def _with_resource(r: sync_pb2.Resource, kinds: tuple[str, ...] = ("pods",)) -> sync_pb2.ClusterState:
    state = full_state("east", "edge-1", 2, {k: [] for k in kinds}, counts=False)
    state.resources.append(r)
    return state


def _counts_off() -> sync_pb2.ClusterState:
    state = full_state("east", "edge-1", 2, {"pods": [pod("new")]})
    state.counts["pods"] = 7
    return state


def _duplicate() -> sync_pb2.ClusterState:
    return full_state("east", "edge-1", 2, {"pods": [pod("twin"), pod("twin")]})


def _delta_with_kinds() -> sync_pb2.ClusterState:
    state = delta_state("east", "edge-1", 2)
    state.kinds.append("pods")
    return state


def _no_timestamp() -> sync_pb2.ClusterState:
    state = _state()
    state.ClearField("timestamp")
    return state


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _state(cluster_id="west"), "does not match the stream's cluster 'east'"),
        (lambda: _state(edge_id="edge-9"), "does not match the stream's edge 'edge-1'"),
        (lambda: _state(sequence=1), "sequence 1 is not greater than the previous state's sequence 1"),
        (lambda: _state(type=sync_pb2.STATE_TYPE_UNSPECIFIED), "type must be"),
        (_no_timestamp, "timestamp is missing"),
        (lambda: _with_resource(pod("x", uid="")), "pods/default/x needs kind, name and uid"),
        (lambda: _with_resource(resource("services", "svc")), "in neither kinds nor cached_kinds"),
        (lambda: _with_resource(pod("x", payload=b"{not json")), "payload cannot be decoded"),
        (lambda: _with_resource(pod("x", payload=b"[1, 2]")), "payload cannot be decoded"),
        (lambda: _with_resource(pod("x", payload=b'{"a": "\xff"}')), "payload cannot be decoded"),
        (lambda: _with_resource(pod("x", payload=b'{"a": 1} {}')), "payload cannot be decoded"),
        (lambda: _with_resource(pod("x", payload=b"x" * 5_000_000)), "limits.max_payload_bytes"),
        (_counts_off, "counts say 7 pods but the state holds 1"),
        (_duplicate, "appears more than once"),
        (_delta_with_kinds, "must not list kinds"),
    ],
)
async def test_invalid_states_are_refused_and_change_nothing(
    edge: RawEdge, manager: TestManager, make: Any, message: str
) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("kept")]}))
    before = await manager.cluster("east")
    ack = await edge.send_state(make())
    assert ack.status == INVALID
    assert message in ack.error
    assert await pod_names(manager) == ["kept"]
    after = await manager.cluster("east")
    assert after is not None and before is not None and after["last_sync"] == before["last_sync"]
    # The stream is still open and the next valid state is applied.
    ack = await edge.send_state(full_state("east", "edge-1", 50, {"pods": [pod("next")]}))
    assert ack.status == APPLIED
    assert await pod_names(manager) == ["next"]


async def test_partial_state_never_deletes_failed_kinds(edge: RawEdge, manager: TestManager) -> None:
    await edge.send_state(
        full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")], "services": [resource("services", "web")]})
    )
    # Pods failed without cache; services collected: pods keep their last state.
    failure = sync_pb2.KindError(kind="pods", message="pods is forbidden", http_status=403, attempts=5)
    ack = await edge.send_state(
        full_state("east", "edge-1", 2, {"services": [resource("services", "api")]}, errors=[failure])
    )
    assert (ack.status, ack.added, ack.deleted) == (APPLIED, 1, 1)
    assert await pod_names(manager) == ["a", "b"]
    row = await manager.cluster("east")
    assert row is not None
    assert [(e["kind"], e["http_status"], e["cached"]) for e in row["errors"]] == [("pods", 403, False)]
    assert "forbidden" in row["errors"][0]["message"]
    since = row["errors"][0]["since"]

    # Pods failing again, now with the edge's cached copy: the cache replaces the set.
    cached_failure = sync_pb2.KindError(kind="pods", message="timeout", cached=True)
    ack = await edge.send_state(
        full_state(
            "east", "edge-1", 3, {"services": [resource("services", "api")]}, cached={"pods": [pod("a")]},
            errors=[cached_failure],
        )
    )  # fmt: skip
    assert (ack.status, ack.deleted) == (APPLIED, 1)
    assert await pod_names(manager) == ["a"]
    row = await manager.cluster("east")
    assert row is not None and row["errors"][0]["cached"] and row["errors"][0]["since"] == since

    # A later successful collection of pods clears the error.
    await edge.send_state(full_state("east", "edge-1", 4, {"pods": [pod("a")], "services": []}))
    row = await manager.cluster("east")
    assert row is not None and row["errors"] == []


async def test_errors_on_deltas_are_kept_until_the_kind_collects_again(edge: RawEdge, manager: TestManager) -> None:
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [], "services": []}))
    failure = sync_pb2.KindError(kind="services", message="watch failed: 500", http_status=500)
    await edge.send_state(delta_state("east", "edge-1", 2, errors=[failure]))
    await edge.send_state(delta_state("east", "edge-1", 3))
    row = await manager.cluster("east")
    assert row is not None and [e["kind"] for e in row["errors"]] == ["services"]
    await edge.send_state(full_state("east", "edge-1", 4, {"services": []}))
    row = await manager.cluster("east")
    assert row is not None and row["errors"] == []
