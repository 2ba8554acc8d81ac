"""The in-process transport drives the same manager code as gRPC, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from navigator_plugins.transports.inprocess import InProcessTransport

from navigator.config.edge import EdgeConfig
from navigator.interfaces import StreamClosed
from navigator.testing.manager import run_test_manager
from navigator.testing.raw_edge import full_state, identify, pod
from navigator.v1 import sync_pb2


def edge_config(address: str, token: str | None = None) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {"edge_id": "edge-1", "cluster": {"id": "east"}, "manager": {"address": address, "token": token}}
    )


async def test_sync_and_query_in_process(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, transport="inprocess", tokens={"east": "t"}) as mgr:
        stream = await InProcessTransport().connect(edge_config(mgr.address, token="t"))
        await stream.send(identify("east", "edge-1"))
        answer = await stream.recv()
        assert answer is not None and answer.accept.serializer == "json"
        await stream.send(sync_pb2.EdgeMessage(state=full_state("east", "edge-1", 1, {"pods": [pod("a")]})))
        answer = await stream.recv()
        assert answer is not None and answer.ack.status == sync_pb2.ACK_STATUS_APPLIED
        assert [p["name"] for p in await mgr.resources(kind="pods")] == ["a"]
        await stream.close()
        assert await stream.recv() is None
        await mgr.wait_for_status("east", "DISCONNECTED")


async def test_rejection_ends_the_stream_with_its_status(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, transport="inprocess", tokens={"east": "t"}) as mgr:
        stream = await InProcessTransport().connect(edge_config(mgr.address, token="wrong"))
        await stream.send(identify("east", "edge-1"))
        answer = await stream.recv()
        assert answer is not None and answer.reject.reason == sync_pb2.REJECT_REASON_UNAUTHENTICATED
        assert await stream.recv() is None
        assert stream.code == "UNAUTHENTICATED"
        with pytest.raises(StreamClosed):
            await stream.send(identify("east", "edge-1"))


async def test_connecting_to_nothing_raises_stream_closed() -> None:
    with pytest.raises(StreamClosed, match="no in-process manager"):
        await InProcessTransport().connect(edge_config("127.0.0.1:1"))
