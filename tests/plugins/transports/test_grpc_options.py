"""``transport.options`` of the grpc plugin: validated with the YAML key, and applied to real channels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from navigator_plugins.transports.grpc import GrpcTransport, create
from navigator_plugins.transports.grpc.client import channel_options
from navigator_plugins.transports.grpc.server import server_options

from navigator.interfaces import EdgeEndpoint, ManagerEndpoint
from navigator.kubesim import KubeSim
from navigator.testing.edge import run_test_edge
from navigator.testing.manager import run_test_manager

OPTIONS = {
    "keepalive": {"time": "45s", "timeout": "7s", "permit_without_calls": False, "min_ping_interval": "2s"},
    "compression": "gzip",
}


def test_keepalive_options_reach_the_channel_and_the_server() -> None:
    transport = create(OPTIONS)
    assert isinstance(transport, GrpcTransport)
    edge = dict(channel_options(EdgeEndpoint(address="m:1", max_message_size=1 << 20), transport.options))
    assert edge["grpc.keepalive_time_ms"] == 45_000
    assert edge["grpc.keepalive_timeout_ms"] == 7_000
    assert edge["grpc.keepalive_permit_without_calls"] == 0
    assert edge["grpc.max_send_message_length"] == 1 << 20
    manager = dict(server_options(ManagerEndpoint(listen="127.0.0.1:0"), transport.options))
    assert manager["grpc.keepalive_time_ms"] == 45_000
    assert manager["grpc.http2.min_ping_interval_without_data_ms"] == 2_000


def test_defaults_without_options() -> None:
    options = create({}).options
    assert (options.keepalive.time, options.keepalive.timeout, options.compression) == (30.0, 10.0, "none")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compression": "zstd"}, "transport.options.compression: Input should be 'none' or 'gzip'"),
        ({"keepalive": {"time": "soon"}}, "transport.options.keepalive.time: invalid duration 'soon'"),
        ({"keepalive": {"tme": "1s"}}, "transport.options.keepalive.tme: unknown key"),
        ({"keepalive": {"timeout": 0}}, "transport.options.keepalive.timeout: Input should be greater than 0"),
        ({"gzip": True}, "transport.options.gzip: unknown key"),
    ],
)
def test_a_bad_option_names_its_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        create(options)
    assert message in str(caught.value)


@contextlib.asynccontextmanager
async def counting_proxy(target: str) -> AsyncIterator[tuple[str, Callable[[], int]]]:
    """A TCP relay to ``target``; the callable tells how many bytes went towards it."""
    host, _, port = target.rpartition(":")
    sent = 0
    tasks: set[asyncio.Task[None]] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if upstream:
                    sent += len(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        for task in (
            asyncio.create_task(pump(client_reader, server_writer, True)),
            asyncio.create_task(pump(server_reader, client_writer, False)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", lambda: sent
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def bytes_for_first_sync(sim: KubeSim, tmp_path: Path, compression: str) -> int:
    options = {"compression": compression}
    async with (
        run_test_manager(tmp_path, transport_options=options) as mgr,
        counting_proxy(mgr.address) as (address, sent),
        run_test_edge(sim.kubeconfig_path, sim.context, address, "sim", transport={"options": options}) as edge,
    ):
        assert isinstance(edge.transport, GrpcTransport) and edge.transport.options.compression == compression
        await mgr.wait_for(lambda rows: any(r["counts"].get("pods") == sim.count("pods") for r in rows))
        return sent()


async def test_gzip_from_transport_options_shrinks_what_the_edge_sends(
    kubesim_factory: Callable[..., KubeSim], tmp_path: Path
) -> None:
    sim = kubesim_factory(pods=400, services=20, namespaces=2, seed=3)
    (tmp_path / "plain").mkdir()
    (tmp_path / "gzip").mkdir()
    plain = await bytes_for_first_sync(sim, tmp_path / "plain", "none")
    gzipped = await bytes_for_first_sync(sim, tmp_path / "gzip", "gzip")
    assert gzipped < plain * 0.6, (plain, gzipped)
