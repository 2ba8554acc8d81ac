"""How edge and manager exchange sync messages.

The core speaks in ``navigator.v1`` protobuf messages; a transport only moves
them. gRPC is the default; an in-process transport lets tests and plugin
authors run a manager and edges without sockets.

A transport sees only the transport-neutral settings it needs (the records
below), never the core configuration: its own settings come from
``transport.options`` in the YAML, which its ``TransportPlugin.create`` validates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from navigator.v1 import query_pb2, sync_pb2

#: gRPC's own default is 4 MiB; full states of big clusters need more.
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024


class StreamClosed(Exception):
    """The peer went away or the stream failed; the edge reconnects."""


class QueryRefused(Exception):
    """The manager will not answer a query as asked; a transport reports ``code`` and the message.

    ``code`` is a gRPC status name: ``INVALID_ARGUMENT`` (the request is wrong, e.g. a
    time in the future), ``FAILED_PRECONDITION`` (the manager cannot answer it, e.g.
    history is off), ``UNAUTHENTICATED`` (the caller is no reader) or ``PERMISSION_DENIED``
    (the reader may not read the cluster asked for); a watch also ends with ``RESOURCE_EXHAUSTED`` (the watcher fell
    too far behind) or ``UNAVAILABLE`` (the manager is shutting down).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """The edge's TLS settings (``manager.tls`` in edge.yaml); a client certificate means mTLS."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Name checked against the server certificate instead of the address's host.
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The manager's TLS settings (``tls`` in manager.yaml); ``client_ca_file`` requires mTLS."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True, slots=True)
class EdgeEndpoint:
    """Where and how an edge reaches its manager; built afresh for every connection attempt."""

    address: str
    #: Bearer token, already read from ``token_file`` if one is configured.
    token: str | None = None
    tls: ClientTLS = field(default_factory=ClientTLS)
    #: Seconds to wait for the connection before raising ``StreamClosed``.
    connect_timeout: float = 10.0
    max_message_size: int = DEFAULT_MAX_MESSAGE


@dataclass(frozen=True, slots=True)
class ManagerEndpoint:
    """Where and how the manager serves sync and query."""

    #: ``host:port``; port 0 binds a free one (``RunningServer.address`` tells which).
    listen: str
    tls: ServerTLS = field(default_factory=ServerTLS)
    max_message_size: int = DEFAULT_MAX_MESSAGE
    #: Client-certificate names the manager maps to clusters: ``PeerInfo.identity`` prefers these.
    identities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the transport knows about the other end of a manager-side stream."""

    address: str
    #: Bearer token from the call metadata ("authorization: Bearer ..."), if any.
    token: str | None = None
    #: Verified client-certificate identity (CN / SAN) under mTLS, if any.
    identity: str | None = None
    #: Every verified name of the client certificate (CN, then SANs): query readers are looked up among them.
    names: tuple[str, ...] = ()


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

    # Optional: ``async def send_serialized(self, data: bytes) -> None`` sends an ``EdgeMessage``
    # that is already serialized (a FULL chunk is assembled as bytes); without it the core
    # parses the bytes and calls ``send``. See ``send_serialized`` below.


async def send_serialized(stream: EdgeStream, data: bytes) -> None:
    """Send a serialized ``EdgeMessage``: as it is when the transport can, else parsed first."""
    direct = getattr(stream, "send_serialized", None)
    if direct is not None:
        await direct(data)
    else:
        await stream.send(sync_pb2.EdgeMessage.FromString(data))


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
    """What the manager core offers a transport to serve.

    Every query takes the caller's ``PeerInfo`` (its bearer token from the call
    metadata, its verified client-certificate names): the manager decides from it
    which reader (``auth.readers``) asks, and refuses with ``QueryRefused``
    ``UNAUTHENTICATED`` (no reader) or ``PERMISSION_DENIED`` (a cluster the reader
    may not read). A transport always passes what it knows of the caller.
    """

    async def handle_sync(self, stream: ManagerStream) -> None:
        """Run one edge's stream until it ends."""
        ...

    async def list_clusters(
        self, request: query_pb2.ListClustersRequest, peer: PeerInfo
    ) -> query_pb2.ListClustersResponse: ...

    def list_resources(
        self, request: query_pb2.ListResourcesRequest, peer: PeerInfo
    ) -> AsyncIterator[query_pb2.ResourcePage]: ...

    def list_changes(self, request: query_pb2.ListChangesRequest, peer: PeerInfo) -> AsyncIterator[query_pb2.ChangePage]:
        """Recorded changes, newest first; raises ``QueryRefused``, like ``diff``, for a query it will not answer."""
        ...

    def diff(self, request: query_pb2.DiffRequest, peer: PeerInfo) -> AsyncIterator[query_pb2.DiffPage]: ...

    def watch(self, request: query_pb2.WatchRequest, peer: PeerInfo) -> AsyncIterator[query_pb2.ChangePage]:
        """Changes as they are applied, until the caller stops iterating; raises ``QueryRefused`` at once
        when the watch is ended (a watcher too far behind, a shutdown), even while a page waits to be sent.
        """
        ...


class RunningServer(Protocol):
    #: ``host:port`` actually bound (useful with port 0).
    address: str

    async def stop(self, grace: float) -> None: ...


@runtime_checkable
class Transport(Protocol):
    """One process's way of talking to the other side, built by ``TransportPlugin.create``."""

    async def connect(self, endpoint: EdgeEndpoint) -> EdgeStream:
        """Open a sync stream to ``endpoint.address``; raise ``StreamClosed`` on failure."""
        ...

    async def serve(self, endpoint: ManagerEndpoint, services: ManagerServices) -> RunningServer:
        """Start serving sync and query for the manager on ``endpoint.listen``."""
        ...


@dataclass(frozen=True, slots=True)
class TransportPlugin:
    """A transport a plugin offers under ``name`` (``transport.plugin`` in edge.yaml and manager.yaml)."""

    name: str
    #: Builds the transport from ``transport.options``; raise ``ValueError`` naming a bad option.
    create: Callable[[Mapping[str, Any]], Transport]
    description: str = ""
