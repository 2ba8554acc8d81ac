"""The in-process transport (``transport: {plugin: inprocess}``): a manager and edges in one event loop.

No sockets: ``serve`` registers the manager under its ``listen`` address in a
process-wide table and ``connect`` wires an edge to it with two asyncio
queues. Tests and plugin authors use it to run everything in one process; the
manager code it drives is exactly the one gRPC drives.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from loguru import logger

from navigator.plugin import (
    EdgeEndpoint,
    ManagerEndpoint,
    ManagerServices,
    PeerInfo,
    PluginOptions,
    StreamClosed,
    TransportPlugin,
    hookimpl,
    sync_pb2,
    validate_options,
)

#: address -> the manager serving there.
_SERVERS: dict[str, ManagerServices] = {}
_PORTS = itertools.count(1)
_EDGES = itertools.count(1)
_CLOSED = object()


class _Pipe:
    """One direction of a stream; ``close`` makes the reader see the end."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.closed = False

    def put(self, message: object) -> None:
        if self.closed:
            raise StreamClosed("the stream is closed")
        self.queue.put_nowait(message)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(_CLOSED)

    async def get(self) -> object | None:
        item = await self.queue.get()
        if item is _CLOSED:
            self.queue.put_nowait(_CLOSED)  # every later read sees the end too
            return None
        return item


class InProcessManagerStream:
    def __init__(self, to_manager: _Pipe, to_edge: _Pipe, peer: PeerInfo) -> None:
        self._in, self._out = to_manager, to_edge
        self.peer = peer
        self.code: str = "OK"
        self.details: str = ""

    async def recv(self) -> sync_pb2.EdgeMessage | None:
        return await self._in.get()  # type: ignore[return-value]

    async def send(self, message: sync_pb2.ManagerMessage) -> None:
        self._out.put(message)

    async def abort(self, code: str, details: str) -> None:
        self.code, self.details = code, details
        self._out.close()


class InProcessEdgeStream:
    """The edge's end; after the manager ends the stream, ``code``/``details`` hold its status."""

    def __init__(self, to_manager: _Pipe, to_edge: _Pipe, manager_side: InProcessManagerStream) -> None:
        self._out, self._in = to_manager, to_edge
        self._manager_side = manager_side
        self.task: asyncio.Task[None] | None = None

    @property
    def code(self) -> str:
        return self._manager_side.code

    @property
    def details(self) -> str:
        return self._manager_side.details

    async def send(self, message: sync_pb2.EdgeMessage) -> None:
        copy = sync_pb2.EdgeMessage()
        copy.CopyFrom(message)  # the manager must not see later changes the edge makes to its object
        self._out.put(copy)

    async def send_serialized(self, data: bytes) -> None:
        self._out.put(sync_pb2.EdgeMessage.FromString(data))

    async def recv(self) -> sync_pb2.ManagerMessage | None:
        return await self._in.get()  # type: ignore[return-value]

    async def close(self) -> None:
        self._out.close()


class _Server:
    def __init__(self, address: str) -> None:
        self.address = address

    async def stop(self, grace: float) -> None:
        _SERVERS.pop(self.address, None)


class InProcessTransport:
    async def serve(self, endpoint: ManagerEndpoint, services: ManagerServices) -> _Server:
        host, _, port = endpoint.listen.rpartition(":")
        address = f"{host}:{next(_PORTS)}" if port == "0" else endpoint.listen
        if address in _SERVERS:
            raise StreamClosed(f"an in-process manager already serves {address}")
        _SERVERS[address] = services
        return _Server(address)

    async def connect(self, endpoint: EdgeEndpoint) -> InProcessEdgeStream:
        services = _SERVERS.get(endpoint.address)
        if services is None:
            raise StreamClosed(f"no in-process manager serves {endpoint.address}")
        to_manager, to_edge = _Pipe(), _Pipe()
        peer = PeerInfo(address=f"inprocess:{next(_EDGES)}", token=endpoint.token)
        manager_side = InProcessManagerStream(to_manager, to_edge, peer)
        edge_side = InProcessEdgeStream(to_manager, to_edge, manager_side)

        async def run() -> None:
            try:
                await services.handle_sync(manager_side)
            except StreamClosed as exc:
                logger.debug("in-process stream ended: {}", exc)
            finally:
                to_edge.close()
                to_manager.close()  # the edge's later sends fail, as on a real stream

        edge_side.task = asyncio.create_task(run())
        return edge_side


class InProcessOptions(PluginOptions):
    """No options: any key in ``transport.options`` is a mistake worth reporting."""


def create(options: Mapping[str, Any]) -> InProcessTransport:
    validate_options(InProcessOptions, options, "transport.options")
    return InProcessTransport()


@hookimpl
def navigator_transports() -> Iterable[TransportPlugin]:
    return [TransportPlugin(name="inprocess", create=create, description="no sockets, one event loop (tests)")]
