"""``ClusterRecord`` to and from a row of ``clusters``, and its kept copies in ``cluster_history``.

Saving a record is fenced (``fence``): refused when a newer claim of the cluster exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from navigator.plugin import ClusterRecord, KindErrorRecord, StorageError

COLUMNS = (
    "cluster, edge_id, metadata, last_sync, last_seen, sync_interval, errors, manager_id, last_sequence, "
    "fresh_as_of, lag, epoch"
)

UPSERT = f"""
INSERT INTO clusters ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (cluster) DO UPDATE SET
    edge_id = excluded.edge_id, metadata = excluded.metadata, last_sync = excluded.last_sync,
    last_seen = excluded.last_seen, sync_interval = excluded.sync_interval, errors = excluded.errors,
    manager_id = excluded.manager_id, last_sequence = excluded.last_sequence,
    fresh_as_of = excluded.fresh_as_of, lag = excluded.lag, epoch = excluded.epoch
"""

SELECT = f"SELECT {COLUMNS} FROM clusters"

#: A copy of the record as of ``applied_at`` (its last_sync), for ``get_cluster(at=...)``.
RECORD = (
    f"INSERT INTO cluster_history (applied_at, {COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

#: The cluster's current epoch: its latest claim's (the row locked, so a claim taking the next
#: epoch waits for this transaction to end) and the one its record was last written under.
CURRENT_EPOCH = """
SELECT greatest(
    (SELECT epoch FROM cluster_claims WHERE cluster = %(cluster)s FOR SHARE),
    (SELECT epoch FROM clusters WHERE cluster = %(cluster)s),
    0
)
"""

#: Per cluster the latest copy at or before a time.
SELECT_AT = f"""
SELECT DISTINCT ON (cluster) {COLUMNS} FROM cluster_history
WHERE applied_at <= %(at)s {{where}}
ORDER BY cluster, applied_at DESC, id DESC
"""

#: Copies superseded by a later one before the cutoff: ``at`` after the cutoff never needs them.
PRUNE = """
DELETE FROM cluster_history h WHERE h.applied_at < %(before)s AND EXISTS (
    SELECT 1 FROM cluster_history n
    WHERE n.cluster = h.cluster AND n.applied_at < %(before)s
      AND (n.applied_at > h.applied_at OR (n.applied_at = h.applied_at AND n.id > h.id))
)
"""


def _error_to_json(error: KindErrorRecord) -> dict[str, Any]:
    return {
        "kind": error.kind,
        "message": error.message,
        "http_status": error.http_status,
        "cached": error.cached,
        "since": error.since.isoformat() if error.since is not None else None,
    }


def _error_from_json(item: dict[str, Any]) -> KindErrorRecord:
    since = item.get("since")
    return KindErrorRecord(
        kind=item["kind"],
        message=item.get("message", ""),
        http_status=int(item.get("http_status", 0)),
        cached=bool(item.get("cached", False)),
        since=datetime.fromisoformat(since) if since else None,
    )


def row_params(record: ClusterRecord) -> tuple[Any, ...]:
    return (
        record.cluster,
        record.edge_id,
        Jsonb(dict(record.metadata)),
        record.last_sync,
        record.last_seen,
        float(record.sync_interval),
        Jsonb([_error_to_json(e) for e in record.errors]),
        record.manager_id,
        int(record.last_sequence),
        record.fresh_as_of,
        float(record.lag) if record.lag is not None else None,
        int(record.epoch),
    )


def from_row(row: tuple[Any, ...]) -> ClusterRecord:
    (cluster, edge_id, metadata, last_sync, last_seen, interval, errors, manager_id, last_sequence,
     fresh_as_of, lag, epoch) = row  # fmt: skip
    return ClusterRecord(
        cluster=cluster,
        edge_id=edge_id,
        metadata=dict(metadata or {}),
        last_sync=last_sync,
        last_seen=last_seen,
        sync_interval=float(interval),
        errors=[_error_from_json(item) for item in errors or ()],
        manager_id=manager_id,
        last_sequence=int(last_sequence),
        fresh_as_of=fresh_as_of,
        lag=float(lag) if lag is not None else None,
        epoch=int(epoch),
    )


def fence(conn: psycopg.Connection[Any], record: ClusterRecord) -> None:
    """Refuse (``StorageFenced``) a write under an older claim than the cluster's current one.

    Run last before the commit: from here until it, a claim of the cluster waits (row lock),
    so a write either commits before the next claim or is refused by it.
    """
    row = conn.execute(CURRENT_EPOCH, {"cluster": record.cluster}).fetchone()
    current = int(row[0]) if row is not None else 0
    if current > record.epoch:
        raise StorageError.Fenced(
            f"cluster {record.cluster}: a newer claim (epoch {current}) exists; this write's claim "
            f"(epoch {record.epoch}) is no longer valid, nothing was written"
        )


def save(conn: psycopg.Connection[Any], record: ClusterRecord) -> None:
    """Fenced; the caller's transaction rolls back on ``StorageFenced``."""
    fence(conn, record)
    conn.execute(UPSERT, row_params(record))


def save_copy(conn: psycopg.Connection[Any], record: ClusterRecord, now: datetime) -> None:
    conn.execute(RECORD, (record.last_sync or now, *row_params(record)))


def get(conn: psycopg.Connection[Any], cluster: str, at: datetime | None) -> ClusterRecord | None:
    if at is None:
        row = conn.execute(SELECT + " WHERE cluster = %s", [cluster]).fetchone()
    else:
        row = conn.execute(
            SELECT_AT.format(where="AND cluster = %(cluster)s"), {"at": at, "cluster": cluster}
        ).fetchone()
    return from_row(row) if row is not None else None


def list_all(conn: psycopg.Connection[Any], at: datetime | None) -> list[ClusterRecord]:
    if at is None:
        rows = conn.execute(SELECT + " ORDER BY cluster")
    else:
        rows = conn.execute(SELECT_AT.format(where=""), {"at": at})
    return [from_row(row) for row in rows]
