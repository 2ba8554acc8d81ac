"""What the PostgreSQL backend adds beyond the conformance suite: selector SQL against the reference,
text PostgreSQL refuses, streaming queries, query plans at size, shared state between managers."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres import history as history_sql
from navigator_plugin_postgres.backend import FETCH_SIZE, VERSIONS_FETCH_SIZE, PostgresBackend
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.query import statement
from psycopg import sql

from navigator.plugin import HistoryQuery, ResourceQuery, StorageError, StoredObject, parse_selector
from navigator.testing.storage_conformance import (
    Feed,
    added,
    commit,
    deleted,
    make,
    modified,
    moment,
    names,
    record,
    state,
    store,
    summary,
)

KEYS = ["app", "tier", "env", "app.kubernetes.io/name", "example.com/team"]
VALUES = ["web", "db", "", "prod", "a.b-c_d"]

SELECTORS = [
    "app=web", "app=", "app!=", "app!=web", "app in (web,db)", "app in (web,)", "app notin (web,db)",
    "app notin ()", "app", "!app", "app=web,app=db", "app=web,app!=web", "app=web,app in (web,prod)",
    "app.kubernetes.io/name=web", "example.com/team notin (prod),!env", "tier,env=prod,app!=db",
    "app in (web),tier in (db,prod),env", "!app,!tier,!env", "env in (prod, a.b-c_d)", "app==db",
]  # fmt: skip


def test_label_selectors_agree_with_the_reference_now_in_the_past_and_in_history(backend: PostgresBackend) -> None:
    rng = random.Random(20240501)
    labelled = {f"p{i:03d}": {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.5} for i in range(120)}
    pods = [make(n, labels=ls) for n, ls in labelled.items()]
    commit(backend, [added(p, moment(1)) for p in pods])
    # Then every pod is relabelled: the past and the history keep the old labels.
    commit(backend, [modified(make(p.name, rv="2", labels={"app": "gone"}), moment(2), "1", ["labels"]) for p in pods])
    for text in SELECTORS:
        selector = parse_selector(text)
        assert selector is not None
        expected = sorted(n for n, labels in labelled.items() if selector.matches(labels))
        assert names(backend, selector=selector, at=moment(1)) == expected, text
        history = backend.history(HistoryQuery(selector=selector, until=moment(1)))
        assert sorted(c.name for c in history) == expected, text
        assert names(backend, selector=selector) == (sorted(labelled) if selector.matches({"app": "gone"}) else [])


def test_text_postgres_cannot_store_is_refused_and_nothing_changes(backend: PostgresBackend) -> None:
    commit(backend, [added(make("a"), moment(1))], record(last_sequence=1))
    with pytest.raises(StorageError, match="postgres: applying a state to east failed"):
        commit(backend, [added(make("b"), moment(2)), added(make("c\x00d"), moment(2))], record(last_sequence=2))
    assert names(backend) == ["a"]
    assert len(list(backend.history(HistoryQuery()))) == 1
    stored = backend.get_cluster("east")
    assert stored is not None and stored.last_sequence == 1


def test_data_is_stored_as_received_json(backend: PostgresBackend) -> None:
    # ``data`` is a json column: a NUL in a string (which jsonb refuses) and key order survive.
    odd = make("a", data={"z": 1, "a": "x\x00y", "nested": {"b": [1, 2.5, None, True]}})
    commit(backend, [added(odd, moment(1))])
    [now] = backend.query(ResourceQuery())
    [then] = backend.query(ResourceQuery(at=moment(1)))
    [change] = backend.history(HistoryQuery())
    for got in (now.resource, then.resource, change.resource):
        assert got is not None and got.data == odd.data and list(got.data) == ["z", "a", "nested"]


def test_changes_across_many_objects_through_the_reconciler(backend: PostgresBackend) -> None:
    feed = Feed(backend)
    pods = [make(f"p{i:04d}", namespace=f"ns{i % 3}") for i in range(2500)]
    assert len(feed(state(*pods))) == 2500
    pods[10] = make("p0010", namespace="ns1", rv="2")
    pods[20] = make("p0020", namespace="ns2", uid="recreated")
    del pods[30]
    pods.append(make("new", namespace="ns0"))
    assert sorted(summary(feed(state(*pods)))) == [
        ("ADDED", "pods", "new", "uid-pods-ns0-new"),
        ("ADDED", "pods", "p0020", "recreated"),
        ("DELETED", "pods", "p0020", "uid-pods-ns2-p0020"),
        ("DELETED", "pods", "p0030", "uid-pods-ns0-p0030"),
        ("MODIFIED", "pods", "p0010", "uid-pods-ns1-p0010"),
    ]
    assert backend.counts("east") == {"pods": 2500}
    in_ns1 = names(backend, namespace="ns1")
    assert len(in_ns1) == 833 and in_ns1 == sorted(in_ns1)
    assert len(names(backend, namespace="ns0", at=feed.clock - timedelta(seconds=1))) == 834
    assert len(list(backend.history(HistoryQuery(since=feed.clock)))) == 5


def test_versions_stream_every_object_of_a_cluster_and_only_it(backend: PostgresBackend) -> None:
    count = VERSIONS_FETCH_SIZE + 10
    backend.apply(record(), [StoredObject(make(f"p{i:05d}"), f"d{i}") for i in range(count)], [], None)
    store(backend, [make("other")], cluster="west")
    got = {v.name: v.digest for v in backend.versions("east")}
    assert len(got) == count and got["p00000"] == "d0" and got[f"p{count - 1:05d}"] == f"d{count - 1}"


def test_a_streaming_query_keeps_its_snapshot_across_fetches(backend: PostgresBackend) -> None:
    count = FETCH_SIZE * 2 + 10
    pods = [make(f"p{i:05d}") for i in range(count)]
    commit(backend, [added(p, moment(1)) for p in pods])
    results = backend.query(ResourceQuery(cluster="east"))
    history = backend.history(HistoryQuery())
    past = backend.query(ResourceQuery(at=moment(1)))
    firsts = next(results), next(history), next(past)
    commit(backend, [deleted(p, moment(2)) for p in pods])  # everything deleted meanwhile
    assert 1 + sum(1 for _ in results) == count
    assert 1 + sum(1 for _ in history) == count
    assert 1 + sum(1 for _ in past) == count
    assert firsts[0].resource.name == "p00000" and firsts[2].resource.name == "p00000"
    assert names(backend) == [] and len(list(backend.history(HistoryQuery()))) == 2 * count


def test_abandoned_queries_give_their_connections_back(pg_options: dict[str, Any]) -> None:
    backend = PostgresBackend(parse_options({**pg_options, "query_pool_size": 1, "connect_timeout": 30}))
    backend.migrate()
    try:
        commit(backend, [added(make(f"p{i}"), moment(1)) for i in range(5)])
        for read in (
            lambda: backend.query(ResourceQuery()),
            lambda: backend.history(HistoryQuery()),
            lambda: backend.versions("east"),
        ):
            for _ in range(3):
                results = read()
                next(results)
                results.close()  # type: ignore[attr-defined]  # a client that went away
        assert len(names(backend)) == 5
    finally:
        backend.close()


def _plan(backend: PostgresBackend, text: Any, params: list[Any]) -> str:
    with psycopg.connect(backend.options.dsn) as conn:
        conn.execute(f'SET search_path = "{backend.options.schema_name}"')
        conn.execute("SET cursor_tuple_fraction = 1")  # as the backend's connections
        rows = conn.execute(sql.SQL("EXPLAIN {}").format(text), params).fetchall()
    return "\n".join(row[0] for row in rows)


def test_time_travel_and_recent_changes_read_the_history_indexes(backend: PostgresBackend) -> None:
    # 200,000 synthetic changes: 100 namespaces of 200 pods, 10 changes each over a day.
    with psycopg.connect(backend.options.dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{backend.options.schema_name}"')
        conn.execute(
            """INSERT INTO history (cluster, kind, namespace, name, uid, type, new_resource_version,
                                    applied_at, labels, data)
               SELECT 'east', 'pods', 'ns-' || (i %% 100), 'pod-' || (i / 100 %% 200), 'u' || (i %% 20000),
                      CASE WHEN i < 20000 THEN 'ADDED' ELSE 'MODIFIED' END, i::text,
                      %s::timestamptz + i * interval '432 milliseconds', '{"app": "web"}', '{"phase": "Running"}'
               FROM generate_series(0, 199999) AS i""",
            [moment(0)],
        )
        conn.execute("VACUUM ANALYZE history")  # as autovacuum leaves an insert-mostly table
    at = ResourceQuery(cluster="east", kind="pods", namespace="ns-7", at=moment(43_200))
    assert "history_key_idx" in _plan(backend, *statement(at))
    assert len(list(backend.query(at))) == 200
    # A page of the whole past streams in index order: no sort of everything before the first row.
    page = _plan(backend, *statement(ResourceQuery(cluster="east", at=moment(43_200), limit=10)))
    assert "history_key_idx" in page and "Sort" not in page
    assert "history_namespace_idx" in _plan(backend, *statement(ResourceQuery(namespace="ns-7", at=moment(43_200))))
    recent = HistoryQuery(cluster="east", namespace="ns-7", since=moment(86_400 - 3600))
    assert "history_namespace_idx" in _plan(backend, *history_sql.statement(recent))
    everywhere = HistoryQuery(since=moment(86_400 - 3600))
    assert "history_pkey" in _plan(backend, *history_sql.statement(everywhere))


def test_equality_and_in_selectors_read_the_labels_index(backend: PostgresBackend) -> None:
    # 50,000 pods of 5,000 workloads: app per workload, tier among 50.
    schema = backend.options.schema_name
    with psycopg.connect(backend.options.dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute(
            """INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, labels, data, digest)
               SELECT 'east', 'pods', 'ns-' || (i / 10 % 100), 'pod-' || i, 'u' || i, '1',
                      jsonb_build_object('app', 'app-' || (i / 10), 'tier', 'tier-' || (i / 10 % 50)), '{}', ''
               FROM generate_series(0, 49999) AS i"""
        )
        conn.execute("VACUUM ANALYZE resources")
        (index,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'resources_labels_idx'", [schema]
        ).fetchone() or ("",)
    assert "jsonb_path_ops" in index
    for text in ("app=app-7", "tier in (tier-1,tier-2),app!=app-11", "app=app-7,tier", "app in (app-7,app-8),!x"):
        plan = _plan(backend, *statement(ResourceQuery(kind="pods", selector=parse_selector(text))))
        assert "resources_labels_idx" in plan, (text, plan)
    found = [s.resource.name for s in backend.query(ResourceQuery(kind="pods", selector=parse_selector("app=app-7")))]
    assert found == sorted(f"pod-{i}" for i in range(70, 80))


def test_pruning_by_max_rows_trusts_a_far_lower_estimate_only_for_large_limits(
    backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(backend, [added(make(f"p{i}"), moment(i)) for i in range(10)])
    with psycopg.connect(backend.options.dsn, autocommit=True) as conn:
        conn.execute(f'ANALYZE "{backend.options.schema_name}".history')
    monkeypatch.setattr(history_sql, "ESTIMATE_FROM", 5)
    assert backend.prune_history(moment(0), 40) == 0  # estimated 10 of 40: not counted
    assert backend.prune_history(moment(0), 8) == 2  # 10 is not far below 8: counted, the 2 oldest go
    assert [c.name for c in backend.history(HistoryQuery())][-1] == "p2"


def test_two_managers_on_one_database_see_the_same_state(pg_options: dict[str, Any]) -> None:
    first = PostgresBackend(parse_options(pg_options))
    second = PostgresBackend(parse_options(pg_options))
    try:
        first.migrate()
        second.migrate()
        a, b, c = make("a"), make("b"), make("c")
        commit(first, [added(a, moment(1)), added(b, moment(1))], record(edge_id="edge-1"))
        commit(second, [added(c, moment(2)), deleted(a, moment(2))], record(edge_id="edge-1"))
        assert names(first) == names(second) == ["b", "c"]
        assert names(first, at=moment(1)) == names(second, at=moment(1)) == ["a", "b"]
        assert list(first.history(HistoryQuery())) == list(second.history(HistoryQuery()))
        assert set(first.versions("east")) == set(second.versions("east"))
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
        commit(blue, [added(make("a"), moment(1))])
        assert names(green) == [] and names(blue) == ["a"]
        assert list(green.history(HistoryQuery())) == [] and list(green.versions("east")) == []
    finally:
        blue.close()
        green.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA blue_deployment CASCADE")
            conn.execute("DROP SCHEMA green_deployment CASCADE")


def test_using_a_closed_backend_is_a_clear_error(backend: PostgresBackend) -> None:
    backend.close()
    for call in (
        lambda: backend.counts("east"),
        lambda: backend.versions("east"),
        lambda: backend.history(HistoryQuery()),
        lambda: backend.query(ResourceQuery()),
        lambda: backend.prune_history(moment(0), None),
    ):
        with pytest.raises(StorageError, match="closed"):
            call()
