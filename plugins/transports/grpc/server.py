"""The manager's gRPC server: Sync and Query on one port, plus health checking and reflection.

Keep-alive settings (``transport.options``) accept edges' pings down to ``keepalive.min_ping_interval``
and never answer extra pings with a ``too_many_pings`` GOAWAY, so a
misconfigured edge costs a few pings, not its connection.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from loguru import logger
from navigator_plugins.transports.grpc.options import GrpcOptions

from navigator.plugin import (
    ConfigError,
    ManagerEndpoint,
    ManagerServices,
    PeerInfo,
    QueryRefused,
    StorageError,
    StreamClosed,
    query_pb2,
    query_pb2_grpc,
    sync_pb2,
    sync_pb2_grpc,
)

SERVICE_NAMES = (
    sync_pb2.DESCRIPTOR.services_by_name["Sync"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["Query"].full_name,
)


def server_options(endpoint: ManagerEndpoint, settings: GrpcOptions) -> list[tuple[str, Any]]:
    ka = settings.keepalive
    size = endpoint.max_message_size
    return [
        ("grpc.max_receive_message_length", size),
        ("grpc.max_send_message_length", size),
        ("grpc.keepalive_time_ms", int(ka.time * 1000)),
        ("grpc.keepalive_timeout_ms", int(ka.timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", 1 if ka.permit_without_calls else 0),
        ("grpc.http2.min_ping_interval_without_data_ms", int(ka.min_ping_interval * 1000)),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.so_reuseport", 0),
    ]


def _bearer(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _peer(context: grpc.aio.ServicerContext[Any, Any], known: Sequence[str]) -> PeerInfo:
    """The caller: its bearer token and verified client-certificate names (``identity``: one the config
    maps to a cluster if any, else the common name)."""
    auth = context.auth_context() or {}
    names = [v.decode() for v in auth.get("x509_common_name", [])]
    names += [v.decode() for v in auth.get("x509_subject_alternative_name", [])]
    return PeerInfo(
        address=context.peer(),
        token=_bearer(context.invocation_metadata()),
        identity=next((n for n in names if n in known), names[0] if names else None),
        names=tuple(dict.fromkeys(names)),
    )


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What a request whose bytes do not parse is handed over as, instead of protobuf's ``DecodeError``:
    raised inside gRPC, that ends the call UNKNOWN with a logged traceback; the handler answers
    INVALID_ARGUMENT saying what was wrong."""

    method: str
    error: str

    @property
    def details(self) -> str:
        return f"the request to {self.method} is not a valid protobuf message: {self.error or 'cannot be parsed'}"


class TolerantDecoding(grpc.aio.ServerInterceptor):
    """Hands the navigator services an ``Undecodable`` for bytes that do not parse."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        parse = getattr(handler, "request_deserializer", None)
        if parse is None or not method.startswith("/navigator."):
            return handler

        def tolerant(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError as exc:
                return Undecodable(method, str(exc))

        return handler._replace(request_deserializer=tolerant)


async def _decodable(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if isinstance(request, Undecodable):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)


class GrpcManagerStream:
    """``ManagerStream`` over one ``Sync/Connect`` call (only the session task uses it)."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any], peer: PeerInfo) -> None:
        self._context = context
        self.peer = peer

    async def recv(self) -> sync_pb2.EdgeMessage | None:
        try:
            message = await self._context.read()
        except (grpc.RpcError, RuntimeError) as exc:
            raise StreamClosed(f"reading from {self.peer.address} failed: {exc}") from None
        if message is grpc.aio.EOF:
            return None
        if isinstance(message, Undecodable):
            await self.abort("INVALID_ARGUMENT", message.details)
            raise StreamClosed(f"{self.peer.address}: {message.details}")
        return message

    async def send(self, message: sync_pb2.ManagerMessage) -> None:
        try:
            await self._context.write(message)
        except (grpc.RpcError, RuntimeError) as exc:
            raise StreamClosed(f"writing to {self.peer.address} failed: {exc}") from None

    async def abort(self, code: str, details: str) -> None:
        # Set the status and let the handler return: raising here would skip the session's clean-up.
        self._context.set_code(grpc.StatusCode[code])
        self._context.set_details(details)


