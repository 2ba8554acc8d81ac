"""The conformance suite every storage backend passes: SQLite here, PostgreSQL in contrib, yours too.

Subclass ``StorageConformance`` in a test module and override one fixture,
``backend_factory``: a callable that opens the *same*, initially empty store
each time it is called (so the suite can close and reopen it). The suite calls
``migrate()`` itself and closes what it opened::

    import pytest
    from navigator.testing.storage_conformance import StorageConformance
    from my_plugin import MyBackend

    class TestMyBackend(StorageConformance):
        @pytest.fixture
        def backend_factory(self, tmp_path):
            return lambda: MyBackend(path=tmp_path / "state.db")

What it checks, all through the public ``StorageBackend`` interface and in process:

- **writing**: ``apply`` writes, replaces and deletes objects by kind, namespace
  and name, leaves other clusters and kinds alone, round-trips data and labels,
  and ``versions()`` gives back exactly what it wrote, digest included; ``read``
  finds objects by key; ``migrate()`` is idempotent and everything survives a reopen;
- **atomicity**: an apply whose iterables raise midway, or that holds unstorable
  data, leaves everything as it was, cluster record and history included;
- **cluster records** round-trip (metadata, errors, last_sequence, times, the copy's
  freshness: ``fresh_as_of`` and ``lag``), now and ``at`` a time when ``record_cluster``
  kept a copy;
- **queries**: filters, order, limits, label selectors (against ``navigator.selectors``
  as the reference), counts, other threads, a consistent snapshot;
- **history**: every field round-trips, newest first with ties in apply order, every
  ``HistoryQuery`` filter, ``history=None`` writes none;
- **time travel**: ``query(at=T)`` shows what existed at T (deleted later: shown;
  added later: not; modified later: as it was), filters and selectors applied at T;
- **retention**: ``prune_history`` keeps, per object, the latest change before the
  cutoff unless it is a DELETED (so the past after the cutoff stays right), and
  ``max_rows`` drops the oldest;
- **the core's rules end to end**: the manager's ``Reconciler`` over the backend
  (payload-only changes, duplicate keys, re-created uids, partial FULL states, DELTA
  deletions with a stale uid, unchanged re-applies, an index reloaded after a reopen,
  per-object observation times and the freshness saved with the record);
- **claims**: the rules of ``ClusterClaims`` for the claims a manager on this backend
  uses (the backend's own from ``create_claims``, or the manager's in-memory ones);
- **fencing**: every accepted claim has a higher epoch than the ones before it (after a
  reopen too); ``apply`` and ``save_cluster`` under an older epoch than the cluster's
  raise ``StorageFenced`` and write nothing, and so does an upsert that would move a stored
  object (same uid) back to an older integer resourceVersion (``StorageRegressed`` when the
  writer's epoch is current, plain ``StorageFenced`` when it is not).
- **group commit** (``batch_writes``, whether or not the backend offers ``batch``): writes of
  several clusters in one batch are all stored at its end; one that raises (fenced, moved
  back, failing midway) leaves nothing of itself and takes nothing of the others with it;
  a backend with ``batch`` stores nothing of a batch whose block raised.
- **a first state written as it arrives** (a chunk set staged by the ``Reconciler`` chunk by
  chunk, whether or not the backend is a ``FirstStateWriter``): nothing of it is seen before
  its apply, everything (history in key order) after; one dropped midway leaves nothing and
  the cluster's next state goes in; two clusters' first states arriving together are both stored. For a ``FirstStateWriter``, directly: ``finish`` refuses
  a wrong count and an older epoch storing nothing, keeps no history when told, and
  ``begin_first_state`` declines a cluster that holds objects.

The builders here (``make``, ``record``, ``added``/``modified``/``deleted``,
``commit``, ``state``, ``arriving``/``more_of``, ``Feed``, ``scenario``) are public for
backends' own tests.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from navigator.interfaces import (
    ClaimOutcome,
    ClusterClaims,
    ClusterRecord,
    KindErrorRecord,
    ResourceQuery,
    StorageBackend,
    StorageError,
)
from navigator.interfaces.storage import (
    BatchingStorageBackend,
    FirstStateWriter,
    HistoryQuery,
    StorageFenced,
    StorageRegressed,
    batch_writes,
)
from navigator.manager import partial
from navigator.manager.claims import InMemoryClaims
from navigator.manager.reconciler import Reconciler, abandon
from navigator.manager.reconciler import digest as wire_digest
from navigator.manager.validation import StateSet
from navigator.resource import (
    Change,
    ChangeType,
    ObjectVersion,
    Resource,
    ResourceKey,
    StoredObject,
    StoredResource,
)
from navigator.selectors import LabelSelector, parse_selector
from navigator.v1 import sync_pb2

BackendFactory = Callable[[], StorageBackend]

#: The suite's epoch: every time it writes is this plus some seconds.
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def moment(seconds: float) -> datetime:
    """``T0`` plus ``seconds`` (microseconds count: backends keep them)."""
    return T0 + timedelta(seconds=seconds)


# -- objects, records and changes ---------------------------------------------------------------


def make(
    name: str,
    kind: str = "pods",
    namespace: str = "default",
    *,
    uid: str | None = None,
    rv: str = "1",
    labels: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
) -> Resource:
    """A resource; its uid is derived from kind, namespace and name unless given."""
    return Resource(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=uid or f"uid-{kind}-{namespace}-{name}",
        resource_version=rv,
        labels=labels or {},
        data=data if data is not None else {"phase": "Running"},
    )


def record(cluster: str = "east", **fields: Any) -> ClusterRecord:
    return ClusterRecord(cluster=cluster, **fields)


def digest_of(resource: Resource) -> str:
    """A stand-in for the reconciler's digest: a string the backend must give back unchanged."""
    body = orjson.dumps(
        [resource.uid, resource.resource_version, resource.labels, resource.data], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def version_of(resource: Resource, digest: str | None = None) -> ObjectVersion:
    """What ``versions()`` must say about ``resource`` once it is stored."""
    r = resource
    return ObjectVersion(r.kind, r.namespace, r.name, r.uid, r.resource_version, digest or digest_of(r))


def added(
    resource: Resource, when: datetime, cluster: str = "east", observed: datetime | None = None
) -> Change:
    """An ADDED history entry (``observed``: when the edge saw it, if known)."""
    r = resource
    return Change(
        cluster, r.kind, r.namespace, r.name, r.uid, ChangeType.ADDED, None, r.resource_version,
        applied_at=when, observed_at=observed, resource=r,
    )  # fmt: skip


def modified(
    resource: Resource,
    when: datetime,
    old_rv: str,
    fields: Sequence[str] = ("phase",),
    cluster: str = "east",
    observed: datetime | None = None,
) -> Change:
    """A MODIFIED history entry: ``resource`` as it is now, ``old_rv`` its previous resourceVersion."""
    r = resource
    return Change(
        cluster, r.kind, r.namespace, r.name, r.uid, ChangeType.MODIFIED, old_rv, r.resource_version,
        applied_at=when, observed_at=observed, resource=r, changed_fields=tuple(fields),
    )  # fmt: skip


def deleted(
    resource: Resource, when: datetime, cluster: str = "east", observed: datetime | None = None
) -> Change:
    """A DELETED history entry for the stored ``resource`` (its uid and last resourceVersion)."""
    r = resource
    return Change(
        cluster, r.kind, r.namespace, r.name, r.uid, ChangeType.DELETED, r.resource_version, None,
        applied_at=when, observed_at=observed,
    )  # fmt: skip


def commit(
    backend: StorageBackend,
    changes: Sequence[Change],
    cluster: ClusterRecord | None = None,
    *,
    history: bool = True,
    record_cluster: bool = False,
) -> None:
    """Write ``changes`` the way the reconciler does: one ``apply`` of their objects, deletions and history.

    A DELETED followed by an ADDED of the same key (a re-creation) is an upsert, not a deletion.
    ``cluster`` defaults to a bare record of the changes' cluster synced at the last change.
    """
    if cluster is None:
        when = max((c.applied_at for c in changes if c.applied_at is not None), default=None)
        cluster = record(changes[0].cluster if changes else "east", last_sync=when, last_seen=when)
    upserts: dict[tuple[str, str, str], StoredObject] = {}
    deletions: dict[tuple[str, str, str], ResourceKey] = {}
    for c in changes:
        key = (c.kind, c.namespace, c.name)
        if c.resource is None:
            deletions[key] = ResourceKey(c.kind, c.namespace, c.name, c.uid)
        else:
            deletions.pop(key, None)
            upserts[key] = StoredObject(c.resource, digest_of(c.resource))
    backend.apply(cluster, list(upserts.values()), list(deletions.values()), list(changes) if history else None,
                  record_cluster)  # fmt: skip


def store(backend: StorageBackend, resources: Iterable[Resource], cluster: str = "east") -> None:
    """Write objects with history off (for the tests about current state only)."""
    upserts = [StoredObject(r, digest_of(r)) for r in resources]
    backend.apply(record(cluster), upserts, [], None)


def store_as(backend: StorageBackend, epoch: int, resources: Iterable[Resource], cluster: str = "east") -> None:
    """``store`` under a claim's ``epoch``."""
    upserts = [StoredObject(r, digest_of(r)) for r in resources]
    backend.apply(record(cluster, epoch=epoch), upserts, [], None)


def names(backend: StorageBackend, **query: Any) -> list[str]:
    return [item.resource.name for item in backend.query(ResourceQuery(**query))]


def everything(backend: StorageBackend, clusters: Iterable[str] = ("east", "west")) -> dict[str, Any]:
    """All a backend answers, now and in the past: equal before and after means nothing changed."""
    far = T0 + timedelta(days=3650)
    return {
        "objects": list(backend.query(ResourceQuery())),
        "versions": {c: sorted(backend.versions(c), key=repr) for c in clusters},
        "history": list(backend.history(HistoryQuery())),
        "clusters": backend.list_clusters(),
        "clusters_then": backend.list_clusters(at=far),
        "past": list(backend.query(ResourceQuery(at=far))),
    }


# -- states for the reconciler ------------------------------------------------------------------


class JsonPayloads:
    """The suite's serializer for states: JSON through orjson, as the built-in ``json`` plugin does."""

    name = "json"

    def encode(self, data: Mapping[str, Any]) -> bytes:
        return orjson.dumps(data)

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"payload is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError(f"payload must be a JSON object, got {type(value).__name__}")
        return value


SERIALIZER = JsonPayloads()


def wire(resource: Resource) -> sync_pb2.Resource:
    """``resource`` as an edge sends it: the data encoded into the payload."""
    r = resource
    return sync_pb2.Resource(
        kind=r.kind, namespace=r.namespace, name=r.name, uid=r.uid, resource_version=r.resource_version,
        labels=r.labels, payload=SERIALIZER.encode(r.data),
    )  # fmt: skip


def state(
    *resources: Resource,
    kinds: Iterable[str] | None = None,
    cached_kinds: Iterable[str] = (),
    errors: Mapping[str, str] | None = None,
    deletions: Iterable[ResourceKey] = (),
    delta: bool = False,
    chunks: int = 1,
) -> StateSet:
    """A state as the manager hands it to the reconciler (a chunk set is one joined ``StateSet``).

    A FULL state covers ``kinds`` (default: the kinds of its resources) and ``cached_kinds``;
    ``errors`` maps a failed kind to its message.
    """
    if kinds is None:
        kinds = [] if delta else sorted({r.kind for r in resources})
    return StateSet(
        sequence=0,
        type=sync_pb2.STATE_TYPE_DELTA if delta else sync_pb2.STATE_TYPE_FULL,
        kinds=list(kinds),
        cached_kinds=list(cached_kinds),
        errors=[sync_pb2.KindError(kind=k, message=m, http_status=403) for k, m in (errors or {}).items()],
        counts={},
        resources=[wire(r) for r in resources],
        deletions=[
            sync_pb2.ResourceKey(kind=k.kind, namespace=k.namespace, name=k.name, uid=k.uid)
            for k in deletions
        ],
        chunks=chunks,
    )


@dataclass
class Feed:
    """The manager's write path for one cluster: the core's reconciler fed states on a clock of its own.

    Each state is applied one second after the previous one (observed half a second
    before), with the cluster record updated as the manager updates it.
    """

    backend: StorageBackend
    cluster: str = "east"
    history: bool = True
    clock: datetime = T0
    record_cluster: bool = False
    record: ClusterRecord = field(init=False)
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.backend, history=self.history)
        self.record = ClusterRecord(
            self.cluster,
            edge_id="edge-1",
            metadata={"region": "eu-west-1"},
            sync_interval=15.0,
            manager_id="mgr-1",
        )

    def __call__(self, state: StateSet) -> list[Change]:
        self.clock += timedelta(seconds=1)
        self.record = replace(
            self.record,
            last_sync=self.clock,
            last_seen=self.clock,
            last_sequence=self.record.last_sequence + 1,
            errors=partial.merge_errors(self.record.errors, state, self.clock),
        )
        observed = self.clock - timedelta(milliseconds=500)
        self.record, changes = self.reconciler.apply_with_record(
            self.record, state, SERIALIZER, self.clock, observed, self.record_cluster
        )
        return changes


