"""The in-process transport drives the same manager code as gRPC, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from navigator_plugins.transports.inprocess import InProcessTransport, create

from navigator.config.manager import ManagerConfig
from navigator.interfaces import EdgeEndpoint, StreamClosed
from navigator.manager.app import Manager
from navigator.testing.manager import run_test_manager
from navigator.testing.raw_edge import full_state, identify, pod
from navigator.v1 import sync_pb2


def endpoint(address: str, token: str | None = None) -> EdgeEndpoint:
    return EdgeEndpoint(address=address, token=token)


async def test_sync_and_query_in_process(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, transport="inprocess", tokens={"east": "t"}) as mgr:
        stream = await InProcessTransport().connect(endpoint(mgr.address, token="t"))
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
        stream = await InProcessTransport().connect(endpoint(mgr.address, token="wrong"))
        await stream.send(identify("east", "edge-1"))
        answer = await stream.recv()
        assert answer is not None and answer.reject.reason == sync_pb2.REJECT_REASON_UNAUTHENTICATED
        assert await stream.recv() is None
        assert stream.code == "UNAUTHENTICATED"
        with pytest.raises(StreamClosed):
            await stream.send(identify("east", "edge-1"))


async def test_connecting_to_nothing_raises_stream_closed() -> None:
    with pytest.raises(StreamClosed, match="no in-process manager"):
        await InProcessTransport().connect(endpoint("127.0.0.1:1"))


async def test_the_older_plugins_transport_key_still_picks_the_transport(tmp_path: Path) -> None:
    config = ManagerConfig.model_validate(
        {
            "listen": "127.0.0.1:0",
            "storage": {"options": {"path": str(tmp_path / "navigator.db")}},
            "plugins": {"transport": "inprocess"},
        }
    )
    manager = Manager(config)
    await manager.start()
    try:
        stream = await InProcessTransport().connect(endpoint(manager.address))
        await stream.send(identify("east", "edge-1"))
        answer = await stream.recv()
        assert answer is not None and answer.WhichOneof("body") == "accept"
        await stream.close()
    finally:
        await manager.stop(grace=1.0)


def test_inprocess_takes_no_options() -> None:
    assert isinstance(create({}), InProcessTransport)
    with pytest.raises(ValueError, match=r"transport\.options\.keepalive: unknown key"):
        create({"keepalive": {"time": 1}})
