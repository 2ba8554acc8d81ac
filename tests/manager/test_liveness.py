"""Protocol 2 liveness and holder identity, over real gRPC to a real manager.

Heartbeats are answered, and an edge that goes silent (frozen, or a link cut
without a close) loses its stream after three heartbeat periods instead of
holding its cluster until keep-alive gives up; and knowing a holder's edge id and
the cluster's token is not enough to take its stream over from another process.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, delta_state, full_state, pod
from navigator.v1 import sync_pb2

HOLDER_KEY = b"A" * 16


@pytest.fixture
def manager_options() -> dict[str, object]:
    return {"heartbeat": 0.2}


async def test_heartbeats_are_answered_and_a_silent_edge_loses_its_stream(edges: RawEdges) -> None:
    edge = edges.connect(edges.tokens["east"])
    answer = await edge.identify("east", "edge-1", protocol_version=2)
    assert answer is not None and answer.accept.heartbeat_seconds == 0.2
    await edge.send(sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat()))
    echo = await edge.recv()
    assert echo is not None and echo.WhichOneof("body") == "heartbeat"
    # Now silent, as a frozen edge is: the manager ends the stream (3 x 0.2 s), freeing the claim.
    assert await edge.recv(timeout=10) is None
    code, details = await edge.status()
    assert code is grpc.StatusCode.UNAVAILABLE and "sent nothing" in details


async def test_a_protocol_1_edge_is_not_held_to_heartbeats(edges: RawEdges) -> None:
    edge = edges.connect(edges.tokens["east"])
    answer = await edge.identify("east", "edge-1", protocol_version=1)
    assert answer is not None and answer.accept.heartbeat_seconds == 0
    await asyncio.sleep(1.0)  # five silence limits of a protocol 2 edge
    ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED


async def test_the_same_edge_id_from_another_process_cannot_displace_the_holder(
    edges: RawEdges, manager: TestManager
) -> None:
    holder = edges.connect(edges.tokens["east"])
    answer = await holder.identify("east", "edge-1", protocol_version=2, instance_key=HOLDER_KEY)
    assert answer is not None and answer.WhichOneof("body") == "accept"
    assert (await holder.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))).status == 1

    intruder = edges.connect(edges.tokens["east"])  # the cluster's token and the holder's edge id
    refused = await intruder.identify("east", "edge-1", protocol_version=2, instance_key=b"B" * 16)
    assert refused is not None and refused.WhichOneof("body") == "reject"
    assert refused.reject.reason == sync_pb2.REJECT_REASON_ALREADY_HELD
    assert "another process" in refused.reject.message

    ack = await holder.send_state(delta_state("east", "edge-1", 2, [pod("b")]))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED  # the holder kept its stream
    assert {r["name"] for r in await manager.resources(kind="pods")} == {"a", "b"}

    again = edges.connect(edges.tokens["east"])  # the holder's own process reconnecting takes over
    answer = await again.identify("east", "edge-1", protocol_version=2, instance_key=HOLDER_KEY)
    assert answer is not None and answer.WhichOneof("body") == "accept"
    assert await holder.recv() is None