def stamp(wire_object: sync_pb2.Resource | sync_pb2.ResourceKey, observed: datetime) -> None:
    """Set the time the edge observed ``wire_object`` (protocol 2: a DELTA's objects and deletions)."""
    wire_object.observed_at.FromDatetime(observed)


def arriving(feed: Feed, *chunks: Sequence[Resource], more: bool = False) -> StateSet:
    """A FULL state sent as a chunk set, each chunk staged by ``feed``'s reconciler as it arrives, as the
    manager does (``Reconciler.stage``); ``more``: the set is not complete yet (its first state is then
    being written as it arrives, on a backend that can). Apply it with ``feed``, or drop it (``abandon``).
    """
    joined = state(*(r for chunk in chunks for r in chunk))
    joined.resources = []
    joined.checked = Counter(r.kind for chunk in chunks for r in chunk)
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        joined.staged = feed.reconciler.stage(
            feed.cluster, joined.staged, [wire(r) for r in chunk], SERIALIZER, more or not last
        )
    return joined


def more_of(feed: Feed, arrived: StateSet, *chunks: Sequence[Resource]) -> StateSet:
    """``arrived`` (from ``arriving(..., more=True)``) completed by ``chunks``, the last one last."""
    for i, chunk in enumerate(chunks):
        assert arrived.checked is not None
        arrived.checked.update(r.kind for r in chunk)
        arrived.staged = feed.reconciler.stage(
            feed.cluster, arrived.staged, [wire(r) for r in chunk], SERIALIZER, i < len(chunks) - 1
        )
    return arrived


def summary(changes: Iterable[Change]) -> list[tuple[str, str, str, str]]:
    """(type, kind, name, uid) of each change, in order."""
    return [(str(c.type), c.kind, c.name, c.uid) for c in changes]


def scenario() -> list[StateSet]:
    """States that exercise every rule of the reconciler in turn (see each comment for what it changes)."""
    web = {"app": "web"}
    every = ["pods", "services", "endpointslices"]
    a = make("a", labels=web, data={"phase": "Pending"})
    b = make("b", labels={"app": "db"})
    b_new = make("b", uid="b-new", rv="7", labels={"app": "database"})
    c = make("c", namespace="kube-system")
    svc = make("web", kind="services", labels=web, data={"ports": [80]})
    slice_ = make(
        "web-x", kind="endpointslices", labels={"kubernetes.io/service-name": "web"}, data={"ready": 2}
    )
    api = make("api", kind="services", data={"ports": [443]})
    return [
        # 1: five ADDED
        state(a, b, c, svc, slice_, kinds=every),
        # 2: the same again: nothing
        state(a, b, c, svc, slice_, kinds=every),
        # 3: a's payload changes under the same resourceVersion, b's labels change; c twice (the last,
        # unchanged, wins: nothing), d twice (the last wins: ADDED as Running)
        state(
            replace(a, data={"phase": "Running"}),
            replace(b, resource_version="2", labels={"app": "database"}),
            replace(c, data={"phase": "Failed"}),
            c,
            make("d", data={"phase": "Pending"}),
            make("d"),
            svc,
            slice_,
            kinds=every,
        ),
        # 4: DELTA: e ADDED; b re-created under a new uid (DELETED + ADDED); c's deletion names a stale
        # uid (kept); d DELETED; a deletion of what is not there (nothing)
        state(
            make("e"),
            b_new,
            deletions=[
                ResourceKey("pods", "kube-system", "c", "stale-uid"),
                ResourceKey("pods", "default", "d", "uid-pods-default-d"),
                ResourceKey("pods", "default", "zzz", "uid-zzz"),
            ],
            delta=True,
        ),
        # 5: partial FULL: pods failed (left alone), endpointslices from the edge's cache (covered:
        # web-x DELETED); services: api ADDED
        state(svc, api, kinds=["services"], cached_kinds=["endpointslices"], errors={"pods": "forbidden"}),
        # 6: a chunked FULL of pods: a MODIFIED (new resourceVersion, node and phase), e DELETED
        state(
            replace(a, resource_version="2", data={"phase": "Succeeded", "node": "n1"}),
            b_new,
            c,
            kinds=["pods"],
            chunks=3,
        ),
        # 7: DELTA: f twice (the last wins: ADDED at rv 2), api DELETED
        state(
            make("f", data={"phase": "Pending"}),
            make("f", rv="2"),
            deletions=[ResourceKey("services", "default", "api", api.uid)],
            delta=True,
        ),
        # 8: an empty FULL of every kind: everything DELETED
        state(kinds=every),
    ]


#: What each state of ``scenario()`` changes, as ``summary`` puts it.
SCENARIO_CHANGES: list[list[tuple[str, str, str, str]]] = [
    [  # a FULL's changes come in key order
        ("ADDED", "endpointslices", "web-x", "uid-endpointslices-default-web-x"),
        ("ADDED", "pods", "a", "uid-pods-default-a"),
        ("ADDED", "pods", "b", "uid-pods-default-b"),
        ("ADDED", "pods", "c", "uid-pods-kube-system-c"),
        ("ADDED", "services", "web", "uid-services-default-web"),
    ],
    [],
    [
        ("MODIFIED", "pods", "a", "uid-pods-default-a"),
        ("MODIFIED", "pods", "b", "uid-pods-default-b"),
        ("ADDED", "pods", "d", "uid-pods-default-d"),
    ],
    [
        ("ADDED", "pods", "e", "uid-pods-default-e"),
        ("DELETED", "pods", "b", "uid-pods-default-b"),
        ("ADDED", "pods", "b", "b-new"),
        ("DELETED", "pods", "d", "uid-pods-default-d"),
    ],
    [
        ("ADDED", "services", "api", "uid-services-default-api"),
        ("DELETED", "endpointslices", "web-x", "uid-endpointslices-default-web-x"),
    ],
    [
        ("MODIFIED", "pods", "a", "uid-pods-default-a"),
        ("DELETED", "pods", "e", "uid-pods-default-e"),
    ],
    [
        ("ADDED", "pods", "f", "uid-pods-default-f"),
        ("DELETED", "services", "api", "uid-services-default-api"),
    ],
    [
        ("DELETED", "pods", "a", "uid-pods-default-a"),
        ("DELETED", "pods", "b", "b-new"),
        ("DELETED", "pods", "f", "uid-pods-default-f"),
        ("DELETED", "pods", "c", "uid-pods-kube-system-c"),
        ("DELETED", "services", "web", "uid-services-default-web"),
    ],
]


# -- references ---------------------------------------------------------------------------------

#: Labels for the selector tests, one pod each.
SELECTOR_PODS: dict[str, dict[str, str]] = {
    "web-1": {"app": "web", "tier": "frontend", "env": "prod"},
    "web-2": {"app": "web", "tier": "frontend", "env": "staging", "legacy": "true"},
    "db-1": {"app": "db", "tier": "db", "env": "prod"},
    "job-1": {"app.kubernetes.io/name": "batch", "env": "dev"},
    "bare": {},
}

