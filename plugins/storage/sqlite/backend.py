"""The SQLite backend: one file, WAL, one transaction per apply (or per batch of them: ``batch``).

Threads: writes go through one connection guarded by a lock (the manager calls
them from its single storage thread); every query gets a connection of its
own, so readers never wait for a long apply and a query iterator sees one
snapshot however slowly it is consumed (WAL keeps readers consistent).
A ``kill -9`` at any point leaves the last committed transaction: SQLite
rolls the interrupted one back on the next open. Copying the WAL back into
the database (a checkpoint) happens on a thread of its own, so a large apply
does not pay for it on the storage thread.

Nothing is compared here: the core's reconciler decides what changed and
hands ``apply`` the objects to write, the keys to delete and the changes to
record. Only fencing checks, inside each write transaction (``BEGIN IMMEDIATE``,
so no other writer comes in between): a record whose epoch is below the stored one
is refused, and so is an upsert that would move an object (same uid) back to an
older integer resourceVersion (``StorageFenced``, nothing written).
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
from loguru import logger
from navigator_plugins.storage.sqlite import bulk, label_index, schema
from navigator_plugins.storage.sqlite.selector_sql import selector_sql

from navigator.plugin import (
    Change,
    ChangeType,
    ClusterClaims,
    ClusterRecord,
    HistoryQuery,
    KindErrorRecord,
    ObjectVersion,
    Resource,
    ResourceKey,
    ResourceQuery,
    StorageError,
    StoredObject,
    StoredResource,
    plain_additions,
)

StorageFenced = StorageError.Fenced
StorageRegressed = StorageError.Regressed

#: Keys per ``read`` statement, and rows per fetch when a query streams its results.
BATCH = 5000
PAGE = 500
#: WAL size after a commit that wakes the checkpointer (SQLite's automatic checkpoint is at ~4 MiB too).
CHECKPOINT_BYTES = 4 << 20

_T = TypeVar("_T")
_Statement = tuple[str, Sequence[Any]]

# A first ingest: SQLite numbers the rows. Else id last: a new id for every row, which a row that
# exists ignores (it keeps its own: label_index reads which is which).
#: Whether the row ``new`` would move the stored row (same uid) back to an older resourceVersion:
#: compared as integers when both are (at most 18 digits, so they fit), else never.
_OLDER = """{stored}.uid = {new}.uid
    AND {stored}.resource_version != '' AND {stored}.resource_version NOT GLOB '*[^0-9]*'
    AND {new}.resource_version != '' AND {new}.resource_version NOT GLOB '*[^0-9]*'
    AND length({stored}.resource_version) <= 18 AND length({new}.resource_version) <= 18
    AND CAST({stored}.resource_version AS INTEGER) > CAST({new}.resource_version AS INTEGER)"""
#: The first upsert that ``_OLDER`` refused, to name it.
_REGRESSED = f"""
SELECT stored.kind, stored.namespace, stored.name, stored.resource_version, new.resource_version
FROM (
    SELECT json_extract(value, '$[0]') AS kind, json_extract(value, '$[1]') AS namespace,
           json_extract(value, '$[2]') AS name, json_extract(value, '$[3]') AS uid,
           json_extract(value, '$[4]') AS resource_version
    FROM json_each(?)
) AS new CROSS JOIN resources AS stored
WHERE stored.cluster = ? AND stored.kind = new.kind AND stored.namespace = new.namespace
  AND stored.name = new.name AND {_OLDER.format(stored="stored", new="new")}
LIMIT 1
"""
# Both through bulk.insert: VALUES lists of many rows.
_INSERT = "INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, digest, labels, data)"
_UPSERT = "INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, digest, labels, data, id)"
_UPSERT_TAIL = f"""
ON CONFLICT (cluster, kind, namespace, name) DO UPDATE SET
    uid = excluded.uid, resource_version = excluded.resource_version, digest = excluded.digest,
    labels = excluded.labels, data = excluded.data
WHERE NOT ({_OLDER.format(stored="resources", new="excluded")})
"""
_DELETE = "DELETE FROM resources WHERE cluster = ? AND kind = ? AND namespace = ? AND name = ?"
# A DELETED change carries no object: its labels are the stored ones (still there, since
# history is written before deletions and upserts), else the last recorded ones.
_HISTORY = """
INSERT INTO history (cluster, kind, namespace, name, uid, type, old_resource_version, new_resource_version,
                     applied_at, observed_at, changed_fields, labels, data)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, coalesce(
    ?12,
    (SELECT labels FROM resources WHERE cluster = ?1 AND kind = ?2 AND namespace = ?3 AND name = ?4),
    (SELECT labels FROM history WHERE cluster = ?1 AND kind = ?2 AND namespace = ?3 AND name = ?4
     ORDER BY applied_at DESC, seq DESC LIMIT 1),
    '{}'), ?13)
"""
#: History of a first ingest (``plain_additions``, rows in key order): each new row, in id (= key) order, as ADDED.
_HISTORY_OF_FIRST_INGEST = """
INSERT INTO history (cluster, kind, namespace, name, uid, type, old_resource_version, new_resource_version,
                     applied_at, observed_at, changed_fields, labels, data)
