"""A FULL against the manager's versions (protocol 2): a new edge sends only what differs.

Over real gRPC to a real manager on SQLite, with a raw edge speaking the protocol.
"""

from __future__ import annotations

import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdge, RawEdges, chunked, full_state, pod
from navigator.v1 import sync_pb2

PODS = [pod(f"p{i}", resource_version=str(10 + i)) for i in range(30)]


async def versions_after_accept(edge: RawEdge) -> list[sync_pb2.ResourceKey]:
    keys: list[sync_pb2.ResourceKey] = []
    while True:
        message = await edge.recv()
        assert message is not None and message.WhichOneof("body") == "versions", message
        keys.extend(message.versions.keys)
        if message.versions.last:
            return keys


async def second_edge(edges: RawEdges, edge_id: str = "edge-2") -> tuple[RawEdge, list[sync_pb2.ResourceKey]]:
    """The cluster synced by edge-1, then a new edge (another process) claims it asking for versions."""
    first = await edges.claimed("east", "edge-1")
    ack = await first.send_state(full_state("east", "edge-1", 1, {"pods": PODS}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    await first.close()
    edge = edges.connect(edges.tokens["east"])
    answer = await edge.identify("east", edge_id, protocol_version=2, want_versions=True)
    assert answer is not None and answer.WhichOneof("body") == "accept", answer
    assert answer.accept.versions_follow
    return edge, await versions_after_accept(edge)


@pytest.fixture
def manager_options() -> dict[str, object]:
    return {"grace_period": 0}


async def test_the_versions_list_every_object_held(edges: RawEdges) -> None:
    _, keys = await second_edge(edges)
    assert sorted((k.kind, k.namespace, k.name, k.uid, k.resource_version) for k in keys) == sorted(
        (p.kind, p.namespace, p.name, p.uid, p.resource_version) for p in PODS
    )


async def test_a_full_against_versions_changes_only_what_it_names(edges: RawEdges, manager: TestManager) -> None:
    edge, _ = await second_edge(edges)
    changed = pod("p3", resource_version="99", data={"phase": "Failed"})
    born = pod("p-new", resource_version="100")
    state = full_state("east", "edge-2", 1, {"pods": [changed, born]})
    state.counts["pods"] = len(PODS) + 1 - 1  # the whole state: 30 held, p7 gone, p-new born
    state.against_versions = True
    gone = PODS[7]
    state.deletions.append(sync_pb2.ResourceKey(kind="pods", namespace=gone.namespace, name=gone.name, uid=gone.uid))
    ack = await edge.send_state(state)
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED, ack.error
    assert (ack.added, ack.modified, ack.deleted) == (1, 1, 1)
    rows = {r["name"]: r for r in await manager.resources(kind="pods")}
    assert set(rows) == {p.name for p in PODS} - {"p7"} | {"p-new"}  # every other object kept as it was
    assert rows["p3"]["resource_version"] == "99" and rows["p3"]["phase"] == "Failed"
    assert rows["p4"]["resource_version"] == "14"


async def test_a_chunked_full_against_versions_repeats_its_deletions_in_every_chunk(
    edges: RawEdges, manager: TestManager
) -> None:
    edge, _ = await second_edge(edges)
    changed = [pod(f"p{i}", resource_version=str(200 + i)) for i in range(6)]
    state = full_state("east", "edge-2", 1, {"pods": changed})
    state.counts["pods"] = len(PODS) - 1
    state.against_versions = True
    state.deletions.append(sync_pb2.ResourceKey(kind="pods", namespace="default", name="p29", uid=PODS[29].uid))
    *buffered, last = chunked(state, 2)
    for chunk in buffered:
        assert (await edge.send_state(chunk)).status == sync_pb2.ACK_STATUS_BUFFERED
    ack = await edge.send_state(last)
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED, ack.error
    assert (ack.added, ack.modified, ack.deleted) == (0, 6, 1)
    assert len(await manager.resources(kind="pods")) == len(PODS) - 1


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("deletions in a plain FULL", "must not carry deletions"),
        ("deletion of a kind not in kinds", "not in kinds"),
        ("more objects than counts", "counts say"),
    ],
)
async def test_malformed_fulls_against_versions_are_invalid(
    edges: RawEdges, manager: TestManager, shape: str, message: str
) -> None:
    edge, _ = await second_edge(edges)
    state = full_state("east", "edge-2", 1, {"pods": [pod("p1", resource_version="77")]})
    state.against_versions = shape != "deletions in a plain FULL"
    kind = "services" if shape == "deletion of a kind not in kinds" else "pods"
    state.deletions.append(sync_pb2.ResourceKey(kind=kind, namespace="default", name="p2"))
    if shape == "more objects than counts":
        state.ClearField("deletions")
        state.counts["pods"] = 0
    ack = await edge.send_state(state)
    assert ack.status == sync_pb2.ACK_STATUS_INVALID and message in ack.error
    assert len(await manager.resources(kind="pods")) == len(PODS)  # nothing stored changed


async def test_a_protocol_1_edge_gets_no_versions(edges: RawEdges) -> None:
    edge = edges.connect(edges.tokens["east"])
    answer = await edge.identify("east", "old-edge", protocol_version=1, want_versions=True)
    assert answer is not None and not answer.accept.versions_follow
    ack = await edge.send_state(full_state("east", "old-edge", 1, {"pods": PODS[:3]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED  # the next message is the ack: no Versions came first