SELECTORS = [
    "app=web",
    "app==web",
    "app!=web",
    "tier!=db",
    "app=web,env=prod",
    "env in (prod,staging)",
    "env notin (prod)",
    "legacy",
    "!legacy",
    "app,!legacy",
    "app.kubernetes.io/name=batch",
    "app.kubernetes.io/name",
    "app in (web,db),tier!=db,env",
    "missing=x",
]


def selector(text: str) -> LabelSelector:
    parsed = parse_selector(text)
    assert parsed is not None, text
    return parsed


def reference_history(oldest_first: Sequence[Change], query: HistoryQuery) -> list[Change]:
    """What ``history(query)`` must answer for these changes: the filters as the interface defines them.

    The selector sees the object's labels after the change; for a DELETED, the last labels it had.
    """
    last_labels: dict[tuple[str, str, str, str], dict[str, str]] = {}
    matched: list[Change] = []
    for c in oldest_first:
        key = (c.cluster, c.kind, c.namespace, c.name)
        labels = c.resource.labels if c.resource is not None else last_labels.get(key, {})
        if c.resource is not None:
            last_labels[key] = c.resource.labels
        assert c.applied_at is not None
        if (
            query.cluster in (None, c.cluster)
            and query.kind in (None, c.kind)
            and query.namespace in (None, c.namespace)
            and query.name in (None, c.name)
            and (query.selector is None or query.selector.matches(labels))
            and (query.since is None or c.applied_at >= query.since)
            and (query.until is None or c.applied_at <= query.until)
        ):
            matched.append(c)
    newest_first = sorted(enumerate(matched), key=lambda e: (e[1].applied_at, e[0]), reverse=True)
    found = [c for _, c in newest_first]
    return found[: query.limit] if query.limit is not None else found


def history_changes() -> list[list[Change]]:
    """Applies for the history tests, oldest first: two clusters, three kinds, labels that change, a re-creation."""
    web = make("web", labels={"app": "web"}, data={"phase": "Pending"})
    web2 = replace(web, resource_version="2", data={"phase": "Running"})
    db = make("db", namespace="data", labels={"app": "db"})
    svc = make("web", kind="services", labels={"app": "web"})
    reborn = make("web", uid="web-reborn", rv="9", labels={"app": "web", "gen": "2"})
    west = make("web", labels={"app": "web", "region": "west"})
    return [
        [added(web, moment(1)), added(db, moment(1)), added(svc, moment(1))],
        [added(west, moment(2), cluster="west", observed=moment(1.5))],
        [modified(web2, moment(3), "1", observed=moment(2.75))],
        [deleted(db, moment(4))],
        [deleted(web2, moment(5)), added(reborn, moment(5))],
        [
            modified(
                replace(west, resource_version="3", labels={"app": "api"}), moment(6), "1", ["labels"], "west"
            )
        ],
    ]


#: ``HistoryQuery`` filters, each checked against ``reference_history``.
HISTORY_QUERIES: dict[str, HistoryQuery] = {
    "all": HistoryQuery(),
    "cluster": HistoryQuery(cluster="west"),
    "unknown-cluster": HistoryQuery(cluster="nowhere"),
    "kind": HistoryQuery(kind="services"),
    "namespace": HistoryQuery(namespace="data"),
    "name": HistoryQuery(name="web"),
    "selector": HistoryQuery(selector=selector("app=web")),
    "selector-deleted": HistoryQuery(selector=selector("app=db")),
    "selector-not": HistoryQuery(selector=selector("app!=web")),
    "selector-exists": HistoryQuery(selector=selector("gen")),
    "since": HistoryQuery(since=moment(4)),
    "until": HistoryQuery(until=moment(3)),
    "since-until": HistoryQuery(since=moment(3), until=moment(5)),
    "one-instant": HistoryQuery(since=moment(5), until=moment(5)),
    "limit": HistoryQuery(limit=3),
    "combined": HistoryQuery(
        cluster="east", kind="pods", selector=selector("app=web"), since=moment(2), limit=2
    ),
}


class _Boom(RuntimeError):
    pass


def _exploding(items: Sequence[Any], after: int) -> Iterator[Any]:
    for i, item in enumerate(items):
        if i == after:
            raise _Boom("the edge vanished mid-apply")
        yield item


def _of_cluster(backend: StorageBackend, cluster: str) -> dict[str, Any]:
    """What a backend answers about one cluster: equal before and after means its writes left nothing."""
    return {
        "objects": list(backend.query(ResourceQuery(cluster=cluster))),
        "versions": sorted(backend.versions(cluster), key=repr),
        "history": list(backend.history(HistoryQuery(cluster=cluster))),
        "record": backend.get_cluster(cluster),
    }


def manager_claims(backend: StorageBackend, manager_id: str = "mgr-1", grace: float = 0.0) -> ClusterClaims:
    """The claims a manager on ``backend`` uses: the backend's own, else the in-memory ones, their
    epochs seeded from the stored records as the manager seeds them."""
    shared = backend.create_claims(manager_id, grace)
    if shared is not None:
        return shared
    claims = InMemoryClaims(manager_id, grace)
    claims.seed_epochs({r.cluster: r.epoch for r in backend.list_clusters()})
    return claims


def check_claim_rules(make_claims: Callable[[float], ClusterClaims]) -> None:
    """The ``ClusterClaims`` claim rules; ``make_claims(grace_period)`` returns a fresh claims."""
    claims = make_claims(0.4)
    try:
        assert claims.claim("east", "edge-a").accepted
        # Held by a connected edge: refused to any other edge id.
        refused = claims.claim("east", "edge-b")
        assert refused.outcome is ClaimOutcome.ALREADY_HELD
        assert refused.holder_edge_id == "edge-a"
        # The same edge id may always reclaim (a reconnect).
        assert claims.claim("east", "edge-a").accepted
        assert claims.renew("east", "edge-a")
        assert not claims.renew("east", "edge-b")
        holding = claims.holdings()["east"]
        assert holding.edge_id == "edge-a" and holding.connected
        # Other clusters are independent.
        assert claims.claim("west", "edge-b").accepted
        # After release: others wait out the grace period, the holder may come back at once.
        claims.release("east", "edge-a")
        assert not claims.holdings()["east"].connected
        waiting = claims.claim("east", "edge-b")
        assert waiting.outcome is ClaimOutcome.GRACE_PERIOD
        assert 0 < waiting.retry_after <= 0.4
        assert claims.claim("east", "edge-a").accepted
        claims.release("east", "edge-a")
        # A release by a non-holder changes nothing.
        claims.release("west", "edge-a")
        assert claims.holdings()["west"].connected
        time.sleep(0.5)
        assert claims.claim("east", "edge-b").accepted
        assert not claims.renew("east", "edge-a")
        assert claims.holdings()["east"].edge_id == "edge-b"
    finally:
        claims.close()


