"""Payload numbers no reader can parse (found by fuzzing, issue #14): refused, never stored.

The ``json`` serializer's ``to_json`` parses each payload the manager writes (an unchanged
object is never looked at), so the check costs nothing on a resync.

``{"a":1e999}`` is valid JSON syntax, but every reader of a stored object parses it into
doubles: once stored it broke ``ListResources`` (data as Structs) for every cluster and left
the object stuck, each new version refused as a storage failure (RETRY).
"""

from __future__ import annotations

import pytest
from navigator_plugins.serializers.json import JsonSerializer

from navigator.interfaces.serializer import payload_json
from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, full_state, pod, resource
from navigator.v1 import sync_pb2


@pytest.mark.parametrize("payload", [b'{"a":1e999}', b' {"a":-1E+309}', b'{"a":' + b"9" * 400 + b"}"])
def test_numbers_beyond_a_double_are_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"payload cannot be decoded: a number no reader can parse"):
        payload_json(JsonSerializer())(payload)


@pytest.mark.parametrize("payload", [b'{"a":1e308}', b'{"a":"1e999"}', b'{"a":1.0e-400}', b'{"node":"node-123e456"}'])
def test_numbers_a_reader_can_parse_pass(payload: bytes) -> None:
    assert payload_json(JsonSerializer())(payload) == payload


async def test_the_manager_refuses_them_and_keeps_answering(manager: TestManager, edges: RawEdges) -> None:
    edge = await edges.claimed("east", "edge-1")
    ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [resource("pods", "big", payload=b'{"a":1e999}')]}))
    assert ack.status == sync_pb2.ACK_STATUS_INVALID
    assert "pods/default/big" in ack.error and "a number no reader can parse" in ack.error
    ack = await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("web-1")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    assert [r["name"] for r in await manager.resources()] == ["web-1"]
