"""Hostile or odd traffic on the port never stops the manager; health and reflection answer."""

from __future__ import annotations

import asyncio
import os
import socket

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, full_state, pod
from navigator.v1 import sync_pb2


def _blast(address: str, payload: bytes) -> None:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(payload)
        sock.settimeout(1)
        try:
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionError):
            pass


async def test_random_bytes_do_not_stop_the_manager(edges: RawEdges, manager: TestManager) -> None:
    payloads = [
        os.urandom(4096),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(1024),  # an HTTP/2 preface followed by garbage
        b"\x16\x03\x01\x02\x00" + os.urandom(512),  # a TLS ClientHello-ish start on a plaintext port
        b"",
    ]
    await asyncio.gather(*(asyncio.to_thread(_blast, manager.address, p) for p in payloads * 3))
    edge = await edges.claimed("east", "edge-1")
    ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    async with manager.query_client() as client:
        assert [c["cluster"] for c in await client.clusters()] == ["east"]


async def test_garbage_protobuf_on_the_stream_ends_only_that_stream(edges: RawEdges, manager: TestManager) -> None:
    channel = grpc.aio.insecure_channel(manager.address)
    raw = channel.stream_stream(
        "/navigator.v1.Sync/Connect", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    call = raw()
    await call.write(b"\xff\xff\xff\xff not a protobuf")
    await call.done_writing()
    code = await call.code()
    assert code is not grpc.StatusCode.OK
    await channel.close()
    edge = await edges.claimed("east", "edge-1")
    assert (await edge.send_state(full_state("east", "edge-1", 1, {"pods": []}))).status == sync_pb2.ACK_STATUS_APPLIED


async def test_health_check_serves_sync_and_overall(manager: TestManager) -> None:
    async with grpc.aio.insecure_channel(manager.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "navigator.v1.Sync", "navigator.v1.Query"):
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(manager: TestManager) -> None:
    async with grpc.aio.insecure_channel(manager.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
        names = {s.name for s in responses[0].list_services_response.service}
    assert {"navigator.v1.Sync", "navigator.v1.Query", "grpc.health.v1.Health"} <= names
