"""Write semantics of the API server: validation, metadata, preconditions, patches, finalizers.

Shared by the HTTP server and the in-process Python API so both behave the same. ``raw``
writes (the Python API) may also change ``status`` through the main resource and auto-create
missing namespaces, which is what tests usually want.
"""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import orjson
import yaml

from .defaults import ServiceAllocator, default_namespace, default_pod, now_str, rand_suffix
from .errors import ApiError
from .patch import json_patch, merge_patch, strategic_merge_patch
from .resources import Registry, ResourceType
from .store import Entry, Store, encode_item, extract_fields, object_key

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


def _validate_name(rt: ResourceType, name: str) -> None:
    if rt.plural == "services":
        ok, what = bool(_LABEL_1035.match(name)) and len(name) <= 63, "a DNS-1035 label"
    elif rt.plural == "namespaces":
        ok, what = bool(_LABEL.match(name)) and len(name) <= 63, "a lowercase RFC 1123 label"
    else:
        ok, what = bool(_SUBDOMAIN.match(name)) and len(name) <= 253, "a lowercase RFC 1123 subdomain"
    if not ok:
        raise ApiError.invalid(
            rt.kind, name, "metadata.name",
            f'Invalid value: "{name}": {what} must consist of lower case alphanumeric characters, '
            "'-' or '.', and must start and end with an alphanumeric character",
            "FieldValueInvalid",
        )


def _spec_part(rt: ResourceType, obj: dict[str, Any]) -> Any:
    """What a generation bump watches: spec, or everything but metadata/status for custom kinds."""
    if rt.custom:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}
    return obj.get("spec")


