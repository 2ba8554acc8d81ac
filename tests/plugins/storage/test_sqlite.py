"""The SQLite backend: the shared conformance suite plus what only SQLite has (WAL, file schema, kill -9)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.storage.sqlite import create, schema
from navigator_plugins.storage.sqlite.backend import _history_sql, _query_sql
from navigator_plugins.storage.sqlite.schema import SCHEMA_VERSION

from navigator.interfaces import ClusterRecord, ResourceQuery, StorageBackend, StorageError
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.claims import InMemoryClaims
from navigator.manager.reconciler import Reconciler, digest
from navigator.manager.validation import StateSet
from navigator.resource import Change, ChangeType, Resource, ResourceKey, StoredObject
from navigator.selectors import parse_selector
from navigator.testing.storage_conformance import BackendFactory, StorageConformance, check_claim_rules
from navigator.v1 import sync_pb2

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class TestSQLiteConformance(StorageConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> BackendFactory:
        return lambda: create({"path": str(tmp_path / "navigator.db")})


def test_the_in_memory_registry_follows_the_rules() -> None:
    check_claim_rules(lambda grace: InMemoryClaims("mgr-1", grace))


def pod(name: str, rv: str = "1", labels: dict[str, str] | None = None, **data: Any) -> Resource:
    return Resource("pods", "default", name, f"uid-{name}", rv, labels or {}, data or {"phase": "Running"})


def add(backend: StorageBackend, *resources: Resource, at: datetime = T0, cluster: str = "east") -> None:
    """Apply ``resources`` as ADDED changes, with history."""
    changes = [
        Change(cluster, r.kind, r.namespace, r.name, r.uid, ChangeType.ADDED, None, r.resource_version,
               applied_at=at, resource=r)
        for r in resources
    ]  # fmt: skip
    backend.apply(
        ClusterRecord(cluster, last_sync=at), [StoredObject(r, "d") for r in resources], [], changes
    )


def test_wal_mode_schema_version_and_indexes_are_in_the_file(backend: StorageBackend, tmp_path: Path) -> None:
    backend.close()
    conn = sqlite3.connect(tmp_path / "navigator.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM navigator_schema").fetchone()[0] == SCHEMA_VERSION
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {
        "resources_key", "resources_kind_namespace", "history_key", "history_namespace", "history_applied",
        "cluster_history_key",
    } <= indexes  # fmt: skip
    columns = [row[1] for row in conn.execute("PRAGMA table_info(resources)")]
    assert columns.index("digest") < columns.index("data"), "versions() must not read past the payload"
    conn.close()


def test_a_newer_schema_is_refused_with_a_clear_error(backend: StorageBackend, tmp_path: Path) -> None:
    backend.close()
    conn = sqlite3.connect(tmp_path / "navigator.db")
    conn.execute("INSERT INTO navigator_schema (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    newer = create({"path": str(tmp_path / "navigator.db")})
    with pytest.raises(StorageError, match="newer than this navigator understands"):
        newer.migrate()
    newer.close()


def version_1_database(path: Path) -> None:
    """A database as the previous release left it: schema 1, a cluster and two pods."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    schema.migrate(conn, target=1)
    conn.execute(
        "INSERT INTO clusters (cluster, edge_id, metadata, last_sync, last_sequence) VALUES (?, ?, ?, ?, ?)",
        ("east", "edge-1", '{"region": "eu"}', T0.timestamp(), 7),
    )
    for name, phase in (("a", "Running"), ("b", "Pending")):
        conn.execute(
            "INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, labels, data) "
            "VALUES (?, 'pods', 'default', ?, ?, '5', ?, ?)",
            ("east", name, f"uid-{name}", '{"app": "web"}', orjson.dumps({"phase": phase})),
        )
    conn.close()


