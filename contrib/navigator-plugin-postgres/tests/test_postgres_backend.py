"""What the PostgreSQL backend adds beyond the conformance suite: selector SQL, payload refresh,
streaming queries, shared state between managers, bad input."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres.backend import FETCH_SIZE, PostgresBackend
from navigator_plugin_postgres.options import parse_options

from navigator.interfaces import ClusterRecord, ResourceQuery, StorageError
from navigator.resource import ChangeType, Resource, ResourceKey
from navigator.selectors import parse_selector


def pod(name: str, *, rv: str = "1", uid: str | None = None, namespace: str = "default",
        labels: dict[str, str] | None = None, data: dict[str, Any] | None = None) -> Resource:  # fmt: skip
    return Resource("pods", namespace, name, uid or f"uid-{namespace}-{name}", rv, labels or {},
                    data if data is not None else {"phase": "Running"})  # fmt: skip


def names(backend: PostgresBackend, **query: Any) -> list[str]:
    return [item.resource.name for item in backend.query(ResourceQuery(**query))]


KEYS = ["app", "tier", "env", "app.kubernetes.io/name", "example.com/team"]
VALUES = ["web", "db", "", "prod", "a.b-c_d"]

SELECTORS = [
    "app=web", "app=", "app!=", "app!=web", "app in (web,db)", "app in (web,)", "app notin (web,db)",
    "app notin ()", "app", "!app", "app=web,app=db", "app=web,app!=web", "app=web,app in (web,prod)",
    "app.kubernetes.io/name=web", "example.com/team notin (prod),!env", "tier,env=prod,app!=db",
    "app in (web),tier in (db,prod),env", "!app,!tier,!env", "env in (prod, a.b-c_d)", "app==db",
]  # fmt: skip


def test_label_selectors_agree_with_the_reference_on_random_labels(backend: PostgresBackend) -> None:
    rng = random.Random(20240501)
    labelled = {
        f"p{i:03d}": {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.5} for i in range(120)
    }
    backend.apply_snapshot(ClusterRecord("east"), ["pods"], [pod(n, labels=ls) for n, ls in labelled.items()])
    for text in SELECTORS:
        selector = parse_selector(text)
        assert selector is not None
        expected = sorted(n for n, labels in labelled.items() if selector.matches(labels))
        assert names(backend, selector=selector) == expected, text


def test_a_new_payload_under_the_same_version_is_stored_but_not_reported(backend: PostgresBackend) -> None:
    # A collector upgrade may change what is collected without the object changing.
    backend.apply_snapshot(ClusterRecord("east"), ["pods"], [pod("a", data={"phase": "Running"})])
    changes = backend.apply_snapshot(
        ClusterRecord("east"), ["pods"], [pod("a", labels={"new": "label"}, data={"phase": "Running", "x": 1})]
    )
    assert changes == []
    [stored] = backend.query(ResourceQuery())
    assert stored.resource.data == {"phase": "Running", "x": 1}
    assert stored.resource.labels == {"new": "label"}


def test_duplicate_keys_in_a_snapshot_keep_the_last(backend: PostgresBackend) -> None:
    changes = backend.apply_snapshot(ClusterRecord("east"), ["pods"], [pod("a", rv="1"), pod("a", rv="2")])
    assert [(c.type, c.new_resource_version) for c in changes] == [(ChangeType.ADDED, "2")]
    assert [i.resource.resource_version for i in backend.query(ResourceQuery())] == ["2"]


def test_a_resource_of_a_kind_outside_the_snapshot_is_refused(backend: PostgresBackend) -> None:
    backend.apply_snapshot(ClusterRecord("east"), ["pods"], [pod("a")])
    svc = Resource("services", "default", "web", "u", "1")
    with pytest.raises(StorageError, match=r"services default/web .* not in the snapshot's kinds"):
        backend.apply_snapshot(ClusterRecord("east"), ["pods"], [pod("b"), svc])
    assert names(backend) == ["a"]


def test_text_postgres_cannot_store_is_refused_and_nothing_changes(backend: PostgresBackend) -> None:
    backend.apply_snapshot(ClusterRecord("east", last_sequence=1), ["pods"], [pod("a")])
    with pytest.raises(StorageError, match="postgres: applying a snapshot of east failed"):
        backend.apply_snapshot(
            ClusterRecord("east", last_sequence=2), ["pods"], [pod("b"), pod("c", data={"nul": "a\x00b"})]
        )
    assert names(backend) == ["a"]
    stored = backend.get_cluster("east")
    assert stored is not None and stored.last_sequence == 1


def test_changes_across_many_objects(backend: PostgresBackend) -> None:
    cluster = ClusterRecord("east")
    pods = [pod(f"p{i:04d}", namespace=f"ns{i % 3}") for i in range(2500)]
    assert len(backend.apply_snapshot(cluster, ["pods"], pods)) == 2500
    pods[10] = pod("p0010", namespace="ns1", rv="2")
    pods[20] = pod("p0020", namespace="ns2", uid="recreated")
    del pods[30]
    pods.append(pod("new", namespace="ns0"))
    changes = backend.apply_snapshot(cluster, ["pods"], pods)
    assert sorted((str(c.type), c.name, c.uid) for c in changes) == [
        ("ADDED", "new", "uid-ns0-new"),
        ("ADDED", "p0020", "recreated"),
        ("DELETED", "p0020", "uid-ns2-p0020"),
        ("DELETED", "p0030", "uid-ns0-p0030"),
        ("MODIFIED", "p0010", "uid-ns1-p0010"),
    ]
    assert backend.counts("east") == {"pods": 2500}
    in_ns1 = names(backend, namespace="ns1")
    assert len(in_ns1) == 833 and in_ns1 == sorted(in_ns1)


def test_a_streaming_query_keeps_its_snapshot_across_fetches(backend: PostgresBackend) -> None:
    count = FETCH_SIZE * 2 + 10
    backend.apply_snapshot(ClusterRecord("east"), ["pods"], [pod(f"p{i:05d}") for i in range(count)])
    results = backend.query(ResourceQuery(cluster="east"))
    first = next(results)
    backend.apply_snapshot(ClusterRecord("east"), ["pods"], [])  # everything deleted meanwhile
    assert 1 + sum(1 for _ in results) == count
    assert first.resource.name == "p00000"
    assert names(backend) == []


def test_abandoned_queries_give_their_connections_back(pg_options: dict[str, Any]) -> None:
    backend = PostgresBackend(parse_options({**pg_options, "query_pool_size": 1, "connect_timeout": 30}))
    backend.migrate()
    try:
        backend.apply_snapshot(ClusterRecord("east"), ["pods"], [pod(f"p{i}") for i in range(5)])
        for _ in range(3):
            results = backend.query(ResourceQuery())
            next(results)
            results.close()  # a client that went away
        assert len(names(backend)) == 5
    finally:
        backend.close()


def test_two_managers_on_one_database_see_the_same_state(pg_options: dict[str, Any]) -> None:
    first = PostgresBackend(parse_options(pg_options))
    second = PostgresBackend(parse_options(pg_options))
    try:
        first.migrate()
        second.migrate()
        first.apply_snapshot(ClusterRecord("east", edge_id="edge-1"), ["pods"], [pod("a"), pod("b")])
        second.apply_delta(ClusterRecord("east", edge_id="edge-1"), [pod("c")], [ResourceKey("pods", "default", "a")])
        assert names(first) == names(second) == ["b", "c"]
        assert first.list_clusters() == second.list_clusters()
    finally:
        first.close()
        second.close()


def test_schemas_keep_deployments_apart(pg_dsn: str) -> None:
    blue = PostgresBackend(parse_options({"dsn": pg_dsn, "schema": "blue_deployment"}))
    green = PostgresBackend(parse_options({"dsn": pg_dsn, "schema": "green_deployment"}))
    try:
        blue.migrate()
        green.migrate()
        blue.apply_snapshot(ClusterRecord("east"), ["pods"], [pod("a")])
        assert names(green) == [] and names(blue) == ["a"]
    finally:
        blue.close()
        green.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA blue_deployment CASCADE")
            conn.execute("DROP SCHEMA green_deployment CASCADE")


def test_using_a_closed_backend_is_a_clear_error(backend: PostgresBackend) -> None:
    backend.close()
    with pytest.raises(StorageError, match="closed"):
        backend.counts("east")
