"""Label selectors as SQL over a JSON ``labels`` column, so filtering happens in SQLite.

Resources and history rows both have one (a DELETED row keeps the last known labels).
"""

from __future__ import annotations

from navigator.plugin import LabelSelector, Operator


def _path(key: str) -> str:
    # Selector keys cannot hold quotes, so quoting the key keeps '.' and '/' literal.
    return f'$."{key}"'


def selector_sql(selector: LabelSelector) -> tuple[list[str], list[str]]:
    """SQL conditions (ANDed) and their parameters for ``selector``."""
    clauses: list[str] = []
    params: list[str] = []
    for req in selector.requirements:
        path = _path(req.key)
        marks = ", ".join("?" for _ in req.values)
        match req.operator:
            case Operator.EQUALS | Operator.IN:
                clauses.append(f"json_extract(labels, ?) IN ({marks})")
                params += [path, *req.values]
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                clauses.append(f"(json_type(labels, ?) IS NULL OR json_extract(labels, ?) NOT IN ({marks}))")
                params += [path, path, *req.values]
            case Operator.EXISTS:
                clauses.append("json_type(labels, ?) IS NOT NULL")
                params.append(path)
            case Operator.NOT_EXISTS:
                clauses.append("json_type(labels, ?) IS NULL")
                params.append(path)
    return clauses, params