class StorageConformance:
    """Mix into a ``Test*`` class and override ``backend_factory``."""

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        pytest.fail("override the backend_factory fixture in your StorageConformance subclass")

    @pytest.fixture
    def backend(self, backend_factory: BackendFactory) -> Iterator[StorageBackend]:
        backend = backend_factory()
        backend.migrate()
        yield backend
        backend.close()

    # -- schema ----------------------------------------------------------------------

    def test_migrate_is_idempotent(self, backend: StorageBackend, backend_factory: BackendFactory) -> None:
        store(backend, [make("a")])
        backend.migrate()
        other = backend_factory()
        try:
            other.migrate()
            assert names(other) == ["a"]
        finally:
            other.close()

    def test_data_survives_reopen(self, backend_factory: BackendFactory) -> None:
        first = backend_factory()
        first.migrate()
        a = make("a", labels={"app": "web"})
        cluster = record(edge_id="edge-1", last_sequence=7, last_sync=moment(1))
        commit(first, [added(a, moment(1)), added(make("b"), moment(1))], cluster, record_cluster=True)
        commit(first, [deleted(a, moment(2))])
        before = everything(first)
        first.close()
        reopened = backend_factory()
        try:
            reopened.migrate()
            assert everything(reopened) == before
            assert names(reopened) == ["b"]
            assert reopened.get_cluster("east", at=moment(1)) == cluster
            assert names(reopened, at=moment(1)) == ["a", "b"]
        finally:
            reopened.close()

    # -- apply -----------------------------------------------------------------------

    def test_apply_writes_objects_and_versions_say_exactly_what(self, backend: StorageBackend) -> None:
        pods = [make("a"), make("b", rv="5", labels={"app": "web"}), make("x", namespace="other")]
        svc = make("svc", kind="services")
        backend.apply(record(), [StoredObject(r, f"digest-{r.name}") for r in [*pods, svc]], [], None)
        store(backend, [make("a", uid="west-a")], cluster="west")
        got = list(backend.versions("east"))
        assert len(got) == 4
        assert set(got) == {version_of(r, f"digest-{r.name}") for r in [*pods, svc]}
        assert list(backend.versions("west")) == [version_of(make("a", uid="west-a"))]
        assert list(backend.versions("nowhere")) == []
        assert names(backend, cluster="east") == ["a", "b", "x", "svc"]

    def test_apply_replaces_the_object_at_the_same_key(self, backend: StorageBackend) -> None:
        store(backend, [make("a", labels={"app": "web", "old": "yes"}, data={"phase": "Pending", "gone": 1})])
        new = make("a", uid="another", rv="9", labels={"app": "api"}, data={"phase": "Running"})
        backend.apply(record(), [StoredObject(new, "new-digest")], [], None)
        assert list(backend.versions("east")) == [version_of(new, "new-digest")]
        assert [i.resource for i in backend.query(ResourceQuery())] == [new]

    def test_apply_deletes_by_kind_namespace_and_name(self, backend: StorageBackend) -> None:
        items = [make("a"), make("a", namespace="other"), make("a", kind="services"), make("b")]
        store(backend, items)
        store(backend, items, cluster="west")
        deletions = [
            ResourceKey("pods", "default", "a", "uid-pods-default-a"),
            ResourceKey("pods", "default", "zzz"),
        ]
        backend.apply(record(), [], deletions, None)
        assert [(i.resource.kind, i.resource.namespace, i.resource.name) for i in backend.query(
            ResourceQuery(cluster="east"))] == [("pods", "default", "b"), ("pods", "other", "a"), ("services", "default", "a")]  # fmt: skip
        assert len(list(backend.versions("east"))) == 3
        assert len(names(backend, cluster="west")) == 4

    def test_apply_upserts_and_deletes_in_one_call(self, backend: StorageBackend) -> None:
        store(backend, [make("a"), make("b")])
        backend.apply(record(), [StoredObject(make("c"), "c"), StoredObject(make("a", rv="2"), "a2")],
                      [ResourceKey("pods", "default", "b", "uid-pods-default-b")], None)  # fmt: skip
        assert names(backend) == ["a", "c"]
        assert {v.name: (v.resource_version, v.digest) for v in backend.versions("east")} == {
            "a": ("2", "a2"), "c": ("1", "c")
        }  # fmt: skip

    def test_same_name_in_different_namespaces_and_kinds(self, backend: StorageBackend) -> None:
        store(
            backend,
            [make("x", namespace="a"), make("x", namespace="b"), make("x", kind="services", namespace="a")],
        )
        assert backend.counts("east") == {"pods": 2, "services": 1}

    def test_cluster_scoped_objects(self, backend: StorageBackend) -> None:
        node, pod = make("n1", kind="nodes", namespace="", labels={"zone": "a"}), make("p", namespace="a")
        ns = make("a", kind="namespaces", namespace="")
        commit(backend, [added(pod, moment(1)), added(node, moment(1)), added(ns, moment(1))])
        everything_now = [StoredResource("east", r) for r in (ns, node, pod)]
        assert list(backend.query(ResourceQuery())) == everything_now
        assert list(backend.query(ResourceQuery(at=moment(1)))) == everything_now
        assert backend.read("east", [ResourceKey("nodes", "", "n1")]) == [node]
        assert {v.name for v in backend.versions("east")} == {"n1", "p", "a"}
        assert names(backend, kind="nodes", selector=selector("zone=a")) == ["n1"]
        commit(backend, [deleted(node, moment(2))])
        assert summary(backend.history(HistoryQuery(kind="nodes"))) == [
            ("DELETED", "nodes", "n1", node.uid), ("ADDED", "nodes", "n1", node.uid),
        ]  # fmt: skip

    def test_many_objects_in_one_apply(self, backend: StorageBackend) -> None:
        pods = [make(f"p{i:05}", namespace=f"ns{i % 7}", labels={"i": str(i % 3)}) for i in range(3000)]
        commit(backend, [added(r, moment(1)) for r in pods])
        assert len(list(backend.versions("east"))) == 3000
        assert len(list(backend.history(HistoryQuery()))) == 3000
        assert len(list(backend.query(ResourceQuery(at=moment(1))))) == 3000
        assert len(backend.read("east", [r.key for r in pods])) == 3000
        commit(backend, [deleted(r, moment(2)) for r in pods[::2]])
        assert backend.counts("east") == {"pods": 1500}
        assert len(names(backend, at=moment(2), selector=selector("i=0"))) == 500
        assert len(list(backend.history(HistoryQuery(namespace="ns3", since=moment(2))))) == len(
            [i for i in range(0, 3000, 2) if i % 7 == 3]
        )

    def test_data_and_labels_round_trip(self, backend: StorageBackend) -> None:
        data = {
            "ports": [{"name": "http", "port": 80, "target_port": "8080", "protocol": "TCP"}],
            "selector": {"app": "web"},
            "ready": True,
            "restarts": 0,
            "ratio": 0.25,
            "owner": None,
            "note": "snowman ☃ and quotes \" ' and a backslash \\",
            "nested": {"deep": [[1, 2], {"x": []}]},
            "big": 2**53 + 1,
        }
        labels = {"app.kubernetes.io/name": "web", "tier": "", "quote": "it's"}
        svc = make("svc", kind="services", labels=labels, data=data)
        commit(backend, [added(svc, moment(1))])
        [stored] = backend.query(ResourceQuery(kind="services"))
        assert stored == StoredResource("east", svc)
        assert backend.read("east", [svc.key]) == [svc]
        [change] = backend.history(HistoryQuery())
        assert change.resource == svc
        [then] = backend.query(ResourceQuery(at=moment(1)))
        assert then == stored

    def test_read_finds_objects_by_key_in_one_cluster(self, backend: StorageBackend) -> None:
        a, b, c = make("a"), make("b", namespace="other"), make("c", kind="services")
        store(backend, [a, b, c])
        store(backend, [make("a", uid="west-a"), make("z")], cluster="west")
        keys = [
            ResourceKey("pods", "default", "a", "some-other-uid"),  # the uid is ignored
            ResourceKey("pods", "other", "b"),
            ResourceKey("services", "default", "c"),
            ResourceKey("pods", "default", "z"),  # only in west
            ResourceKey("pods", "default", "missing"),
        ]
        assert sorted(backend.read("east", keys), key=lambda r: r.name) == [a, b, c]
        assert backend.read("east", []) == []
        assert backend.read("nowhere", keys) == []

    def test_apply_saves_the_cluster_record(self, backend: StorageBackend) -> None:
        synced = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        cluster = record(edge_id="edge-9", last_sequence=11, metadata={"k": "v"}, last_sync=synced)
        backend.apply(cluster, [], [], [])
        assert backend.get_cluster("east") == cluster
        assert list(backend.history(HistoryQuery())) == []

    def test_history_none_writes_objects_but_no_history(self, backend: StorageBackend) -> None:
        a = make("a")
        commit(backend, [added(a, moment(1))], history=False)
        commit(backend, [modified(replace(a, resource_version="2"), moment(2), "1")], history=False)
        assert list(backend.history(HistoryQuery())) == []
        assert [v.resource_version for v in backend.versions("east")] == ["2"]

    # -- atomicity -------------------------------------------------------------------

    @pytest.fixture
    def settled(self, backend: StorageBackend) -> StorageBackend:
        """A store with objects, history and cluster copies in two clusters: what a failed apply must keep."""
        for batch in history_changes():
            commit(backend, batch, record_cluster=True)
        return backend

    def test_apply_whose_upserts_fail_midway_changes_nothing(self, settled: StorageBackend) -> None:
        before = everything(settled)
        new = [make(f"q{i}") for i in range(10)]
        history = [added(r, moment(10)) for r in new]
        with pytest.raises(Exception):  # noqa: B017 - whatever the backend raises, nothing may change
            settled.apply(
                record(last_sequence=2, last_sync=moment(10)),
                _exploding([StoredObject(r, digest_of(r)) for r in new], 5),  # type: ignore[arg-type]
                [ResourceKey("pods", "default", "web", "web-reborn")],
                history,
                True,
            )
        assert everything(settled) == before

    def test_apply_whose_history_fails_midway_changes_nothing(self, settled: StorageBackend) -> None:
        before = everything(settled)
        new = [make(f"q{i}") for i in range(10)]
        with pytest.raises(Exception):  # noqa: B017
            settled.apply(
                record(last_sequence=2, last_sync=moment(10)),
                [StoredObject(r, digest_of(r)) for r in new],
                [ResourceKey("pods", "default", "web", "web-reborn")],
                _exploding([added(r, moment(10)) for r in new], 5),  # type: ignore[arg-type]
                True,
            )
        assert everything(settled) == before

    def test_apply_with_unstorable_data_changes_nothing(self, settled: StorageBackend) -> None:
        before = everything(settled)
        good, bad = make("c"), make("b", data={"not json": {1, 2, 3}})  # a set has no JSON form
        with pytest.raises(Exception):  # noqa: B017
            settled.apply(
                record(last_sequence=9, last_sync=moment(10)),
                [StoredObject(good, digest_of(good)), StoredObject(bad, "bad")],
                [ResourceKey("pods", "default", "web", "web-reborn")],
                [added(good, moment(10)), added(bad, moment(10))],
                True,
            )
        assert everything(settled) == before

    # -- cluster records -------------------------------------------------------------

    def test_cluster_record_round_trips(self, backend: StorageBackend) -> None:
        now = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        original = ClusterRecord(
            cluster="east",
            edge_id="edge-1",
            metadata={"region": "us-east-1", "environment": "production"},
            last_sync=now,
            last_seen=now + timedelta(seconds=3),
            sync_interval=12.5,
            errors=[
                KindErrorRecord("pods", "forbidden", 403, cached=True, since=now),
                KindErrorRecord("services", "unreachable", 0, cached=False, since=None),
            ],
            manager_id="mgr-1",
            last_sequence=42,
        )
        backend.save_cluster(original)
        assert backend.get_cluster("east") == original
        assert backend.list_clusters() == [original]

    def test_cluster_freshness_round_trips_and_clears(self, backend: StorageBackend) -> None:
        fresh = datetime(2030, 5, 6, 7, 8, 9, 654321, tzinfo=UTC)
        backend.save_cluster(record(fresh_as_of=fresh, lag=0.0421))
        assert backend.get_cluster("east") == record(fresh_as_of=fresh, lag=0.0421)
        backend.save_cluster(record(fresh_as_of=fresh, lag=-1.5))  # an edge clock ahead of the manager's
        assert backend.list_clusters() == [record(fresh_as_of=fresh, lag=-1.5)]
        backend.save_cluster(record())
        assert backend.get_cluster("east") == record()

    def test_apply_saves_freshness_with_the_copies_kept_at_a_time(self, backend: StorageBackend) -> None:
        first = record(last_sync=moment(1), fresh_as_of=moment(0.9), lag=0.05)
        second = record(last_sync=moment(2), fresh_as_of=moment(1.5), lag=0.25)
        backend.apply(first, [], [], [], True)
        backend.apply(second, [], [], [], True)
        assert backend.get_cluster("east") == second
        assert backend.get_cluster("east", at=moment(1.5)) == first
        assert backend.list_clusters(at=moment(1.5)) == [first]
        assert backend.list_clusters(at=moment(2)) == [second]

    def test_save_cluster_overwrites_and_clears_errors(self, backend: StorageBackend) -> None:
        backend.save_cluster(record(errors=[KindErrorRecord("pods", "boom")], metadata={"a": "1"}))
        backend.save_cluster(record(errors=[], metadata={"b": "2"}, last_sequence=3))
        stored = backend.get_cluster("east")
        assert stored is not None
        assert (stored.errors, stored.metadata, stored.last_sequence) == ([], {"b": "2"}, 3)

    def test_unknown_cluster_and_ordering(self, backend: StorageBackend) -> None:
        assert backend.get_cluster("nowhere") is None
        for name in ("west", "east", "central"):
            backend.save_cluster(record(name))
        assert [c.cluster for c in backend.list_clusters()] == ["central", "east", "west"]

    def test_recorded_cluster_records_answer_at_a_time(self, backend: StorageBackend) -> None:
        first = record(edge_id="e1", metadata={"v": "1"}, last_sync=moment(1), last_sequence=1)
        unrecorded = record(edge_id="e2", last_sync=moment(2), last_sequence=2)
        third = record(
            edge_id="e3", last_sync=moment(3), last_seen=moment(3.5), last_sequence=3, sync_interval=5.0,
            errors=[KindErrorRecord("pods", "forbidden", 403, cached=True, since=moment(3))], manager_id="mgr-2",
        )  # fmt: skip
        west = record("west", edge_id="w1", last_sync=moment(2))
        backend.apply(first, [], [], [], True)
        backend.apply(west, [], [], [], True)
        backend.apply(unrecorded, [], [], [], False)
        backend.apply(third, [], [], [], True)
        assert backend.get_cluster("east") == third
        assert backend.get_cluster("east", at=moment(0.5)) is None
        assert backend.get_cluster("east", at=moment(1)) == first
        assert backend.get_cluster("east", at=moment(2.5)) == first  # the copy at 2 was not kept
        assert backend.get_cluster("east", at=moment(3)) == third
        assert backend.get_cluster("nowhere", at=moment(3)) is None
        assert backend.list_clusters(at=moment(0.5)) == []
        assert backend.list_clusters(at=moment(1.5)) == [first]
        assert backend.list_clusters(at=moment(2)) == [first, west]
        assert backend.list_clusters(at=moment(9)) == [third, west]
        # Two copies at the same time: the later apply wins.
        fourth = replace(third, edge_id="e4", last_sequence=4)
        backend.apply(fourth, [], [], [], True)
        assert backend.get_cluster("east", at=moment(3)) == fourth

    # -- queries ---------------------------------------------------------------------

    @pytest.fixture
    def populated(self, backend: StorageBackend) -> StorageBackend:
        for cluster in ("east", "west"):
            items = [make(n, labels=labels) for n, labels in SELECTOR_PODS.items()]
            items += [make(n, namespace="kube-system") for n in ("coredns", "proxy")]
            items += [make("web", kind="services", labels={"app": "web"}), make("web", kind="endpointslices")]
            store(backend, items, cluster)
        return backend

    def test_query_filters(self, populated: StorageBackend) -> None:
        assert len(names(populated)) == 18
        assert len(names(populated, kind="pods")) == 14
        assert names(populated, kind="pods", cluster="west", namespace="kube-system") == ["coredns", "proxy"]
        assert names(populated, kind="services") == ["web", "web"]
        assert [i.cluster for i in populated.query(ResourceQuery(name="web", kind="services"))] == [
            "east",
            "west",
        ]
        assert names(populated, cluster="nowhere") == []
        assert names(populated, kind="widgets") == []

    def test_query_order_is_cluster_kind_namespace_name(self, populated: StorageBackend) -> None:
        keys = [
            (i.cluster, i.resource.kind, i.resource.namespace, i.resource.name)
            for i in populated.query(ResourceQuery())
        ]
        assert keys == sorted(keys)

    def test_query_limit(self, populated: StorageBackend) -> None:
        assert names(populated, kind="pods", limit=3) == ["bare", "db-1", "job-1"]
        assert names(populated, limit=0) == []

    @pytest.mark.parametrize("text", SELECTORS)
    def test_label_selectors_match_the_reference_semantics(
        self, populated: StorageBackend, text: str
    ) -> None:
        expected = sorted(n for n, labels in SELECTOR_PODS.items() if selector(text).matches(labels))
        assert (
            names(populated, kind="pods", cluster="east", namespace="default", selector=selector(text))
            == expected
        )

    @pytest.mark.parametrize("text", SELECTORS)
    def test_label_selectors_in_the_past_and_in_history(self, backend: StorageBackend, text: str) -> None:
        # At 1 the pods have their labels, at 2 none: the selector sees the labels of the time.
        pods = [make(n, labels=labels) for n, labels in SELECTOR_PODS.items()]
        commit(backend, [added(r, moment(1)) for r in pods])
        bare = [replace(r, resource_version="2", labels={}) for r in pods if r.labels]
        commit(backend, [modified(r, moment(2), "1", ["labels"]) for r in bare])
        match = selector(text).matches
        then = sorted(n for n, labels in SELECTOR_PODS.items() if match(labels))
        now = sorted(SELECTOR_PODS) if match({}) else []
        assert names(backend, at=moment(1), selector=selector(text)) == then
        assert names(backend, at=moment(2), selector=selector(text)) == now
        assert names(backend, selector=selector(text)) == now
        history = [(c.name, str(c.type)) for c in backend.history(HistoryQuery(selector=selector(text)))]
        assert sorted(history) == sorted(
            [(n, "ADDED") for n in then] + [(r.name, "MODIFIED") for r in bare if match({})]
        )

    def test_counts(self, populated: StorageBackend) -> None:
        assert populated.counts("east") == {"pods": 7, "services": 1, "endpointslices": 1}
        assert populated.counts("nowhere") == {}

    def test_queries_from_other_threads(self, populated: StorageBackend) -> None:
        results: list[tuple[int, int]] = []

        def read() -> None:
            results.append((len(names(populated, kind="pods")), len(list(populated.history(HistoryQuery())))))

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [(14, 0)] * 4

    def test_a_query_sees_a_consistent_snapshot(self, populated: StorageBackend) -> None:
        # A query started before a write returns the set it started with or the new one, never a mix.
        iterator = populated.query(ResourceQuery(cluster="east", kind="pods"))
        first = next(iterator)
        keys = [ResourceKey("pods", r.namespace, r.name, r.uid) for r in (i.resource for i in populated.query(
            ResourceQuery(cluster="east", kind="pods")))]  # fmt: skip
        populated.apply(record(), [], keys, None)
        rest = list(iterator)
        assert len([first, *rest]) in (1, 7)

    # -- history ---------------------------------------------------------------------

    def test_history_round_trips_every_field(self, backend: StorageBackend) -> None:
        when = datetime(2030, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
        a = make("a", rv="10", labels={"app": "web"}, data={"phase": "Pending", "ports": [80]})
        a2 = replace(
            a, resource_version="11", labels={"app": "api"}, data={"phase": "Running", "ports": [80]}
        )
        changes = [
            added(a, when, observed=when - timedelta(microseconds=654321)),
            modified(a2, when + timedelta(microseconds=1), "10", ["labels", "phase"], observed=None),
            deleted(a2, when + timedelta(microseconds=2)),
        ]
        for change in changes:
            commit(backend, [change])
        got = list(backend.history(HistoryQuery()))
        assert got == changes[::-1]
        assert got[0].resource is None and got[0].changed_fields == ()
        assert got[1].observed_at is None and got[1].changed_fields == ("labels", "phase")
        # Times are kept to the microsecond, and compared as instants whatever their zone.
        plus_two = timezone(timedelta(hours=2))
        assert list(backend.history(HistoryQuery(since=when + timedelta(microseconds=1)))) == changes[:0:-1]
        assert list(backend.history(HistoryQuery(until=when.astimezone(plus_two)))) == changes[:1]
        assert [i.resource for i in backend.query(ResourceQuery(at=when))] == [a]
        assert [i.resource for i in backend.query(ResourceQuery(at=when + timedelta(microseconds=1)))] == [a2]
        assert (
            list(backend.query(ResourceQuery(at=(when + timedelta(microseconds=2)).astimezone(plus_two))))
            == []
        )

    def test_history_is_newest_first_with_ties_in_apply_order(self, backend: StorageBackend) -> None:
        first = [added(make(n), moment(1)) for n in ("m", "c", "x")]
        second = [added(make(n), moment(1)) for n in ("b", "z")]
        later = [deleted(make("c"), moment(2)), added(make("c", uid="c2"), moment(2))]
        commit(backend, first)
        commit(backend, second)
        commit(backend, later)
        assert list(backend.history(HistoryQuery())) == (first + second + later)[::-1]

    def test_history_orders_by_applied_time_before_apply_order(self, backend: StorageBackend) -> None:
        # A clock that stepped back: the times decide, not the order the applies came in.
        late, early = added(make("late"), moment(5)), added(make("early"), moment(3))
        middle = added(make("middle"), moment(4))
        for change in (late, early, middle):
            commit(backend, [change])
        assert list(backend.history(HistoryQuery())) == [late, middle, early]

    @pytest.mark.parametrize("query", list(HISTORY_QUERIES.values()), ids=list(HISTORY_QUERIES))
    def test_history_filters(self, backend: StorageBackend, query: HistoryQuery) -> None:
        batches = history_changes()
        for batch in batches:
            commit(backend, batch)
        expected = reference_history([c for batch in batches for c in batch], query)
        assert list(backend.history(query)) == expected

    def test_history_selector_sees_the_last_labels_of_a_deleted_object(self, backend: StorageBackend) -> None:
        old, reborn = make("a", labels={"app": "old"}), make("a", uid="a2", labels={"app": "new"})
        commit(backend, [added(old, moment(1))])
        commit(backend, [deleted(old, moment(2)), added(reborn, moment(2))])
        assert summary(backend.history(HistoryQuery(selector=selector("app=old")))) == [
            ("DELETED", "pods", "a", "uid-pods-default-a"), ("ADDED", "pods", "a", "uid-pods-default-a"),
        ]  # fmt: skip
        assert summary(backend.history(HistoryQuery(selector=selector("app=new")))) == [
            ("ADDED", "pods", "a", "a2")
        ]

    # -- time travel -----------------------------------------------------------------

    def test_query_at_shows_the_objects_as_they_were(self, backend: StorageBackend) -> None:
        a1 = make("a", labels={"app": "web"}, data={"phase": "Pending"})
        a2 = make("a", rv="2", labels={"app": "api"}, data={"phase": "Running"})
        b, c, d = make("b"), make("c", namespace="kube-system"), make("d")
        commit(backend, [added(a1, moment(1)), added(b, moment(1)), added(c, moment(1))])
        commit(backend, [modified(a2, moment(2), "1", ["labels", "phase"]), deleted(b, moment(2))])
        commit(backend, [added(d, moment(3))])
        commit(backend, [deleted(c, moment(4))])

        def at(seconds: float, **query: Any) -> list[Resource]:
            return [i.resource for i in backend.query(ResourceQuery(at=moment(seconds), **query))]

        assert at(0.5) == []
        assert at(1) == at(1.5) == [a1, b, c]  # b, deleted later, is still there; d is not yet
        assert at(2) == [a2, c]
        assert at(3) == [a2, d, c]  # ordered: default before kube-system
        assert at(4) == at(100) == [a2, d]
        assert [i.resource for i in backend.query(ResourceQuery())] == [a2, d]
        # Filters and selectors apply to the objects as they were then.
        assert at(1, selector=selector("app=web")) == [a1]
        assert at(2, selector=selector("app=web")) == []
        assert at(3, namespace="kube-system") == [c]
        assert at(1, name="b") == [b]
        assert at(1, kind="services") == []
        assert at(3, limit=2) == [a2, d]
        assert at(3, cluster="west") == []

    def test_query_at_orders_by_cluster_kind_namespace_name(self, backend: StorageBackend) -> None:
        for cluster in ("west", "east"):
            commit(backend, [added(make(n, kind=k, namespace=ns), moment(1), cluster)
                             for n in ("z", "a") for k in ("services", "pods") for ns in ("b", "a")])  # fmt: skip
        got = [(i.cluster, i.resource.kind, i.resource.namespace, i.resource.name)
               for i in backend.query(ResourceQuery(at=moment(1)))]  # fmt: skip
        assert got == sorted(got) and len(got) == 16
        first = next(backend.query(ResourceQuery(at=moment(1), cluster="west", kind="pods", namespace="a")))
        assert first == StoredResource("west", make("a", namespace="a"))

    def test_query_at_a_recreation_shows_the_new_object(self, backend: StorageBackend) -> None:
        old, new = make("a"), make("a", uid="a2", rv="5")
        commit(backend, [added(old, moment(1))])
        commit(backend, [deleted(old, moment(2)), added(new, moment(2))])
        assert [i.resource for i in backend.query(ResourceQuery(at=moment(1)))] == [old]
        assert [i.resource for i in backend.query(ResourceQuery(at=moment(2)))] == [new]

    # -- retention -------------------------------------------------------------------

    def _retained(self, backend: StorageBackend) -> tuple[list[Change], list[Change], list[Change]]:
        """a: ADDED 1, MODIFIED 2, MODIFIED 4; b: ADDED 1, DELETED 2; c: ADDED 3; west a: ADDED 1."""
        a, b = make("a"), make("b")
        a2, a3 = replace(a, resource_version="2"), replace(a, resource_version="3")
        batches = [
            [added(a, moment(1)), added(b, moment(1))],
            [modified(a2, moment(2), "1"), deleted(b, moment(2))],
            [added(make("c"), moment(3))],
            [modified(a3, moment(4), "2")],
        ]
        west = [added(make("a", uid="west-a"), moment(1), "west")]
        for batch in batches:
            commit(backend, batch, record(last_sync=batch[0].applied_at), record_cluster=True)
        commit(backend, west, record("west", last_sync=moment(1)), record_cluster=True)
        return batches[0] + west, batches[1], batches[2] + batches[3]

    def test_prune_keeps_the_latest_change_per_object_before_the_cutoff(
        self, backend: StorageBackend
    ) -> None:
        at1, at2, later = self._retained(backend)
        removed = backend.prune_history(moment(2.5), None)
        # a@1 goes (a@2 is its latest before 2.5); b@1 and b@2 go (b's latest is a DELETED);
        # west a@1 stays (its latest); c@3 and a@4 are after the cutoff.
        assert removed == 3
        assert list(backend.history(HistoryQuery())) == [later[1], later[0], at2[0], at1[2]]

    def test_prune_keeps_the_past_after_the_cutoff(self, backend: StorageBackend) -> None:
        self._retained(backend)
        times = [moment(s) for s in (2.5, 3, 3.5, 4, 10)]
        objects = {t: list(backend.query(ResourceQuery(at=t))) for t in times}
        clusters = {t: backend.list_clusters(at=t) for t in times}
        backend.prune_history(moment(2.5), None)
        assert {t: list(backend.query(ResourceQuery(at=t))) for t in times} == objects
        assert {t: backend.list_clusters(at=t) for t in times} == clusters
        assert names(backend) == ["a", "c", "a"]  # current objects are not history: untouched

    def test_prune_max_rows_drops_the_oldest(self, backend: StorageBackend) -> None:
        _, at2, later = self._retained(backend)
        assert backend.prune_history(moment(0), 3) == 4
        assert list(backend.history(HistoryQuery())) == [later[1], later[0], at2[1]]
        assert backend.prune_history(moment(0), 3) == 0
        assert names(backend) == ["a", "c", "a"]
        assert backend.prune_history(moment(0), 0) == 3
        assert list(backend.history(HistoryQuery())) == []

    def test_prune_cutoff_is_exclusive(self, backend: StorageBackend) -> None:
        a = make("a")
        changes = [added(a, moment(1)), modified(replace(a, resource_version="2"), moment(1.5), "1"),
                   modified(replace(a, resource_version="3"), moment(2), "2")]  # fmt: skip
        for change in changes:
            commit(backend, [change])
        assert backend.prune_history(moment(2), None) == 1  # 1.5 is the latest before 2; 2 is not before 2
        assert list(backend.history(HistoryQuery())) == changes[:0:-1]
        assert list(backend.history(HistoryQuery(limit=0))) == []

    def test_prune_with_nothing_to_prune(self, backend: StorageBackend) -> None:
        assert backend.prune_history(moment(100), None) == 0
        self._retained(backend)
        before = list(backend.history(HistoryQuery()))
        assert backend.prune_history(moment(0), None) == 0
        assert backend.prune_history(moment(0), 100) == 0
        assert list(backend.history(HistoryQuery())) == before

    # -- the core's reconciler over this backend -------------------------------------

    def test_reconciler_first_full_adds_everything(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        a, svc = make("a", labels={"app": "web"}), make("web", kind="services", data={"ports": [80]})
        changes = feed(state(a, svc))
        assert summary(changes) == [("ADDED", "pods", "a", a.uid), ("ADDED", "services", "web", svc.uid)]
        assert [c.resource for c in changes] == [a, svc]
        assert list(backend.history(HistoryQuery())) == changes[::-1]
        assert [i.resource for i in backend.query(ResourceQuery())] == [a, svc]
        assert backend.get_cluster("east") == feed.record

    def test_reconciler_unchanged_reapply_changes_and_writes_nothing(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        pods = [make(f"p{i}", rv=str(i), labels={"i": str(i)}) for i in range(20)]
        feed(state(*pods))
        before = everything(backend)
        assert feed(state(*pods)) == []
        after = everything(backend)
        assert after["clusters"] == [feed.record]  # only the cluster record moved on (last_sync)
        for moved in ("clusters", "clusters_then"):
            del after[moved], before[moved]
        assert after == before

    def test_reconciler_payload_only_change_is_modified(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        feed(state(make("a", data={"phase": "Pending", "node": "n1"})))
        now = make("a", data={"phase": "Running", "node": "n1"})
        [change] = feed(state(now))
        assert (change.type, change.old_resource_version, change.new_resource_version) == (
            ChangeType.MODIFIED,
            "1",
            "1",
        )
        assert change.changed_fields == ("phase",)
        assert backend.read("east", [now.key]) == [now]
        assert next(backend.history(HistoryQuery())) == change

    def test_reconciler_label_change_is_modified(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        feed(state(make("a", labels={"app": "web"})))
        [change] = feed(state(make("a", rv="2", labels={"app": "api"})))
        assert (change.type, change.changed_fields) == (ChangeType.MODIFIED, ("labels",))
        assert names(backend, selector=selector("app=api")) == ["a"]

    def test_reconciler_duplicate_keys_last_wins(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        first = feed(
            state(make("a", data={"phase": "Pending"}), make("a", rv="2", data={"phase": "Running"}))
        )
        assert summary(first) == [("ADDED", "pods", "a", "uid-pods-default-a")]
        assert backend.read("east", [ResourceKey("pods", "default", "a")]) == [make("a", rv="2")]
        delta = feed(state(make("a", rv="3", data={"phase": "Failed"}), make("a", rv="2"), delta=True))
        assert delta == []
        assert [v.resource_version for v in backend.versions("east")] == ["2"]

    def test_reconciler_recreated_uid_is_deleted_then_added(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        feed(state(make("a", uid="old", labels={"gen": "1"})))
        changes = feed(state(make("a", uid="new", labels={"gen": "2"})))
        assert summary(changes) == [("DELETED", "pods", "a", "old"), ("ADDED", "pods", "a", "new")]
        assert [v.uid for v in backend.versions("east")] == ["new"]
        assert summary(backend.history(HistoryQuery(limit=2))) == summary(changes[::-1])
        assert [i.resource.uid for i in backend.query(ResourceQuery(at=feed.clock))] == ["new"]

    def test_reconciler_full_state_deletes_only_the_kinds_it_covers(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        feed(
            state(
                make("a"),
                make("svc", kind="services"),
                make("es", kind="endpointslices"),
                make("cm", kind="cms"),
            )
        )
        changes = feed(state(make("svc2", kind="services"), kinds=["services"], cached_kinds=["endpointslices"],
                             errors={"pods": "forbidden", "cms": "forbidden"}))  # fmt: skip
        assert summary(changes) == [
            ("ADDED", "services", "svc2", "uid-services-default-svc2"),
            ("DELETED", "endpointslices", "es", "uid-endpointslices-default-es"),
            ("DELETED", "services", "svc", "uid-services-default-svc"),
        ]
        assert backend.counts("east") == {"pods": 1, "services": 1, "cms": 1}
        stored = backend.get_cluster("east")
        assert stored is not None and [e.kind for e in stored.errors] == ["cms", "pods"]

    def test_reconciler_delta_deletions(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        feed(state(make("a", uid="new"), make("b"), make("c")))
        changes = feed(state(make("c", rv="2"), delta=True, deletions=[
            ResourceKey("pods", "default", "a", "old"),  # a stale uid: the newer object stays
            ResourceKey("pods", "default", "b", "uid-pods-default-b"),
            ResourceKey("pods", "default", "c", "uid-pods-default-c"),  # upserted in the same delta: stays
            ResourceKey("pods", "default", "missing", "x"),
        ]))  # fmt: skip
        assert summary(changes) == [("MODIFIED", "pods", "c", "uid-pods-default-c"),
                                    ("DELETED", "pods", "b", "uid-pods-default-b")]  # fmt: skip
        assert names(backend) == ["a", "c"]

    def test_reconciler_after_reopen_sees_no_change_in_an_unchanged_state(
        self, backend: StorageBackend, backend_factory: BackendFactory
    ) -> None:
        pods = [make(f"p{i}", labels={"i": str(i)}, data={"phase": "Running", "n": i}) for i in range(10)]
        feed = Feed(backend)
        feed(state(*pods))
        reopened = backend_factory()
        try:
            reopened.migrate()
            again = Feed(reopened, clock=feed.clock)
            assert again.reconciler.load("east") == 10
            assert again(state(*pods)) == []
            changed = replace(pods[3], data={"phase": "Running", "n": 33})
            assert summary(again(state(*pods[:3], changed, *pods[4:]))) == [
                ("MODIFIED", "pods", "p3", changed.uid)
            ]
        finally:
            reopened.close()

    def test_reconciler_with_history_off_writes_none(self, backend: StorageBackend) -> None:
        feed = Feed(backend, history=False, record_cluster=True)
        changes = feed(state(make("a"), make("b")))
        assert len(changes) == 2
        assert list(backend.history(HistoryQuery())) == []
        assert backend.get_cluster("east", at=feed.clock) is None
        assert names(backend) == ["a", "b"]

    def test_reconciler_scenario_history_is_every_change_newest_first(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        applied: list[Change] = []
        for i, step in enumerate(scenario()):
            changes = feed(step)
            assert summary(changes) == SCENARIO_CHANGES[i], f"state {i + 1}"
            applied += changes
        assert list(backend.history(HistoryQuery())) == applied[::-1]
        assert list(backend.query(ResourceQuery())) == []

    def test_reconciler_scenario_replays_at_every_step(self, backend: StorageBackend) -> None:
        feed = Feed(backend, record_cluster=True)
        seen: list[tuple[datetime, list[StoredResource], ClusterRecord]] = []
        for step in scenario():
            feed(step)
            seen.append((feed.clock, list(backend.query(ResourceQuery())), feed.record))
        assert list(backend.query(ResourceQuery(at=T0))) == []
        assert backend.get_cluster("east", at=T0) is None
        for i, (when, objects, cluster) in enumerate(seen):
            for t in (when, when + timedelta(milliseconds=500)):
                assert list(backend.query(ResourceQuery(at=t))) == objects, f"after state {i + 1}"
                assert backend.get_cluster("east", at=t) == cluster, f"after state {i + 1}"
                assert backend.list_clusters(at=t) == [cluster]

    def test_reconciler_delta_changes_carry_each_objects_observation_time(
        self, backend: StorageBackend
    ) -> None:
        feed = Feed(backend)
        a, b, c = make("a"), make("b"), make("c")
        feed(state(a, b, c))
        seen_a, seen_gone = feed.clock + timedelta(seconds=0.2), feed.clock + timedelta(seconds=0.4)
        delta = state(replace(a, resource_version="2", data={"phase": "Failed"}), make("d"),
                      deletions=[b.key], delta=True)  # fmt: skip
        stamp(delta.resources[0], seen_a)
        stamp(delta.deletions[0], seen_gone)
        changes = feed(delta)
        state_time = feed.clock - timedelta(milliseconds=500)  # what Feed hands the reconciler
        assert [(c.name, c.observed_at) for c in changes] == [("a", seen_a), ("d", state_time), ("b", seen_gone)]
        assert [(c.name, c.observed_at) for c in backend.history(HistoryQuery(since=feed.clock))] == [
            ("b", seen_gone), ("d", state_time), ("a", seen_a)
        ]  # fmt: skip
        stored = backend.get_cluster("east")
        assert stored == feed.record and stored is not None
        # fresh_as_of: the state's time; lag: from the newest observation (d's, the state's) to the apply.
        assert stored.fresh_as_of == state_time
        assert stored.lag == (feed.clock - state_time).total_seconds()

    def test_reconciler_full_state_changes_carry_the_states_time(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        full = state(make("a"), make("b"))
        stamp(full.resources[0], T0 - timedelta(days=1))  # a FULL's objects carry none; if one does, unread
        changes = feed(full)
        observed = feed.clock - timedelta(milliseconds=500)
        assert {c.observed_at for c in changes} == {observed}
        stored = backend.get_cluster("east")
        assert stored is not None and (stored.fresh_as_of, stored.lag) == (observed, 0.5)

    def test_reconciler_state_without_changes_moves_fresh_as_of_and_keeps_the_lag(
        self, backend: StorageBackend
    ) -> None:
        feed = Feed(backend)
        a = make("a")
        feed(state(a))
        delta = state(replace(a, resource_version="2"), delta=True)
        stamp(delta.resources[0], feed.clock + timedelta(seconds=0.9))
        feed(delta)
        lag = feed.clock - (feed.clock - timedelta(seconds=0.1))
        assert feed.record.lag == lag.total_seconds()
        assert feed(state(delta=True)) == []
        stored = backend.get_cluster("east")
        assert stored is not None and stored.lag == lag.total_seconds()
        assert stored.fresh_as_of == feed.clock - timedelta(milliseconds=500)

    # -- claims --------------------------------------------------------------------

    def test_claim_rules(self, backend: StorageBackend) -> None:
        """The claims a manager on this backend uses obey the rules: the backend's own, or the in-memory ones."""

        def claims(grace: float) -> ClusterClaims:
            shared = backend.create_claims("mgr-1", grace)
            return shared if shared is not None else InMemoryClaims("mgr-1", grace)

        check_claim_rules(claims)

    # -- fencing -------------------------------------------------------------------

    def test_claim_epochs_grow_with_every_claim(self, backend: StorageBackend) -> None:
        claims = manager_claims(backend, grace=0.2)
        try:
            first = claims.claim("east", "edge-a")
            again = claims.claim("east", "edge-a")  # a reconnect takes a new epoch too
            assert first.accepted and again.accepted and 0 < first.epoch < again.epoch
            assert claims.claim("west", "edge-b").epoch > 0
            claims.release("east", "edge-a")
            time.sleep(0.3)
            other = claims.claim("east", "edge-b")
            assert other.accepted and other.epoch > again.epoch
        finally:
            claims.close()

    def test_a_write_under_an_older_claim_is_refused_and_changes_nothing(
        self, settled: StorageBackend
    ) -> None:
        claims = manager_claims(settled)
        try:
            old = claims.claim("east", "edge-a")
            settled.save_cluster(record(edge_id="edge-a", epoch=old.epoch))
            store_as(settled, old.epoch, [make("p", rv="5")])
            claims.release("east", "edge-a")  # cut off, say: with no grace period another edge takes over
            new = claims.claim("east", "edge-b")
            assert new.accepted and new.epoch > old.epoch
            settled.save_cluster(record(edge_id="edge-b", epoch=new.epoch))  # the new holder's claim lands
            before = everything(settled)
            p6 = make("p", rv="6")
            with pytest.raises(StorageFenced) as refused:
                settled.apply(record(edge_id="edge-a", epoch=old.epoch, last_sequence=99),
                              [StoredObject(p6, digest_of(p6))], [ResourceKey("pods", "default", "web", "web-reborn")],
                              [modified(p6, moment(20), "5")], True)  # fmt: skip
            assert isinstance(refused.value, StorageError)
            assert not isinstance(refused.value, StorageRegressed)  # the writer is stale, not the state
            assert "east" in str(refused.value)
            # Also when its write would move an object back: the writer is told it is stale.
            p4 = make("p", rv="4")
            with pytest.raises(StorageFenced) as refused:
                settled.apply(record(edge_id="edge-a", epoch=old.epoch, last_sequence=99),
                              [StoredObject(p4, digest_of(p4))], [], [modified(p4, moment(20), "5")], True)  # fmt: skip
            assert not isinstance(refused.value, StorageRegressed)
            with pytest.raises(StorageFenced):
                settled.save_cluster(record(edge_id="edge-a", epoch=old.epoch, last_sequence=99))
            assert everything(settled) == before
            # The new holder writes on; its epoch is kept with the record.
            store_as(settled, new.epoch, [p6])
            stored = settled.get_cluster("east")
            assert stored is not None and stored.epoch == new.epoch
        finally:
            claims.close()

    def test_epochs_stay_above_the_stored_ones_after_a_reopen(self, backend_factory: BackendFactory) -> None:
        first = backend_factory()
        first.migrate()
        claims = manager_claims(first)
        try:
            old = claims.claim("east", "edge-a")
            first.save_cluster(record(edge_id="edge-a", epoch=old.epoch))
        finally:
            claims.close()
            first.close()
        reopened = backend_factory()
        try:
            reopened.migrate()
            stored = reopened.get_cluster("east")
            assert stored is not None and stored.epoch == old.epoch
            claims = manager_claims(reopened)
            try:
                assert claims.claim("east", "edge-b").epoch > old.epoch
            finally:
                claims.close()
        finally:
            reopened.close()

    def test_an_older_resource_version_of_the_same_uid_is_refused(self, settled: StorageBackend) -> None:
        store_as(settled, 0, [make("p", rv="4426"), make("q", rv="abc"), make("r", rv="10")], cluster="west")
        before = everything(settled)
        stale, fresh = make("p", rv="4051"), make("n", rv="1")
        with pytest.raises(StorageRegressed) as refused:  # under a current claim: the state is wrong
            settled.apply(record("west"), [StoredObject(fresh, "n"), StoredObject(stale, "stale")], [],
                          [added(fresh, moment(20), "west"), modified(stale, moment(20), "4426", cluster="west")])  # fmt: skip
        assert "4426" in str(refused.value) and "4051" in str(refused.value)
        assert everything(settled) == before
        # Not refused: a re-created object (new uid), the same version (a payload change), versions that
        # are not integers, a newer one.
        store_as(settled, 0, [make("p", uid="p-reborn", rv="12"), make("q", rv="abb"),
                              make("r", rv="10", data={"phase": "Failed"})], cluster="west")  # fmt: skip
        store_as(settled, 0, [make("p", uid="p-reborn", rv="13")], cluster="west")
        assert {o.resource.name: o.resource.resource_version for o in settled.query(ResourceQuery(cluster="west"))
                if o.resource.kind == "pods" and o.resource.name in "pqr"} == {"p": "13", "q": "abb", "r": "10"}  # fmt: skip

    # -- group commit ----------------------------------------------------------------

    def test_writes_of_a_batch_are_all_stored(self, backend: StorageBackend) -> None:
        with batch_writes(backend):
            commit(backend, [added(make("a"), moment(1))])
            commit(backend, [added(make("a", uid="west-a"), moment(1), "west")])
            backend.save_cluster(record("north", edge_id="edge-n"))
        assert names(backend, cluster="east") == ["a"] and names(backend, cluster="west") == ["a"]
        north = backend.get_cluster("north")
        assert north is not None and north.edge_id == "edge-n"
        assert [c.name for c in backend.history(HistoryQuery())] == ["a", "a"]

    def test_a_write_that_fails_in_a_batch_is_undone_alone(self, settled: StorageBackend) -> None:
        store_as(settled, 5, [make("f", rv="3")], cluster="fenced")
        store_as(settled, 0, [make("g", rv="7")], cluster="regressed")
        before = {c: _of_cluster(settled, c) for c in ("fenced", "regressed", "west")}
        ok_east, ok_north = make("batched-east"), make("batched-north")
        new = [make(f"q{i}", uid=f"west-q{i}") for i in range(10)]
        with batch_writes(settled):
            commit(settled, [added(ok_east, moment(30))], record(last_sync=moment(30), last_sequence=30))
            with pytest.raises(StorageFenced):  # an older claim
                store_as(settled, 4, [make("f", rv="4")], cluster="fenced")
            with pytest.raises(StorageRegressed):  # an object moved back under a current claim
                store_as(settled, 0, [make("g", rv="6")], cluster="regressed")
            with pytest.raises(Exception):  # noqa: B017 - failing midway, whatever the backend raises
                settled.apply(record("west", last_sequence=9), _exploding([StoredObject(r, digest_of(r)) for r in new], 5),  # type: ignore[arg-type]
                              [], [added(r, moment(30), "west") for r in new], True)  # fmt: skip
            commit(settled, [added(ok_north, moment(30), "north")])
        for cluster, seen in before.items():
            assert _of_cluster(settled, cluster) == seen, cluster
        assert "batched-east" in names(settled, cluster="east") and names(settled, cluster="north") == ["batched-north"]
        east = settled.get_cluster("east")
        assert east is not None and east.last_sequence == 30
        assert {c.name for c in settled.history(HistoryQuery(since=moment(30)))} == {"batched-east", "batched-north"}

    def test_a_batch_whose_block_raises_stores_nothing(self, settled: StorageBackend) -> None:
        if not isinstance(settled, BatchingStorageBackend):
            pytest.skip("no group commit: every write is its own transaction")
        before = everything(settled, ("east", "west", "north"))
        with pytest.raises(_Boom), settled.batch():
            commit(settled, [added(make("lost"), moment(40))])
            commit(settled, [added(make("lost"), moment(40), "north")])
            raise _Boom("the manager gave up on the batch")
        assert everything(settled, ("east", "west", "north")) == before
        assert settled.get_cluster("north") is None
        commit(settled, [added(make("after"), moment(41))])  # the backend writes on
        assert "after" in names(settled, cluster="east")

    # -- a first state written as it arrives ---------------------------------------

    def test_a_first_state_written_as_it_arrives_is_seen_only_once_applied(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        pods = [make(f"p{i}", labels={"app": "web"}) for i in (5, 3, 1, 4, 2, 0)]
        web = make("web", kind="services", data={"ports": [80]})
        arrived = arriving(feed, pods[:2], [web, *pods[2:4]], more=True)
        assert arrived.staged is not None
        assert (arrived.staged.writer is not None) == isinstance(backend, FirstStateWriter)
        assert names(backend) == [] and list(backend.versions("east")) == [] and list(backend.history(HistoryQuery())) == []
        changes = feed(more_of(feed, arrived, pods[4:]))
        in_key_order = sorted([*pods, web], key=lambda r: (r.kind, r.namespace, r.name))
        assert summary(changes) == [("ADDED", r.kind, r.name, r.uid) for r in in_key_order]
        assert [i.resource for i in backend.query(ResourceQuery())] == in_key_order
        assert list(backend.history(HistoryQuery())) == changes[::-1]
        assert sorted(backend.versions("east"), key=repr) == sorted(
            (version_of(r, wire_digest(wire(r))) for r in in_key_order), key=repr
        )
        assert backend.get_cluster("east") == feed.record
        assert feed(arriving(feed, pods, [web])) == []  # the index knows what was written

    def test_a_first_state_dropped_midway_leaves_nothing(self, backend: StorageBackend) -> None:
        feed = Feed(backend)
        arrived = arriving(feed, [make("gone-1"), make("gone-2")], [make("gone-3")], more=True)
        abandon(arrived)
        abandon(arrived)  # as often as the manager likes
        done = threading.Event()

        def next_state() -> None:  # the cluster is not left locked by what was dropped
            feed(arriving(feed, [make("kept-1")], [make("kept-2")]))
            done.set()

        writer = threading.Thread(target=next_state, daemon=True)
        writer.start()
        writer.join(30)
        assert done.is_set(), "the next state of the cluster did not get written within 30 s"
        assert names(backend, cluster="east") == ["kept-1", "kept-2"]
        assert [c.name for c in backend.history(HistoryQuery())] == ["kept-2", "kept-1"]

    def test_two_first_states_arriving_together_are_both_stored(self, backend: StorageBackend) -> None:
        east, west = Feed(backend), Feed(backend, cluster="west")
        pods = [make(f"p{i}") for i in (3, 1, 2, 0)]
        west_pods = [make(f"w{i}", uid=f"west-w{i}") for i in (1, 0, 2)]
        east_arrived = arriving(east, pods[:2], more=True)
        west_arrived = arriving(west, west_pods[:1], more=True)  # chunks of the two sets take turns
        west_changes = west(more_of(west, west_arrived, west_pods[1:]))  # west completes first
        east_changes = east(more_of(east, east_arrived, pods[2:]))
        assert names(backend, cluster="east") == ["p0", "p1", "p2", "p3"]
        assert names(backend, cluster="west") == ["w0", "w1", "w2"]
        assert [c.name for c in east_changes] == ["p0", "p1", "p2", "p3"]
        assert [c.name for c in west_changes] == ["w0", "w1", "w2"]
        assert [c.name for c in backend.history(HistoryQuery(cluster="east"))] == ["p3", "p2", "p1", "p0"]
        assert [c.name for c in backend.history(HistoryQuery(cluster="west"))] == ["w2", "w1", "w0"]

    def test_a_first_state_write_refuses_the_wrong_count_and_stores_nothing(self, backend: StorageBackend) -> None:
        if not isinstance(backend, FirstStateWriter):
            pytest.skip("no FirstStateWriter: a first state is written by apply once complete")
        write = backend.begin_first_state("east")
        assert write is not None
        write.write([StoredObject(r, digest_of(r)) for r in (make("a"), make("b"))])
        with pytest.raises(StorageError, match="east"):
            write.finish(record(last_sync=moment(1)), 3, moment(1), moment(0), history=True)
        write.abort()  # over already: nothing happens
        assert names(backend) == []
        assert backend.get_cluster("east") is None and list(backend.history(HistoryQuery())) == []

    def test_a_first_state_write_under_an_older_claim_is_refused(self, backend: StorageBackend) -> None:
        if not isinstance(backend, FirstStateWriter):
            pytest.skip("no FirstStateWriter: a first state is written by apply once complete")
        backend.save_cluster(record(epoch=5, edge_id="edge-new"))
        write = backend.begin_first_state("east")
        assert write is not None
        write.write([StoredObject(make("a"), digest_of(make("a")))])
        with pytest.raises(StorageFenced):
            write.finish(record(epoch=4, edge_id="edge-old"), 1, moment(1), None, history=True)
        stored = backend.get_cluster("east")
        assert stored is not None and (stored.epoch, stored.edge_id) == (5, "edge-new")
        assert names(backend) == [] and list(backend.history(HistoryQuery())) == []

    def test_a_first_state_write_with_history_off_writes_none(self, backend: StorageBackend) -> None:
        if not isinstance(backend, FirstStateWriter):
            pytest.skip("no FirstStateWriter: a first state is written by apply once complete")
        write = backend.begin_first_state("east")
        assert write is not None
        objects = [make("b"), make("a", labels={"app": "web"})]
        write.write([StoredObject(r, digest_of(r)) for r in objects])
        write.finish(record(last_sync=moment(2), epoch=1), 2, moment(2), moment(1), history=False, record_cluster=True)
        assert [i.resource for i in backend.query(ResourceQuery())] == objects[::-1]
        assert sorted(backend.versions("east"), key=repr) == sorted(map(version_of, objects), key=repr)
        assert list(backend.history(HistoryQuery())) == []
        then = backend.get_cluster("east", at=moment(2))
        assert then is not None and then.epoch == 1

    def test_begin_first_state_declines_a_cluster_that_holds_objects(self, backend: StorageBackend) -> None:
        if not isinstance(backend, FirstStateWriter):
            pytest.skip("no FirstStateWriter: a first state is written by apply once complete")
        store(backend, [make("a")])
        assert backend.begin_first_state("east") is None
        write = backend.begin_first_state("west")  # another cluster's first state may go on
        assert write is not None
        write.abort()
