"""The manager's gRPC server: keep-alive tolerance, message limits, TLS, mTLS identities, bearer tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from navigator.errors import ConfigError
from navigator.testing.manager import run_test_manager
from navigator.testing.pki import Pki
from navigator.testing.raw_edge import RawEdge, full_state, identify, pod
from navigator.v1 import sync_pb2, sync_pb2_grpc

APPLIED = sync_pb2.ACK_STATUS_APPLIED


async def test_frequent_edge_pings_never_cost_the_connection(tmp_path: Path) -> None:
    # The edge pings every 100 ms, far below the manager's permitted interval; without a
    # forgiving server policy gRPC would answer with GOAWAY (too_many_pings) and cut the stream.
    async with run_test_manager(tmp_path, transport_options={"keepalive": {"min_ping_interval": "5s"}}) as mgr:
        options = [
            ("grpc.keepalive_time_ms", 100),
            ("grpc.keepalive_timeout_ms", 1000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", 100),
            ("grpc.http2.min_ping_interval_without_data_ms", 100),
        ]
        async with RawEdge(mgr.address, options=options) as edge:
            assert (await edge.identify("east", "edge-1")) is not None
            await asyncio.sleep(2.0)
            ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
            assert ack.status == APPLIED


async def test_a_message_over_max_message_size_ends_only_that_stream(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, limits={"max_message_size": "256Ki"}) as mgr:
        async with RawEdge(mgr.address) as edge:
            answer = await edge.identify("east", "edge-1")
            assert answer is not None and answer.accept.max_message_bytes == 256 * 1024
            big = full_state("east", "edge-1", 1, {"pods": [pod("big", data={"pad": "x" * 300_000})]})
            await edge.send(sync_pb2.EdgeMessage(state=big))
            code, _ = await edge.status()
            assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        await mgr.wait_for_status("east", "DISCONNECTED")
        async with RawEdge(mgr.address) as edge:
            await edge.identify("east", "edge-1")
            assert (await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("a")]}))).status == APPLIED


def _tls(pki: Pki, cert: tuple[Path, Path] | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=cert[1].read_bytes() if cert else None,
        certificate_chain=cert[0].read_bytes() if cert else None,
    )


async def test_tls_with_token(tmp_path: Path, pki: Pki) -> None:
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    async with run_test_manager(tmp_path, tls=tls, tokens={"east": "t0k3n"}) as mgr:
        async with RawEdge(mgr.address, "t0k3n", credentials=_tls(pki)) as edge:
            answer = await edge.identify("east", "edge-1")
            assert answer is not None and answer.WhichOneof("body") == "accept"
        async with RawEdge(mgr.address, "t0k3n") as plaintext:  # plaintext to a TLS port fails cleanly
            assert await plaintext.identify("east", "edge-2") is None
            assert (await plaintext.status())[0] is grpc.StatusCode.UNAVAILABLE


async def test_mtls_identity_maps_to_its_cluster_only(tmp_path: Path, pki: Pki, other_pki: Pki) -> None:
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), "client_ca_file": str(pki.ca)}
    auth = {"identities": {"edge-east.example": "east"}}
    async with run_test_manager(tmp_path, tls=tls, auth=auth) as mgr:
        east_cert = pki.client("edge-east.example")
        async with RawEdge(mgr.address, credentials=_tls(pki, east_cert)) as edge:
            answer = await edge.identify("east", "edge-1")
            assert answer is not None and answer.WhichOneof("body") == "accept"
        async with RawEdge(mgr.address, credentials=_tls(pki, east_cert)) as edge:
            answer = await edge.identify("west", "edge-2")
            assert answer is not None and answer.reject.reason == sync_pb2.REJECT_REASON_UNAUTHENTICATED
            assert "edge-east.example" in answer.reject.message
        # No client certificate, or one from another CA: the TLS handshake itself fails.
        async with RawEdge(mgr.address, credentials=_tls(pki)) as edge:
            assert await edge.identify("east", "edge-3") is None
        rogue = other_pki.client("edge-east.example")
        async with RawEdge(mgr.address, credentials=_tls(pki, rogue)) as edge:
            assert await edge.identify("east", "edge-4") is None


@pytest.mark.parametrize("header", ["Bearer t0k3n", "bearer t0k3n"])
async def test_bearer_token_from_call_metadata(tmp_path: Path, header: str) -> None:
    async with (
        run_test_manager(tmp_path, tokens={"east": "t0k3n"}) as mgr,
        grpc.aio.insecure_channel(mgr.address) as channel,
    ):
        call = sync_pb2_grpc.SyncStub(channel).Connect(metadata=(("authorization", header),))
        await call.write(identify("east", "edge-1"))
        answer = await call.read()
        assert answer.WhichOneof("body") == "accept"
        call.cancel()


async def test_listening_on_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with run_test_manager(tmp_path / "a") as first:
        with pytest.raises(ConfigError, match=f"^listen: address {first.address} is already in use$"):
            async with run_test_manager(tmp_path / "b", listen=first.address):
                pass


def _raw(data: bytes) -> bytes:
    return data


@pytest.mark.parametrize("method", ["ListClusters", "ListResources", "ListChanges", "Diff", "Watch"])
async def test_query_bytes_that_do_not_parse_are_invalid_argument(tmp_path: Path, method: str) -> None:
    # Found by fuzzing: protobuf's DecodeError escaped into gRPC, which answered UNKNOWN and logged a traceback.
    async with run_test_manager(tmp_path) as mgr, grpc.aio.insecure_channel(mgr.address) as channel:
        path = f"/navigator.v1.Query/{method}"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if method == "ListClusters":
                await channel.unary_unary(path, request_serializer=_raw, response_deserializer=_raw)(b"\xff\xff\xff")
            else:
                async for _ in channel.unary_stream(path, request_serializer=_raw, response_deserializer=_raw)(b"\xff"):
                    pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"request to {path} is not a valid protobuf message" in (caught.value.details() or "")
        # The manager still answers well-formed queries.
        assert await mgr.resources(kind="pods") == []


async def test_sync_bytes_that_do_not_parse_end_only_that_stream_as_invalid_argument(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path) as mgr, grpc.aio.insecure_channel(mgr.address) as channel:
        call = channel.stream_stream("/navigator.v1.Sync/Connect", request_serializer=_raw, response_deserializer=_raw)()
        await call.write(b"\xff\xff\xff")
        assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request to /navigator.v1.Sync/Connect is not a valid protobuf message" in await call.details()
        async with RawEdge(mgr.address) as edge:
            assert (await edge.identify("east", "edge-1")) is not None
            ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
            assert ack.status == APPLIED
