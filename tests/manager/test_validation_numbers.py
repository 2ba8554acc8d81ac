"""Payload numbers no reader can parse (found by fuzzing, issue #14): refused, never stored.

``{"a":1e999}`` is valid JSON syntax, but every reader of a stored object parses it into
doubles: once stored it broke ``ListResources`` (data as Structs) for every cluster and left
the object stuck, each new version refused as a storage failure (RETRY).
"""

from __future__ import annotations

import pytest

from navigator.config.manager import LimitsSection
from navigator.manager.validation import InvalidState, StateSet, check_state_set, payload_problem
from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, full_state, pod, resource
from navigator.v1 import sync_pb2


@pytest.mark.parametrize("payload", [b'{"a":1e999}', b' {"a":-1E+309}', b'{"a":' + b"9" * 400 + b"}"])
def test_numbers_beyond_a_double_are_refused(payload: bytes) -> None:
    state = full_state("east", "edge-1", 1, {"pods": [resource("pods", "web-1", payload=payload)]})
    with pytest.raises(InvalidState, match=r"resource pods/default/web-1: payload cannot be decoded: a number no reader can parse"):
        check_state_set(StateSet.single(state), LimitsSection(), {"pods"})


@pytest.mark.parametrize("payload", [b'{"a":1e308}', b'{"a":"1e999"}', b'{"a":1.0e-400}', b"\n\x0a\x01a"])
def test_numbers_a_reader_can_parse_pass(payload: bytes) -> None:
    assert payload_problem(payload) is None


async def test_the_manager_refuses_them_and_keeps_answering(manager: TestManager, edges: RawEdges) -> None:
    edge = await edges.claimed("east", "edge-1")
    ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [resource("pods", "big", payload=b'{"a":1e999}')]}))
    assert ack.status == sync_pb2.ACK_STATUS_INVALID
    assert "pods/default/big" in ack.error
    ack = await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("web-1")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    assert [r["name"] for r in await manager.resources()] == ["web-1"]
