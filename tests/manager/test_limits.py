"""Bounds on what an edge sends (issue #14): every bad value is refused by name, nothing a client
sent is echoed or logged unbounded, and the stream and the stored state survive the refusal."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import json_format, struct_pb2
from loguru import logger

from navigator.manager.chunking import SHARED_BUDGET
from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdge, RawEdges, chunked, delta_state, full_state, pod, resource
from navigator.v1 import query_pb2, query_pb2_grpc, sync_pb2

APPLIED, BUFFERED, INVALID = (
    sync_pb2.ACK_STATUS_APPLIED,
    sync_pb2.ACK_STATUS_BUFFERED,
    sync_pb2.ACK_STATUS_INVALID,
)
MALFORMED = sync_pb2.REJECT_REASON_MALFORMED
#: What a message may say about a value it quotes, at most.
SHORT = 512


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Everything the manager logs while the test runs."""
    lines: list[str] = []
    handle = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(handle)


async def pod_names(manager: TestManager) -> list[str]:
    return [p["name"] for p in await manager.resources(kind="pods", cluster="east")]


async def refused_then_good(edge: RawEdge, manager: TestManager, bad: sync_pb2.ClusterState, why: str) -> str:
    """Send ``bad`` on a stream holding pods a, b: INVALID naming ``why``, nothing stored changes,
    and the same stream then applies a good state. Returns the ack's error."""
    assert (await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}))).status == APPLIED
    ack = await edge.send_state(bad)
    assert ack.status == INVALID, ack
    assert why in ack.error
    assert len(ack.error) < SHORT
    assert await pod_names(manager) == ["a", "b"]
    good = delta_state("east", "edge-1", bad.sequence + 1, [pod("c")])
    assert (await edge.send_state(good)).status == APPLIED
    assert await pod_names(manager) == ["a", "b", "c"]
    return ack.error


def nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        data = {"a": data}
    return data


def nested_json(depth: int) -> bytes:
    """``depth`` levels of objects, built as bytes (deeper than any encoder goes)."""
    return b'{"a":' * (depth - 1) + b'{"leaf":1}' + b"}" * (depth - 1)


# -- Identify --------------------------------------------------------------------------


async def test_an_oversized_identify_is_refused_without_echoing_or_logging_it(
    edges: RawEdges, log_lines: list[str]
) -> None:
    huge = "a" * (8 * 1024 * 1024)
    edge = edges.connect("east-token")
    answer = await edge.identify(huge, "edge-1", metadata={"region": huge[:100_000]})
    assert answer is not None and answer.WhichOneof("body") == "reject"
    assert answer.reject.reason == MALFORMED
    assert "limits.max_identify_bytes" in answer.reject.message
    assert len(answer.reject.message) < SHORT and "a" * 100 not in answer.reject.message
    code, details = await edge.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(details) < SHORT
    assert sum(len(line) for line in log_lines) < 16 * 1024
    # The manager still serves well-behaved edges.
    await edges.claimed("east", "edge-1")


@pytest.mark.parametrize(
    ("field", "value"),
    [("edge_id", "e" * 60_000), ("cluster", "c" * 60_000), ("serializers", ["j" * 30_000, "json"])],
)
async def test_identify_values_are_bounded_and_never_echoed_whole(
    edges: RawEdges, log_lines: list[str], field: str, value: Any
) -> None:
    args: dict[str, Any] = {"cluster": "east", "edge_id": "edge-1", field: value}
    edge = edges.connect("east-token")
    answer = await edge.identify(args.pop("cluster"), args.pop("edge_id"), **args)
    assert answer is not None and answer.WhichOneof("body") == "reject"
    assert answer.reject.reason == MALFORMED
    assert len(answer.reject.message) < SHORT and "bytes)" in answer.reject.message
    assert sum(len(line) for line in log_lines) < 16 * 1024


