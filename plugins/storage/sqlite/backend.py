"""The SQLite backend: one file, WAL, one transaction per applied state.

Threads: writes go through one connection guarded by a lock (the manager calls
them from its single storage thread); every query gets a connection of its
own, so readers never wait for a long snapshot (WAL keeps them consistent).
A ``kill -9`` at any point leaves the last committed transaction: SQLite
rolls the interrupted one back on the next open.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from navigator_plugins.storage.sqlite import schema
from navigator_plugins.storage.sqlite.selector_sql import selector_sql

from navigator.plugin import (
    Change,
    ChangeType,
    ClusterClaims,
    ClusterRecord,
    KindErrorRecord,
    Resource,
    ResourceKey,
    ResourceQuery,
    StorageError,
    StoredResource,
)

#: Rows per executemany inside a snapshot: bounds memory, not transactions.
BATCH = 2000

_COLUMNS = "cluster, kind, namespace, name, uid, resource_version, labels, data"
_INSERT = f"INSERT INTO resources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_UPDATE = "UPDATE resources SET uid = ?, resource_version = ?, labels = ?, data = ? WHERE id = ?"
_SAVE_CLUSTER = """
INSERT INTO clusters (cluster, edge_id, metadata, last_sync, last_seen, sync_interval, errors,
                      manager_id, last_sequence)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (cluster) DO UPDATE SET
    edge_id = excluded.edge_id, metadata = excluded.metadata, last_sync = excluded.last_sync,
    last_seen = excluded.last_seen, sync_interval = excluded.sync_interval, errors = excluded.errors,
    manager_id = excluded.manager_id, last_sequence = excluded.last_sequence