def test_migration_from_schema_1_keeps_the_data_with_an_empty_digest(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_1_database(path)
    backend = create({"path": str(path)})
    backend.migrate()
    try:
        versions = sorted(backend.versions("east"), key=lambda v: v.name)
        assert [(v.name, v.uid, v.resource_version, v.digest) for v in versions] == [
            ("a", "uid-a", "5", ""),
            ("b", "uid-b", "5", ""),
        ]
        found = list(backend.query(ResourceQuery(cluster="east", selector=parse_selector("app=web"))))
        assert [(f.resource.name, f.resource.data) for f in found] == [
            ("a", {"phase": "Running"}),
            ("b", {"phase": "Pending"}),
        ]
        stored = backend.get_cluster("east")
        assert stored is not None and stored.metadata == {"region": "eu"} and stored.last_sequence == 7
        assert list(backend.history(HistoryQuery())) == []
        assert backend.counts("east") == {"pods": 2}
    finally:
        backend.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(version) FROM navigator_schema").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def wire(name: str, phase: str, rv: str = "5") -> sync_pb2.Resource:
    return sync_pb2.Resource(
        kind="pods", namespace="default", name=name, uid=f"uid-{name}", resource_version=rv,
        labels={"app": "web"}, payload=orjson.dumps({"phase": phase}),
    )  # fmt: skip


def test_after_migration_the_reconciler_stores_digests_once_and_reports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_1_database(path)
    backend = create({"path": str(path)})
    backend.migrate()
    try:
        reconciler = Reconciler(backend, history=True)
        state = StateSet(sequence=8, type=sync_pb2.STATE_TYPE_FULL, kinds=["pods"], cached_kinds=[], errors=[],
                         counts={"pods": 2}, resources=[wire("a", "Running"), wire("b", "Pending")])  # fmt: skip
        record = ClusterRecord("east", edge_id="edge-1", last_sync=T0, last_sequence=8)
        assert reconciler.apply(record, state, JsonSerializer(), T0) == []
        assert {v.name: v.digest for v in backend.versions("east")} == {
            "a": digest(wire("a", "Running")),
            "b": digest(wire("b", "Pending")),
        }
        assert list(backend.history(HistoryQuery())) == []
    finally:
        backend.close()


def test_a_held_lock_waits_busy_timeout_then_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "navigator.db"
    first = create({"path": str(path)})
    first.migrate()
    first.close()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    impatient = create({"path": str(path), "busy_timeout": "300ms"})
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"navigator\.db.*locked"):
        impatient.save_cluster(ClusterRecord("east"))
    assert time.monotonic() - started >= 0.25
    impatient.close()

    patient = create({"path": str(path), "busy_timeout": "60s"})
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    patient.save_cluster(ClusterRecord("east", edge_id="edge-1"))  # waits for the other writer, then succeeds
    release.join()
    stored = patient.get_cluster("east")
    assert stored is not None and stored.edge_id == "edge-1"
    patient.close()
    other.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path": "/nonexistent-dir/x.db"}, "directory /nonexistent-dir does not exist"),
        ({"pth": "x.db"}, "unknown sqlite option pth"),
        ({"busy_timeout": "soon"}, "busy_timeout"),
        ({"synchronous": "OFF"}, "synchronous"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=message):
        create(options)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"garbage\.db"):
        backend = create({"path": str(path)})
        backend.migrate()


def test_data_that_is_not_json_is_refused_and_nothing_is_written(backend: StorageBackend) -> None:
    add(backend, pod("a"))
    bad = pod("b", phase=object())
    with pytest.raises(StorageError, match="pods/default/b: labels or data are not JSON"):
        add(backend, pod("c"), bad, at=T0 + timedelta(minutes=1))
    assert [f.resource.name for f in backend.query(ResourceQuery())] == ["a"]
    assert [c.name for c in backend.history(HistoryQuery())] == ["a"]


