"""How edge and manager exchange sync messages.

The core speaks in ``navigator.v1`` protobuf messages; a transport only moves
them. gRPC is the default; an in-process transport lets tests and plugin
authors run a manager and edges without sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from navigator.config.edge import EdgeConfig
    from navigator.config.manager import ManagerConfig
    from navigator.v1 import query_pb2, sync_pb2


class StreamClosed(Exception):
    """The peer went away or the stream failed; the edge reconnects."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the transport knows about the other end of a manager-side stream."""

    address: str
    #: Bearer token from the call metadata ("authorization: Bearer ..."), if any.
    token: str | None = None
    #: Verified client-certificate identity (CN / SAN) under mTLS, if any.
    identity: str | None = None


@runtime_checkable
class EdgeStream(Protocol):
    """The edge's end of one sync stream."""

    async def send(self, message: sync_pb2.EdgeMessage) -> None:
        """Send one message; raise ``StreamClosed`` if the stream is gone."""
        ...

    async def recv(self) -> sync_pb2.ManagerMessage | None:
        """The next message, or ``None`` once the manager closed the stream."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ManagerStream(Protocol):
    """The manager's end of one edge's sync stream."""

    peer: PeerInfo

    async def recv(self) -> sync_pb2.EdgeMessage | None: ...

    async def send(self, message: sync_pb2.ManagerMessage) -> None: ...

    async def abort(self, code: str, details: str) -> None:
        """End the stream with a status (a ``grpc.StatusCode`` name, e.g. ``"ALREADY_EXISTS"``)."""
        ...


class ManagerServices(Protocol):
    """What the manager core offers a transport to serve."""

    async def handle_sync(self, stream: ManagerStream) -> None:
        """Run one edge's stream until it ends."""
        ...

    async def list_clusters(self, request: query_pb2.ListClustersRequest) -> query_pb2.ListClustersResponse: ...

    def list_resources(self, request: query_pb2.ListResourcesRequest) -> AsyncIterator[query_pb2.ResourcePage]: ...


class RunningServer(Protocol):
    #: ``host:port`` actually bound (useful with port 0).
    address: str

    async def stop(self, grace: float) -> None: ...


@runtime_checkable
class Transport(Protocol):
    name: str

    async def connect(self, config: EdgeConfig) -> EdgeStream:
        """Open a sync stream to ``config.manager.address``; raise ``StreamClosed`` on failure."""
        ...

    async def serve(self, config: ManagerConfig, services: ManagerServices) -> RunningServer:
        """Start serving sync and query for the manager on ``config.listen``."""
        ...
