"""The typed records and protocols that plugin hooks return."""

from navigator.interfaces.collector import Collector, RawObject
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
    StoragePlugin,
)
from navigator.interfaces.transport import (
    EdgeStream,
    ManagerServices,
    ManagerStream,
    PeerInfo,
    RunningServer,
    StreamClosed,
    Transport,
)

__all__ = [
    "Claim",
    "ClaimOutcome",
    "ClusterClaims",
    "ClusterRecord",
    "Collector",
    "EdgeStream",
    "Holding",
    "KindErrorRecord",
    "ManagerServices",
    "ManagerStream",
    "PeerInfo",
    "RawObject",
    "ResourceQuery",
    "RunningServer",
    "Serializer",
    "Sink",
    "SinkPlugin",
    "StorageBackend",
    "StorageError",
    "StoragePlugin",
    "StreamClosed",
    "Transport",
]
