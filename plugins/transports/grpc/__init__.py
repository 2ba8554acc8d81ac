"""The default transport: one bidirectional gRPC stream per edge, query service on the same port."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from navigator.plugin import EdgeStream, ManagerServices, RunningServer, Transport, hookimpl

if TYPE_CHECKING:
    from navigator.config.edge import EdgeConfig
    from navigator.config.manager import ManagerConfig


class GrpcTransport:
    name = "grpc"

    async def connect(self, config: EdgeConfig) -> EdgeStream:
        from navigator_plugins.transports.grpc.client import connect

        return await connect(config)

    async def serve(self, config: ManagerConfig, services: ManagerServices) -> RunningServer:
        from navigator_plugins.transports.grpc.server import serve

        return await serve(config, services)


@hookimpl
def navigator_transports() -> Iterable[Transport]:
    return [GrpcTransport()]
