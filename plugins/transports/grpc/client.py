"""The edge side of the gRPC transport: one channel and one ``Sync/Connect`` stream per connection.

Everything the edge configures for its manager connection lands here: keep-alive
pings and gzip (``transport.options``), message size limits, TLS / mTLS, the
bearer token and the connect timeout (the core's ``EdgeEndpoint``). Failures
surface as ``StreamClosed`` so the stream client's reconnect logic needs to
know nothing about gRPC; a connection that fails says why (refused, unknown
host, TLS handshake, timed out), found by ``diagnose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import grpc
import grpc.aio
from navigator_plugins.transports.grpc.diagnose import diagnose
from navigator_plugins.transports.grpc.options import GrpcOptions

from navigator.plugin import EdgeEndpoint, EdgeStream, StreamClosed, sync_pb2


def channel_options(endpoint: EdgeEndpoint, settings: GrpcOptions) -> list[tuple[str, str | int]]:
    keepalive = settings.keepalive
    options: list[tuple[str, str | int]] = [
        ("grpc.keepalive_time_ms", int(keepalive.time * 1000)),
        ("grpc.keepalive_timeout_ms", int(keepalive.timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", int(keepalive.permit_without_calls)),
        # Keep pinging a quiet stream; the manager's min_ping_interval bounds how often.
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", endpoint.max_message_size),
        ("grpc.max_receive_message_length", endpoint.max_message_size),
        # Reconnect pacing is the stream client's job (with jitter); keep gRPC's own short.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.primary_user_agent", "navigator-edge"),
    ]
    if endpoint.tls.server_name:
        options.append(("grpc.ssl_target_name_override", endpoint.tls.server_name))
    return options


def _read(path: Path | None) -> bytes | None:
    return path.expanduser().read_bytes() if path is not None else None


def channel_credentials(endpoint: EdgeEndpoint) -> grpc.ChannelCredentials | None:
    """TLS credentials (with a client certificate for mTLS), or None for plaintext."""
    tls = endpoint.tls
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
        await self.send_serialized(message.SerializeToString())

    async def send_serialized(self, data: bytes) -> None:
        """The call's request serializer passes bytes through: a chunk built as bytes is not parsed again."""
        try:
            await self._call.write(data)
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


#: Seconds the probe that names a connection failure may take (it runs only after a failure).
PROBE_BUDGET = 3.0


async def _ready(channel: grpc.aio.Channel, endpoint: EdgeEndpoint) -> None:
    """Wait until the channel is ready; ``StreamClosed`` naming the reason when it is not within the timeout.

    Until then gRPC retries on its own every 0.2-2 s, so an edge waiting for a manager that is
    (re)starting connects as soon as it listens; failing at the first refusal would instead hand the
    wait to the edge's reconnect backoff, which grows to a minute. Only a channel that never became
    ready is probed, to say why.
    """
    timeout = endpoint.connect_timeout
    deadline = time.monotonic() + timeout
    ready = grpc.ChannelConnectivity.READY
    state = channel.get_state(try_to_connect=True)
    while state != ready:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reason = await diagnose(endpoint, PROBE_BUDGET, timed_out=True) or await _grpc_reason(channel)
            where = f"cannot reach the manager at {endpoint.address} within {timeout:g}s"
            raise StreamClosed(f"{where}: {reason or 'timed out'}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
        state = channel.get_state(try_to_connect=True)


async def _grpc_reason(channel: grpc.aio.Channel) -> str | None:
    """gRPC's own words for a channel that will not connect: a call that fails at once carries them."""
    call = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=_as_bytes)
    try:
        await call(b"", timeout=0.5, wait_for_ready=False)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE and exc.details():
            return str(exc.details())
    except Exception:  # only a better message is at stake
        return None
    return None


#: ``Sync.Connect``, called with bytes in: the stub's serializer would want a message object.
CONNECT_METHOD = "/navigator.v1.Sync/Connect"


def _as_bytes(data: bytes) -> bytes:
    return data


async def connect(endpoint: EdgeEndpoint, settings: GrpcOptions) -> EdgeStream:
    """Open the sync stream to ``endpoint.address`` within ``connect_timeout``."""
    options = channel_options(endpoint, settings)
    compression = settings.grpc_compression()
    credentials = channel_credentials(endpoint)
    address = endpoint.address
    if credentials is not None:
        channel = grpc.aio.secure_channel(address, credentials, options=options, compression=compression)
    else:
        channel = grpc.aio.insecure_channel(address, options=options, compression=compression)
    try:
        await _ready(channel, endpoint)
    except BaseException:
        await channel.close(grace=None)
        raise
    metadata = (("authorization", f"Bearer {endpoint.token}"),) if endpoint.token else ()
    call = channel.stream_stream(
        CONNECT_METHOD, request_serializer=_as_bytes, response_deserializer=sync_pb2.ManagerMessage.FromString
    )(metadata=metadata)
    return GrpcEdgeStream(channel, call)
