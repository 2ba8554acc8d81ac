"""SQLite schema 4: a database of schema 3 gains the clusters' freshness columns with its data kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from navigator_plugins.storage.sqlite import create, schema

from navigator.interfaces import ClusterRecord, ResourceQuery
from navigator.interfaces.storage import HistoryQuery
from navigator.testing.storage_conformance import Feed, make, stamp, state

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def version_3_database(path: Path) -> None:
    """A database as the previous release left it: schema 3, a cluster, a kept copy of its record, a pod."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    schema.migrate(conn, target=3)
    conn.execute(
        "INSERT INTO clusters (cluster, edge_id, metadata, last_sync, last_sequence) VALUES (?, ?, ?, ?, ?)",
        ("east", "edge-1", '{"region": "eu"}', T0.timestamp(), 7),
    )
    conn.execute(
        "INSERT INTO cluster_history (applied_at, cluster, edge_id, last_sync, last_sequence) VALUES (?, ?, ?, ?, ?)",
        (int(T0.timestamp() * 1_000_000), "east", "edge-1", T0.timestamp(), 7),
    )
    conn.execute(
        "INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, digest, labels, data) "
        "VALUES ('east', 'pods', 'default', 'a', 'uid-pods-default-a', '1', '', '{}', ?)",
        (orjson.dumps({"phase": "Running"}),),
    )
    conn.close()


def test_migration_from_schema_3_keeps_the_data_and_knows_no_freshness_yet(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_3_database(path)
    backend = create({"path": str(path)})
    backend.migrate()
    try:
        before = ClusterRecord("east", edge_id="edge-1", metadata={"region": "eu"}, last_sync=T0, last_sequence=7)
        assert backend.get_cluster("east") == before
        assert backend.get_cluster("east", at=T0) == ClusterRecord("east", edge_id="edge-1", last_sync=T0,
                                                                   last_sequence=7)  # fmt: skip
        assert [s.resource for s in backend.query(ResourceQuery())] == [make("a")]

        # The first state after the upgrade saves the freshness, with the record and its kept copy.
        feed = Feed(backend, record_cluster=True, clock=T0)
        delta = state(make("b"), delta=True)
        stamp(delta.resources[0], T0 + timedelta(seconds=0.75))
        feed(delta)
        stored = backend.get_cluster("east")
        assert stored is not None and stored == feed.record
        assert (stored.fresh_as_of, stored.lag) == (T0 + timedelta(seconds=0.5), 0.25)
        assert backend.get_cluster("east", at=feed.clock) == stored
        assert [c.name for c in backend.history(HistoryQuery())] == ["b"]
    finally:
        backend.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(version) FROM navigator_schema").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()
