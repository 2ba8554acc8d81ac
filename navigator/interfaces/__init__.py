"""The typed records and protocols that plugin hooks return."""

from navigator.interfaces.collector import Collector, RawObject
from navigator.interfaces.follow import ChangeFollower
from navigator.interfaces.serializer import Serializer
from navigator.interfaces.sink import Sink, SinkPlugin
from navigator.interfaces.storage import (
    Claim,
    ClaimOutcome,
    ClusterClaims,
    ClusterRecord,
    Holding,
    KindErrorRecord,
    ResourceQuery,
    StorageBackend,
    StorageError,
    StorageFenced,
    StoragePlugin,
    StorageRegressed,
)
from navigator.interfaces.transport import (
    ClientTLS,
    EdgeEndpoint,
    EdgeStream,
    ManagerEndpoint,
    ManagerServices,
    ManagerStream,
    PeerInfo,
    QueryRefused,
    RunningServer,
    ServerTLS,
    StreamClosed,
    Transport,
    TransportPlugin,
)

__all__ = [
    "ChangeFollower",
    "Claim",
    "ClaimOutcome",
    "ClientTLS",
    "ClusterClaims",
    "ClusterRecord",
    "Collector",
    "EdgeEndpoint",
    "EdgeStream",
    "Holding",
    "KindErrorRecord",
    "ManagerEndpoint",
    "ManagerServices",
    "ManagerStream",
    "PeerInfo",
    "QueryRefused",
    "RawObject",
    "ResourceQuery",
    "RunningServer",
    "Serializer",
    "ServerTLS",
    "Sink",
    "SinkPlugin",
    "StorageBackend",
    "StorageError",
    "StorageFenced",
    "StoragePlugin",
    "StorageRegressed",
    "StreamClosed",
    "Transport",
    "TransportPlugin",
]