@pytest.mark.parametrize("interval", [math.nan, math.inf, -math.inf, -1.0, 86_401.0, 1e300])
async def test_a_bad_sync_interval_is_refused_at_identify(edges: RawEdges, interval: float) -> None:
    edge = edges.connect("east-token")
    answer = await edge.identify("east", "edge-1", sync_interval=interval)
    assert answer is not None and answer.WhichOneof("body") == "reject"
    assert answer.reject.reason == MALFORMED
    assert "sync_interval_seconds" in answer.reject.message
    # Nothing of it stuck: the same edge claims the cluster with a sane interval and syncs.
    good = await edges.claimed("east", "edge-1", sync_interval=86_400.0)
    assert (await good.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))).status == APPLIED


# -- states ----------------------------------------------------------------------------


@pytest.fixture
async def edge(edges: RawEdges) -> RawEdge:
    return await edges.claimed("east", "edge-1")


async def test_values_a_state_echoes_are_cut(edge: RawEdge, manager: TestManager, log_lines: list[str]) -> None:
    bad = delta_state("east", "edge-1", 2)
    bad.cluster_id = "x" * 1_000_000
    error = await refused_then_good(edge, manager, bad, "does not match the stream's cluster")
    assert "(1000000 bytes)" in error
    assert sum(len(line) for line in log_lines) < 64 * 1024


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (pod("n" * 100_000), "name at most 1024"),
        (pod("a", namespace="s" * 100_000), "namespace may have at most 253"),
        (pod("a", labels={f"k{i}": "v" * 1000 for i in range(100)}), "besides its payload"),
        (sync_pb2.ResourceKey(kind="pods", namespace="default", name="n" * 100_000), "name at most 1024"),
    ],
)
async def test_overlong_names_and_labels_are_invalid(
    edge: RawEdge, manager: TestManager, log_lines: list[str], bad: Any, why: str
) -> None:
    if isinstance(bad, sync_pb2.ResourceKey):
        state = delta_state("east", "edge-1", 2, deletions=[bad])
    else:
        state = delta_state("east", "edge-1", 2, [bad])
    await refused_then_good(edge, manager, state, why)
    assert sum(len(line) for line in log_lines) < 64 * 1024


@pytest.mark.parametrize("depth", [33, 254, 1000, 1023, 5000])
async def test_deeply_nested_json_payloads_are_invalid(edge: RawEdge, manager: TestManager, depth: int) -> None:
    bad = delta_state("east", "edge-1", 2, [resource("pods", "deep", payload=nested_json(depth))])
    await refused_then_good(edge, manager, bad, "resource pods/default/deep: payload cannot be decoded")


async def test_the_deepest_payload_accepted_reads_back_through_every_query(
    edge: RawEdge, manager: TestManager
) -> None:
    data = nested(32)
    ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [resource("pods", "deep", data=data)]}))
    assert ack.status == APPLIED
    async with grpc.aio.insecure_channel(manager.address) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        for as_json in (False, True):
            request = query_pb2.ListResourcesRequest(kind="pods", cluster="east", data_as_json=as_json)
            [page] = [page async for page in stub.ListResources(request)]
            [record] = page.resources
            got = orjson.loads(record.data_json) if as_json else json_format.MessageToDict(record.data)
            assert got == data


async def test_deeply_nested_protobuf_payloads_are_invalid(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", serializers=["protobuf"])
    struct = struct_pb2.Struct()
    struct.update(nested(33))
    good = full_state("east", "edge-1", 1, {"pods": []})
    good.resources.append(resource("pods", "a", payload=struct_pb2.Struct(fields={"x": struct_pb2.Value(number_value=1)}).SerializeToString()))
    good.counts["pods"] = 1
    assert (await edge.send_state(good)).status == APPLIED
    bad = delta_state("east", "edge-1", 2, [resource("pods", "deep", payload=struct.SerializeToString())])
    ack = await edge.send_state(bad)
    assert ack.status == INVALID and "nests" in ack.error
    assert await pod_names(manager) == ["a"]


@pytest.mark.parametrize("sequence", [2**63, 2**64 - 1])
async def test_a_sequence_beyond_64_bit_signed_is_invalid_and_blocks_nothing(
    edge: RawEdge, manager: TestManager, sequence: int
) -> None:
    bad = delta_state("east", "edge-1", sequence, [pod("x")])
    ack = await edge.send_state(bad)
    assert ack.status == INVALID and "2^63-1" in ack.error
    # Later states with ordinary sequences are applied.
    assert (await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}))).status == APPLIED
    assert (await edge.send_state(delta_state("east", "edge-1", 2, [pod("c")]))).status == APPLIED
    assert await pod_names(manager) == ["a", "b", "c"]


