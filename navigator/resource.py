"""The record every collector produces and every backend stores.

One shape for all kinds keeps storage, wire format and queries kind-agnostic:
`data` holds the kind-specific high-level fields (a pod's phase, a service's ports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
class ObjectVersion:
    """What the core remembers of a stored object to tell whether a new copy changed it."""

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    #: Digest of the payload bytes and labels as last stored (``navigator.manager.reconciler.digest``).
    digest: str


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object to write, with the digest the reconciler computed for it."""

    resource: Resource
    digest: str


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
    """What an applied state changed for one resource: sinks receive these, history keeps them."""

    cluster: str
    kind: str
    namespace: str
    name: str
    uid: str
    type: ChangeType
    old_resource_version: str | None
    new_resource_version: str | None
    #: When the manager committed it.
    applied_at: datetime | None = None
    #: When the edge observed it (the state's timestamp).
    observed_at: datetime | None = None
    #: The object after the change; ``None`` for DELETED.
    resource: Resource | None = None
    #: For MODIFIED: the top-level fields of ``data`` that differ, and ``labels`` if they do.
    changed_fields: tuple[str, ...] = ()

    @property
    def resource_version(self) -> str:
        """The version this change is about: the new one, or the last one for DELETED."""
        return self.new_resource_version or self.old_resource_version or ""

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
            "applied_at": _rfc3339(self.applied_at),
            "observed_at": _rfc3339(self.observed_at),
            "changed_fields": list(self.changed_fields),
        }


def _rfc3339(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