class SyncServicer(sync_pb2_grpc.SyncServicer):
    def __init__(self, services: ManagerServices, identities: Sequence[str]) -> None:
        self._services = services
        self._known = identities

    async def Connect(  # type: ignore[override]
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        peer = _peer(context, self._known)
        try:
            await self._services.handle_sync(GrpcManagerStream(context, peer))
        except StreamClosed as exc:
            logger.debug("sync stream from {} closed: {}", peer.address, exc)


class QueryServicer(query_pb2_grpc.QueryServicer):
    """Every call hands the manager its caller (``PeerInfo``): the manager decides what that reader may read."""

    def __init__(self, services: ManagerServices, identities: Sequence[str]) -> None:
        self._services = services
        self._known = identities

    async def ListClusters(
        self, request: query_pb2.ListClustersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> query_pb2.ListClustersResponse:
        await _decodable(request, context)
        try:
            return await self._services.list_clusters(request, _peer(context, self._known))
        except (QueryRefused, ValueError, StorageError) as exc:
            await _abort(context, exc)
            raise  # unreachable: abort raises

    async def ListResources(
        self, request: query_pb2.ListResourcesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[query_pb2.ResourcePage]:
        await _decodable(request, context)
        try:
            async for page in self._services.list_resources(request, _peer(context, self._known)):
                yield page
        except (QueryRefused, ValueError, StorageError) as exc:
            await _abort(context, exc)

    async def ListChanges(
        self, request: query_pb2.ListChangesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[query_pb2.ChangePage]:
        await _decodable(request, context)
        try:
            async for page in self._services.list_changes(request, _peer(context, self._known)):
                yield page
        except (QueryRefused, ValueError, StorageError) as exc:
            await _abort(context, exc)

    async def Diff(
        self, request: query_pb2.DiffRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[query_pb2.DiffPage]:
        await _decodable(request, context)
        try:
            async for page in self._services.diff(request, _peer(context, self._known)):
                yield page
        except (QueryRefused, ValueError, StorageError) as exc:
            await _abort(context, exc)

    async def Watch(  # type: ignore[override]
        self, request: query_pb2.WatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Writes the pages one at a time while already waiting for the next one, so a watch the manager
        ends (a watcher that stopped reading and fell behind) ends the call at once, not when a write
        blocked on the stalled reader completes."""
        await _decodable(request, context)
        pages = self._services.watch(request, _peer(context, self._known))
        ahead: asyncio.Future[query_pb2.ChangePage] = asyncio.ensure_future(anext(pages))
        write: asyncio.Future[None] | None = None
        try:
            while True:
                try:
                    page = await ahead
                except StopAsyncIteration:
                    return
                ahead = asyncio.ensure_future(anext(pages))
                write = asyncio.ensure_future(context.write(page))
                await asyncio.wait((write, ahead), return_when=asyncio.FIRST_COMPLETED)
                if not write.done() and _failed(ahead):
                    write.cancel()
                    await ahead  # raises why the watch ended
                await write
        except (QueryRefused, ValueError, StorageError) as exc:
            await _abort(context, exc)
        finally:
            if write is not None:
                write.cancel()
            ahead.cancel()
            await asyncio.wait((ahead,))  # the generator must be idle before it is closed
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()


def _failed(future: asyncio.Future[Any]) -> bool:
    """Whether an ``anext`` future has finished with an error to report (not a page, not the end)."""
    if not future.done() or future.cancelled():
        return False
    return future.exception() is not None and not isinstance(future.exception(), StopAsyncIteration)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
    """A refused query keeps its status, a bad argument is INVALID_ARGUMENT, a storage failure UNAVAILABLE."""
    if isinstance(exc, QueryRefused):
        await context.abort(grpc.StatusCode[exc.code], exc.message)
    elif isinstance(exc, StorageError):
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"storage: {exc}")
    else:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def _read(path: Path | None, key: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None


def server_credentials(endpoint: ManagerEndpoint) -> grpc.ServerCredentials | None:
    tls = endpoint.tls
    if not tls.enabled:
        return None
    cert, key = _read(tls.cert_file, "tls.cert_file"), _read(tls.key_file, "tls.key_file")
    client_ca = _read(tls.client_ca_file, "tls.client_ca_file")
    assert cert is not None and key is not None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _cannot_listen(listen: str, grpc_says: str) -> str:
    """Why binding ``listen`` failed, asked of the operating system: gRPC's own words are vague."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            probe.bind((host, int(port)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"listen: address {listen} is already in use"
        return f"listen: cannot listen on {listen}: {exc.strerror or exc}"
    except ValueError:
        pass
    return f"listen: cannot listen on {listen}: {grpc_says}"


class GrpcServer:
    """``RunningServer``: the bound address and a way to stop."""

    def __init__(self, server: grpc.aio.Server, address: str, health_servicer: Any) -> None:
        self._server = server
        self.address = address
        self._health = health_servicer

    async def stop(self, grace: float) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)


async def serve(endpoint: ManagerEndpoint, settings: GrpcOptions, services: ManagerServices) -> GrpcServer:
    options = server_options(endpoint, settings)
    server = grpc.aio.server(
        options=options, compression=settings.grpc_compression(), interceptors=(TolerantDecoding(),)
    )
    sync_pb2_grpc.add_SyncServicer_to_server(SyncServicer(services, endpoint.identities), server)
    query_pb2_grpc.add_QueryServicer_to_server(QueryServicer(services, endpoint.identities), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    credentials = server_credentials(endpoint)
    listen = endpoint.listen
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        raise ConfigError(_cannot_listen(listen, str(exc))) from None
    if port == 0:
        raise ConfigError(_cannot_listen(listen, "address in use or not available"))
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = listen.rpartition(":")[0]
    return GrpcServer(server, f"{host}:{port}", health_servicer)
