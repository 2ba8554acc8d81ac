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

What it checks, all through the public ``StorageBackend`` interface:
snapshots replace a cluster's set per kind and leave other kinds and clusters
alone; change detection by uid and resource_version (added, modified,
deleted, and a re-created object with a new uid); deltas; cluster records
round-trip (metadata, errors, last_sequence, times); queries by kind, cluster,
namespace, name and label selector (``=``, ``!=``, ``in``, ``notin``, exists,
``!`` — compared against ``navigator.selectors`` as the reference), ordering,
limits and counts; a failing apply leaves the previous state intact
(atomicity); ``migrate()`` is idempotent; data survives a reopen; and, when
the claim rules of ``ClusterClaims`` hold for the claims a manager on this backend
uses: the backend's own from ``create_claims``, or the manager's in-memory ones
(``check_claim_rules`` runs the same rules against any implementation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from navigator.interfaces import (
    ClaimOutcome,
    ClusterClaims,
    ClusterRecord,
    KindErrorRecord,
    ResourceQuery,
    StorageBackend,
)
from navigator.manager.claims import InMemoryClaims
from navigator.resource import Change, ChangeType, Resource, ResourceKey
from navigator.selectors import parse_selector

BackendFactory = Callable[[], StorageBackend]


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


def summary(changes: list[Change]) -> set[tuple[str, str, str, str]]:
    """(type, kind, name, uid) of each change: order-independent comparison."""
    return {(str(c.type), c.kind, c.name, c.uid) for c in changes}


def names(backend: StorageBackend, **query: Any) -> list[str]:
    return [item.resource.name for item in backend.query(ResourceQuery(**query))]


class _Boom(RuntimeError):
    pass


def _exploding(resources: list[Resource], after: int) -> Iterator[Resource]:
    for i, r in enumerate(resources):
        if i == after:
            raise _Boom("the edge vanished mid-snapshot")
        yield r


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
        backend.apply_snapshot(record(), ["pods"], [make("a")])
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
        first.apply_snapshot(record(edge_id="edge-1", last_sequence=7), ["pods"], [make("a"), make("b")])
        first.close()
        reopened = backend_factory()
        try:
            reopened.migrate()
            assert names(reopened) == ["a", "b"]
            stored = reopened.get_cluster("east")
            assert stored is not None and stored.last_sequence == 7 and stored.edge_id == "edge-1"
        finally:
            reopened.close()

    # -- snapshots -------------------------------------------------------------------

    def test_first_snapshot_adds_everything(self, backend: StorageBackend) -> None:
        changes = backend.apply_snapshot(record(), ["pods"], [make("a"), make("b", rv="5")])
        assert summary(changes) == {("ADDED", "pods", "a", "uid-pods-default-a"), ("ADDED", "pods", "b", "uid-pods-default-b")}
        added = next(c for c in changes if c.name == "b")
        assert (added.cluster, added.old_resource_version, added.new_resource_version) == ("east", None, "5")

    def test_snapshot_replaces_the_kind_and_deletes_what_vanished(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a"), make("b"), make("c")])
        changes = backend.apply_snapshot(record(), ["pods"], [make("a"), make("d")])
        assert summary(changes) == {
            ("DELETED", "pods", "b", "uid-pods-default-b"),
            ("DELETED", "pods", "c", "uid-pods-default-c"),
            ("ADDED", "pods", "d", "uid-pods-default-d"),
        }
        deleted = next(c for c in changes if c.name == "b")
        assert (deleted.old_resource_version, deleted.new_resource_version) == ("1", None)
        assert names(backend, kind="pods") == ["a", "d"]

    def test_unchanged_resync_reports_nothing(self, backend: StorageBackend) -> None:
        pods = [make(f"p{i}", rv=str(i)) for i in range(20)]
        backend.apply_snapshot(record(), ["pods"], pods)
        assert backend.apply_snapshot(record(), ["pods"], pods) == []

    def test_modified_by_resource_version(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a", rv="1", data={"phase": "Pending"})])
        changes = backend.apply_snapshot(record(), ["pods"], [make("a", rv="2", data={"phase": "Running"})])
        assert [(c.type, c.old_resource_version, c.new_resource_version) for c in changes] == [
            (ChangeType.MODIFIED, "1", "2")
        ]
        [stored] = backend.query(ResourceQuery(kind="pods"))
        assert stored.resource.data == {"phase": "Running"}
        assert stored.resource.resource_version == "2"

    def test_recreated_object_with_a_new_uid_is_deleted_then_added(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a", uid="old", rv="1")])
        changes = backend.apply_snapshot(record(), ["pods"], [make("a", uid="new", rv="1")])
        assert summary(changes) == {("DELETED", "pods", "a", "old"), ("ADDED", "pods", "a", "new")}
        [stored] = backend.query(ResourceQuery(kind="pods"))
        assert stored.resource.uid == "new"

    def test_snapshot_leaves_other_kinds_alone(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods", "services"], [make("a"), make("svc", kind="services")])
        changes = backend.apply_snapshot(record(), ["pods"], [])
        assert summary(changes) == {("DELETED", "pods", "a", "uid-pods-default-a")}
        assert names(backend, kind="services") == ["svc"]

    def test_partial_snapshot_never_deletes_kinds_it_does_not_cover(self, backend: StorageBackend) -> None:
        # The edge collected services but pods failed without cache: pods must stay as they were.
        backend.apply_snapshot(record(), ["pods", "services"], [make("a"), make("svc", kind="services")])
        failed = record(errors=[KindErrorRecord("pods", "forbidden", 403)])
        changes = backend.apply_snapshot(failed, ["services"], [make("svc2", kind="services")])
        assert summary(changes) == {
            ("DELETED", "services", "svc", "uid-services-default-svc"),
            ("ADDED", "services", "svc2", "uid-services-default-svc2"),
        }
        assert names(backend, kind="pods") == ["a"]
        stored = backend.get_cluster("east")
        assert stored is not None and [e.kind for e in stored.errors] == ["pods"]

    def test_snapshot_touches_only_its_cluster(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record("east"), ["pods"], [make("a")])
        backend.apply_snapshot(record("west"), ["pods"], [make("a"), make("b")])
        changes = backend.apply_snapshot(record("east"), ["pods"], [])
        assert {c.cluster for c in changes} == {"east"}
        assert names(backend, cluster="west") == ["a", "b"]
        assert names(backend, cluster="east") == []

    def test_same_name_in_different_namespaces_and_kinds(self, backend: StorageBackend) -> None:
        items = [make("x", namespace="a"), make("x", namespace="b"), make("x", kind="services", namespace="a")]
        backend.apply_snapshot(record(), ["pods", "services"], items)
        assert backend.counts("east") == {"pods": 2, "services": 1}

    def test_data_round_trips(self, backend: StorageBackend) -> None:
        data = {
            "ports": [{"name": "http", "port": 80, "target_port": "8080", "protocol": "TCP"}],
            "selector": {"app": "web"},
            "ready": True,
            "restarts": 0,
            "ratio": 0.25,
            "owner": None,
            "note": "snowman ☃ and quotes \" '",
            "nested": {"deep": [[1, 2], {"x": []}]},
        }
        labels = {"app.kubernetes.io/name": "web", "tier": ""}
        backend.apply_snapshot(record(), ["services"], [make("svc", kind="services", labels=labels, data=data)])
        [stored] = backend.query(ResourceQuery(kind="services"))
        assert stored.cluster == "east"
        assert stored.resource.data == data
        assert stored.resource.labels == labels

    # -- atomicity -------------------------------------------------------------------

    def test_snapshot_failing_midway_leaves_previous_state(self, backend: StorageBackend) -> None:
        before = [make(f"p{i}") for i in range(10)]
        backend.apply_snapshot(record(last_sequence=1), ["pods"], before)
        after = [make(f"q{i}") for i in range(10)]
        with pytest.raises(Exception):  # noqa: B017 - whatever the backend raises, nothing may change
            backend.apply_snapshot(record(last_sequence=2), ["pods"], _exploding(after, 5))  # type: ignore[arg-type]
        assert names(backend, kind="pods") == sorted(r.name for r in before)
        stored = backend.get_cluster("east")
        assert stored is not None and stored.last_sequence == 1

    def test_snapshot_with_unstorable_data_leaves_previous_state(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a")])
        bad = make("b", data={"not json": {1, 2, 3}})  # a set has no JSON form
        with pytest.raises(Exception):  # noqa: B017
            backend.apply_snapshot(record(last_sequence=9), ["pods"], [make("c"), bad])
        assert names(backend) == ["a"]
        stored = backend.get_cluster("east")
        assert stored is not None and stored.last_sequence == 0

    def test_delta_failing_midway_leaves_previous_state(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a"), make("b")])
        with pytest.raises(Exception):  # noqa: B017
            backend.apply_delta(
                record(last_sequence=5),
                _exploding([make("c"), make("d")], 1),  # type: ignore[arg-type]
                [ResourceKey("pods", "default", "a")],
            )
        assert names(backend) == ["a", "b"]

    # -- deltas ----------------------------------------------------------------------

    def test_delta_upserts_and_deletes(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a"), make("b")])
        changes = backend.apply_delta(
            record(last_sequence=3),
            [make("a", rv="2"), make("c"), make("b")],
            [ResourceKey("pods", "default", "b"), ResourceKey("pods", "default", "missing")],
        )
        kinds = sorted((str(c.type), c.name) for c in changes)
        assert ("MODIFIED", "a") in kinds and ("ADDED", "c") in kinds and ("DELETED", "b") in kinds
        assert names(backend) == ["a", "c"]
        stored = backend.get_cluster("east")
        assert stored is not None and stored.last_sequence == 3

    def test_empty_delta_changes_nothing_but_saves_the_cluster(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a")])
        synced = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert backend.apply_delta(record(last_sync=synced), [], []) == []
        stored = backend.get_cluster("east")
        assert stored is not None and stored.last_sync == synced
        assert names(backend) == ["a"]

    def test_delta_deletion_with_another_uid_keeps_the_newer_object(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a", uid="new")])
        changes = backend.apply_delta(record(), [], [ResourceKey("pods", "default", "a", uid="old")])
        assert changes == []
        assert names(backend) == ["a"]

    def test_delta_recreate_is_deleted_then_added(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(), ["pods"], [make("a", uid="old")])
        changes = backend.apply_delta(record(), [make("a", uid="new")], [])
        assert summary(changes) == {("DELETED", "pods", "a", "old"), ("ADDED", "pods", "a", "new")}

    # -- cluster records -------------------------------------------------------------

    def test_cluster_record_round_trips(self, backend: StorageBackend) -> None:
        now = datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
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
        stored = backend.get_cluster("east")
        assert stored == original
        assert backend.list_clusters() == [original]

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

    def test_snapshot_saves_the_cluster_record(self, backend: StorageBackend) -> None:
        backend.apply_snapshot(record(edge_id="edge-9", last_sequence=11, metadata={"k": "v"}), ["pods"], [])
        stored = backend.get_cluster("east")
        assert stored is not None and (stored.edge_id, stored.last_sequence, stored.metadata) == ("edge-9", 11, {"k": "v"})

    # -- queries ---------------------------------------------------------------------

    @pytest.fixture
    def populated(self, backend: StorageBackend) -> StorageBackend:
        for cluster in ("east", "west"):
            items = [make(n, labels=labels) for n, labels in SELECTOR_PODS.items()]
            items += [make(n, namespace="kube-system") for n in ("coredns", "proxy")]
            items += [make("web", kind="services", labels={"app": "web"}), make("web", kind="endpointslices")]
            backend.apply_snapshot(record(cluster), ["pods", "services", "endpointslices"], items)
        return backend

    def test_query_filters(self, populated: StorageBackend) -> None:
        assert len(names(populated)) == 18
        assert len(names(populated, kind="pods")) == 14
        assert names(populated, kind="pods", cluster="west", namespace="kube-system") == ["coredns", "proxy"]
        assert names(populated, kind="services") == ["web", "web"]
        assert [i.cluster for i in populated.query(ResourceQuery(name="web", kind="services"))] == ["east", "west"]
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

    @pytest.mark.parametrize("text", SELECTORS)
    def test_label_selectors_match_the_reference_semantics(self, populated: StorageBackend, text: str) -> None:
        selector = parse_selector(text)
        assert selector is not None
        expected = sorted(n for n, labels in SELECTOR_PODS.items() if selector.matches(labels))
        assert names(populated, kind="pods", cluster="east", namespace="default", selector=selector) == expected

    def test_counts(self, populated: StorageBackend) -> None:
        assert populated.counts("east") == {"pods": 7, "services": 1, "endpointslices": 1}
        assert populated.counts("nowhere") == {}

    def test_queries_from_other_threads(self, populated: StorageBackend) -> None:
        results: list[int] = []

        def read() -> None:
            results.append(len(names(populated, kind="pods")))

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [14] * 4

    def test_a_query_sees_a_consistent_snapshot(self, populated: StorageBackend) -> None:
        # A query started before a write returns the set it started with or the new one, never a mix.
        iterator = populated.query(ResourceQuery(cluster="east", kind="pods"))
        first = next(iterator)
        populated.apply_snapshot(record("east"), ["pods"], [])
        rest = list(iterator)
        assert len([first, *rest]) in (1, 7)

    # -- claims --------------------------------------------------------------------

    def test_claim_rules(self, backend: StorageBackend) -> None:
        """The claims a manager on this backend uses obey the rules: the backend's own, or the in-memory ones."""

        def claims(grace: float) -> ClusterClaims:
            shared = backend.create_claims("mgr-1", grace)
            return shared if shared is not None else InMemoryClaims("mgr-1", grace)

        check_claim_rules(claims)
