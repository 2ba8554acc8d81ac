"""The edge side of the gRPC transport: one channel and one ``Sync/Connect`` stream per connection.

Everything the edge configures for its manager connection lands here: keep-alive
pings, message size limits, gzip, TLS / mTLS, the bearer token and the connect
timeout. Failures surface as ``StreamClosed`` so the stream client's reconnect
logic needs to know nothing about gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import grpc.aio

from navigator.config.edge import EdgeConfig
from navigator.plugin import EdgeStream, StreamClosed, sync_pb2, sync_pb2_grpc


def channel_options(config: EdgeConfig) -> list[tuple[str, Any]]:
    manager = config.manager
    keepalive = manager.keepalive
    options: list[tuple[str, Any]] = [
        ("grpc.keepalive_time_ms", int(keepalive.time * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive.timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", int(keepalive.permit_without_calls)),
        # Keep pinging a quiet stream; the manager's min_ping_interval bounds how often.
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", manager.max_message_size),
        ("grpc.max_receive_message_length", manager.max_message_size),
        # Reconnect pacing is the stream client's job (with jitter); keep gRPC's own short.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.primary_user_agent", "navigator-edge"),
    ]
    if manager.tls.server_name:
        options.append(("grpc.ssl_target_name_override", manager.tls.server_name))
    return options


def _read(path: Any) -> bytes | None:
    return path.expanduser().read_bytes() if path is not None else None


def channel_credentials(config: EdgeConfig) -> grpc.ChannelCredentials | None:
    """TLS credentials (with a client certificate for mTLS), or None for plaintext."""
    tls = config.manager.tls
    if not tls.enabled:
        return None
    try:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(tls.ca_file),
            private_key=_read(tls.key_file),
            certificate_chain=_read(tls.cert_file),
        )
    except OSError as exc:
        raise StreamClosed(f"cannot read TLS files for the manager connection: {exc}") from None


class GrpcEdgeStream:
    """``EdgeStream`` over a grpc.aio stream-stream call."""

    def __init__(self, channel: grpc.aio.Channel, call: grpc.aio.StreamStreamCall) -> None:
        self._channel = channel
        self._call = call

    async def send(self, message: sync_pb2.EdgeMessage) -> None:
        try:
            await self._call.write(message)
        except grpc.aio.AioRpcError as exc:
            raise StreamClosed(_describe(exc)) from None
        except (asyncio.InvalidStateError, grpc.aio.UsageError) as exc:
            raise StreamClosed(await self._ended(f"the stream is closed ({exc})")) from None

    async def recv(self) -> sync_pb2.ManagerMessage | None:
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise StreamClosed(_describe(exc)) from None
        except (asyncio.InvalidStateError, grpc.aio.UsageError) as exc:
            raise StreamClosed(f"the stream is closed ({exc})") from None
        if message is grpc.aio.EOF:
            code = await self._call.code()
            if code != grpc.StatusCode.OK:
                details = await self._call.details()
                raise StreamClosed(f"the manager ended the stream: {code.name}: {details}")
            return None
        return message

    async def _ended(self, fallback: str) -> str:
        if self._call.done():
            code = await self._call.code()
            if code != grpc.StatusCode.OK:
                return f"{code.name}: {await self._call.details()}"
        return fallback

    async def close(self) -> None:
        """Half-close, then tear the channel down: the manager sees the stream end at once."""
        with contextlib.suppress(Exception):
            if not self._call.done():
                await asyncio.wait_for(self._call.done_writing(), 1.0)
        self._call.cancel()
        await self._channel.close(grace=None)


def _describe(exc: grpc.aio.AioRpcError) -> str:
    details = exc.details() or ""
    return f"{exc.code().name}: {details}" if details else exc.code().name


async def connect(config: EdgeConfig) -> EdgeStream:
    """Open the sync stream to ``config.manager.address`` within ``connect_timeout``."""
    manager = config.manager
    try:
        token = manager.resolved_token()
    except OSError as exc:
        raise StreamClosed(f"cannot read manager.token_file: {exc}") from None
    options = channel_options(config)
    compression = grpc.Compression.Gzip if manager.compression == "gzip" else grpc.Compression.NoCompression
    credentials = channel_credentials(config)
    if credentials is not None:
        channel = grpc.aio.secure_channel(manager.address, credentials, options=options, compression=compression)
    else:
        channel = grpc.aio.insecure_channel(manager.address, options=options, compression=compression)
    try:
        await asyncio.wait_for(channel.channel_ready(), manager.connect_timeout)
    except TimeoutError:
        await channel.close(grace=None)
        raise StreamClosed(f"cannot reach the manager at {manager.address} within {manager.connect_timeout:g}s") from None
    except BaseException:
        await channel.close(grace=None)
        raise
    metadata: list[tuple[str, str]] = [("navigator-cluster", config.cluster.id)]
    if token:
        metadata.append(("authorization", f"Bearer {token}"))
    call = sync_pb2_grpc.SyncStub(channel).Connect(metadata=tuple(metadata))
    return GrpcEdgeStream(channel, call)
