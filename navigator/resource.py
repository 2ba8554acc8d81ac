"""The record every collector produces and every backend stores.

One shape for all kinds keeps storage, wire format and queries kind-agnostic:
`data` holds the kind-specific high-level fields (a pod's phase, a service's ports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(slots=True)
class Resource:
    """One Kubernetes object as Navigator keeps it."""

    #: The collector name that produced it, e.g. ``"pods"``.
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: dict[str, str] = field(default_factory=dict)
    #: Kind-specific fields; JSON-compatible values only.
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.kind, self.namespace, self.name, self.uid)


@dataclass(frozen=True, slots=True)
class ResourceKey:
    """Identifies a resource within one cluster (uid breaks ties across re-creations)."""

    kind: str
    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True, slots=True)
class StoredResource:
    """A resource as returned by a query: the record plus the cluster it belongs to."""

    cluster: str
    resource: Resource


class ChangeType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Change:
    """What an applied state changed for one resource; sinks receive these."""

    cluster: str
    kind: str
    namespace: str
    name: str
    uid: str
    type: ChangeType
    old_resource_version: str | None
    new_resource_version: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "type": str(self.type),
            "old_resource_version": self.old_resource_version,
            "new_resource_version": self.new_resource_version,
        }
