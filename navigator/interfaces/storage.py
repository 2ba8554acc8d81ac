"""Where the manager keeps state, and how several managers share claims on clusters.

Storage is deliberately dumb: the core's reconciler decides what changed (it asks
``versions`` once per claim), and a backend writes what it is handed (``apply``),
reads it back (``read``, ``query``) and keeps the change history (``history``).
The interface is synchronous: SQLite and psycopg are happiest that way, and the
manager runs storage calls on a worker thread so the event loop never blocks.
Every ``apply`` call is one transaction: it happens entirely or not at all.

Fencing: every claim of a cluster carries an epoch (``Claim.epoch``) higher than
any before it, the session writes with it (``ClusterRecord.epoch``), and a backend
refuses, inside the write's own transaction, a write whose epoch is older than the
cluster's current one (``StorageFenced``). A manager that lost its claim while
frozen or cut off can then never overwrite what the new holder wrote.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from navigator.resource import (
    Change,
    ChangeType,
    ObjectVersion,
    Resource,
    ResourceKey,
    StoredObject,
    StoredResource,
)
from navigator.selectors import LabelSelector


class StorageError(Exception):
    """A backend could not do what was asked; the message says why (no traceback needed)."""

    #: ``StorageFenced``, reachable from the public plugin API (which exports ``StorageError``).
    Fenced: ClassVar[type[StorageFenced]]
    #: ``StorageRegressed``, likewise.
    Regressed: ClassVar[type[StorageRegressed]]


class StorageFenced(StorageError):
    """A write refused because the writer no longer holds the cluster: a newer claim (a higher
    epoch) exists, or the write would move a stored object's resourceVersion back. Nothing of it
    was written; retrying cannot help, the writer's session must end."""


class StorageRegressed(StorageFenced):
    """The second kind of refusal: the write would move a stored object (same uid) back to an older
    resourceVersion, under a claim that is still current. The state is wrong, not the writer: the
    manager answers it INVALID and the stream goes on. Raise it only after checking the epoch."""


StorageError.Fenced = StorageFenced
StorageError.Regressed = StorageRegressed


@dataclass(slots=True)
class KindErrorRecord:
    """A collection failure an edge reported, kept until that kind collects again."""

    kind: str
    message: str
    http_status: int = 0
    cached: bool = False
    since: datetime | None = None


