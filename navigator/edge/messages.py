"""What the sync loop hands the stream, and how it becomes ``ClusterState`` messages.

The loop produces serializer-independent snapshots and deltas; they are encoded
only when a stream is about to send them, because the payload serializer is
negotiated per stream and the size limit comes from the manager's ``Accept``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from navigator.edge import partial
from navigator.edge.collect import CollectResult
from navigator.edge.live import LiveFull
from navigator.edge.partial import KindError
from navigator.edge.records import encode_resource, reencode
from navigator.interfaces import Serializer
from navigator.resource import Resource
from navigator.v1 import sync_pb2


@dataclass(slots=True)
class FullSnapshot:
    """One complete collection of every enabled kind (some possibly failed: see ``partial``)."""

    results: dict[str, CollectResult]
    timestamp: float = field(default_factory=time.time)
    #: Queued when its collection started (for an open chunk set): ``results`` are filled in when it ends.
    live: LiveFull | None = None

    @property
    def collecting(self) -> bool:
        """Queued while collecting and not collected yet (nor let go of: the loop queues it again)."""
        return self.live is not None and not self.live.finished and not self.live.detached

    @property
    def kinds(self) -> list[str]:
        return partial.collected_kinds(self.results)

    @property
    def cached_kinds(self) -> list[str]:
        return partial.fallback_kinds(self.results)

    @property
    def errors(self) -> list[KindError]:
        return partial.kind_errors(self.results)

    @property
    def object_count(self) -> int:
        return sum(r.count for r in partial.carried(self.results))

    def included(self) -> Iterable[CollectResult]:
        return partial.carried(self.results)


@dataclass(slots=True)
class Delta:
    """Changes seen by watches since the previous state; empty means "nothing changed"."""

    upserts: list[Resource] = field(default_factory=list)
    deletions: list[Resource] = field(default_factory=list)
    errors: list[KindError] = field(default_factory=list)
    timestamp: float = field(default_factory=time.time)
    #: When each upsert / deletion was observed (``time.time()``), in the same order; empty: at ``timestamp``.
    upserts_observed: list[float] = field(default_factory=list)
    deletions_observed: list[float] = field(default_factory=list)

    @property
    def object_count(self) -> int:
        return len(self.upserts) + len(self.deletions)


Outgoing = FullSnapshot | Delta


class Sequencer:
    """One counter per edge process, so sequences keep growing across reconnects."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.last = 0

    def next(self) -> int:
        self.last = next(self._counter)
        return self.last

    def advance_past(self, sequence: int) -> None:
        """The manager already applied ``sequence`` from this edge id (an edge restarted with a fixed id)."""
        if sequence >= self.last:
            self._counter = itertools.count(sequence + 1)
            self.last = sequence


def _stamp(target: Timestamp, timestamp: float) -> None:
    seconds = int(timestamp)
    target.seconds = seconds
    target.nanos = min(999_999_999, round((timestamp - seconds) * 1e9))


def _header(cluster_id: str, edge_id: str, state_type: int, timestamp: float) -> sync_pb2.ClusterState:
    header = sync_pb2.ClusterState(edge_id=edge_id, cluster_id=cluster_id, type=state_type)  # type: ignore[arg-type]
    _stamp(header.timestamp, timestamp)
    return header


def open_header(snapshot: FullSnapshot, cluster_id: str, edge_id: str) -> sync_pb2.ClusterState:
    """What every chunk of an open set carries: only the last one adds the rest of ``full_header``."""
    return _header(cluster_id, edge_id, sync_pb2.STATE_TYPE_FULL, snapshot.timestamp)


def full_header(snapshot: FullSnapshot, cluster_id: str, edge_id: str) -> sync_pb2.ClusterState:
    """Everything of a FULL state but its resources: the part every chunk repeats."""
    header = open_header(snapshot, cluster_id, edge_id)
    header.kinds.extend(snapshot.kinds)
    header.cached_kinds.extend(snapshot.cached_kinds)
    header.errors.extend(e.to_proto() for e in snapshot.errors)
    for result in snapshot.included():
        header.counts[result.kind] = result.count
    return header


