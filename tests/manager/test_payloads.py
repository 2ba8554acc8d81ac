"""One payload currency: the JSON bytes an edge sends are what storage keeps and what queries return.

The manager validates a JSON payload and stores it as it came (key order,
spacing, unicode escapes and all), on both backends; a protobuf payload from an
edge that negotiated ``protobuf`` is stored as the same JSON its data encodes to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.interfaces import ClusterRecord, ResourceQuery, Serializer, StorageBackend
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import InvalidState, StateSet
from navigator.resource import Resource, ResourceKey
from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, full_state, pod, resource
from navigator.v1 import query_pb2, sync_pb2

StoreOptions = Callable[[str], dict[str, Any]]
OpenStore = Callable[[str, dict[str, Any]], StorageBackend]

#: Not what orjson would write: keys out of order, spaces, an escaped non-ASCII character.
ODD = b'{"z": 1, "a": {"b": [1, 2.5, null]}, "name": "caf\\u00e9"}'


def _state(*resources: sync_pb2.Resource) -> StateSet:
    return StateSet(
        sequence=1, type=sync_pb2.STATE_TYPE_FULL, kinds=["pods"], cached_kinds=[], errors=[],
        counts={}, resources=list(resources), observed_at=datetime.now(UTC),
    )  # fmt: skip


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"])
def test_json_payload_bytes_are_stored_and_read_back_unchanged(
    backend_name: str, store_options: StoreOptions, open_store: OpenStore
) -> None:
    backend = open_store(backend_name, store_options(backend_name))
    reconciler = Reconciler(backend)
    record = ClusterRecord("east", edge_id="edge-1")
    changes = reconciler.apply(record, _state(resource("pods", "odd", payload=ODD)), JsonSerializer(),
                               datetime.now(UTC))  # fmt: skip
    assert changes[0].resource is not None and changes[0].resource.json == ODD
    (stored,) = backend.query(ResourceQuery(cluster="east"))
    assert stored.resource.json == ODD
    assert stored.resource.data == {"z": 1, "a": {"b": [1, 2.5, None]}, "name": "café"}
    (row,) = backend.read("east", [ResourceKey("pods", "default", "odd")])
    assert row.json == ODD
    (change,) = backend.history(HistoryQuery(cluster="east"))
    assert change.resource is not None and change.resource.json == ODD


@pytest.mark.parametrize("serializer", [JsonSerializer(), ProtobufSerializer()], ids=lambda s: s.name)
def test_every_serializer_stores_the_same_json(
    serializer: Serializer, store_options: StoreOptions, open_store: OpenStore
) -> None:
    data = {"phase": "Running", "restarts": 3, "owner": {"kind": "ReplicaSet", "name": "web"}, "ratio": 0.5}
    backend = open_store("sqlite", store_options("sqlite"))
    wire = resource("pods", "web", payload=serializer.encode(data))
    Reconciler(backend).apply(ClusterRecord("east"), _state(wire), serializer, datetime.now(UTC))
    (stored,) = backend.query(ResourceQuery(cluster="east"))
    assert orjson.loads(stored.resource.json) == data
    assert isinstance(stored.resource.data["restarts"], int)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"{not json", "malformed"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"a": "\xff"}', "utf-8"),
        (b'{"a": 1} trailing', "trailing"),
        (b"", "truncated"),
    ],
)
def test_a_bad_json_payload_is_invalid_and_nothing_is_written(
    payload: bytes, problem: str, store_options: StoreOptions, open_store: OpenStore
) -> None:
    backend = open_store("sqlite", store_options("sqlite"))
    reconciler = Reconciler(backend)
    good = resource("pods", "good", data={"phase": "Running"})
    with pytest.raises(
        InvalidState, match=f"pods/default/bad: payload cannot be decoded .json.: .*{problem}"
    ):
        reconciler.apply(ClusterRecord("east"), _state(good, resource("pods", "bad", payload=payload)),
                         JsonSerializer(), datetime.now(UTC))  # fmt: skip
    assert list(backend.query(ResourceQuery(cluster="east"))) == []


def test_resource_data_and_json_are_two_views_of_one_record() -> None:
    lazy = Resource.from_json("pods", "default", "a", "uid-a", "1", {"app": "web"}, b'{"phase": "Running"}')
    eager = Resource("pods", "default", "a", "uid-a", "1", {"app": "web"}, {"phase": "Running"})
    assert lazy == eager and lazy.data == {"phase": "Running"}
    assert eager.json == b'{"phase":"Running"}'
    eager.data = {"phase": "Failed"}  # assigning new data drops the old encoding
    assert eager.json == b'{"phase":"Failed"}'
    assert Resource("pods", "default", "b", "uid-b", "1").json == b"{}"
    with pytest.raises(TypeError):
        _ = Resource("pods", "default", "c", "uid-c", "1", data={"when": object()}).json


async def test_queries_return_the_bytes_the_edge_sent(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1")
    ack = await edge.send_state(
        full_state("east", "edge-1", 1, {"pods": [resource("pods", "odd", payload=ODD), pod("b")]})
    )
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED, ack.error
    request = query_pb2.ListResourcesRequest(cluster="east", name="odd", data_as_json=True)
    records = [r async for page in manager.manager.list_resources(request) for r in page.resources]
    assert [r.data_json for r in records] == [ODD]
    # Older clients that ask for a Struct get the same data.
    records = [r async for page in manager.manager.list_resources(query_pb2.ListResourcesRequest(cluster="east", name="odd"))
               for r in page.resources]  # fmt: skip
    assert records[0].data["name"] == "café"