def test_label_keys_with_dots_and_slashes_now_and_in_history(backend: StorageBackend) -> None:
    add(backend, pod("a", labels={"app.kubernetes.io/name": "x", "app": "y"}))
    for selector, expected in (("app.kubernetes.io/name=x", ["a"]), ("app.kubernetes.io/name=y", [])):
        sel = parse_selector(selector)
        assert [f.resource.name for f in backend.query(ResourceQuery(selector=sel))] == expected
        assert [f.resource.name for f in backend.query(ResourceQuery(selector=sel, at=T0))] == expected
        assert [c.name for c in backend.history(HistoryQuery(selector=sel))] == expected


def test_a_deleted_row_keeps_the_last_labels_for_selectors(backend: StorageBackend) -> None:
    add(backend, pod("a", labels={"app": "web"}))
    gone = Change("east", "pods", "default", "a", "uid-a", ChangeType.DELETED, "1", None,
                  applied_at=T0 + timedelta(minutes=1))  # fmt: skip
    backend.apply(ClusterRecord("east"), [], [ResourceKey("pods", "default", "a", "uid-a")], [gone])
    found = list(backend.history(HistoryQuery(selector=parse_selector("app=web"))))
    assert [c.type for c in found] == [ChangeType.DELETED, ChangeType.ADDED]
    assert found[0].resource is None
    assert list(backend.history(HistoryQuery(selector=parse_selector("app!=web")))) == []


def test_a_query_iterator_sees_one_snapshot_while_applies_commit(backend: StorageBackend) -> None:
    add(backend, *(pod(f"p-{i:04d}") for i in range(2000)))
    results = backend.query(ResourceQuery(cluster="east"))
    first = [next(results) for _ in range(10)]
    deletions = [ResourceKey("pods", "default", f"p-{i:04d}") for i in range(2000)]
    backend.apply(ClusterRecord("east"), [], deletions, None)  # committed while the iterator is half way
    assert list(backend.query(ResourceQuery(cluster="east"))) == []
    assert len(first) + len(list(results)) == 2000


def test_the_wal_is_checkpointed_off_the_storage_thread(backend: StorageBackend, tmp_path: Path) -> None:
    path = tmp_path / "navigator.db"
    empty = path.stat().st_size
    add(backend, *(pod(f"p-{i:05d}", pad="x" * 400) for i in range(20_000)))  # ~ 10 MiB of WAL
    deadline = time.monotonic() + 120
    while path.stat().st_size < 8 << 20:  # the checkpointer copied the WAL into the database file
        assert time.monotonic() < deadline, f"no checkpoint: {path} stays {path.stat().st_size} bytes"
        time.sleep(0.05)
    assert path.stat().st_size > empty
    backend.close()
    assert not [t for t in threading.enumerate() if t.name == f"sqlite checkpoint {path}"]


@pytest.mark.parametrize(
    ("query", "plan"),
    [
        # the targets: a namespace's recent changes, and a namespace's pods at a time
        (HistoryQuery(cluster="east", namespace="ns-7", since=T0), "INDEX history_namespace (namespace=? AND applied_at>?)"),
        (ResourceQuery(cluster="east", kind="pods", namespace="ns-7", at=T0),
         "COVERING INDEX history_key (cluster=? AND kind=? AND namespace=?)"),
        (HistoryQuery(cluster="east", kind="pods", namespace="a", name="b"),
         "INDEX history_key (cluster=? AND kind=? AND namespace=? AND name=?)"),
        (HistoryQuery(cluster="east", since=T0), "INDEX history_applied (applied_at>?)"),
        (ResourceQuery(namespace="ns-7", at=T0), "INDEX history_namespace (namespace=? AND applied_at<?)"),
    ],
)  # fmt: skip
def test_history_queries_use_the_index_for_their_shape(
    backend: StorageBackend, tmp_path: Path, query: HistoryQuery | ResourceQuery, plan: str
) -> None:
    # Without statistics SQLite would take cluster= for selective (one cluster can be the whole table).
    sql, params = _history_sql(query) if isinstance(query, HistoryQuery) else _query_sql(query)
    conn = sqlite3.connect(tmp_path / "navigator.db")
    steps = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    conn.close()
    assert any(step.endswith(plan) for step in steps), steps
    if isinstance(query, HistoryQuery):  # newest first straight from the index: a limit stops early
        assert not any("TEMP B-TREE" in step for step in steps), steps


