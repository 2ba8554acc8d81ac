"""The grpc transport's own settings: ``transport.options`` in edge.yaml and manager.yaml.

They are gRPC channel arguments, so they live with the plugin rather than in
the core schema; ``validate_options`` reports a bad one as ``transport.options.<key>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import grpc
from pydantic import Field

from navigator.plugin import Duration, PluginOptions, validate_options


class Keepalive(PluginOptions):
    time: Duration = Field(30.0, gt=0, description="ping after this long without activity")
    timeout: Duration = Field(10.0, gt=0, description="close the connection if a ping is not answered")
    permit_without_calls: bool = True
    #: Manager only: pings more frequent than this are tolerated but not wanted; keep it below
    #: the edges' keepalive.time. An edge ignores it.
    min_ping_interval: Duration = Field(5.0, gt=0)


class GrpcOptions(PluginOptions):
    keepalive: Keepalive = Field(default_factory=Keepalive)
    #: gzip trades CPU for bandwidth on a slow link to the manager.
    compression: Literal["none", "gzip"] = "none"

    def grpc_compression(self) -> grpc.Compression:
        return grpc.Compression.Gzip if self.compression == "gzip" else grpc.Compression.NoCompression


def parse_options(options: Mapping[str, Any] | None) -> GrpcOptions:
    return validate_options(GrpcOptions, options, "transport.options")