@dataclass(slots=True)
class ClusterRecord:
    """What the manager persists about a cluster besides its resources."""

    cluster: str
    edge_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    last_sync: datetime | None = None
    last_seen: datetime | None = None
    #: The edge's declared base interval; status thresholds derive from it.
    sync_interval: float = 30.0
    errors: list[KindErrorRecord] = field(default_factory=list)
    manager_id: str = ""
    #: Highest applied ClusterState sequence from ``edge_id``.
    last_sequence: int = 0
    #: The time (edge clock) as of which the stored copy was exact: the last applied state's timestamp.
    fresh_as_of: datetime | None = None
    #: Seconds from the edge observing the last applied change to the manager applying it (``None``: no
    #: change applied yet). Mixes the two clocks: negative when the edge's runs ahead.
    lag: float | None = None
    #: The fencing token of the claim under which this record is written (``Claim.epoch``); 0 for a
    #: writer without a claim. ``apply`` and ``save_cluster`` refuse a record older than the cluster's.
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class ResourceQuery:
    """Filters for ``StorageBackend.query``; ``None`` means any."""

    kind: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    name: str | None = None
    selector: LabelSelector | None = None
    limit: int | None = None
    #: The objects as they were at this time, rebuilt from history (within retention); ``None``: now.
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Filters for ``StorageBackend.history``; ``None`` means any. Times are inclusive."""

    cluster: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    #: Matched against the labels of the object after the change (the last known ones for DELETED).
    selector: LabelSelector | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


def plain_additions(cluster: str, history: Sequence[Change], upserts: Sequence[StoredObject]) -> bool:
    """Whether ``history`` is exactly one ADDED change per upsert, in the upserts' order, of ``cluster``,
    all applied at one time and observed at one time: a cluster's first state, as the reconciler hands it.

    (A change's key and versions are taken to be its resource's, as the reconciler makes them.)
    Then a backend may write the history rows as a copy of the rows it has just inserted (in the same
    order: the reconciler gives a FULL state's upserts in key order), inside the database, instead of
    sending every object twice. Every pass runs in C: milliseconds for 150,000 changes.
    """
    if not history or len(history) != len(upserts):
        return False
    resources = list(map(_RESOURCE, upserts))
    return (
        all(map(operator.is_, map(_RESOURCE, history), resources))
        and set(map(_TYPE, history)) == {ChangeType.ADDED}
        and set(map(_CLUSTER, history)) == {cluster}
        and len(set(map(_TIMES, history))) == 1
        and not any(map(_FIELDS, history))
    )


_RESOURCE = operator.attrgetter("resource")
_TYPE = operator.attrgetter("type")
_CLUSTER = operator.attrgetter("cluster")
_TIMES = operator.attrgetter("applied_at", "observed_at")
_FIELDS = operator.attrgetter("changed_fields")


@runtime_checkable
class StorageBackend(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema; safe to call on every start, and concurrently."""
        ...

    def close(self) -> None: ...

    def versions(self, cluster: str) -> Iterator[ObjectVersion]:
        """Every stored object of ``cluster`` as the reconciler indexes it (no payloads)."""
        ...

    def read(self, cluster: str, keys: Collection[ResourceKey]) -> list[Resource]:
        """The stored objects of ``cluster`` at ``keys`` (kind, namespace, name; uid ignored), any order."""
        ...

    def apply(
        self,
        cluster: ClusterRecord,
        upserts: Sequence[StoredObject],
        deletions: Collection[ResourceKey],
        history: Sequence[Change] | None,
        record_cluster: bool = False,
    ) -> None:
        """One transaction: write ``upserts`` (replacing the object at the same kind/namespace/name),
        remove ``deletions``, append ``history`` and save ``cluster``.

        ``history`` is ``None`` when history is off. ``record_cluster`` asks to keep
        this version of the cluster record in the history too (``get_cluster(at=...)``).
        The reconciler hands each key at most once per call; nothing is compared here,
        except what fencing needs. Inside the same transaction, raise ``StorageFenced``
        and write nothing when

        - ``cluster.epoch`` is lower than the cluster's current epoch: the highest epoch
          saved with its record, and for a backend with claims of its own
          (``create_claims``) the epoch of the cluster's latest claim;
        - an upsert has the uid of the stored object at its key and an older
          resourceVersion, both being integers (what Kubernetes and kubesim use;
          resourceVersions that are not integers are not compared): ``StorageRegressed``
          if ``cluster.epoch`` is current, else ``StorageFenced`` as above.

        A write that is not refused saves ``cluster.epoch`` with the record.
        """
        ...

    def save_cluster(self, cluster: ClusterRecord) -> None:
        """Save the record alone; fenced like ``apply`` (``StorageFenced`` when ``cluster.epoch`` is older)."""
        ...

    def get_cluster(self, cluster: str, at: datetime | None = None) -> ClusterRecord | None:
        """The record now, or as last saved at or before ``at`` (kept with the history)."""
        ...

    def list_clusters(self, at: datetime | None = None) -> list[ClusterRecord]: ...

    def counts(self, cluster: str) -> dict[str, int]:
        """Stored resources per kind for one cluster."""
        ...

    def query(self, query: ResourceQuery) -> Iterator[StoredResource]:
        """Matching resources ordered by cluster, kind, namespace, name.

        With ``query.at`` set: the objects as they were then, i.e. per key the
        latest history entry applied at or before ``at`` unless it is a DELETED.
        """
        ...

    def history(self, query: HistoryQuery) -> Iterator[Change]:
        """Recorded changes, newest first (by applied time, then by the order they were applied)."""
        ...

    def prune_history(self, before: datetime, max_rows: int | None) -> int:
        """Forget changes applied before ``before`` and the oldest beyond ``max_rows``; returns how many.

        Per object the latest change before ``before`` is kept (unless it is a
        DELETED), so ``query(at=...)`` stays right for any time after ``before``.
        """
        ...

    def create_claims(self, manager_id: str, grace_period: float) -> ClusterClaims | None:
        """A claims shared by every manager on this storage, or ``None`` for the in-memory one.

        Its claims' epochs must exceed every epoch stored for the cluster; the in-memory
        claims start above the epochs of the stored cluster records (``list_clusters``).
        """
        ...


@runtime_checkable
class BatchingStorageBackend(Protocol):
    """The optional group-commit capability of a ``StorageBackend`` (checked with ``isinstance``)."""

    def batch(self) -> AbstractContextManager[None]:
        """One transaction for every write made on this thread inside the ``with`` block.

        Each write call (``apply``, ``save_cluster``) in the block is a savepoint of it: when
        the call raises (``StorageFenced``, ``StorageRegressed``, any error), only that call's
        writes are undone and the block goes on; the others stay in the transaction. The
        transaction commits when the block ends without an exception; a commit that fails
        raises (``StorageError``) and nothing of the block is stored. An exception out of the
        block rolls everything back. Fencing is checked per call, as outside a batch.

        The manager never puts two writes of one cluster into one batch, and reads nothing
        it wrote in the batch before the commit: a backend's reads need not see the batch.
        Other threads' writes wait until the block ends.

            with backend.batch():
                backend.apply(record_a, upserts_a, (), history_a)
                try:
                    backend.apply(record_b, upserts_b, (), history_b)
                except StorageError:
                    ...  # b is not stored; a still commits at the end of the block
        """
        ...


@runtime_checkable
class FirstStateWriter(Protocol):
    """The optional capability of writing a cluster's first state while its chunks still arrive
    (checked with ``isinstance``): the database works on chunk k while k+1 is on its way."""

    def begin_first_state(self, cluster: str) -> FirstStateWrite | None:
        """Start writing the first state of ``cluster``, which holds no objects, or ``None`` when
        that is not possible now (the cluster holds objects after all, too many such writes are
        open, the database cannot be reached): the manager then writes the state with ``apply``
        once it is complete, as it does for every other state.

        Nothing written through the returned ``FirstStateWrite`` may be seen by any reader, nor
        kept after a crash, before its ``finish`` commits. The manager calls this on its storage
        thread, only for a chunk set that has more chunks to come.
        """
        ...


@runtime_checkable
class FirstStateWrite(Protocol):
    """One first state being written (``FirstStateWriter.begin_first_state``): ``write`` per
    chunk, then ``finish`` (which commits) or ``abort`` (which stores nothing)."""

    def write(self, objects: Sequence[StoredObject]) -> None:
        """Write these objects of the state (each key once in the whole state, in any order),
        without waiting for the database: a failure may surface at a later ``write`` or at
        ``finish``, as ``StorageError``."""
        ...

    def finish(
        self,
        cluster: ClusterRecord,
        count: int,
        applied_at: datetime,
        observed_at: datetime | None,
        history: bool,
        record_cluster: bool = False,
    ) -> None:
        """Commit the state: ``count`` objects were written (refuse, storing nothing, if that is not
        so); with ``history``, one ADDED change per object in key order, applied at ``applied_at``
        and observed at ``observed_at``, as ``apply`` records a cluster's first state
        (``plain_additions``); then the cluster record (fenced, and kept as a copy with
        ``record_cluster``) as in ``apply``. Raises as ``apply`` does, and then nothing of the
        state is stored. The write is over either way.

        Called from a thread of the manager's other than the storage thread, while the storage
        thread builds the state's changes, never at the same time as ``write``.
        """
        ...

    def abort(self) -> None:
        """Store nothing of the state and let go of what the write holds. Callable from any
        thread, at any time, more than once; never raises, never waits for the database
        (a no-op once ``finish`` has returned)."""
        ...


def batch_writes(backend: StorageBackend) -> AbstractContextManager[None]:
    """``backend.batch()`` when the backend offers group commit, else a block in which every
    write stays its own transaction (the fallback every backend supports)."""
    if isinstance(backend, BatchingStorageBackend):
        return backend.batch()
    return contextlib.nullcontext()


class ClaimOutcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    ALREADY_HELD = "ALREADY_HELD"
    GRACE_PERIOD = "GRACE_PERIOD"


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    holder_edge_id: str = ""
    #: Seconds until a retry may succeed (end of the grace period), 0 if unknown.
    retry_after: float = 0.0
    #: An accepted claim's fencing token: higher than any earlier claim's on the cluster (every
    #: claim takes a new one, a reconnect of the same edge too). Writes carry it (``ClusterRecord.epoch``).
    epoch: int = 0

    @property
    def accepted(self) -> bool:
        return self.outcome is ClaimOutcome.ACCEPTED


@dataclass(frozen=True, slots=True)
class Holding:
    cluster: str
    edge_id: str
    manager_id: str
    connected: bool
    #: Monotonic-free wall clock seconds (``time.time()``).
    since: float
    released_at: float | None = None


@runtime_checkable
class ClusterClaims(Protocol):
    """Who holds which cluster: one edge per cluster, and a grace period after it leaves.

    Rules every implementation follows: a cluster held by a connected edge is
    refused to any other edge id (``ALREADY_HELD``); after the holder releases
    it, other edge ids are refused until ``grace_period`` has passed
    (``GRACE_PERIOD``); the same edge id may always reclaim its own cluster
    (a reconnect), replacing its previous connection. Every accepted claim has an
    epoch higher than the cluster's earlier claims (``Claim.epoch``).
    """

    def claim(self, cluster: str, edge_id: str) -> Claim: ...

    def release(self, cluster: str, edge_id: str) -> None:
        """The holder disconnected: start the grace period."""
        ...

    def renew(self, cluster: str, edge_id: str) -> bool:
        """Keep a claim alive; ``False`` means it was lost and the stream must end."""
        ...

    def holdings(self) -> Mapping[str, Holding]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoragePlugin:
    """A storage backend a plugin offers under ``name`` (``storage.plugin`` in the manager YAML)."""

    name: str
    #: Builds a backend from ``storage.options``; raise ``StorageError`` for bad options.
    create: Callable[[Mapping[str, Any]], StorageBackend]
    description: str = ""