"""
_CLUSTER_COLUMNS = (
    "cluster, edge_id, metadata, last_sync, last_seen, sync_interval, errors, manager_id, last_sequence"
)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _datetime(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _encode(value: Any, what: str, resource: Resource) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise StorageError(
            f"cannot store {resource.kind}/{resource.namespace}/{resource.name}: {what} is not JSON: {exc}"
        ) from None


def _record(row: Sequence[Any]) -> ClusterRecord:
    errors = [
        KindErrorRecord(
            kind=e["kind"],
            message=e["message"],
            http_status=e.get("http_status", 0),
            cached=e.get("cached", False),
            since=_datetime(e.get("since")),
        )
        for e in orjson.loads(row[6])
    ]
    return ClusterRecord(
        cluster=row[0],
        edge_id=row[1],
        metadata=orjson.loads(row[2]),
        last_sync=_datetime(row[3]),
        last_seen=_datetime(row[4]),
        sync_interval=row[5],
        errors=errors,
        manager_id=row[7],
        last_sequence=row[8],
    )


class SQLiteBackend:
    """A ``StorageBackend`` on one SQLite file."""

    def __init__(self, path: Path, busy_timeout: float = 30.0, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer = self._connect()
        mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"cannot switch {self.path} to WAL mode (got {mode!r})")

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from None
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot start a transaction on {self.path}: {exc}") from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path}: {exc}") from None

    # -- StorageBackend --------------------------------------------------------------

    def migrate(self) -> None:
        with self._write_lock:
            try:
                schema.migrate(self._writer)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot migrate {self.path}: {exc}") from None

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        with self._write_lock:
            self._writer.close()

    def apply_snapshot(
        self, cluster: ClusterRecord, kinds: Collection[str], resources: Sequence[Resource]
    ) -> list[Change]:
        kinds = set(kinds)
        name = cluster.cluster
        changes: list[Change] = []
        with self._transaction() as conn:
            existing: dict[tuple[str, str, str], tuple[int, str, str]] = {}
            for kind in kinds:
                rows = conn.execute(
                    "SELECT id, namespace, name, uid, resource_version FROM resources "
                    "WHERE cluster = ? AND kind = ?",
                    (name, kind),
                )
                for id_, ns, nm, uid, rv in rows:
                    existing[(kind, ns, nm)] = (id_, uid, rv)
            seen: set[tuple[str, str, str]] = set()
            inserts: list[tuple[Any, ...]] = []
            updates: list[tuple[Any, ...]] = []
            for r in resources:
                key = (r.kind, r.namespace, r.name)
                if r.kind not in kinds:
                    raise StorageError(
                        f"{r.kind}/{r.namespace}/{r.name} is not of the snapshot's kinds ({', '.join(sorted(kinds))})"
                    )
                if key in seen:
                    raise StorageError(f"{r.kind}/{r.namespace}/{r.name} appears twice in one snapshot")
                seen.add(key)
                old = existing.pop(key, None)
                if old is None:
                    inserts.append(self._row(name, r))
                    changes.append(_change(name, r, ChangeType.ADDED, None))
                elif old[1] != r.uid:
                    updates.append(self._update(r, old[0]))
                    changes.append(_change(name, r, ChangeType.DELETED, old[2], uid=old[1]))
                    changes.append(_change(name, r, ChangeType.ADDED, None))
                elif old[2] != r.resource_version:
                    updates.append(self._update(r, old[0]))
                    changes.append(_change(name, r, ChangeType.MODIFIED, old[2]))
                if len(inserts) >= BATCH:
                    conn.executemany(_INSERT, inserts)
                    inserts.clear()
                if len(updates) >= BATCH:
                    conn.executemany(_UPDATE, updates)
                    updates.clear()
            conn.executemany(_INSERT, inserts)
            conn.executemany(_UPDATE, updates)
            conn.executemany("DELETE FROM resources WHERE id = ?", ((v[0],) for v in existing.values()))
            for (kind, ns, nm), (_, uid, rv) in existing.items():
                changes.append(Change(name, kind, ns, nm, uid, ChangeType.DELETED, rv, None))
            self._save_cluster(conn, cluster)
        return changes

    def apply_delta(
        self, cluster: ClusterRecord, upserts: Sequence[Resource], deletions: Sequence[ResourceKey]
    ) -> list[Change]:
        name = cluster.cluster
        changes: list[Change] = []
        lookup = "SELECT id, uid, resource_version FROM resources WHERE cluster = ? AND kind = ? AND namespace = ? AND name = ?"
        with self._transaction() as conn:
            for r in upserts:
                old = conn.execute(lookup, (name, r.kind, r.namespace, r.name)).fetchone()
                if old is None:
                    conn.execute(_INSERT, self._row(name, r))
                    changes.append(_change(name, r, ChangeType.ADDED, None))
                elif old[1] != r.uid:
                    conn.execute(_UPDATE, self._update(r, old[0]))
                    changes.append(_change(name, r, ChangeType.DELETED, old[2], uid=old[1]))
                    changes.append(_change(name, r, ChangeType.ADDED, None))
                elif old[2] != r.resource_version:
                    conn.execute(_UPDATE, self._update(r, old[0]))
                    changes.append(_change(name, r, ChangeType.MODIFIED, old[2]))
            for key in deletions:
                old = conn.execute(lookup, (name, key.kind, key.namespace, key.name)).fetchone()
                if old is None or (key.uid and key.uid != old[1]):
                    continue
                conn.execute("DELETE FROM resources WHERE id = ?", (old[0],))
                changes.append(Change(name, key.kind, key.namespace, key.name, old[1], ChangeType.DELETED, old[2], None))
            self._save_cluster(conn, cluster)
        return changes

    def save_cluster(self, cluster: ClusterRecord) -> None:
        with self._transaction() as conn:
            self._save_cluster(conn, cluster)

    def get_cluster(self, cluster: str) -> ClusterRecord | None:
        rows = self._read(f"SELECT {_CLUSTER_COLUMNS} FROM clusters WHERE cluster = ?", (cluster,))
        return _record(rows[0]) if rows else None

    def list_clusters(self) -> list[ClusterRecord]:
        return [_record(r) for r in self._read(f"SELECT {_CLUSTER_COLUMNS} FROM clusters ORDER BY cluster")]

    def counts(self, cluster: str) -> dict[str, int]:
        rows = self._read("SELECT kind, count(*) FROM resources WHERE cluster = ? GROUP BY kind", (cluster,))
        return {kind: n for kind, n in rows}

    def query(self, query: ResourceQuery) -> Iterator[StoredResource]:
        sql, params = _query_sql(query)
        return self._iterate(sql, params)

    def create_claims(self, manager_id: str, grace_period: float) -> ClusterClaims | None:
        return None

    # -- helpers ---------------------------------------------------------------------

    def _iterate(self, sql: str, params: list[Any]) -> Iterator[StoredResource]:
        # A connection per query: a generator may be resumed on any thread.
        conn = self._connect()
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(500):
                for cluster, kind, ns, name, uid, rv, labels, data in rows:
                    yield StoredResource(
                        cluster, Resource(kind, ns, name, uid, rv, orjson.loads(labels), orjson.loads(data))
                    )
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path}: {exc}") from None
        finally:
            conn.close()

    @staticmethod
    def _row(cluster: str, r: Resource) -> tuple[Any, ...]:
        return (
            cluster,
            r.kind,
            r.namespace,
            r.name,
            r.uid,
            r.resource_version,
            _encode(r.labels, "labels", r).decode(),
            _encode(r.data, "data", r),
        )

    @staticmethod
    def _update(r: Resource, id_: int) -> tuple[Any, ...]:
        return (r.uid, r.resource_version, _encode(r.labels, "labels", r).decode(), _encode(r.data, "data", r), id_)

    @staticmethod
    def _save_cluster(conn: sqlite3.Connection, c: ClusterRecord) -> None:
        errors = [
            {"kind": e.kind, "message": e.message, "http_status": e.http_status, "cached": e.cached,
             "since": _epoch(e.since)}
            for e in c.errors
        ]  # fmt: skip
        conn.execute(
            _SAVE_CLUSTER,
            (
                c.cluster,
                c.edge_id,
                orjson.dumps(c.metadata).decode(),
                _epoch(c.last_sync),
                _epoch(c.last_seen),
                c.sync_interval,
                orjson.dumps(errors).decode(),
                c.manager_id,
                c.last_sequence,
            ),
        )


def _change(cluster: str, r: Resource, kind: ChangeType, old_rv: str | None, uid: str | None = None) -> Change:
    new_rv = None if kind is ChangeType.DELETED else r.resource_version
    return Change(cluster, r.kind, r.namespace, r.name, uid or r.uid, kind, old_rv, new_rv)


def _query_sql(query: ResourceQuery) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column in ("cluster", "kind", "namespace", "name"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.selector is not None:
        clauses, values = selector_sql(query.selector)
        where += clauses
        params += values
    sql = f"SELECT {_COLUMNS} FROM resources"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY cluster, kind, namespace, name"
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit)
    return sql, params
