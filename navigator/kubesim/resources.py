"""Resource types the simulator serves: the built-in kinds and any registered at run time."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import ApiError

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(eq=False)
class ResourceType:
    """One served REST resource; the unit of storage, discovery and faults."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: Custom resources are unstructured, so the real server keeps apiVersion/kind on list items.
    custom: bool = False
    #: Extra fields usable in fieldSelector besides metadata.name/metadata.namespace.
    field_paths: tuple[str, ...] = ()
    #: A status subresource makes main-resource writes keep the stored status, as the real server does.
    status_subresource: bool = False
    #: DELETE answers with the deleted object (pods, services, namespaces, custom resources) or,
    #: like the real registry for the rest, with a ``Status`` of ``Success``.
    return_deleted: bool = False
    field_index: dict[str, int] = field(init=False, repr=False)
    full_prefix: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()
        self.field_index = {p: i for i, p in enumerate(self.field_paths)}
        if self.custom:
            self.return_deleted = True
        self.full_prefix = b'{"kind":"' + self.kind.encode() + b'","apiVersion":"' + self.api_version.encode()
        self.full_prefix += b'",'

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def qualified(self) -> str:
        """``plural.group`` as in error messages (``endpointslices.discovery.k8s.io``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def full(self, body: bytes) -> bytes:
        """Single-object JSON (with kind/apiVersion) from the stored list-item bytes."""
        if self.custom:
            return body
        return self.full_prefix + body[1:]

    def details(self, name: str) -> dict[str, str]:
        d = {"name": name, "kind": self.plural}
        if self.group:
            d["group"] = self.group
        return d


POD_FIELDS = (
    "spec.nodeName",
    "status.phase",
    "status.podIP",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.nominatedNodeName",
)


def builtin_types() -> list[ResourceType]:
    return [
        ResourceType(
            "", "v1", "Pod", "pods", True, short_names=("po",), categories=("all",),
            field_paths=POD_FIELDS, status_subresource=True, return_deleted=True,
        ),
        ResourceType(
            "", "v1", "Service", "services", True, short_names=("svc",), categories=("all",),
            field_paths=("spec.clusterIP", "spec.type"), status_subresource=True, return_deleted=True,
        ),
        ResourceType(
            "", "v1", "Namespace", "namespaces", False, short_names=("ns",),
            field_paths=("status.phase",), status_subresource=True, return_deleted=True,
        ),
        ResourceType(
            "", "v1", "Node", "nodes", False, short_names=("no",),
            field_paths=("spec.unschedulable",), status_subresource=True,
        ),
        ResourceType("", "v1", "ConfigMap", "configmaps", True, short_names=("cm",)),
        ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    ]


class Registry:
    """Thread-safe lookup of resource types by GVR, kind or any name kubectl may use."""

    def __init__(self, types: Iterable[ResourceType] = ()) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str, str], ResourceType] = {}
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType) -> ResourceType:
        with self._lock:
            existing = self._by_key.get(rt.key)
            if existing is not None:
                if existing.kind != rt.kind or existing.namespaced != rt.namespaced:
                    raise ValueError(f"{rt.qualified}/{rt.version} is already registered as {existing.kind}")
                return existing
            self._by_key[rt.key] = rt
            return rt

    def __iter__(self) -> Iterator[ResourceType]:
        with self._lock:
            return iter(list(self._by_key.values()))

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_key.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self:
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def resolve(self, name: str) -> ResourceType:
        """Find a type by plural, singular, kind, short name or ``plural.group``."""
        low = name.lower()
        for rt in self:
            names = {rt.plural, rt.singular, rt.kind.lower(), *rt.short_names, rt.qualified}
            if low in names or name == rt.kind:
                return rt
        raise ApiError.not_found_type(name)

    def groups(self) -> dict[str, list[str]]:
        """group -> versions, in registration order."""
        out: dict[str, list[str]] = {}
        for rt in self:
            vs = out.setdefault(rt.group, [])
            if rt.version not in vs:
                vs.append(rt.version)
        return out