class Api:
    """Create/replace/patch/delete with the real server's rules; all under the store lock."""

    def __init__(self, store: Store, registry: Registry, rng: random.Random | None = None) -> None:
        self.store = store
        self.registry = registry
        self.rng = rng or random.Random()
        svc = registry.get("", "v1", "services")
        self.services = ServiceAllocator(store, svc, self.rng) if svc else None

    @property
    def ns_type(self) -> ResourceType | None:
        return self.registry.get("", "v1", "namespaces")

    def get(self, rt: ResourceType, namespace: str, name: str) -> Entry:
        e = self.store.get(rt, namespace, name)
        if e is None:
            raise ApiError.not_found(rt.details(name))
        return e

    # -- create ------------------------------------------------------------------------------

    def _check_type(self, rt: ResourceType, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise ApiError.bad_request("the body of the request must be a JSON object")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != rt.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({av}) does not match the expected API version ({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise ApiError.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = meta = {}
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        return obj

    def _namespace_for(self, rt: ResourceType, namespace: str | None, meta: dict[str, Any], raw: bool) -> str:
        if not rt.namespaced:
            return ""
        body_ns = meta.get("namespace") or ""
        if namespace and body_ns and body_ns != namespace:
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or body_ns or ("default" if raw else "")
        if not ns:
            raise ApiError.bad_request("the namespace of the object must be set")
        meta["namespace"] = ns
        nst = self.ns_type
        if nst is not None and self.store.get(nst, "", ns) is None:
            if not raw:
                raise ApiError.not_found(nst.details(ns))
            self.create(nst, None, {"metadata": {"name": ns}}, raw=True)
        return ns

    def create(
        self, rt: ResourceType, namespace: str | None, obj: Any, *, dry_run: bool = False, raw: bool = False
    ) -> Entry:
        obj = self._check_type(rt, obj)
        meta = obj["metadata"]
        with self.store.lock:
            ns = self._namespace_for(rt, namespace, meta, raw)
            name = meta.get("name") or ""
            if not name:
                gen = meta.get("generateName") or ""
                if not gen:
                    raise ApiError.invalid(rt.kind, "", "metadata.name",
                                           "Required value: name or generateName is required")
                for _ in range(100):
                    name = gen + rand_suffix(self.rng)
                    if self.store.get(rt, ns, name) is None:
                        break
                meta["name"] = name
            _validate_name(rt, name)
            if self.store.get(rt, ns, name) is not None:
                raise ApiError.already_exists(rt.details(name))
            meta.pop("resourceVersion", None)
            meta["uid"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            meta["creationTimestamp"] = now_str()
            if rt.custom or "spec" in obj:
                meta["generation"] = 1
            self._defaults(rt, obj, reset_status=not raw)
            full = {"kind": rt.kind, "apiVersion": rt.api_version, **obj}
            if dry_run:
                return self._transient(rt, full)
            return self.store.put(rt, full)

    def _defaults(self, rt: ResourceType, obj: dict[str, Any], reset_status: bool) -> None:
        if rt.group or rt.custom:
            return
        if rt.plural == "pods":
            default_pod(obj, reset_status)
        elif rt.plural == "services" and self.services is not None:
            self.services.default_service(obj)
        elif rt.plural == "namespaces":
            default_namespace(obj)

    def _transient(self, rt: ResourceType, obj: dict[str, Any]) -> Entry:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        return Entry(object_key(rt, ns, name), ns, name, self.store.rv, dict(meta.get("labels") or {}),
                     extract_fields(rt, obj), encode_item(rt, obj))

    # -- update --------------------------------------------------------------------------------

    def replace(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        obj: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        raw: bool = False,
    ) -> Entry:
        obj = self._check_type(rt, obj)
        meta = obj["metadata"]
        body_name = meta.get("name") or name
        if body_name != name:
            raise ApiError.bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        with self.store.lock:
            old_entry = self.get(rt, namespace, name)
            old = old_entry.obj(rt)
            self._preconditions(rt, name, old, meta.get("uid"), meta.get("resourceVersion"))
            return self._update(rt, old_entry, old, obj, subresource=subresource, dry_run=dry_run, raw=raw)

    def _preconditions(
        self, rt: ResourceType, name: str, old: dict[str, Any], uid: Any, rv: Any
    ) -> None:
        ometa = old.get("metadata") or {}
        if uid and uid != ometa.get("uid"):
            raise ApiError.conflict(
                rt.details(name), f"Precondition failed: UID in precondition: {uid}, UID in object meta: {ometa.get('uid')}"
            )
        if rv and str(rv) != str(ometa.get("resourceVersion")):
            raise ApiError.conflict(
                rt.details(name), "the object has been modified; please apply your changes to the latest version "
                "and try again"
            )

    def _update(
        self,
        rt: ResourceType,
        old_entry: Entry,
        old: dict[str, Any],
        new: dict[str, Any],
        *,
        subresource: str | None,
        dry_run: bool,
        raw: bool,
    ) -> Entry:
        ometa = old.get("metadata") or {}
        if subresource == "status":
            merged = dict(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif subresource:
            raise ApiError.not_found_type(f"{rt.plural}/{subresource}")
        else:
            new = {"kind": rt.kind, "apiVersion": rt.api_version,
                   **{k: v for k, v in new.items() if k not in ("kind", "apiVersion")}}
            if rt.status_subresource and not raw:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
        meta = new["metadata"] = dict(new.get("metadata") or {})
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in ometa:
                meta[k] = ometa[k]
            else:
                meta.pop(k, None)
        if "generation" in ometa:
            gen = ometa["generation"]
            if isinstance(gen, int) and _spec_part(rt, new) != _spec_part(rt, old):
                gen += 1
            meta["generation"] = gen
        meta["resourceVersion"] = ometa.get("resourceVersion")
        if new == old:  # a no-op write keeps the resourceVersion and emits no event
            return old_entry
        if dry_run:
            return self._transient(rt, new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self.store.remove(rt, old_entry.key, new)
        if rt.plural == "services" and self.services is not None and not rt.group:
            self.services.note(new)
        return self.store.put(rt, new)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: bytes | Any,
        patch_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        raw: bool = False,
    ) -> Entry:
        kind = PATCH_TYPES.get(patch_type, patch_type)
        if kind not in ("merge", "strategic", "json", "apply"):
            raise ApiError(415, f"the server does not support patch type {patch_type!r}", "UnsupportedMediaType")
        if isinstance(body, bytes | str):
            try:
                patch = yaml.safe_load(body) if kind == "apply" else orjson.loads(body)
            except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
                raise ApiError.bad_request(f"error decoding patch: {exc}") from None
        else:
            patch = body
        with self.store.lock:
            old_entry = self.store.get(rt, namespace, name)
            if old_entry is None:
                if kind == "apply" and not subresource:
                    if isinstance(patch, dict):
                        patch.setdefault("metadata", {}).setdefault("name", name)
                    return self.create(rt, namespace or None, patch, dry_run=dry_run, raw=raw)
                raise ApiError.not_found(rt.details(name))
            old = old_entry.obj(rt)
            if kind == "json":
                new = json_patch(old, patch)
            else:
                if not isinstance(patch, dict):
                    raise ApiError.bad_request("a merge patch must be a JSON object")
                pmeta: dict[str, Any] = patch["metadata"] if isinstance(patch.get("metadata"), dict) else {}
                self._preconditions(rt, name, old, pmeta.get("uid"), pmeta.get("resourceVersion"))
                fn = merge_patch if kind == "merge" else strategic_merge_patch
                new = fn(old, patch)
            if not isinstance(new, dict):
                raise ApiError(422, "the patch produced something that is not an object", "Invalid")
            if not isinstance(new.get("metadata"), dict):
                new["metadata"] = {}
            return self._update(rt, old_entry, old, new, subresource=subresource, dry_run=dry_run, raw=raw)

    # -- delete --------------------------------------------------------------------------------

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """Returns the last state and whether it is gone (False while finalizers hold it)."""
        pre = (options or {}).get("preconditions") or {}
        with self.store.lock:
            entry = self.get(rt, namespace, name)
            obj = entry.obj(rt)
            self._preconditions(rt, name, obj, pre.get("uid"), pre.get("resourceVersion"))
            meta = obj["metadata"]
            if dry_run:
                return entry, not meta.get("finalizers")
            if meta.get("finalizers"):
                if not meta.get("deletionTimestamp"):
                    meta["deletionTimestamp"] = now_str()
                    meta["deletionGracePeriodSeconds"] = 0
                    return self.store.put(rt, obj), False
                return entry, False
            if rt.plural == "namespaces" and not rt.group:
                self._empty_namespace(name)
            return self.store.remove(rt, entry.key, obj), True

    def _empty_namespace(self, ns: str) -> None:
        for other in list(self.registry):
            if not other.namespaced:
                continue
            page = self.store.page(other, ns)
            for e in page.entries:
                self.store.remove(other, e.key)

    def delete_collection(self, rt: ResourceType, entries: list[Entry], *, dry_run: bool = False) -> list[Entry]:
        out = []
        with self.store.lock:
            for e in entries:
                try:
                    out.append(self.delete(rt, e.namespace, e.name, dry_run=dry_run)[0])
                except ApiError as exc:
                    if exc.code != 404:  # gone already, e.g. with its namespace
                        raise
        return out