SELECT cluster, kind, namespace, name, uid, 'ADDED', NULL, resource_version, ?1, ?2, '[]', labels, data
FROM resources WHERE cluster = ?3 AND id >= ?4 ORDER BY id
"""
#: The same for a first state written as it arrived (``_FirstState``): its rows are numbered in arrival
#: order, its history goes in key order, read through the key index.
_HISTORY_OF_FIRST_STATE = """
INSERT INTO history (cluster, kind, namespace, name, uid, type, old_resource_version, new_resource_version,
                     applied_at, observed_at, changed_fields, labels, data)
SELECT cluster, kind, namespace, name, uid, 'ADDED', NULL, resource_version, ?1, ?2, '[]', labels, data
FROM resources INDEXED BY resources_key WHERE cluster = ?3 ORDER BY cluster, kind, namespace, name
"""
_CLUSTER_COLUMNS = (
    "cluster, edge_id, metadata, last_sync, last_seen, sync_interval, errors, manager_id, last_sequence, "
    "fresh_as_of, lag, epoch"
)
_SAVE_CLUSTER = f"""
INSERT INTO clusters ({_CLUSTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (cluster) DO UPDATE SET
    edge_id = excluded.edge_id, metadata = excluded.metadata, last_sync = excluded.last_sync,
    last_seen = excluded.last_seen, sync_interval = excluded.sync_interval, errors = excluded.errors,
    manager_id = excluded.manager_id, last_sequence = excluded.last_sequence,
    fresh_as_of = excluded.fresh_as_of, lag = excluded.lag, epoch = excluded.epoch
"""
_RECORD_CLUSTER = (
    f"INSERT INTO cluster_history (applied_at, {_CLUSTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_STORED_EPOCH = "SELECT epoch FROM clusters WHERE cluster = ?"
_READ = """
SELECT r.kind, r.namespace, r.name, r.uid, r.resource_version, r.labels, r.data
FROM json_each(?) AS k CROSS JOIN resources AS r
WHERE r.cluster = ? AND r.kind = json_extract(k.value, '$[0]')
  AND r.namespace = json_extract(k.value, '$[1]') AND r.name = json_extract(k.value, '$[2]')
"""
#: The rows of candidate ids (label_index.candidates), checked against every filter and requirement.
_BY_ID = """
SELECT r.cluster, r.kind, r.namespace, r.name, r.uid, r.resource_version, r.labels, r.data
FROM json_each(?) AS k CROSS JOIN resources AS r ON r.id = k.value
"""
_HISTORY_COLUMNS = (
    "cluster, kind, namespace, name, uid, type, old_resource_version, new_resource_version, "
    "applied_at, observed_at, changed_fields, labels, data"
)
#: Per key the latest change at or before a time (row_number 1), unless it is a DELETED.
_AT = """
SELECT h.cluster, h.kind, h.namespace, h.name, h.uid, h.new_resource_version, h.labels, h.data
FROM history AS h JOIN (
    SELECT seq, row_number() OVER (
        PARTITION BY cluster, kind, namespace, name ORDER BY applied_at DESC, seq DESC
    ) AS latest
    FROM history INDEXED BY {index} WHERE {where}
) AS w ON h.seq = w.seq
WHERE w.latest = 1 AND h.type != 'DELETED'{selector}
ORDER BY h.cluster, h.kind, h.namespace, h.name
"""
#: Rows before the cutoff that are DELETED, or that a later row of the same key before the cutoff supersedes.
_PRUNE = """
DELETE FROM history WHERE applied_at < ?1 AND (type = 'DELETED' OR EXISTS (
    SELECT 1 FROM history AS n
    WHERE n.cluster = history.cluster AND n.kind = history.kind AND n.namespace = history.namespace
      AND n.name = history.name AND n.applied_at < ?1
      AND (n.applied_at > history.applied_at OR (n.applied_at = history.applied_at AND n.seq > history.seq))
))
"""
_PRUNE_CLUSTERS = """
DELETE FROM cluster_history WHERE applied_at < ?1 AND EXISTS (
    SELECT 1 FROM cluster_history AS n
    WHERE n.cluster = cluster_history.cluster AND n.applied_at < ?1
      AND (n.applied_at > cluster_history.applied_at
           OR (n.applied_at = cluster_history.applied_at AND n.seq > cluster_history.seq))
)
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _datetime(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _micros(value: datetime) -> int:
    """History times as integer microseconds: exact, so ``at``/``since``/``until`` compare exactly (naive = UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(value: int | None) -> datetime | None:
    return _EPOCH + timedelta(microseconds=value) if value is not None else None


def _encode(resource: Resource) -> tuple[str, bytes]:
    """Labels as JSON text (the selector SQL reads it), data as orjson bytes."""
    try:
        return orjson.dumps(resource.labels).decode(), resource.json
    except TypeError as exc:
        raise StorageError(
            f"cannot store {resource.kind}/{resource.namespace}/{resource.name}: labels or data are not JSON: {exc}"
        ) from None


def _resource(
    kind: str, ns: str, name: str, uid: str, rv: str | None, labels: str, data: bytes | None
) -> Resource:
    return Resource.from_json(kind, ns, name, uid, rv or "", orjson.loads(labels), data or b"{}")


#: A row's kind, namespace and name (in C: the sort of a 150,000-row ingest calls it for every row).
_row_key = operator.itemgetter(1, 2, 3)


def _batches(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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
        fresh_as_of=_datetime(row[9]),
        lag=row[10],
        epoch=row[11],
    )


def _cluster_row(c: ClusterRecord) -> tuple[Any, ...]:
    errors = [
        {"kind": e.kind, "message": e.message, "http_status": e.http_status, "cached": e.cached,
         "since": _epoch(e.since)}
        for e in c.errors
    ]  # fmt: skip
    return (
        c.cluster,
        c.edge_id,
        orjson.dumps(c.metadata).decode(),
        _epoch(c.last_sync),
        _epoch(c.last_seen),
        c.sync_interval,
        orjson.dumps(errors).decode(),
        c.manager_id,
        c.last_sequence,
        _epoch(c.fresh_as_of),
        c.lag,
        c.epoch,
    )


def _history_rows(
    history: Iterable[Change], encoded: dict[tuple[str, str, str], tuple[Resource, str, bytes]], now: datetime
) -> Iterator[tuple[Any, ...]]:
    """History rows in apply order; objects already encoded for ``resources`` are not encoded again."""
    micros: dict[datetime | None, int | None] = {None: None}  # a state's changes share their times
    for c in history:
        labels: str | None = None
        data: bytes | None = None
        if c.type is not ChangeType.DELETED:
            same = encoded.get((c.kind, c.namespace, c.name))
            if same is not None and (c.resource is None or c.resource is same[0]):
                labels, data = same[1], same[2]
            elif c.resource is not None:
                labels, data = _encode(c.resource)
        elif c.resource is not None:
            labels = _encode(c.resource)[0]
        applied = c.applied_at or now
        if applied not in micros:
            micros[applied] = _micros(applied)
        observed = c.observed_at
        if observed is not None and observed not in micros:
            micros[observed] = _micros(observed)
        yield (
            c.cluster, c.kind, c.namespace, c.name, c.uid, c.type.value, c.old_resource_version,
            c.new_resource_version, micros[applied], micros[observed],
            orjson.dumps(c.changed_fields).decode() if c.changed_fields else "[]", labels, data,
        )  # fmt: skip


def _change(row: Sequence[Any]) -> Change:
    cluster, kind, ns, name, uid, type_, old_rv, new_rv, applied, observed, fields, labels, data = row
    change_type = ChangeType(type_)
    resource = None
    if change_type is not ChangeType.DELETED:
        resource = _resource(kind, ns, name, uid, new_rv, labels, data)
    return Change(
        cluster, kind, ns, name, uid, change_type, old_rv, new_rv,
        applied_at=_from_micros(applied), observed_at=_from_micros(observed), resource=resource,
        changed_fields=tuple(orjson.loads(fields)),
    )  # fmt: skip


def _encode_rows(
    name: str,
    upserts: Iterable[StoredObject],
    rows: list[list[Any]],
    groups: dict[str, dict[str, list[Any]]],
    encoded: dict[tuple[str, str, str], tuple[Resource, str, bytes]] | None,
) -> None:
    """Each object's row, encoded once: the same bytes go to ``resources`` and to its history row
    (``encoded``, when history is kept). The last slot holds the row's label group (a first ingest
    takes it off), then its id: rows are grouped by kind and labels text here, where each is at
    hand, so that a first ingest indexes per label set, not per row."""
    kind, same_kind = "", groups.setdefault("", {})
    dumps = orjson.dumps
    for stored in upserts:
        r = stored.resource
        key = (r.kind, r.namespace, r.name)
        try:  # _encode, inline: once per stored object
            labels, data = dumps(r.labels).decode(), r.json
        except TypeError:
            labels, data = _encode(r)  # says which object, as a StorageError
        if r.kind != kind:  # states come kind by kind: one lookup per run
            kind, same_kind = r.kind, groups.setdefault(r.kind, {})
        group = same_kind.get(labels)
        if group is None:
            group = same_kind[labels] = [r.labels]
        rows.append([name, *key, r.uid, r.resource_version, stored.digest, labels, data, group])
        if encoded is not None:
            encoded[key] = (r, labels, data)


def _additions(cluster: str, upserts: Sequence[StoredObject], applied: datetime, observed: datetime | None) -> list[Change]:
    """A first state's history as changes (one ADDED per object, in key order)."""
    objects = sorted((u.resource for u in upserts), key=lambda r: (r.kind, r.namespace, r.name))
    return [
        Change(cluster, r.kind, r.namespace, r.name, r.uid, ChangeType.ADDED, None, r.resource_version,
               applied_at=applied, observed_at=observed, resource=r)
        for r in objects
    ]  # fmt: skip


class _GaveWay(Exception):
    """A first state's early rows were rolled back: it is written whole instead."""


class _FirstState:
    """A cluster's first state on SQLite (``SQLiteBackend.begin_first_state``).

    SQLite has one writer. While nothing else writes, the state takes the writer's transaction
    at its first chunk and inserts each chunk's rows as it arrives (numbered in arrival order),
    so that ``finish`` is left with the label index, the history (copied in key order), the
    cluster record and the commit. Any other write takes the writer back first
    (``SQLiteBackend._take_back``): the early rows are rolled back and the state is written
    whole by ``finish``, as any state, from the objects it kept. Nobody sees early rows: they
    are uncommitted, and readers read committed snapshots (WAL).

    ``write`` runs on the manager's storage thread, ``finish`` on its finishing thread while the
    storage thread waits, ``abort`` anywhere: it only marks the state, and what it had written is
    rolled back by the next write of any kind.
    """

    def __init__(self, backend: SQLiteBackend, cluster: str) -> None:
        self.cluster = cluster
        self._backend = backend
        self._objects: list[StoredObject] = []
        #: How many rows went in early, their label groups (with their ids), the first row's id.
        self._numbered = 0
        self._groups: dict[str, dict[str, list[Any]]] = {}
        self.first_id = 0
        #: The writer's transaction holds this state's rows (the write lock is held for it).
        self.open = False
        self._lock = threading.Lock()
        self._over = False
        #: Aborted while open: the next write of any kind rolls its rows back.
        self.abandoned = False
        #: The chunks' inserts under way (``SQLiteBackend._insert_early``), on ``inserter``.
        self.inserts: list[Future[Any]] = []
        self._inserter: ThreadPoolExecutor | None = None

    def write(self, objects: Sequence[StoredObject]) -> None:
        with self._lock:
            if self._over:
                raise StorageError(f"the first state of {self.cluster} is no longer being written")
        first = not self._objects
        self._objects += objects
        if first:
            self.open = self._backend._lend_writer(self)
        if not self.open:
            return
        chunk: list[list[Any]] = []
        _encode_rows(self.cluster, objects, chunk, self._groups, None)
        chunk.sort(key=_row_key)  # each chunk in index order: SQLite's index pages stay near
        for row_id, row in enumerate(chunk, self.first_id + self._numbered):
            row.pop().append(row_id)
        self._numbered += len(chunk)
        self._backend._insert_early(self, chunk)

    def let_go(self) -> None:
        """The state no longer holds the writer (committed, or taken back)."""
        self.open = False
        self._groups = {}
        self._stop()

    def inserter(self) -> ThreadPoolExecutor:
        """The thread the early rows are inserted from (``SQLiteBackend._insert_early``)."""
        if self._inserter is None:
            self._inserter = ThreadPoolExecutor(1, thread_name_prefix="navigator-sqlite-first-state")
        return self._inserter

    def _stop(self) -> None:
        if self._inserter is not None:
            self._inserter.shutdown(wait=False)
            self._inserter = None

    def finish(
        self,
        cluster: ClusterRecord,
        count: int,
        applied_at: datetime,
        observed_at: datetime | None,
        history: bool,
        record_cluster: bool = False,
    ) -> None:
        with self._lock:
            if self._over:
                raise StorageError(f"the first state of {self.cluster} was abandoned")
            self._over = True
        backend, objects = self._backend, self._objects
        if len(objects) != count:
            backend._take_back()
            raise StorageError(f"the first state of {self.cluster}: {len(objects)} objects written, {count} to store")
        times = (applied_at, observed_at) if history else None
        if self.open:
            try:
                backend._finish_early(self, cluster, self._groups, count, times, record_cluster)
                return
            except _GaveWay:
                pass  # written whole below
        rows: list[list[Any]] = []
        groups: dict[str, dict[str, list[Any]]] = {}
        _encode_rows(self.cluster, objects, rows, groups, None)
        backend._write(cluster, objects, rows, groups, (), None, {}, record_cluster, times)

    def abort(self) -> None:
        with self._lock:
            if self._over:
                return
            self._over = True
            self.abandoned = self.open


class _Checkpointer:
    """Runs passive WAL checkpoints on a thread of its own, started at the first request.

    The writer connection has automatic checkpoints off: they would run inside
    the commit of whichever apply crossed the threshold. A passive checkpoint
    blocks neither readers nor the writer; whatever it cannot copy yet, the next one does.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str) -> None:
        self._connect = connect
        self._name = name
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    conn = conn or self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (sqlite3.Error, StorageError) as exc:  # the next request tries again
                    logger.warning("sqlite: checkpoint failed: {}", exc)
        finally:
            if conn is not None:
                conn.close()


class SQLiteBackend:
    """A ``StorageBackend`` on one SQLite file."""

    #: Whether selector queries may go through the label index (the tests and benchmarks compare
    #: with the scan); the index itself is always kept up to date.
    label_index = True

    def __init__(self, path: Path, busy_timeout: float = 30.0, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer = self._connect()
        try:
            mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.Error as exc:
            self._writer.close()
            raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from None
        if str(mode).lower() != "wal":
            self._writer.close()
            raise StorageError(f"cannot switch {self.path} to WAL mode (got {mode!r})")
        # Checkpoints run on their own thread; after each one the WAL file is cut back to
        # 1 MiB, so its size says how much waits to be copied.
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._writer.execute(f"PRAGMA journal_size_limit={CHECKPOINT_BYTES // 4}")
        self._wal = Path(f"{self.path}-wal")
        self._logging_labels = False
        #: The thread inside ``batch``, whose writes are savepoints of its transaction.
        self._batch_thread: int | None = None
        #: A first state whose rows are going in early, holding the write lock (``_FirstState``).
        self._early: _FirstState | None = None
        self._checkpointer = _Checkpointer(self._connect, f"sqlite checkpoint {self.path}")

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
        if self._batch_thread == threading.get_ident():
            with self._savepoint() as conn:
                yield conn
            return
        self._take_back()
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
            self._after_commit()

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        """One write inside a batch: undone alone when it raises, the batch's transaction goes on."""
        conn = self._writer
        try:
            conn.execute("SAVEPOINT navigator_write")
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
        try:
            yield conn
            conn.execute("RELEASE navigator_write")
        except BaseException as exc:
            # A failed statement may have ended the transaction already (SQLITE_FULL, ...): then the
            # whole batch is lost, and the COMMIT at its end says so.
            if conn.in_transaction:
                conn.execute("ROLLBACK TO navigator_write")
                conn.execute("RELEASE navigator_write")
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
            raise

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit (``BatchingStorageBackend``): the writes of this thread in the block share one
        transaction, each in a savepoint; one COMMIT (one WAL append) for all of them."""
        self._take_back()
        with self._write_lock:
            conn = self._writer
            self._log_labels()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot start a transaction on {self.path}: {exc}") from None
            self._batch_thread = threading.get_ident()
            try:
                yield
                if not conn.in_transaction:
                    raise StorageError(f"SQLite ended the transaction on {self.path}: nothing of it was stored")
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
                raise
            finally:
                self._batch_thread = None
            self._after_commit()

    def _after_commit(self) -> None:
        with contextlib.suppress(OSError):
            if os.stat(self._wal).st_size >= CHECKPOINT_BYTES:
                self._checkpointer.request()

    def _log_labels(self) -> None:
        """Once per writer connection, with the write lock held: the triggers the label index reads."""
        if not self._logging_labels:
            try:
                label_index.log_changes(self._writer)
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite error on {self.path}: {exc}") from None
            self._logging_labels = True

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path}: {exc}") from None

    def _pages(
        self, sql: str, params: Sequence[Any], plan: Callable[[sqlite3.Connection], _Statement] | None = None
    ) -> Iterator[list[Any]]:
        """The rows of one statement, in pages fetched on a connection of its own.

        One statement is one read transaction, so the pages form one snapshot;
        the connection is the generator's own because it may be resumed on any thread.
        ``plan``, when given, reads what it needs first and returns the statement to run
        (instead of ``sql``): both in one read transaction, so still one snapshot.
        """
        conn = self._connect()
        try:
            if plan is not None:
                conn.execute("BEGIN")
                sql, params = plan(conn)
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(PAGE):
                yield rows
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path}: {exc}") from None
        finally:
            conn.close()

    # -- StorageBackend --------------------------------------------------------------

    def migrate(self) -> None:
        self._take_back()
        with self._write_lock:
            try:
                schema.migrate(self._writer)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot migrate {self.path}: {exc}") from None

    def close(self) -> None:
        self._checkpointer.stop()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._take_back()
        with self._write_lock:
            self._writer.close()

    def versions(self, cluster: str) -> Iterator[ObjectVersion]:
        sql = "SELECT kind, namespace, name, uid, resource_version, digest FROM resources WHERE cluster = ?"
        for page in self._pages(sql, (cluster,)):
            yield from itertools.starmap(ObjectVersion, page)

    def read(self, cluster: str, keys: Collection[ResourceKey]) -> list[Resource]:
        wanted = list(dict.fromkeys((k.kind, k.namespace, k.name) for k in keys))
        found: list[Resource] = []
        for batch in _batches(wanted, BATCH):
            rows = self._read(_READ, (orjson.dumps(batch).decode(), cluster))
            found += [_resource(*row) for row in rows]
        return found

    def apply(
        self,
        cluster: ClusterRecord,
        upserts: Sequence[StoredObject],
        deletions: Collection[ResourceKey],
        history: Sequence[Change] | None,
        record_cluster: bool = False,
    ) -> None:
        rows: list[list[Any]] = []
        groups: dict[str, dict[str, list[Any]]] = {}
        encoded: dict[tuple[str, str, str], tuple[Resource, str, bytes]] = {}
        _encode_rows(cluster.cluster, upserts, rows, groups, encoded if history is not None else None)
        self._write(cluster, upserts, rows, groups, deletions, history, encoded, record_cluster)

    def begin_first_state(self, cluster: str) -> _FirstState | None:
        """``FirstStateWriter``: the rows go into the writer's transaction as they arrive while nothing
        else writes, and the state is committed (or, taken back meanwhile, written whole) on the
        manager's finishing thread while its storage thread builds the changes (``_FirstState``)."""
        if self._read("SELECT 1 FROM resources WHERE cluster = ? LIMIT 1", (cluster,)):
            return None
        return _FirstState(self, cluster)

    def _lend_writer(self, state: _FirstState) -> bool:
        """Open the writer's transaction for ``state``'s early rows if no one else writes now."""
        if self._early is not None and self._early.abandoned:
            self._take_back()
        if self._batch_thread is not None or not self._write_lock.acquire(blocking=False):
            return False
        conn = self._writer
        try:
            self._log_labels()
            conn.execute("BEGIN IMMEDIATE")
            if label_index.fresh(conn, state.cluster):
                state.first_id = label_index.next_id(conn)
                self._early = state
                return True
            conn.execute("ROLLBACK")
        except (sqlite3.Error, StorageError):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        self._write_lock.release()
        return False

    def _insert_early(self, state: _FirstState, rows: list[list[Any]]) -> None:
        """Insert a chunk's rows on the state's own thread, thousands per statement (``bulk``): SQLite
        lets go of the GIL while it writes each, so the storage thread stages the next chunk meanwhile.
        Nothing else uses the writer connection until those inserts are done (``_settled``)."""
        if any(insert.done() and insert.exception() is not None for insert in state.inserts):
            self._take_back()  # a key twice, the disk: the state is written whole when complete
            return
        state.inserts.append(state.inserter().submit(bulk.insert, self._writer, _INSERT, rows))

    def _settled(self, state: _FirstState) -> bool:
        """Wait for the state's inserts; whether they all went in."""
        ok = True
        for insert in state.inserts:
            if insert.exception() is not None:
                ok = False
        state.inserts = []
        return ok

    def _take_back(self) -> None:
        """Another write needs the writer: a first state writing early gives it back (its rows are
        rolled back; it is written whole when complete). From the thread that writes now, once the
        state's inserts are done."""
        early = self._early
        if early is None:
            return
        self._early = None
        self._settled(early)
        early.let_go()
        try:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
        finally:
            self._write_lock.release()

    def _finish_early(
        self,
        state: _FirstState,
        cluster: ClusterRecord,
        groups: dict[str, dict[str, list[Any]]],
        count: int,
        times: tuple[datetime, datetime | None] | None,
        record_cluster: bool,
    ) -> None:
        """Commit a first state whose rows went in early (``_FirstState``); ``_GaveWay`` when they must
        be written again (SQLite did not number them as expected), ``StorageFenced`` as ``apply``."""
        conn, name, now = self._writer, cluster.cluster, datetime.now(UTC)
        try:
            if not self._settled(state):
                raise _GaveWay
            last = conn.execute("SELECT max(id) FROM resources").fetchone()[0]
            if count and last != state.first_id + count - 1:
                raise _GaveWay
            _check_epoch(conn, cluster)
            # The history first: SQLite copies it without the GIL while the storage thread builds the
            # changes; the postings (Python) are worked out after it, not competing with them.
            if times is not None:
                applied, observed = times
                conn.execute(
                    _HISTORY_OF_FIRST_STATE, (_micros(applied), _micros(observed) if observed else None, name)
                )
            label_index.insert(conn, label_index.postings_of(name, groups))
            cluster_row = _cluster_row(cluster)
            conn.execute(_SAVE_CLUSTER, cluster_row)
            if record_cluster:
                conn.execute(_RECORD_CLUSTER, (_micros(cluster.last_sync or now), *cluster_row))
            conn.execute("COMMIT")
        except BaseException as exc:
            self._take_back()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"SQLite error on {self.path}: {exc}") from exc
            raise
        self._early = None
        state.let_go()
        self._write_lock.release()
        self._after_commit()

    def _write(
        self,
        cluster: ClusterRecord,
        upserts: Sequence[StoredObject],
        rows: list[list[Any]],
        groups: dict[str, dict[str, list[Any]]],
        deletions: Collection[ResourceKey],
        history: Sequence[Change] | None,
        encoded: dict[tuple[str, str, str], tuple[Resource, str, bytes]],
        record_cluster: bool,
        first_state: tuple[datetime, datetime | None] | None = None,
    ) -> None:
        """``apply`` once its objects are encoded (``_encode_rows``). ``first_state``: the applied and
        observed times of a cluster's first state whose history is one ADDED per row in key order,
        given instead of ``history`` (``_FirstState``, history on)."""
        name = cluster.cluster
        now = datetime.now(UTC)
        if not self._logging_labels and self._batch_thread != threading.get_ident():
            self._take_back()
            with self._write_lock:
                self._log_labels()
        with self._transaction() as conn:
            _check_epoch(conn, cluster)
            unsorted = list(rows)
            rows.sort(key=_row_key)  # in index order: about 30 % faster to insert than in state order
            first_id = label_index.next_id(conn)
            first = bool(not deletions and rows and label_index.fresh(conn, name))
            # A first ingest recorded as ADDED in key order: its history rows are copied from the
            # rows just inserted, inside SQLite, instead of bound again one by one from here.
            copied = first_state is not None or bool(
                first and history and all(map(operator.is_, unsorted, rows)) and plain_additions(name, history, upserts)
            )
            # History first: a DELETED row reads the labels of the object it removes.
            if history is not None and not copied:
                conn.executemany(_HISTORY, _history_rows(history, encoded, now))
            if first and _first_ingest(conn, name, rows, groups, first_id):
                times = first_state
                if times is None and copied and history:
                    times = (history[0].applied_at or now, history[0].observed_at)
                if times is not None:
                    applied, observed = times
                    conn.execute(
                        _HISTORY_OF_FIRST_INGEST,
                        (_micros(applied), _micros(observed) if observed is not None else None, name, first_id),
                    )
            else:
                if first_state is not None:  # the rows go in through the general path: so does their history
                    history = _additions(name, upserts, *first_state)
                if copied:
                    conn.executemany(_HISTORY, _history_rows(history or (), encoded, now))
                for row_id, row in enumerate(rows, first_id):  # kept by new rows, ignored by existing ones
                    row[9] = row_id
                conn.executemany(_DELETE, ((name, k.kind, k.namespace, k.name) for k in deletions))
                if bulk.insert(conn, _UPSERT, rows, _UPSERT_TAIL) < len(rows):
                    _check_regressions(conn, name, rows)
                label_index.update(conn, name, first_id)
            cluster_row = _cluster_row(cluster)
            conn.execute(_SAVE_CLUSTER, cluster_row)
            if record_cluster:
                conn.execute(_RECORD_CLUSTER, (_micros(cluster.last_sync or now), *cluster_row))

    def save_cluster(self, cluster: ClusterRecord) -> None:
        with self._transaction() as conn:
            _check_epoch(conn, cluster)
            conn.execute(_SAVE_CLUSTER, _cluster_row(cluster))

    def get_cluster(self, cluster: str, at: datetime | None = None) -> ClusterRecord | None:
        if at is None:
            rows = self._read(f"SELECT {_CLUSTER_COLUMNS} FROM clusters WHERE cluster = ?", (cluster,))
        else:
            rows = self._read(
                f"SELECT {_CLUSTER_COLUMNS} FROM cluster_history WHERE cluster = ? AND applied_at <= ? "
                "ORDER BY applied_at DESC, seq DESC LIMIT 1",
                (cluster, _micros(at)),
            )
        return _record(rows[0]) if rows else None

    def list_clusters(self, at: datetime | None = None) -> list[ClusterRecord]:
        if at is None:
            rows = self._read(f"SELECT {_CLUSTER_COLUMNS} FROM clusters ORDER BY cluster")
        else:
            rows = self._read(
                f"SELECT {_CLUSTER_COLUMNS} FROM cluster_history WHERE seq IN ("
                "  SELECT seq FROM (SELECT seq, row_number() OVER ("
                "    PARTITION BY cluster ORDER BY applied_at DESC, seq DESC) AS latest"
                "  FROM cluster_history WHERE applied_at <= ?) WHERE latest = 1"
                ") ORDER BY cluster",
                (_micros(at),),
            )
        return [_record(r) for r in rows]

    def counts(self, cluster: str) -> dict[str, int]:
        rows = self._read("SELECT kind, count(*) FROM resources WHERE cluster = ? GROUP BY kind", (cluster,))
        return {kind: n for kind, n in rows}

    def query(self, query: ResourceQuery) -> Iterator[StoredResource]:
        sql, params = _query_sql(query)
        plan = None
        if self.label_index and query.selector and query.at is None:
            plan = _planner(query, sql, params)
        for page in self._pages(sql, params, plan):
            for cluster, *row in page:
                yield StoredResource(cluster, _resource(*row))

    def history(self, query: HistoryQuery) -> Iterator[Change]:
        sql, params = _history_sql(query)
        for page in self._pages(sql, params):
            yield from map(_change, page)

    def prune_history(self, before: datetime, max_rows: int | None) -> int:
        cutoff = _micros(before)
        with self._transaction() as conn:
            pruned = conn.execute(_PRUNE, (cutoff,)).rowcount
            conn.execute(_PRUNE_CLUSTERS, (cutoff,))
            if max_rows is not None:
                excess = conn.execute("SELECT count(*) FROM history").fetchone()[0] - max(0, max_rows)
                if excess > 0:
                    pruned += conn.execute(
                        "DELETE FROM history WHERE seq IN "
                        "(SELECT seq FROM history ORDER BY applied_at, seq LIMIT ?)",
                        (excess,),
                    ).rowcount
        return pruned

    def create_claims(self, manager_id: str, grace_period: float) -> ClusterClaims | None:
        return None


def _check_epoch(conn: sqlite3.Connection, record: ClusterRecord) -> None:
    """Refuse a write under an older claim than the cluster's last write (fencing)."""
    row = conn.execute(_STORED_EPOCH, (record.cluster,)).fetchone()
    if row is not None and row[0] > record.epoch:
        raise StorageFenced(
            f"cluster {record.cluster}: a newer claim (epoch {row[0]}) has written it; "
            f"this write's claim (epoch {record.epoch}) is no longer valid, nothing was written"
        )


def _check_regressions(conn: sqlite3.Connection, cluster: str, rows: Sequence[Sequence[Any]]) -> None:
    """Some upserts were refused (``_OLDER``): name one and roll everything back (``StorageRegressed``:
    the epoch was checked first in the same transaction, so the claim is current)."""
    keys = orjson.dumps([[r[1], r[2], r[3], r[4], r[5]] for r in rows]).decode()
    found = conn.execute(_REGRESSED, (keys, cluster)).fetchone()
    if found is not None:  # else: a key came twice (the last copy won), nothing was refused
        kind, namespace, name, stored, new = found
        raise StorageRegressed(
            f"cluster {cluster}: {kind} {namespace + '/' if namespace else ''}{name} is stored at "
            f"resourceVersion {stored}, newer than {new} written now: a stale writer, nothing was written"
        )


def _first_ingest(
    conn: sqlite3.Connection, cluster: str, rows: list[list[Any]], groups: dict[str, dict[str, list[Any]]],
    first_id: int,
) -> bool:
    """Insert the rows of a cluster that has none, and their postings, without reading anything back.

    False, with nothing left written, when a key comes twice (the upsert then takes the last copy)
    or the rows did not get the ids the postings name.
    """
    postings = label_index.first_ingest(cluster, rows, groups, first_id)
    try:
        bulk.insert(conn, _INSERT, rows)
        numbered = conn.execute("SELECT max(id) FROM resources").fetchone()[0] == first_id + len(rows) - 1
    except sqlite3.IntegrityError:
        numbered = False
    if not numbered:
        conn.execute("DELETE FROM resources WHERE cluster = ?", (cluster,))
        label_index.forget_changes(conn)
        for row in rows:
            row.append(None)  # the id slot, given by the general path
        return False
    label_index.insert(conn, postings)
    return True


def _filters(query: ResourceQuery | HistoryQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column in ("cluster", "kind", "namespace", "name"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def _query_sql(query: ResourceQuery) -> tuple[str, list[Any]]:
    where, params = _filters(query)
    selector, selector_params = selector_sql(query.selector) if query.selector is not None else ([], [])
    if query.at is None:
        sql = "SELECT cluster, kind, namespace, name, uid, resource_version, labels, data FROM resources"
        if where or selector:
            sql += " WHERE " + " AND ".join(where + selector)
        sql += " ORDER BY cluster, kind, namespace, name"
        params += selector_params
    else:
        # The filters on the key go inside (before picking each key's latest change),
        # the selector outside: it matches the labels the object had at that time.
        sql = _AT.format(
            index=_at_index(query),
            where=" AND ".join(["applied_at <= ?", *where]),
            selector="".join(f" AND {c}" for c in selector),
        )
        params = [_micros(query.at), *params, *selector_params]
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit)
    return sql, params


def _planner(
    query: ResourceQuery, scan: str, scan_params: list[Any]
) -> Callable[[sqlite3.Connection], _Statement]:
    """The statement for a selector query now: through the label index, else the scan."""

    def plan(conn: sqlite3.Connection) -> _Statement:
        ids = label_index.candidates(conn, query)
        if ids is None:
            return scan, scan_params
        where: list[str] = []
        params: list[Any] = [orjson.dumps(ids).decode()]
        for column in ("cluster", "kind", "namespace", "name"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"r.{column} = ?")
                params.append(value)
        assert query.selector is not None
        selector, selector_params = selector_sql(query.selector)
        sql = _BY_ID + " WHERE " + " AND ".join(where + selector) if where or selector else _BY_ID
        sql += " ORDER BY r.cluster, r.kind, r.namespace, r.name"
        params += selector_params
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        return sql, params

    return plan


def _history_sql(query: HistoryQuery) -> tuple[str, list[Any]]:
    where, params = _filters(query)
    if query.since is not None:
        where.append("applied_at >= ?")
        params.append(_micros(query.since))
    if query.until is not None:
        where.append("applied_at <= ?")
        params.append(_micros(query.until))
    if query.selector is not None:
        clauses, values = selector_sql(query.selector)
        where += clauses
        params += values
    sql = f"SELECT {_HISTORY_COLUMNS} FROM history INDEXED BY {_history_index(query)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY applied_at DESC, seq DESC"
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit)
    return sql, params


# Indexes are chosen here, not by SQLite's planner: it has no statistics (nothing runs ANALYZE),
# so it takes any equality for a selective one, when one cluster may be the whole table.


def _at_index(query: ResourceQuery) -> str:
    """The past of a cluster: history_key covers the window (the table is read only for the
    rows kept); of a namespace across clusters: its time range; of everything: a covering scan."""
    if query.cluster is not None and (query.kind is not None or query.namespace is None):
        return "history_key"
    return "history_namespace" if query.namespace is not None else "history_key"


def _history_index(query: HistoryQuery) -> str:
    """One object's changes by key, a namespace's in time order, else all in time order:
    rows stream newest first without a sort, so a limit stops early."""
    if None not in (query.cluster, query.kind, query.namespace, query.name):
        return "history_key"
    return "history_namespace" if query.namespace is not None else "history_applied"
