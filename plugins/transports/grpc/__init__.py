"""The default transport: one bidirectional gRPC stream per edge, query service on the same port."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from navigator_plugins.transports.grpc.options import GrpcOptions, parse_options

from navigator.plugin import (
    EdgeEndpoint,
    EdgeStream,
    ManagerEndpoint,
    ManagerServices,
    RunningServer,
    TransportPlugin,
    hookimpl,
)


class GrpcTransport:
    def __init__(self, options: GrpcOptions | None = None) -> None:
        self.options = options or GrpcOptions()

    async def connect(self, endpoint: EdgeEndpoint) -> EdgeStream:
        from navigator_plugins.transports.grpc.client import connect

        return await connect(endpoint, self.options)

    async def serve(self, endpoint: ManagerEndpoint, services: ManagerServices) -> RunningServer:
        from navigator_plugins.transports.grpc.server import serve

        return await serve(endpoint, self.options, services)


def create(options: Mapping[str, Any]) -> GrpcTransport:
    return GrpcTransport(parse_options(options))


@hookimpl
def navigator_transports() -> Iterable[TransportPlugin]:
    return [TransportPlugin(name="grpc", create=create, description="gRPC with TLS/mTLS, keep-alive, gzip")]
