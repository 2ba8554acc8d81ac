"""``ResourceQuery`` as one SQL statement, ordered by (cluster, kind, namespace, name).

Filters on those columns use the primary key or ``resources_kind_namespace_idx``; label
selectors use the GIN index on ``labels``.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from navigator.plugin import Resource, ResourceQuery, StoredResource
from navigator_plugin_postgres.label_sql import selector_condition

ORDER = ("cluster", "kind", "namespace", "name")
COLUMNS = "cluster, kind, namespace, name, uid, resource_version, labels, data"


def statement(query: ResourceQuery) -> tuple[sql.Composed, list[Any]]:
    where: list[sql.Composable] = []
    params: list[Any] = []
    for column in ORDER:
        value = getattr(query, column)
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if query.selector is not None and query.selector.requirements:
        where.append(selector_condition(query.selector, params))
    text = sql.SQL("SELECT {} FROM resources WHERE {} ORDER BY {}").format(
        sql.SQL(COLUMNS),
        sql.SQL(" AND ").join(where) if where else sql.SQL("true"),
        sql.SQL(", ").join(sql.Identifier(c) for c in ORDER),
    )
    if query.limit is not None:
        text = sql.SQL("{} LIMIT {}").format(text, sql.Literal(max(0, query.limit)))
    return text, params


def to_stored(row: tuple[Any, ...]) -> StoredResource:
    cluster, kind, namespace, name, uid, resource_version, labels, data = row
    return StoredResource(cluster, Resource(kind, namespace, name, uid, resource_version, labels, data))