async def test_a_full_may_count_only_the_kinds_it_covers(edge: RawEdge, manager: TestManager) -> None:
    bad = full_state("east", "edge-1", 2, {"pods": [pod("a")]})
    for i in range(1000):  # each counted kind would become a label of the manager's metrics
        bad.counts[f"junk-{i}"] = 0
    await refused_then_good(edge, manager, bad, "in neither kinds nor cached_kinds")


# -- kinds the edge did not declare ------------------------------------------------------

async def test_a_delta_of_an_undeclared_kind_is_invalid(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", kinds=["pods"])
    secret = resource("secrets", "token", data={"value": "x"})
    await refused_then_good(edge, manager, delta_state("east", "edge-1", 2, [secret]), "did not declare")
    gone = sync_pb2.ResourceKey(kind="secrets", namespace="default", name="token")
    ack = await edge.send_state(delta_state("east", "edge-1", 4, deletions=[gone]))
    assert ack.status == INVALID and "did not declare" in ack.error
    assert {r["kind"] for r in await manager.resources(cluster="east")} == {"pods"}


async def test_a_full_of_an_undeclared_kind_is_invalid(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", kinds=["pods"])
    bad = full_state("east", "edge-1", 2, {"pods": [pod("a")], "secrets": [resource("secrets", "token")]})
    await refused_then_good(edge, manager, bad, "did not declare")
    failed = sync_pb2.KindError(kind="secrets", message="forbidden")
    ack = await edge.send_state(delta_state("east", "edge-1", 4, errors=[failed]))
    assert ack.status == INVALID and "did not declare" in ack.error


# -- kind errors -------------------------------------------------------------------------


async def test_more_kind_errors_than_the_limit_are_invalid(edge: RawEdge, manager: TestManager) -> None:
    errors = [sync_pb2.KindError(kind="pods", message=f"failure {i}") for i in range(65)]
    bad = delta_state("east", "edge-1", 2, errors=errors)
    await refused_then_good(edge, manager, bad, "limits.max_kind_errors (64)")
    row = await manager.cluster("east")
    assert row is not None and row["errors"] == []


async def test_long_kind_error_messages_are_cut_on_a_character_boundary(edge: RawEdge, manager: TestManager) -> None:
    message = "é" * 20_000  # 40,000 bytes of two-byte characters
    assert (await edge.send_state(full_state("east", "edge-1", 1, {"services": []}))).status == APPLIED
    failed = sync_pb2.KindError(kind="pods", message=message, http_status=500)
    assert (await edge.send_state(delta_state("east", "edge-1", 2, errors=[failed]))).status == APPLIED
    row = await manager.cluster("east")
    assert row is not None
    [stored] = row["errors"]
    assert stored["message"] == "é" * 2048  # limits.max_error_message_bytes: 4096 bytes
    async with manager.query_client() as client:
        [cluster] = await client.clusters("east")
    assert len(cluster["errors"][0]["message"].encode()) <= 4096


async def test_a_full_keeps_only_the_errors_it_lists(edge: RawEdge, manager: TestManager) -> None:
    assert (await edge.send_state(full_state("east", "edge-1", 1, {"pods": []}))).status == APPLIED
    failed = [sync_pb2.KindError(kind=kind, message="watch failed") for kind in ("services", "endpointslices")]
    assert (await edge.send_state(delta_state("east", "edge-1", 2, errors=failed))).status == APPLIED
    row = await manager.cluster("east")
    assert row is not None and [e["kind"] for e in row["errors"]] == ["endpointslices", "services"]
    # A FULL lists every kind failing now: services still fails, endpointslices is not sent at all any more.
    still = sync_pb2.KindError(kind="services", message="forbidden", http_status=403)
    assert (await edge.send_state(full_state("east", "edge-1", 3, {"pods": []}, errors=[still]))).status == APPLIED
    row = await manager.cluster("east")
    assert row is not None and [(e["kind"], e["message"]) for e in row["errors"]] == [("services", "forbidden")]


# -- chunk sets --------------------------------------------------------------------------

PER_EDGE = {"limits": {"max_chunk_bytes_per_edge": 100 * 1024}}
TOTAL = {"limits": {"max_chunk_bytes_per_edge": 128 * 1024, "max_chunk_bytes_total": 144 * 1024}}


def big_pods(prefix: str, count: int) -> list[sync_pb2.Resource]:
    """Pods of about 30 KiB each."""
    return [pod(f"{prefix}{i}", data={"blob": "z" * 30 * 1024}) for i in range(count)]


@pytest.mark.parametrize("manager_options", [PER_EDGE])
async def test_a_chunk_set_over_the_per_edge_limit_is_discarded(edge: RawEdge, manager: TestManager) -> None:
    assert SHARED_BUDGET.used == 0
    assert (await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}))).status == APPLIED
    chunks = chunked(full_state("east", "edge-1", 10, {"pods": big_pods("p", 6)}), 1)
    acks = [await edge.send_state(chunk) for chunk in chunks[:4]]
    assert [a.status for a in acks[:3]] == [BUFFERED, BUFFERED, BUFFERED]
    assert acks[3].status == INVALID and "limits.max_chunk_bytes_per_edge (102400)" in acks[3].error
    assert SHARED_BUDGET.used == 0
    assert await pod_names(manager) == ["a", "b"]
    # The same stream goes on: the rest of the refused set is discarded, a good state is applied.
    assert (await edge.send_state(chunks[4])).status == INVALID
    assert (await edge.send_state(delta_state("east", "edge-1", 20, [pod("c")]))).status == APPLIED
    assert await pod_names(manager) == ["a", "b", "c"]


