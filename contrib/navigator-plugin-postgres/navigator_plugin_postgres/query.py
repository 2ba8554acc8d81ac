"""``ResourceQuery`` as one SQL statement, ordered by (cluster, kind, namespace, name).

Now: ``resources``, filtered through its primary key or ``resources_kind_namespace_idx``,
label selectors through the GIN index on ``labels`` (``=`` and ``in``: label_sql.py).
At a time: per key the latest ``history`` row applied at or before it, unless that row
is a DELETED, found in key order in ``history_key_idx`` (or ``history_namespace_idx``
for a namespace without a cluster); the selector applies to the labels the object had then.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from navigator.plugin import HistoryQuery, Resource, ResourceQuery, StoredResource
from navigator_plugin_postgres.label_sql import selector_condition

ORDER = ("cluster", "kind", "namespace", "name")
COLUMNS = "cluster, kind, namespace, name, uid, resource_version, labels, data"

# Per key the primary key of its latest row at or before the time (an index-only scan of
# history_key_idx, in result order), then that row: only the winners' payloads are read, and the
# lookups keep the order (LIMIT 1 keeps the lateral a nested loop), so rows stream at once.
AT = """
SELECT w.cluster, w.kind, w.namespace, w.name, h.uid, h.new_resource_version, h.labels, h.data
FROM (
    SELECT DISTINCT ON (cluster, kind, namespace, name) cluster, kind, namespace, name, applied_at, id
    FROM history WHERE {inner}
    ORDER BY cluster, kind, namespace, name, applied_at DESC, id DESC
) w CROSS JOIN LATERAL (
    SELECT uid, new_resource_version, labels, data, type FROM history
    WHERE applied_at = w.applied_at AND id = w.id LIMIT 1
) h
WHERE {outer}
ORDER BY {order}
"""


def key_filters(query: ResourceQuery | HistoryQuery, params: list[Any]) -> list[sql.Composable]:
    """``column = %s`` for each of cluster, kind, namespace, name the query sets."""
    where: list[sql.Composable] = []
    for column in ORDER:
        value = getattr(query, column)
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    return where


def _and(parts: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def statement(query: ResourceQuery) -> tuple[sql.Composed, list[Any]]:
    params: list[Any] = []
    if query.at is None:
        where = key_filters(query, params)
        if query.selector is not None and query.selector.requirements:
            where.append(selector_condition(query.selector, params))
        text = sql.SQL("SELECT {} FROM resources WHERE {} ORDER BY {}").format(
            sql.SQL(COLUMNS), _and(where), sql.SQL(", ").join(sql.Identifier(c) for c in ORDER)
        )
    else:
        params.append(query.at)
        inner = [sql.SQL("applied_at <= %s"), *key_filters(query, params)]
        outer: list[sql.Composable] = [sql.SQL("h.type <> 'DELETED'")]
        if query.selector is not None and query.selector.requirements:
            outer.append(selector_condition(query.selector, params))
        # Key columns a filter fixes are left out of the order: the planner does not see that they
        # are constant across the subquery, and would sort what the index already returns in order.
        free = [sql.SQL("w.{}").format(sql.Identifier(c)) for c in ORDER if getattr(query, c) is None]
        order = sql.SQL(", ").join(free) if free else sql.SQL("w.name")
        text = sql.SQL(AT).format(inner=_and(inner), outer=_and(outer), order=order)
    if query.limit is not None:
        text = sql.SQL("{} LIMIT {}").format(text, sql.Literal(max(0, query.limit)))
    return text, params


def to_stored(row: tuple[Any, ...]) -> StoredResource:
    cluster, kind, namespace, name, uid, resource_version, labels, data = row
    return StoredResource(
        cluster, Resource.from_json(kind, namespace, name, uid, resource_version or "", labels, data or b"{}")
    )
