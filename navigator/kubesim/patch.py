"""JSON merge patch (RFC 7386), a practical strategic merge patch, and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

#: List fields that strategic merge patch merges element-wise, and the key it merges on.
#: ``ports`` merges on containerPort (container ports) or port (service ports), whichever the
#: elements carry.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "env": ("name",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "containerStatuses": ("name",),
    "initContainerStatuses": ("name",),
    "addresses": ("type",),
    "resourceClaims": ("name",),
}
#: Primitive lists that strategic merge patch unions rather than replaces.
MERGE_PRIMITIVE = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch plus list merging by key and the common ``$patch``/``$...`` directives.

    Not the full algorithm (no OpenAPI-driven strategies); enough for kubectl label/annotate,
    scale-like edits and controller-style status patches.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(v, list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_list(k, out[k], v)
        else:
            merged = strategic_merge_patch(out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
    return out


def _merge_list(field: str, cur: list[Any], patch: list[Any]) -> list[Any]:
    if field in MERGE_PRIMITIVE:
        return cur + [x for x in patch if x not in cur]
    keys = MERGE_KEYS.get(field)
    if not keys or not all(isinstance(x, dict) for x in cur + patch):
        return copy.deepcopy(patch)
    key = next((k for k in keys if any(k in x for x in patch + cur)), None)
    if key is None:
        return copy.deepcopy(patch)
    out = list(cur)
    for item in patch:
        kv = item.get(key)
        idx = next((i for i, x in enumerate(out) if x.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


def _unescape(tok: str) -> str:
    return tok.replace("~1", "/").replace("~0", "~")


def _walk(doc: Any, path: str) -> tuple[Any, str]:
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer: {path!r}", "Invalid")
    parts = [_unescape(p) for p in path.split("/")[1:]]
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise ApiError(422, f"the server rejected our request: path {path!r} not found", "Invalid") from None
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise ApiError(422, f"the server rejected our request: path {path!r} not found", "Invalid")
    return cur, parts[-1]


def _get(doc: Any, path: str) -> Any:
    if path == "":
        return doc
    parent, last = _walk(doc, path)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, ValueError, IndexError):
        raise ApiError(422, f"the server rejected our request: path {path!r} not found", "Invalid") from None


def _add(doc: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    parent, last = _walk(doc, path)
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(int(last), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, f"cannot add at {path!r}", "Invalid")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parent, last = _walk(doc, path)
    try:
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    except (KeyError, ValueError, IndexError):
        raise ApiError(422, f"the server rejected our request: path {path!r} not found", "Invalid") from None
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError.bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(op.get("value"))) if path else op.get("value")
        elif kind == "move":
            value = _get(doc, op["from"])
            doc = _add(_remove(doc, op["from"]), path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, f"the server rejected our request: test failed at {path!r}", "Invalid")
        else:
            raise ApiError.bad_request(f"unknown json patch operation {kind!r}")
    return doc
