"""Reading Kubernetes objects from JSON, JSON/YAML lists and multi-document YAML files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import yaml

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _Loader(_Base):
    """SafeLoader that keeps timestamps as strings, as the API server would serve them."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in _Base.yaml_implicit_resolvers.items()
}


class LoadError(ValueError):
    pass


def parse(data: bytes, source: str = "<data>") -> list[dict[str, Any]]:
    """All objects in a document, with ``List``/``XList`` wrappers expanded."""
    docs: list[Any]
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        try:
            parsed = orjson.loads(data)
            docs = parsed if isinstance(parsed, list) else [parsed]
        except orjson.JSONDecodeError:
            docs = _yaml_docs(data, source)
    else:
        docs = _yaml_docs(data, source)
    out: list[dict[str, Any]] = []
    for d in docs:
        if d is not None:
            _expand(d, out, source)
    return out


def _yaml_docs(data: bytes, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(data, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise LoadError(f"{source}: not valid JSON or YAML: {exc}") from None


def _expand(d: Any, out: list[dict[str, Any]], source: str) -> None:
    if not isinstance(d, dict):
        raise LoadError(f"{source}: expected a Kubernetes object, got {type(d).__name__}")
    kind = d.get("kind") or ""
    if isinstance(d.get("items"), list) and isinstance(kind, str) and kind.endswith("List"):
        item_kind = kind[: -len("List")] if kind != "List" else None
        for it in d["items"]:
            if isinstance(it, dict) and item_kind and not it.get("kind"):
                it = {"apiVersion": d.get("apiVersion", "v1"), "kind": item_kind, **it}
            _expand(it, out, source)
        return
    if not d.get("apiVersion") or not kind:
        raise LoadError(f"{source}: object without apiVersion/kind: {str(d)[:120]}")
    if not isinstance(d.get("metadata"), dict) or not d["metadata"].get("name"):
        raise LoadError(f"{source}: {kind} without metadata.name")
    out.append(d)


def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LoadError(f"{p}: {exc.strerror or exc}") from None
    return parse(data, str(p))
