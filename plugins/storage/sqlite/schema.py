"""The SQLite schema as numbered migrations; the version lives in the database itself."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from navigator_plugins.storage.sqlite import label_index

from navigator.plugin import StorageError

#: Each entry upgrades from version ``index`` to ``index + 1``; append, never edit.
#: Statements are split on ``;``, so none may hold one in a literal or comment.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE clusters (
        cluster TEXT PRIMARY KEY,
        edge_id TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT '{}',
        last_sync REAL,
        last_seen REAL,
        sync_interval REAL NOT NULL DEFAULT 30,
        errors TEXT NOT NULL DEFAULT '[]',
        manager_id TEXT NOT NULL DEFAULT '',
        last_sequence INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE resources (
        id INTEGER PRIMARY KEY,
        cluster TEXT NOT NULL,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL,
        resource_version TEXT NOT NULL,
        labels TEXT NOT NULL,
        data BLOB NOT NULL
    );
    -- serves per-cluster snapshots, counts and the default ordering
    CREATE UNIQUE INDEX resources_key ON resources (cluster, kind, namespace, name);
    -- serves cross-cluster queries by kind and namespace (and name)
    CREATE INDEX resources_kind_namespace ON resources (kind, namespace, name);
    """,
    # 2: the core's reconciler compares digests, and changes are kept as history.
    """
    -- resources is rebuilt rather than altered so that digest sits before the payload:
    -- versions() then reads the key columns and the digest without touching the blob's pages.
    -- Existing rows get an empty digest: the reconciler sees a mismatch once, decodes,
    -- finds equal data and stores the digest, reporting nothing.
    CREATE TABLE resources_v2 (
        id INTEGER PRIMARY KEY,
        cluster TEXT NOT NULL,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL,
        resource_version TEXT NOT NULL,
        digest TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL,
        data BLOB NOT NULL
    );
    INSERT INTO resources_v2 (id, cluster, kind, namespace, name, uid, resource_version, labels, data)
        SELECT id, cluster, kind, namespace, name, uid, resource_version, labels, data FROM resources;
    DROP TABLE resources;
    ALTER TABLE resources_v2 RENAME TO resources;
    CREATE UNIQUE INDEX resources_key ON resources (cluster, kind, namespace, name);
    CREATE INDEX resources_kind_namespace ON resources (kind, namespace, name);
    -- One row per applied change. seq is the apply order, applied_at/observed_at are
    -- microseconds since the epoch (UTC), labels and data the object after the change
    -- (DELETED: the last known labels, no data).
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY,
        cluster TEXT NOT NULL,
        kind TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        uid TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
        old_resource_version TEXT,
        new_resource_version TEXT,
        applied_at INTEGER NOT NULL,
        observed_at INTEGER,
        changed_fields TEXT NOT NULL DEFAULT '[]',
        labels TEXT NOT NULL DEFAULT '{}',
        data BLOB
    );
    -- Which index a query uses is chosen in backend.py (INDEXED BY): without statistics
    -- SQLite takes every equality for a selective one, and one cluster may be the whole table.
    -- per object: a cluster's objects as they were at a time (the index covers picking each
    -- key's latest change), one object's changes, a key's latest change (deleted labels, pruning)
    CREATE INDEX history_key ON history (cluster, kind, namespace, name, applied_at);
    -- a namespace's changes over a time range, newest first (seq is the implied last column),
    -- and a namespace's objects at a time across clusters
    CREATE INDEX history_namespace ON history (namespace, applied_at);
    -- changes over a time range, newest first, and the oldest rows for pruning
    CREATE INDEX history_applied ON history (applied_at);
    -- copies of the cluster record for get_cluster(at=...), applied_at = its last_sync
    CREATE TABLE cluster_history (
        seq INTEGER PRIMARY KEY,
        applied_at INTEGER NOT NULL,
        cluster TEXT NOT NULL,
        edge_id TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT '{}',
        last_sync REAL,
        last_seen REAL,
        sync_interval REAL NOT NULL DEFAULT 30,
        errors TEXT NOT NULL DEFAULT '[]',
        manager_id TEXT NOT NULL DEFAULT '',
        last_sequence INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX cluster_history_key ON cluster_history (cluster, applied_at);
    """,
    # 3: the label index (label_index.py); STEPS[3] fills it from the rows already stored.
    """
    -- Per label key of a kind in a cluster, per hash bucket of the values, chunks of
    -- {"value": [resources ids]} (lo: the chunk's smallest id, n: how many ids it holds).
    CREATE TABLE label_values (
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        cluster TEXT NOT NULL,
        lo INTEGER NOT NULL,
        n INTEGER NOT NULL,
        ids TEXT NOT NULL,
        PRIMARY KEY (key, kind, bucket, cluster, lo)
    ) WITHOUT ROWID;
    -- Per kind in a cluster and key set (the JSON array of a row's label keys, in its labels'
    -- order), chunks of [resources ids]. Every row is in one: what !key and exists read,
    -- and what != and notin subtract from.
    CREATE TABLE label_keys (
        cluster TEXT NOT NULL,
        kind TEXT NOT NULL,
        keys TEXT NOT NULL,
        lo INTEGER NOT NULL,
        n INTEGER NOT NULL,
        ids TEXT NOT NULL,
        PRIMARY KEY (cluster, kind, keys, lo)
    ) WITHOUT ROWID;
    """,
    # 4: how fresh a cluster's copy is, saved with every apply (and kept with the record's copies).
    """
    -- fresh_as_of: epoch seconds (edge clock) as of which the copy was exact, the last applied
    -- state's timestamp. lag: seconds from the edge observing the last applied change to its apply.
    -- Both NULL until the first state after the upgrade.
    ALTER TABLE clusters ADD COLUMN fresh_as_of REAL;
    ALTER TABLE clusters ADD COLUMN lag REAL;
    ALTER TABLE cluster_history ADD COLUMN fresh_as_of REAL;
    ALTER TABLE cluster_history ADD COLUMN lag REAL;
    """,
    # 5: fencing: the epoch of the claim under which the record was last written.
    """
    -- A write whose epoch is below the stored one comes from a manager that lost the cluster
    -- and is refused. 0: written before fencing, or by a writer without a claim.
    ALTER TABLE clusters ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cluster_history ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    """,
)

#: Work a migration needs Python for, run after its statements, in the same transaction.
STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {3: label_index.rebuild}

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS navigator_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM navigator_schema").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target`` (the latest by default) in one transaction; returns the version found before.

    ``target`` exists for the tests, which build a database of an older version and upgrade it.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"the database schema is version {found}, newer than this navigator understands "
                f"({SCHEMA_VERSION}): upgrade navigator"
            )
        for version in range(found, target):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            if version + 1 in STEPS:
                STEPS[version + 1](conn)
            conn.execute("INSERT INTO navigator_schema (version) VALUES (?)", (version + 1,))
        conn.execute("COMMIT")
        return found
    except BaseException:
        conn.execute("ROLLBACK")
        raise
