"""The schema, as numbered migrations applied once each, under a lock so managers starting together don't race.

A migration is never edited after release: a change to the schema is a new
migration with the next number. ``{s}`` in the SQL is the configured schema.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg
from loguru import logger
from psycopg import sql

from navigator.plugin import StorageError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# Text keys use the "C" collation: byte order, the same order Python sorts strings in.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "clusters, resources, cluster claims",
        (
            """CREATE TABLE {s}.clusters (
                cluster text COLLATE "C" PRIMARY KEY,
                edge_id text NOT NULL DEFAULT '',
                metadata jsonb NOT NULL DEFAULT '{{}}',
                last_sync timestamptz,
                last_seen timestamptz,
                sync_interval double precision NOT NULL DEFAULT 30,
                errors jsonb NOT NULL DEFAULT '[]',
                manager_id text NOT NULL DEFAULT '',
                last_sequence bigint NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE {s}.resources (
                cluster text COLLATE "C" NOT NULL,
                kind text COLLATE "C" NOT NULL,
                namespace text COLLATE "C" NOT NULL,
                name text COLLATE "C" NOT NULL,
                uid text NOT NULL,
                resource_version text NOT NULL,
                labels jsonb NOT NULL,
                data jsonb NOT NULL,
                -- hash of the labels and data text as received: refreshes a payload whose
                -- resource_version did not move (a collector upgrade) without reparsing JSON.
                digest bigint NOT NULL,
                PRIMARY KEY (cluster, kind, namespace, name)
            )""",
            # The primary key serves cluster (+ kind, namespace, name) filters in result order, and
            # kind-only queries by scanning in that order; this one serves kind (+ namespace) across
            # clusters. Every index costs snapshot time, so there are only these and the GIN one.
            "CREATE INDEX resources_kind_namespace_idx ON {s}.resources (kind, namespace, cluster, name)",
            # Default jsonb_ops: serves both @> (=, in) and ? (exists) label requirements.
            "CREATE INDEX resources_labels_idx ON {s}.resources USING gin (labels)",
            """CREATE TABLE {s}.cluster_claims (
                cluster text COLLATE "C" PRIMARY KEY,
                edge_id text NOT NULL,
                manager_id text NOT NULL,
                connected boolean NOT NULL,
                since timestamptz NOT NULL,
                released_at timestamptz,
                expires_at timestamptz NOT NULL
            )""",
            "CREATE INDEX cluster_claims_manager_idx ON {s}.cluster_claims (manager_id) WHERE connected",
        ),
    ),
    Migration(
        2,
        "reconciler digests, change history, cluster history",
        (
            # The core's reconciler now decides what changed, comparing its own digest (hex text).
            # Existing rows get an empty one: the first state after the upgrade finds them
            # "maybe changed", compares the decoded objects, and stores the digest (reporting nothing).
            # ``data`` becomes json: stored as received (no jsonb tree built and flattened again
            # on every write and read), still readable with ->, ->> in ad-hoc SQL.
            """ALTER TABLE {s}.resources
                ALTER COLUMN digest TYPE text USING '',
                ALTER COLUMN digest SET DEFAULT '',
                ALTER COLUMN data TYPE json USING data::json""",
            # One row per applied change, in apply order (id). ``labels``/``data`` are the object
            # after the change; a DELETED row keeps the last known labels (selectors) and no data.
            # The primary key is (applied_at, id), the order history is read in: it serves time
            # ranges and "newest first" without a namespace, the oldest rows for max_rows, and
            # finding a row again (the past reads its key from history_key_idx), one index for all.
            """CREATE TABLE {s}.history (
                id bigint GENERATED ALWAYS AS IDENTITY,
                cluster text COLLATE "C" NOT NULL,
                kind text COLLATE "C" NOT NULL,
                namespace text COLLATE "C" NOT NULL,
                name text COLLATE "C" NOT NULL,
                uid text NOT NULL,
                type text NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
                old_resource_version text,
                new_resource_version text,
                applied_at timestamptz NOT NULL,
                observed_at timestamptz,
                changed_fields text[] NOT NULL DEFAULT '{{}}',
                labels jsonb NOT NULL DEFAULT '{{}}',
                data json,
                PRIMARY KEY (applied_at, id)
            )""",
            # Per object, in the order queries return objects: the objects as they were at a time
            # (per key the latest row at or before it, read in result order, so a fleet-wide past or
            # a diff needs no sort), one object's history, pruning per key.
            """CREATE INDEX history_key_idx ON {s}.history
                (cluster, kind, namespace, name, applied_at DESC, id DESC)""",
            # Changes in one namespace (of one cluster: in time order, no sort) over a time range;
            # a namespace's past without a cluster. Ascending: new rows append at the right of each
            # (namespace, cluster), pages stay full.
            "CREATE INDEX history_namespace_idx ON {s}.history (namespace, cluster, applied_at, id)",
            # Copies of the cluster record (applied_at: its last_sync) for get_cluster/list_clusters(at=...).
            """CREATE TABLE {s}.cluster_history (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                applied_at timestamptz NOT NULL,
                cluster text COLLATE "C" NOT NULL,
                edge_id text NOT NULL DEFAULT '',
                metadata jsonb NOT NULL DEFAULT '{{}}',
                last_sync timestamptz,
                last_seen timestamptz,
                sync_interval double precision NOT NULL DEFAULT 30,
                errors jsonb NOT NULL DEFAULT '[]',
                manager_id text NOT NULL DEFAULT '',
                last_sequence bigint NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX cluster_history_cluster_idx ON {s}.cluster_history (cluster, applied_at DESC, id DESC)",
        ),
    ),
    Migration(
        3,
        "labels GIN index with jsonb_path_ops",
        (
            # jsonb_path_ops keeps one entry per key-value pair, where jsonb_ops keeps the key and the
            # value apart: a `labels @> '{"app": "web"}'` lookup reads 3 index pages instead of the
            # posting list of the key `app` (every pod has one: 40-80 pages at 150,000 pods; 14-30 ms
            # when they are not cached, 0.05-2 ms now), and the index builds in 0.5 s instead of 1.2 s.
            # It does not serve `labels ? 'k'`: a selector of only exists and negative requirements scans.
            "DROP INDEX IF EXISTS {s}.resources_labels_idx",
            "CREATE INDEX resources_labels_idx ON {s}.resources USING gin (labels jsonb_path_ops)",
        ),
    ),
    Migration(
        4,
        "cluster freshness: fresh_as_of and lag",
        (
            # Saved with every apply: the time (edge clock) as of which the copy was exact (the last
            # applied state's timestamp), and the seconds from the edge observing the last applied
            # change to its apply. NULL until the first state after the upgrade; no table rewrite.
            """ALTER TABLE {s}.clusters
                ADD COLUMN IF NOT EXISTS fresh_as_of timestamptz,
                ADD COLUMN IF NOT EXISTS lag double precision""",
            """ALTER TABLE {s}.cluster_history
                ADD COLUMN IF NOT EXISTS fresh_as_of timestamptz,
                ADD COLUMN IF NOT EXISTS lag double precision""",
        ),
    ),
    Migration(
        5,
        "fencing: claim epochs",
        (
            # Every claim takes the next epoch of its cluster; a write carries its claim's and is
            # refused once the claim row holds a higher one (a newer claim, on any manager).
            "ALTER TABLE {s}.cluster_claims ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0",
            # The epoch the record was last written under: a write under an older one is refused too.
            "ALTER TABLE {s}.clusters ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0",
            "ALTER TABLE {s}.cluster_history ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


def lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key per schema (``hash()`` changes between processes)."""
    digest = hashlib.blake2b(f"navigator-plugin-postgres:migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _statement(text: str, schema: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(schema))


def applied_versions(conn: psycopg.Connection[Any], schema: str) -> set[int]:
    """Versions recorded in ``schema``; empty when it was never migrated."""
    if not _has_migrations_table(conn, schema):
        return set()
    rows = conn.execute(_statement("SELECT version FROM {s}.schema_migrations", schema)).fetchall()
    return {int(row[0]) for row in rows}


def migrate(conn: psycopg.Connection[Any], schema: str, target: int = LATEST) -> list[int]:
    """Bring ``schema`` to ``target`` (``LATEST``) inside the caller's transaction; returns the versions applied.

    ``target`` exists for the tests, which build a schema of an older version and upgrade it.

    The transaction-scoped advisory lock makes a second manager wait, then find
    nothing left to do. Objects are only created when missing, so a role that
    may write but not create (the schema migrated by an administrator) starts fine.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(schema)])
    if conn.execute("SELECT to_regnamespace(%s)", [schema]).fetchone() in (None, (None,)):
        conn.execute(_statement("CREATE SCHEMA {s}", schema))
    if not _has_migrations_table(conn, schema):
        conn.execute(
            _statement(
                "CREATE TABLE {s}.schema_migrations (version integer PRIMARY KEY, description text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                schema,
            )
        )
    applied = applied_versions(conn, schema)
    newest = max(applied, default=0)
    if newest > LATEST:
        raise StorageError(
            f"postgres schema {schema!r} is at version {newest}, newer than this navigator-plugin-postgres "
            f"understands ({LATEST}): upgrade the plugin on this manager"
        )
    done = []
    for migration in MIGRATIONS:
        if migration.version in applied or migration.version > target:
            continue
        for text in migration.statements:
            conn.execute(_statement(text, schema))
        conn.execute(
            _statement("INSERT INTO {s}.schema_migrations (version, description) VALUES (%s, %s)", schema),
            [migration.version, migration.description],
        )
        logger.info("postgres: applied migration {} ({}) to schema {}", migration.version,
                    migration.description, schema)  # fmt: skip
        done.append(migration.version)
    return done


def _has_migrations_table(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", [f'"{schema}".schema_migrations']).fetchone()
    return row is not None and row[0] is not None
