"""Managers starting together migrate once, without racing; a schema newer than the plugin is refused;
a schema of the previous version is upgraded with its data kept."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres import migrations
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.options import parse_options

from navigator.plugin import ClusterRecord, HistoryQuery, ResourceQuery, StorageError, parse_selector
from navigator.testing.storage_conformance import Feed, make, stamp, state, summary


def recorded(dsn: str, schema: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')]


def test_threads_migrating_at_once_apply_each_migration_once(pg_options: dict[str, Any]) -> None:
    backends = [PostgresBackend(parse_options(pg_options)) for _ in range(4)]
    start = threading.Barrier(len(backends))
    errors: list[BaseException] = []

    def migrate(backend: PostgresBackend) -> None:
        start.wait()
        try:
            backend.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(b,)) for b in backends]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for b in backends:
            b.close()
    assert errors == []
    assert recorded(pg_options["dsn"], pg_options["schema"]) == [m.version for m in migrations.MIGRATIONS]


#: A manager start in a separate process, held at a gate so the processes migrate at the same moment.
STARTER = """
import json, sys
import psycopg
from navigator_plugin_postgres.plugin import create
options = json.loads(sys.argv[1])
backend = create(options)
with psycopg.connect(options["dsn"]) as gate:
    gate.execute("SELECT pg_advisory_lock_shared(%s)", [int(sys.argv[2])])
