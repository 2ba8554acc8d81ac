"""``ResourceQuery`` as one SQL statement, ordered by (cluster, kind, namespace, name).

Now: ``resources``, filtered through its primary key or ``resources_kind_namespace_idx``,
label selectors through the GIN index on ``labels``. At a time: per key the latest
``history`` row applied at or before it, unless that row is a DELETED, read in key
order from ``history_key_idx``; the selector applies to the labels the object had then.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from navigator.plugin import HistoryQuery, Resource, ResourceQuery, StoredResource
from navigator_plugin_postgres.label_sql import selector_condition

ORDER = ("cluster", "kind", "namespace", "name")
COLUMNS = "cluster, kind, namespace, name, uid, resource_version, labels, data"

AT = """
SELECT cluster, kind, namespace, name, uid, new_resource_version, labels, data FROM (
    SELECT DISTINCT ON (cluster, kind, namespace, name)
           cluster, kind, namespace, name, uid, type, new_resource_version, labels, data
    FROM history WHERE {inner}
    ORDER BY cluster, kind, namespace, name, applied_at DESC, id DESC
) h
WHERE {outer}
ORDER BY cluster, kind, namespace, name
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
        outer: list[sql.Composable] = [sql.SQL("type <> 'DELETED'")]
        if query.selector is not None and query.selector.requirements:
            outer.append(selector_condition(query.selector, params))
        text = sql.SQL(AT).format(inner=_and(inner), outer=_and(outer))
    if query.limit is not None:
        text = sql.SQL("{} LIMIT {}").format(text, sql.Literal(max(0, query.limit)))
    return text, params


def to_stored(row: tuple[Any, ...]) -> StoredResource:
    cluster, kind, namespace, name, uid, resource_version, labels, data = row
    return StoredResource(
        cluster, Resource(kind, namespace, name, uid, resource_version or "", labels, data or {})
    )
