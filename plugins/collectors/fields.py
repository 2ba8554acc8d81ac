"""What the built-in collectors share: the metadata they read, and defensive readers for loose values.

Pages are decoded into each collector's ``msgspec.Struct`` (the fast path of
``Collector.item_type``): only the declared fields are built. The fields they
merely carry into ``data`` are typed ``Any``, so whatever the API sent comes
through exactly as the dict code carried it; objects and lists are typed, so
the decoder skips their undeclared members. Structs are ``gc=False``: decoded
API objects hold no reference cycles, and keeping them out of the garbage
collector keeps it out of the page decoding loop.
"""

from __future__ import annotations

from typing import Any

import msgspec

from navigator.plugin import Resource


class ObjectMeta(msgspec.Struct, gc=False):
    """``metadata``: identity, version and labels (``managedFields``, annotations, ... are skipped)."""

    name: Any = None
    namespace: Any = None
    uid: Any = None
    resourceVersion: Any = None
    labels: Any = None


NO_META = ObjectMeta()


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


def resource(kind: str, meta: ObjectMeta | None, data: dict[str, Any]) -> Resource:
    """The common part of every record: identity, version and labels from ``metadata``."""
    meta = meta or NO_META
    return Resource(
        kind=kind,
        namespace=str(meta.namespace or ""),
        name=str(meta.name or ""),
        uid=str(meta.uid or ""),
        resource_version=str(meta.resourceVersion or ""),
        labels=string_map(meta.labels),
        data=data,
    )