def test_pruning_keeps_the_cluster_record_needed_after_the_cutoff(backend: StorageBackend) -> None:
    for minute in range(3):
        at = T0 + timedelta(minutes=minute)
        backend.apply(
            ClusterRecord("east", last_sync=at, last_sequence=minute), [], [], [], record_cluster=True
        )
    backend.prune_history(T0 + timedelta(minutes=1, seconds=30), None)
    assert backend.get_cluster("east", at=T0) is None
    kept = backend.get_cluster("east", at=T0 + timedelta(minutes=1, seconds=45))
    assert kept is not None and kept.last_sequence == 1
    assert [c.last_sequence for c in backend.list_clusters(at=T0 + timedelta(minutes=5))] == [2]


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from navigator_plugins.storage.sqlite import create
    from navigator.interfaces import ClusterRecord
    from navigator.resource import Change, ChangeType, Resource, ResourceKey, StoredObject

    backend = create({"path": sys.argv[1]})
    backend.migrate()
    n = int(sys.argv[2])
    generation = 0
    old = [(v.name, v.uid, v.resource_version) for v in backend.versions("east")]  # a previous run's
    while True:
        generation += 1
        prefix = "a" if generation % 2 else "b"  # alternate names: every apply adds n and deletes n
        now = datetime.now(UTC)
        pods = [
            Resource("pods", "default", f"{prefix}-{i}", f"{prefix}-{i}", str(generation), {"gen": str(generation)},
                     {"gen": generation, "pad": "x" * 200})
            for i in range(n)
        ]
        changes = [Change("east", "pods", "default", name, uid, ChangeType.DELETED, rv, None, applied_at=now)
                   for name, uid, rv in old]
        changes += [Change("east", "pods", "default", r.name, r.uid, ChangeType.ADDED, None, r.resource_version,
                           applied_at=now, resource=r) for r in pods]
        backend.apply(
            ClusterRecord("east", last_sync=now, last_sequence=generation),
            [StoredObject(r, str(generation)) for r in pods],
            [ResourceKey("pods", "default", name, uid) for name, uid, _ in old],
            changes,
            record_cluster=True,
        )
        old = [(r.name, r.uid, r.resource_version) for r in pods]
        print(generation, flush=True)
    """
)


def test_kill_9_during_applies_leaves_a_consistent_database(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    n = 3000
    for attempt, delay in enumerate((0.05, 0.23, 0.41)):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(n)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        # Wait for a couple of commits, then kill at an arbitrary point inside the next apply.
        for _ in range(2):
            assert proc.stdout.readline(), "the writer died before committing"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

        backend = create({"path": str(path)})
        backend.migrate()
        stored = backend.get_cluster("east")
        assert stored is not None and stored.last_sequence >= 2
        generation = stored.last_sequence
        pods = list(backend.query(ResourceQuery(cluster="east", kind="pods")))
        generations = {p.resource.data["gen"] for p in pods}
        prefixes = {p.resource.name[0] for p in pods}
        assert len(pods) == n, f"attempt {attempt}: torn apply with {len(pods)} pods"
        assert generations == {generation}, f"attempt {attempt}: mixed generations {generations}"
        assert prefixes == {"a" if generation % 2 else "b"}
        assert {v.digest for v in backend.versions("east")} == {str(generation)}
        # History commits with its apply: the latest apply's n deletions and n additions are all there.
        latest = list(backend.history(HistoryQuery(since=stored.last_sync)))
        assert len(latest) == 2 * n, f"attempt {attempt}: torn history ({len(latest)} rows)"
        assert pods == list(backend.query(ResourceQuery(cluster="east", kind="pods", at=stored.last_sync)))
        recorded = backend.get_cluster("east", at=stored.last_sync)
        assert recorded is not None and recorded.last_sequence == generation
        backend.close()
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