@pytest.mark.parametrize("manager_options", [TOTAL])
async def test_chunk_sets_of_all_edges_share_one_limit(edges: RawEdges, manager: TestManager) -> None:
    assert SHARED_BUDGET.used == 0
    east = await edges.claimed("east", "edge-1")
    west = await edges.claimed("west", "edge-2")
    east_chunks = chunked(full_state("east", "edge-1", 1, {"pods": big_pods("e", 4)}), 1)
    west_chunks = chunked(full_state("west", "edge-2", 1, {"pods": big_pods("w", 3)}), 1)
    for chunk in east_chunks[:3]:
        assert (await east.send_state(chunk)).status == BUFFERED
    assert (await west.send_state(west_chunks[0])).status == BUFFERED
    # Each within its own 128 KiB, together over 144 KiB: west's set is refused.
    ack = await west.send_state(west_chunks[1])
    assert ack.status == INVALID and "limits.max_chunk_bytes_total (147456)" in ack.error
    # East's set completes; what it held is released, and west's set fits again.
    assert (await east.send_state(east_chunks[3])).status == APPLIED
    assert SHARED_BUDGET.used == 0
    again = chunked(full_state("west", "edge-2", 10, {"pods": big_pods("w", 3)}), 1)
    assert [(await west.send_state(c)).status for c in again] == [BUFFERED, BUFFERED, APPLIED]
    assert len(await manager.resources(kind="pods", cluster="west")) == 3
    assert len(await manager.resources(kind="pods", cluster="east")) == 4


def test_nested_helpers_agree() -> None:
    assert orjson.loads(nested_json(5)) == nested(5)


# -- query requests -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [2**63 - 1, 2**63, 2**64 - 1])
async def test_a_query_limit_beyond_any_store_means_no_limit(edge: RawEdge, manager: TestManager, limit: int) -> None:
    # Found by fuzzing: a uint64 limit of 2^63 or more reached SQLite, which raised OverflowError.
    assert (await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}))).status == APPLIED
    async with grpc.aio.insecure_channel(manager.address) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        pages = [p async for p in stub.ListResources(query_pb2.ListResourcesRequest(kind="pods", limit=limit))]
        assert [r.name for p in pages for r in p.resources] == ["a", "b"]
        changes = [p async for p in stub.ListChanges(query_pb2.ListChangesRequest(limit=limit))]
        assert sorted(c.name for p in changes for c in p.changes) == ["a", "b"]