def encode_full(
    snapshot: FullSnapshot, cluster_id: str, edge_id: str, serializer: Serializer
) -> tuple[sync_pb2.ClusterState, list[bytes]]:
    """The header and the packed resources of a FULL state (``chunking`` splits them into messages).

    Payloads are re-encoded only if the stream negotiated another serializer than the collection used.
    """
    header = full_header(snapshot, cluster_id, edge_id)
    items: list[bytes] = []
    for result in snapshot.included():
        source = result.serializer
        if source is None or source.name == serializer.name:
            items.extend(result.items)
        else:
            items.extend(reencode(item, source, serializer) for item in result.items)
    return header, items


#: What the manager holds, from its Versions messages: (kind, namespace, name) -> (uid, resourceVersion).
HeldVersions = dict[tuple[str, str, str], tuple[str, str]]


class AgainstVersions:
    """A FULL state as only what differs from what the manager ``held``, one object at a time (protocol 2).

    Objects held at the same uid and resourceVersion are left out; what the manager
    holds of a completely listed kind that the edge did not list becomes a deletion.
    An open set filters its objects as they are listed and asks for the deletions
    once the collection has ended, so the keys listed are remembered.
    """

    def __init__(self, held: HeldVersions) -> None:
        self.held = held
        self.listed: set[tuple[str, str, str]] = set()
        #: Objects seen, and those left out as unchanged.
        self.seen = 0
        self.left_out = 0

    def differs(self, item: bytes) -> bool:
        """Whether the packed resource ``item`` must be sent (the manager does not hold this version)."""
        resource = sync_pb2.Resource.FromString(item)
        key = (resource.kind, resource.namespace, resource.name)
        self.listed.add(key)
        self.seen += 1
        if self.held.get(key) == (resource.uid, resource.resource_version):
            self.left_out += 1
            return False
        return True

    def finish(self, header: sync_pb2.ClusterState) -> None:
        """Mark ``header`` as against versions and add the deletions (of its ``kinds``, the complete ones)."""
        complete = set(header.kinds)
        header.against_versions = True
        header.deletions.extend(
            sync_pb2.ResourceKey(kind=key[0], namespace=key[1], name=key[2], uid=uid, resource_version=version)
            for key, (uid, version) in self.held.items()
            if key[0] in complete and key not in self.listed
        )


def against_versions(
    header: sync_pb2.ClusterState, items: list[bytes], held: HeldVersions
) -> tuple[sync_pb2.ClusterState, list[bytes]]:
    """The FULL state ``header`` + ``items`` as only what differs from what the manager ``held``
    (see ``AgainstVersions``); ``counts`` keep counting the whole state (protocol 2)."""
    against = AgainstVersions(held)
    differing = [item for item in items if against.differs(item)]
    against.finish(header)
    return header, differing


def delta_header(delta: Delta, cluster_id: str, edge_id: str) -> sync_pb2.ClusterState:
    header = _header(cluster_id, edge_id, sync_pb2.STATE_TYPE_DELTA, delta.timestamp)
    header.errors.extend(e.to_proto() for e in delta.errors)
    return header


def deletion_key(resource: Resource) -> sync_pb2.ResourceKey:
    return sync_pb2.ResourceKey(
        kind=resource.kind,
        namespace=resource.namespace,
        name=resource.name,
        uid=resource.uid,
        resource_version=resource.resource_version,
    )


def encode_delta(
    delta: Delta, cluster_id: str, edge_id: str, serializer: Serializer
) -> tuple[sync_pb2.ClusterState, list[sync_pb2.Resource], list[sync_pb2.ResourceKey]]:
    """The header and the parts of a DELTA, each object stamped with when it was observed."""
    header = delta_header(delta, cluster_id, edge_id)
    upserts = [encode_resource(r, serializer) for r in delta.upserts]
    deletions = [deletion_key(r) for r in delta.deletions]
    if len(delta.upserts_observed) == len(upserts):
        for upsert, when in zip(upserts, delta.upserts_observed, strict=True):
            _stamp(upsert.observed_at, when)
    if len(delta.deletions_observed) == len(deletions):
        for key, when in zip(deletions, delta.deletions_observed, strict=True):
            _stamp(key.observed_at, when)
    return header, upserts, deletions
