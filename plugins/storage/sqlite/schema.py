"""The SQLite schema as numbered migrations; the version lives in the database itself."""

from __future__ import annotations

import sqlite3

from navigator.plugin import StorageError

#: Each entry upgrades from version ``index`` to ``index + 1``; append, never edit.
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
)

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS navigator_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM navigator_schema").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION`` in one transaction; returns the version found before."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"the database schema is version {found}, newer than this navigator understands "
                f"({SCHEMA_VERSION}): upgrade navigator"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO navigator_schema (version) VALUES (?)", (version + 1,))
        conn.execute("COMMIT")
        return found
    except BaseException:
        conn.execute("ROLLBACK")
        raise
