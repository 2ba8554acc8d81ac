"""Query results as the plain JSON rows of DESIGN.md §3, one shape per kind.

Every resource row carries ``cluster``, ``namespace``, ``name``, ``uid`` and
``resource_version``; the kind-specific fields come from the collector's
``data`` (so rows are common fields + labels + data), with the documented keys
always present.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from navigator.structs import struct_to_dict
from navigator.v1 import query_pb2

#: Keys a row of each built-in kind always has (``None`` when the collector did not set them).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "services": ("type", "cluster_ip", "selector", "ports"),
    "endpointslices": ("service", "address_type", "endpoints", "ports"),
    "pods": ("phase", "pod_ip", "node_name", "ready"),
}


def rfc3339(stamp: Timestamp | None) -> str | None:
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToJsonString()


def cluster_row(info: query_pb2.ClusterInfo) -> dict[str, Any]:
    return {
        "cluster": info.cluster,
        "edge_id": info.edge_id,
        "status": info.status,
        "connected": info.connected,
        "last_sync": rfc3339(info.last_sync) if info.HasField("last_sync") else None,
        "last_seen": rfc3339(info.last_seen) if info.HasField("last_seen") else None,
        "sync_interval": info.sync_interval_seconds,
        "manager_id": info.manager_id,
        "metadata": dict(info.metadata),
        "counts": {kind: int(n) for kind, n in sorted(info.counts.items())},
        "errors": [
            {
                "kind": e.kind,
                "message": e.message,
                "http_status": e.http_status,
                "cached": e.cached,
                "since": rfc3339(e.since) if e.HasField("since") else None,
            }
            for e in info.errors
        ],
    }


def record_dict(record: query_pb2.ResourceRecord) -> dict[str, Any]:
    """A ResourceRecord as plain data: the ``resources`` row shape."""
    return {
        "kind": record.kind,
        "cluster": record.cluster,
        "namespace": record.namespace,
        "name": record.name,
        "uid": record.uid,
        "resource_version": record.resource_version,
        "labels": dict(record.labels),
        "data": orjson.loads(record.data_json) if record.data_json else struct_to_dict(record.data),
    }


def resource_row(record: dict[str, Any], view: str = "resources") -> dict[str, Any]:
    """The row for ``view`` (``resources`` or a kind view such as ``pods``) from a ``record_dict``."""
    if view == "resources":
        return record
    row = {
        "cluster": record["cluster"],
        "namespace": record["namespace"],
        "name": record["name"],
        "uid": record["uid"],
        "resource_version": record["resource_version"],
        "labels": record["labels"],
    }
    row.update(dict.fromkeys(KIND_FIELDS.get(view, ())))
    for key, value in record["data"].items():
        row.setdefault(key, value)
        if row[key] is None:
            row[key] = value
    return row


def _data(data_json: bytes) -> Any:
    return orjson.loads(data_json) if data_json else None


def change_row(record: query_pb2.ChangeRecord) -> dict[str, Any]:
    """One recorded change (``navigator query changes -o json``); ``data`` is ``None`` for DELETED."""
    return {
        "type": record.type,
        "cluster": record.cluster,
        "kind": record.kind,
        "namespace": record.namespace,
        "name": record.name,
        "uid": record.uid,
        "resource_version": record.resource_version,
        "old_resource_version": record.old_resource_version or None,
        "applied_at": rfc3339(record.applied_at) if record.HasField("applied_at") else None,
        "observed_at": rfc3339(record.observed_at) if record.HasField("observed_at") else None,
        "changed_fields": list(record.changed_fields),
        "labels": dict(record.labels),
        "data": _data(record.data_json),
    }


def diff_row(record: query_pb2.DiffRecord) -> dict[str, Any]:
    """One difference between two times (``navigator query diff -o json``)."""
    return {
        "type": record.type,
        "cluster": record.cluster,
        "kind": record.kind,
        "namespace": record.namespace,
        "name": record.name,
        "uid": record.uid,
        "resource_version": record.resource_version,
        "old_resource_version": record.old_resource_version or None,
        "changed_fields": list(record.changed_fields),
        "labels": dict(record.labels),
        "data": _data(record.data_json),
    }
