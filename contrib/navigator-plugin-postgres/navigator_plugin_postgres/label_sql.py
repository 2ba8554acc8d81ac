"""Label selectors as SQL over the ``labels`` JSONB column, agreeing exactly with ``navigator.selectors``.

``=`` and ``in`` become containment (``labels @> '{"k": "v"}'``), served by the GIN
index (``jsonb_path_ops``: one entry per key and value), and ``exists`` the key
operator (``labels ? 'k'``), which that index does not serve. The negative forms
are true when the key is absent, as in Kubernetes. A selector with no ``=`` or
``in`` is answered by scanning the rows in scope.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from navigator.plugin import LabelSelector, Operator, Requirement


def _requirement(req: Requirement, params: list[Any]) -> sql.Composable:
    match req.operator:
        case Operator.EQUALS | Operator.IN:
            if len(req.values) == 1:
                params.append(Jsonb({req.key: req.values[0]}))
                return sql.SQL("labels @> %s")
            params.extend(Jsonb({req.key: value}) for value in req.values)
            alternatives = sql.SQL(" OR ").join(sql.SQL("labels @> %s") for _ in req.values)
            return sql.SQL("({})").format(alternatives)
        case Operator.NOT_EQUALS | Operator.NOT_IN:
            # Absent key -> NULL -> coalesce(false): the requirement holds.
            params.extend([req.key, list(req.values)])
            return sql.SQL("NOT coalesce(labels ->> %s = ANY(%s::text[]), false)")
        case Operator.EXISTS:
            params.append(req.key)
            return sql.SQL("labels ? %s")
        case Operator.NOT_EXISTS:
            params.append(req.key)
            return sql.SQL("NOT (labels ? %s)")
    raise ValueError(f"unsupported label selector operator {req.operator!r}")  # pragma: no cover


def selector_condition(selector: LabelSelector, params: list[Any]) -> sql.Composable:
    """A boolean SQL expression for ``selector``; its parameters are appended to ``params``."""
    if not selector.requirements:
        return sql.SQL("true")
    equalities: dict[str, str] = {}
    rest: list[Requirement] = []
    for req in selector.requirements:
        if req.operator is Operator.EQUALS and req.key not in equalities:
            equalities[req.key] = req.values[0]
        else:
            rest.append(req)
    parts: list[sql.Composable] = []
    if equalities:
        # All key=value requirements in one containment test: one GIN lookup.
        params.append(Jsonb(equalities))
        parts.append(sql.SQL("labels @> %s"))
    parts.extend(_requirement(req, params) for req in rest)
    return sql.SQL(" AND ").join(parts)
