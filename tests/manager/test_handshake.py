"""Connecting and claiming a cluster: every rejection is an explicit message plus a matching status."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdge, RawEdges, full_state, identify, pod
from navigator.v1 import sync_pb2


async def rejection(edge: RawEdge) -> tuple[sync_pb2.Reject, grpc.StatusCode, str]:
    answer = await edge.recv()
    assert answer is not None and answer.WhichOneof("body") == "reject", answer
    code, details = await edge.status()
    return answer.reject, code, details


async def test_accept_carries_manager_serializer_and_limits(edges: RawEdges) -> None:
    edge = edges.connect(edges.tokens["east"])
    answer = await edge.identify("east", "edge-1", serializers=["avro", "json", "protobuf"])
    assert answer is not None
    accept = answer.accept
    assert accept.manager_id == "test-manager"
    assert accept.serializer == "json"  # the edge's first choice the manager has
    assert accept.max_message_bytes == 64 * 1024 * 1024
    assert accept.last_sequence == 0


async def test_a_held_cluster_is_refused_to_another_edge(edges: RawEdges) -> None:
    await edges.claimed("east", "edge-1")
    second = edges.connect(edges.tokens["east"])
    await second.send(identify("east", "edge-2"))
    reject, code, details = await rejection(second)
    assert reject.reason == sync_pb2.REJECT_REASON_ALREADY_HELD
    assert reject.holder_edge_id == "edge-1"
    assert "held by connected edge 'edge-1'" in reject.message
    assert code is grpc.StatusCode.ALREADY_EXISTS and details == reject.message


async def test_grace_period_then_standby_takes_over_and_old_state_stays(
    edges: RawEdges, manager: TestManager
) -> None:
    holder = await edges.claimed("east", "edge-1")
    ack = await holder.send_state(full_state("east", "edge-1", 1, {"pods": [pod("web-1"), pod("web-2")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    await holder.close()
    await manager.wait_for_status("east", "DISCONNECTED")

    standby = edges.connect(edges.tokens["east"])
    answer = await standby.identify("east", "edge-2")
    assert answer is not None and answer.reject.reason == sync_pb2.REJECT_REASON_GRACE_PERIOD
    assert 0 < answer.reject.retry_after_seconds <= 0.5
    assert (await standby.status())[0] is grpc.StatusCode.UNAVAILABLE
    # Meanwhile the last known state stays queryable.
    assert [p["name"] for p in await manager.resources(kind="pods", cluster="east")] == ["web-1", "web-2"]

    await asyncio.sleep(answer.reject.retry_after_seconds + 0.05)
    standby = edges.connect(edges.tokens["east"])
    answer = await standby.identify("east", "edge-2")
    assert answer is not None and answer.WhichOneof("body") == "accept"
    assert answer.accept.last_sequence == 0  # sequences are per edge id
    row = await manager.wait_for_status("east", "INITIALIZING")
    assert row["edge_id"] == "edge-2"
    assert row["counts"]["pods"] == 2  # still the old state until edge-2 sends its own


async def test_the_same_edge_reclaims_at_once_and_its_old_stream_ends(
    edges: RawEdges, manager: TestManager
) -> None:
    first = await edges.claimed("east", "edge-1")
    await first.send_state(full_state("east", "edge-1", 5, {"pods": [pod("a")]}))
    second = edges.connect(edges.tokens["east"])
    answer = await second.identify("east", "edge-1")
    assert answer is not None and answer.accept.last_sequence == 5
    code, details = await first.status()
    assert code is grpc.StatusCode.ALREADY_EXISTS and "newer stream" in details
    ack = await second.send_state(full_state("east", "edge-1", 6, {"pods": [pod("a"), pod("b")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    row = await manager.wait_for_status("east", "HEALTHY")
    assert row["connected"] and row["edge_id"] == "edge-1"


@pytest.mark.parametrize(
    ("cluster", "token", "in_identify"),
    [
        ("east", "wrong", False),
        ("east", "west-token", False),  # another cluster's token
        ("east", None, False),
        ("north", "east-token", False),  # no token configured for this cluster
        ("east", "wrong", True),
    ],
)
async def test_bad_credentials_are_refused(
    edges: RawEdges, cluster: str, token: str | None, in_identify: bool
) -> None:
    edge = edges.connect(None if in_identify else token)
    await edge.send(
        identify(
            cluster, "edge-1", token=token if in_identify and token else ""
        )
    )
    reject, code, _ = await rejection(edge)
    assert reject.reason == sync_pb2.REJECT_REASON_UNAUTHENTICATED
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert cluster in reject.message
    assert "west" not in reject.message  # never says whose token it was


@pytest.mark.parametrize("version", [1, 2])
async def test_every_supported_protocol_version_is_accepted(edges: RawEdges, version: int) -> None:
    """Version 1 edges (no per-object observation times, no resumption) keep working beside version 2."""
    edge = edges.connect(edges.tokens["east"])
    answer = await edge.identify("east", f"edge-v{version}", protocol_version=version)
    assert answer is not None and answer.WhichOneof("body") == "accept"


async def test_token_in_identify_is_accepted(edges: RawEdges) -> None:
    edge = edges.connect(None)
    answer = await edge.identify("east", "edge-1", token=edges.tokens["east"])
    assert answer is not None and answer.WhichOneof("body") == "accept"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cluster": "East_Bad!"}, "invalid cluster id"),
        ({"edge_id": ""}, "edge_id is empty"),
    ],
)
async def test_malformed_identify(edges: RawEdges, kwargs: dict[str, object], message: str) -> None:
    cluster = str(kwargs.pop("cluster", "east"))
    edge_id = str(kwargs.pop("edge_id", "edge-1"))
    edge = edges.connect(edges.tokens["east"])
    await edge.send(identify(cluster, edge_id, **kwargs))  # type: ignore[arg-type]
    reject, code, _ = await rejection(edge)
    assert reject.reason == sync_pb2.REJECT_REASON_MALFORMED
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert message in reject.message


@pytest.mark.parametrize("version", [0, 3, 99])
async def test_a_protocol_version_the_manager_does_not_speak_is_unsupported(edges: RawEdges, version: int) -> None:
    edge = edges.connect(edges.tokens["east"])
    await edge.send(identify("east", "edge-1", protocol_version=version))
    reject, code, _ = await rejection(edge)
    assert reject.reason == sync_pb2.REJECT_REASON_UNSUPPORTED
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert f"unsupported protocol_version {version} (this manager speaks 1, 2)" in reject.message


@pytest.mark.parametrize(
    "first",
    [
        sync_pb2.EdgeMessage(state=full_state("east", "edge-1", 1, {"pods": []})),
        sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat()),
        sync_pb2.EdgeMessage(),
    ],
)
async def test_anything_but_identify_first_is_malformed(
    edges: RawEdges, first: sync_pb2.EdgeMessage
) -> None:
    edge = edges.connect(edges.tokens["east"])
    await edge.send(first)
    reject, code, _ = await rejection(edge)
    assert reject.reason == sync_pb2.REJECT_REASON_MALFORMED and "must be Identify" in reject.message
    assert code is grpc.StatusCode.INVALID_ARGUMENT


async def test_no_identify_in_time_is_malformed(
    edges: RawEdges, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("navigator.manager.edge_session.IDENTIFY_TIMEOUT", 0.3)
    silent = edges.connect(edges.tokens["east"])
    reject, code, _ = await rejection(silent)
    assert reject.reason == sync_pb2.REJECT_REASON_MALFORMED and "within" in reject.message
    assert code is grpc.StatusCode.INVALID_ARGUMENT


async def test_no_common_serializer(edges: RawEdges) -> None:
    edge = edges.connect(edges.tokens["east"])
    await edge.send(
        identify("east", "e", serializers=["avro"])
    )
    reject, code, _ = await rejection(edge)
    assert reject.reason == sync_pb2.REJECT_REASON_UNSUPPORTED and "avro" in reject.message
    assert code is grpc.StatusCode.FAILED_PRECONDITION


async def test_manager_shutdown_ends_streams_with_unavailable(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1")
    await manager.stop()
    code, details = await edge.status()
    assert code is grpc.StatusCode.UNAVAILABLE and "shutting down" in details
