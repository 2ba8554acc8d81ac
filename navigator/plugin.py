"""The public plugin API: everything a plugin may import from Navigator, in one module.

Plugins (the built-in ones included) import only from here and from
``navigator.testing``; the boundary is enforced by import contracts in
``make lint``. Anything not listed in ``__all__`` may change without notice.
``PLUGIN_API_VERSION`` follows semantic versioning: a minor bump adds names, a
major bump removes or changes one (docs/plugin-api.md keeps the history).

    from navigator.plugin import Collector, Resource, hookimpl
"""

from __future__ import annotations

from navigator import hookimpl
from navigator.backoff import Backoff, BackoffPolicy, BackoffSettings
from navigator.config.types import Duration, Size, parse_duration, parse_size
from navigator.errors import ConfigError, NavigatorError
from navigator.interfaces import (
    ChangeFollower,
    Claim,
    ClaimOutcome,
    ClientTLS,
    ClusterClaims,
    ClusterRecord,
    Collector,
    EdgeEndpoint,
    EdgeStream,
    Holding,
    KindErrorRecord,
    ManagerEndpoint,
    ManagerServices,
    ManagerStream,
    PeerInfo,
    QueryRefused,
    RawObject,
    ResourceQuery,
    RunningServer,
    Serializer,
    ServerTLS,
    Sink,
    SinkPlugin,
    StorageBackend,
    StorageError,
    StorageFenced,
    StoragePlugin,
    StorageRegressed,
    StreamClosed,
    Transport,
    TransportPlugin,
)
from navigator.interfaces.collector import COLUMN_TYPES, Column
from navigator.interfaces.storage import (
    BatchingStorageBackend,
    FirstStateWrite,
    FirstStateWriter,
    HistoryQuery,
    plain_additions,
)
from navigator.plugin_options import PluginOptions, validate_options
from navigator.protocol import PROTOCOL_VERSION, check_cluster_id
from navigator.resource import (
    Change,
    ChangeType,
    ObjectVersion,
    Resource,
    ResourceKey,
    StoredObject,
    StoredResource,
)
from navigator.selectors import LabelSelector, Operator, Requirement, SelectorError, parse_selector
from navigator.structs import struct_to_dict
from navigator.v1 import query_pb2, query_pb2_grpc, sync_pb2, sync_pb2_grpc

#: The version of this module's surface (semantic versioning).
PLUGIN_API_VERSION = "1.5"

__all__ = [
    "COLUMN_TYPES",
    "PLUGIN_API_VERSION",
    "PROTOCOL_VERSION",
    "Backoff",
    "BackoffPolicy",
    "BackoffSettings",
    "BatchingStorageBackend",
    "Change",
    "ChangeFollower",
    "ChangeType",
    "Claim",
    "ClaimOutcome",
    "ClientTLS",
    "ClusterClaims",
    "ClusterRecord",
    "Collector",
    "Column",
    "ConfigError",
    "Duration",
    "EdgeEndpoint",
    "EdgeStream",
    "FirstStateWrite",
    "FirstStateWriter",
    "HistoryQuery",
    "Holding",
    "KindErrorRecord",
    "LabelSelector",
    "ManagerEndpoint",
    "ManagerServices",
    "ManagerStream",
    "NavigatorError",
    "ObjectVersion",
    "Operator",
    "PeerInfo",
    "PluginOptions",
    "QueryRefused",
    "RawObject",
    "Requirement",
    "Resource",
    "ResourceKey",
    "ResourceQuery",
    "RunningServer",
    "SelectorError",
    "Serializer",
    "ServerTLS",
    "Sink",
    "SinkPlugin",
    "Size",
    "StorageBackend",
    "StorageError",
    "StorageFenced",
    "StoragePlugin",
    "StorageRegressed",
    "StoredObject",
    "StoredResource",
    "StreamClosed",
    "Transport",
    "TransportPlugin",
    "check_cluster_id",
    "hookimpl",
    "parse_duration",
    "parse_selector",
    "parse_size",
    "plain_additions",
    "query_pb2",
    "query_pb2_grpc",
    "struct_to_dict",
    "sync_pb2",
    "sync_pb2_grpc",
    "validate_options",
]
