"""Reading and pruning the change history.

``history`` holds one row per applied change; ``HistoryQuery`` becomes one
statement, newest first (applied time, then apply order: ``id``). A namespace
and a time range read ``history_namespace_idx``, a time range alone the primary
key ``(applied_at, id)``, one object ``history_key_idx``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from navigator.plugin import Change, ChangeType, HistoryQuery, Resource
from navigator_plugin_postgres import clusters
from navigator_plugin_postgres.label_sql import selector_condition
from navigator_plugin_postgres.query import key_filters

COLUMNS = (
    "cluster, kind, namespace, name, uid, type, old_resource_version, new_resource_version, "
    "applied_at, observed_at, changed_fields, labels, data"
)

# Rows before the cutoff that are DELETED, or that a later row of the same key before the
# cutoff supersedes: what is left per key is its state at the cutoff, if it existed then.
PRUNE = """
DELETE FROM history h WHERE h.applied_at < %(before)s AND (h.type = 'DELETED' OR EXISTS (
    SELECT 1 FROM history n
    WHERE n.kind = h.kind AND n.namespace = h.namespace AND n.cluster = h.cluster AND n.name = h.name
      AND n.applied_at < %(before)s
      AND (n.applied_at > h.applied_at OR (n.applied_at = h.applied_at AND n.id > h.id))
))
"""

#: The oldest rows beyond ``max_rows``, in primary key order.
PRUNE_OLDEST = """
DELETE FROM history WHERE (applied_at, id) IN (
    SELECT applied_at, id FROM history ORDER BY applied_at, id LIMIT %(excess)s
)
"""


def statement(query: HistoryQuery) -> tuple[sql.Composed, list[Any]]:
    params: list[Any] = []
    where = key_filters(query, params)
    if query.since is not None:
        where.append(sql.SQL("applied_at >= %s"))
        params.append(query.since)
    if query.until is not None:
        where.append(sql.SQL("applied_at <= %s"))
        params.append(query.until)
    if query.selector is not None and query.selector.requirements:
        where.append(selector_condition(query.selector, params))
    text = sql.SQL("SELECT {} FROM history WHERE {} ORDER BY applied_at DESC, id DESC").format(
        sql.SQL(COLUMNS), sql.SQL(" AND ").join(where) if where else sql.SQL("true")
    )
    if query.limit is not None:
        text = sql.SQL("{} LIMIT {}").format(text, sql.Literal(max(0, query.limit)))
    return text, params


def to_change(row: tuple[Any, ...]) -> Change:
    (
        cluster,
        kind,
        namespace,
        name,
        uid,
        type_,
        old_rv,
        new_rv,
        applied_at,
        observed_at,
        fields,
        labels,
        data,
    ) = row
    change_type = ChangeType(type_)
    resource = None
    if change_type is not ChangeType.DELETED:
        resource = Resource.from_json(kind, namespace, name, uid, new_rv or "", labels, data or b"{}")
    return Change(
        cluster, kind, namespace, name, uid, change_type, old_rv, new_rv,
        applied_at=applied_at, observed_at=observed_at, resource=resource, changed_fields=tuple(fields),
    )  # fmt: skip


#: Below this ``max_rows`` the rows are always counted exactly (it is cheap).
ESTIMATE_FROM = 100_000


def _row_count(conn: psycopg.Connection[Any], max_rows: int) -> int:
    """Rows in ``history``, exactly when it matters: ``0`` when ``max_rows`` is large and the
    planner's estimate (kept by autovacuum) is far below it, since counting ten million
    rows every few minutes is not free."""
    if max_rows >= ESTIMATE_FROM:
        row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'history'::regclass").fetchone()
        if row is not None and 0 <= float(row[0]) < max_rows / 2:
            return 0
    counted = conn.execute("SELECT count(*) FROM history").fetchone()
    return int(counted[0]) if counted is not None else 0


def prune(conn: psycopg.Connection[Any], before: datetime, max_rows: int | None) -> int:
    """``StorageBackend.prune_history`` inside the caller's transaction; returns the rows removed."""
    removed = conn.execute(PRUNE, {"before": before}).rowcount
    conn.execute(clusters.PRUNE, {"before": before})
    if max_rows is not None:
        max_rows = max(0, max_rows)
        excess = _row_count(conn, max_rows) - max_rows
        if excess > 0:
            removed += conn.execute(PRUNE_OLDEST, {"excess": excess}).rowcount
    return removed