backend.migrate()
backend.close()
print("ok")
"""


def test_processes_migrating_at_once_both_start(pg_options: dict[str, Any]) -> None:
    gate_key = 0x6A7E
    with psycopg.connect(pg_options["dsn"], autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", [gate_key])
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", STARTER, json.dumps(pg_options), str(gate_key)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 120
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        while gate.execute(waiting).fetchone() != (2,):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "starters did not arrive"
            time.sleep(0.02)
        gate.execute("SELECT pg_advisory_unlock(%s)", [gate_key])
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    assert recorded(pg_options["dsn"], pg_options["schema"]) == [m.version for m in migrations.MIGRATIONS]


def test_migrating_again_does_nothing(pg_dsn: str, pg_options: dict[str, Any]) -> None:
    with psycopg.connect(pg_dsn) as conn:
        assert migrations.migrate(conn, pg_options["schema"]) == [m.version for m in migrations.MIGRATIONS]
        conn.commit()
        assert migrations.migrate(conn, pg_options["schema"]) == []


def test_a_schema_from_a_newer_plugin_is_refused(backend: PostgresBackend, pg_options: dict[str, Any]) -> None:
    schema = pg_options["schema"]
    with psycopg.connect(pg_options["dsn"], autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".schema_migrations (version, description) VALUES (%s, %s)',
            [migrations.LATEST + 1, "from the future"],
        )
    with pytest.raises(StorageError, match=f"version {migrations.LATEST + 1}, newer than .* understands"):
        backend.migrate()


def test_lock_keys_are_stable_and_per_schema() -> None:
    assert migrations.lock_key("navigator") == migrations.lock_key("navigator")
    assert migrations.lock_key("navigator") != migrations.lock_key("other")
    assert -(2**63) <= migrations.lock_key("navigator") < 2**63


def test_a_version_1_schema_is_upgraded_with_its_data_kept(pg_options: dict[str, Any]) -> None:
    dsn, schema = pg_options["dsn"], pg_options["schema"]
    a = make("a", labels={"app": "web"}, data={"phase": "Running", "ip": "10.0.0.1"})
    b = make("b", namespace="kube-system", data={"phase": "Pending"})
    with psycopg.connect(dsn) as conn:
        assert migrations.migrate(conn, schema, target=1) == [1]
        # Rows as version 1 of the plugin wrote them: a CRC digest, data as jsonb.
        for r, crc in ((a, 123456789), (b, -42)):
            conn.execute(
                f'INSERT INTO "{schema}".resources (cluster, kind, namespace, name, uid, resource_version,'
                " labels, data, digest) VALUES ('east', %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)",
                [r.kind, r.namespace, r.name, r.uid, r.resource_version, json.dumps(r.labels), json.dumps(r.data), crc],
            )
        conn.execute(
            f'INSERT INTO "{schema}".clusters (cluster, edge_id, last_sequence) VALUES (%s, %s, %s)',
            ["east", "edge-1", 41],
        )
    backend = PostgresBackend(parse_options(pg_options))
    try:
        backend.migrate()
        assert recorded(dsn, schema) == [m.version for m in migrations.MIGRATIONS]
        assert [s.resource for s in backend.query(ResourceQuery())] == [a, b]
        assert {(v.name, v.resource_version, v.digest) for v in backend.versions("east")} == {("a", "1", ""), ("b", "1", "")}
        assert backend.get_cluster("east") == ClusterRecord("east", edge_id="edge-1", last_sequence=41)
        assert list(backend.history(HistoryQuery())) == []

        # The first state after the upgrade: equal objects are not changes, only their digests are stored.
        feed = Feed(backend)
        changed_a = make("a", rv="2", labels={"app": "web"}, data={"phase": "Running", "ip": "10.0.0.2"})
        assert summary(feed(state(changed_a, b))) == [("MODIFIED", "pods", "a", a.uid)]
        [change] = backend.history(HistoryQuery())
        assert change.changed_fields == ("ip",) and change.old_resource_version == "1"
        assert all(v.digest for v in backend.versions("east"))
        assert feed(state(changed_a, b)) == []
    finally:
        backend.close()


def test_a_version_2_schema_gets_the_labels_index_as_jsonb_path_ops(pg_options: dict[str, Any]) -> None:
    dsn, schema = pg_options["dsn"], pg_options["schema"]
    web = make("a", labels={"app": "web", "tier": "front"})
    with psycopg.connect(dsn) as conn:
        assert migrations.migrate(conn, schema, target=2) == [1, 2]
        conn.execute(
            f'INSERT INTO "{schema}".resources (cluster, kind, namespace, name, uid, resource_version,'
            " labels, data, digest) VALUES ('east', %s, %s, %s, %s, '1', %s::jsonb, '{}', '')",
            [web.kind, web.namespace, web.name, web.uid, json.dumps(web.labels)],
        )
    backend = PostgresBackend(parse_options(pg_options))
    try:
        backend.migrate()
        assert recorded(dsn, schema) == [m.version for m in migrations.MIGRATIONS]
        with psycopg.connect(dsn) as conn:
            (index,) = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'resources_labels_idx'",
                [schema],
            ).fetchone() or ("",)
        assert "USING gin (labels jsonb_path_ops)" in index
        for text, expected in (("app=web", ["a"]), ("tier in (front,back)", ["a"]), ("app", ["a"]), ("!app", [])):
            selector = parse_selector(text)
            assert [s.resource.name for s in backend.query(ResourceQuery(selector=selector))] == expected, text
    finally:
        backend.close()


def test_a_version_3_schema_gains_cluster_freshness_with_its_data_kept(pg_options: dict[str, Any]) -> None:
    dsn, schema = pg_options["dsn"], pg_options["schema"]
    synced = datetime(2030, 1, 1, tzinfo=UTC)
    with psycopg.connect(dsn) as conn:
        assert migrations.migrate(conn, schema, target=3) == [1, 2, 3]
        conn.execute(
            f'INSERT INTO "{schema}".clusters (cluster, edge_id, last_sync, last_sequence) VALUES (%s, %s, %s, %s)',
            ["east", "edge-1", synced, 41],
        )
        conn.execute(
            f'INSERT INTO "{schema}".cluster_history (applied_at, cluster, edge_id, last_sync, last_sequence)'
            " VALUES (%s, %s, %s, %s, %s)",
            [synced, "east", "edge-1", synced, 41],
        )
    backend = PostgresBackend(parse_options(pg_options))
    try:
        backend.migrate()
        assert recorded(dsn, schema) == [m.version for m in migrations.MIGRATIONS]
        before = ClusterRecord("east", edge_id="edge-1", last_sync=synced, last_sequence=41)
        assert backend.get_cluster("east") == before
        assert backend.get_cluster("east", at=synced) == before

        # The first state after the upgrade saves the freshness with the record and its kept copy.
        feed = Feed(backend, record_cluster=True, clock=synced)
        delta = state(make("b"), delta=True)
        stamp(delta.resources[0], synced + timedelta(seconds=0.75))
        feed(delta)
        stored = backend.get_cluster("east")
        assert stored == feed.record and stored is not None
        assert (stored.fresh_as_of, stored.lag) == (synced + timedelta(seconds=0.5), 0.25)
        assert backend.get_cluster("east", at=feed.clock) == stored
    finally:
        backend.close()
