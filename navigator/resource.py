"""The record every collector produces and every backend stores.

One shape for all kinds keeps storage, wire format and queries kind-agnostic:
`data` holds the kind-specific high-level fields (a pod's phase, a service's ports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, overload

import orjson


class _Data:
    """``Resource.data``, decoded from the stored JSON bytes only when someone reads it.

    The manager carries each object's data as JSON bytes from the wire to the row
    and back out to queries; most objects are never looked at as a dict.
    """

    @overload
    def __get__(self, obj: None, _objtype: type | None = None) -> None: ...
    @overload
    def __get__(self, obj: Resource, _objtype: type | None = None) -> dict[str, Any]: ...

    def __get__(self, obj: Resource | None, _objtype: type | None = None) -> dict[str, Any] | None:
        if obj is None:
            return None  # the dataclass default: no data
        state = obj.__dict__
        data: dict[str, Any] | None = state.get("_data")
        if data is None:
            encoded = state.get("_json")
            data = orjson.loads(encoded) if encoded else {}
            state["_data"] = data
        return data

    def __set__(self, obj: Resource, value: dict[str, Any] | None) -> None:
        obj.__dict__["_data"] = value
        obj.__dict__["_json"] = None


@dataclass
class Resource:
    """One Kubernetes object as Navigator keeps it.

    ``data`` and ``json`` are two views of the same fields: whichever was given is
    the source, the other is made on first use and kept. Treat ``data`` as
    immutable once ``json`` has been read (assign a new dict instead).
    """

    #: The collector name that produced it, e.g. ``"pods"``.
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: dict[str, str] = field(default_factory=dict)
    #: Kind-specific fields; JSON-compatible values only.
    data: _Data = _Data()

    @classmethod
    def from_json(
        cls, kind: str, namespace: str, name: str, uid: str, resource_version: str, labels: dict[str, str],
        payload: bytes,
    ) -> Resource:  # fmt: skip
        """A resource whose data is the JSON object ``payload`` (trusted: validate it first)."""
        resource = cls.__new__(cls)
        resource.__dict__.update(
            kind=kind, namespace=namespace, name=name, uid=uid, resource_version=resource_version, labels=labels,
            _data=None, _json=payload,
        )  # fmt: skip
        return resource

    @property
    def json(self) -> bytes:
        """``data`` as compact JSON bytes: what storage keeps and queries send. Raises TypeError if not JSON."""
        encoded: bytes | None = self.__dict__.get("_json")
        if encoded is None:
            encoded = self.__dict__["_json"] = orjson.dumps(self.data)
        return encoded

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
    #: When the edge observed it: the object's own observation time (protocol 2 deltas), else the state's timestamp.
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
