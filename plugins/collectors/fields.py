"""Defensive readers for raw Kubernetes JSON shared by the built-in collectors.

API objects come straight from the server's JSON (or from fixtures filled with
placeholder values), so every reader tolerates a missing field or a value of an
unexpected type: it falls back to an empty value instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from navigator.plugin import Resource


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dict entries of a list (odd entries are skipped, not fatal)."""
    return [v for v in items(value) if isinstance(v, dict)]


def string_map(value: Any) -> dict[str, str]:
    """Labels, selectors: keys and values as strings whatever the JSON held."""
    return {str(k): v if isinstance(v, str) else str(v) for k, v in mapping(value).items()}


def resource(kind: str, obj: Mapping[str, Any], data: dict[str, Any]) -> Resource:
    """The common part of every record: identity, version and labels from ``metadata``."""
    meta = mapping(obj.get("metadata"))
    return Resource(
        kind=kind,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels=string_map(meta.get("labels")),
        data=data,
    )
