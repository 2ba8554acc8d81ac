"""``ClusterRecord`` to and from a row of the ``clusters`` table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from navigator.plugin import ClusterRecord, KindErrorRecord

COLUMNS = (
    "cluster, edge_id, metadata, last_sync, last_seen, sync_interval, errors, manager_id, last_sequence"
)

UPSERT = f"""
INSERT INTO clusters ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (cluster) DO UPDATE SET
    edge_id = excluded.edge_id, metadata = excluded.metadata, last_sync = excluded.last_sync,
    last_seen = excluded.last_seen, sync_interval = excluded.sync_interval, errors = excluded.errors,
    manager_id = excluded.manager_id, last_sequence = excluded.last_sequence
"""

SELECT = f"SELECT {COLUMNS} FROM clusters"


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
    )


def from_row(row: tuple[Any, ...]) -> ClusterRecord:
    cluster, edge_id, metadata, last_sync, last_seen, interval, errors, manager_id, last_sequence = row
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
    )


def save(conn: psycopg.Connection[Any], record: ClusterRecord) -> None:
    conn.execute(UPSERT, row_params(record))
