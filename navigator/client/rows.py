"""Query results as the plain JSON rows of DESIGN.md §3, one shape per kind.

Every resource row carries ``cluster``, ``namespace``, ``name``, ``uid`` and
``resource_version``; the kind-specific fields come from the collector's
``data`` in its order (so rows are common fields + labels + data). ``fields`` are
keys a row always has, added last as ``None`` when the data lacks them: the
fields the kind's declared columns show (``navigator.client.columns.Kind.fields``),
so they are there for every row of a kind, whatever its collector's version put
in the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from navigator.gc_pause import gc_paused
from navigator.structs import struct_to_dict
from navigator.v1 import query_pb2


def rfc3339(stamp: Timestamp | None) -> str | None:
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToJsonString()


def copy_age(fresh_as_of: str | None, now: datetime) -> float | None:
    """Seconds from ``fresh_as_of`` (RFC 3339, the edge's clock) to ``now``, to the millisecond."""
    if not fresh_as_of:
        return None
    return round((now - datetime.fromisoformat(fresh_as_of.replace("Z", "+00:00"))).total_seconds(), 3)


def cluster_row(info: query_pb2.ClusterInfo, now: datetime | None = None) -> dict[str, Any]:
    """The ``clusters`` row. ``age_seconds`` is the copy's age at ``now``, worked out by the caller's clock
    (the CLI passes the time asked about); ``None`` without ``now``, so that a row depends on the answer alone."""
    fresh_as_of = rfc3339(info.fresh_as_of) if info.HasField("fresh_as_of") else None
    return {
        "cluster": info.cluster,
        "edge_id": info.edge_id,
        "status": info.status,
        "status_reason": info.status_reason,
        "connected": info.connected,
        "last_sync": rfc3339(info.last_sync) if info.HasField("last_sync") else None,
        "last_seen": rfc3339(info.last_seen) if info.HasField("last_seen") else None,
        "fresh_as_of": fresh_as_of,
        "age_seconds": copy_age(fresh_as_of, now) if now is not None else None,
        "lag_seconds": info.lag_seconds or None,  # 0 on the wire: unknown
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


class RecordError(ValueError):
    """A record the manager sent cannot be turned into a row (its data is not a JSON object)."""


def _where(record: query_pb2.ResourceRecord) -> str:
    return f"{record.cluster}/{record.kind}/{record.namespace}/{record.name}"


#: The fields every resource row starts with, in this order.
COMMON_FIELDS = ("cluster", "namespace", "name", "uid", "resource_version", "labels")
_COMMON = frozenset(COMMON_FIELDS)


def labels_dict(labels: Mapping[str, str]) -> dict[str, str]:
    """A protobuf label map as a dict, keys sorted (a map's own order changes from one process to the next).

    Indexing stays in C; the map's ``items()`` would run Python code per entry.
    """
    return {key: labels[key] for key in sorted(labels)}


def record_labels(record: query_pb2.ResourceRecord) -> dict[str, str]:
    """The record's labels, keys sorted: from ``labels_json`` (already sorted by the manager), else the map
    (a manager older than ``labels_json``, or a request that did not ask for it)."""
    labels_json = record.labels_json
    if not labels_json:
        return labels_dict(record.labels)
    try:
        labels = orjson.loads(labels_json)
    except orjson.JSONDecodeError as exc:
        raise _bad_labels(record, exc) from None
    if not isinstance(labels, dict):
        raise _bad_labels(record, labels_json[:20])
    return labels


def _record_data(record: query_pb2.ResourceRecord) -> Any:
    data_json = record.data_json
    if not data_json:
        return struct_to_dict(record.data)  # a manager that does not send JSON
    try:
        return orjson.loads(data_json)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"the data of {_where(record)} is not JSON: {exc}") from None


def record_dict(record: query_pb2.ResourceRecord) -> dict[str, Any]:
    """A ResourceRecord as plain data: the ``resources`` row shape."""
    return {
        "kind": record.kind,
        "cluster": record.cluster,
        "namespace": record.namespace,
        "name": record.name,
        "uid": record.uid,
        "resource_version": record.resource_version,
        "labels": record_labels(record),
        "data": _record_data(record),
    }


def resource_row(record: dict[str, Any], view: str = "resources", fields: Sequence[str] = ()) -> dict[str, Any]:
    """The row for ``view`` (``resources`` or a kind view such as ``pods``) from a ``record_dict``.

    A kind row is the common fields, then ``data`` in its order, then those of
    ``fields`` the data lacks (``None``); data never replaces a common field that
    has a value.
    """
    if view == "resources":
        return record
    row = {key: record[key] for key in COMMON_FIELDS}
    data = record["data"]
    row.update(data)
    if not _COMMON.isdisjoint(data):
        row.update((key, record[key]) for key in COMMON_FIELDS if record[key] is not None)
    for key in fields:
        row.setdefault(key, None)
    return row


def view_rows(
    records: Iterable[query_pb2.ResourceRecord], view: str = "resources", fields: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The rows of ``view`` for a page of records: ``resource_row(record_dict(r), view, fields)`` for each, faster."""
    with gc_paused():
        if view == "resources":
            return [record_dict(record) for record in records]
        return _kind_rows(records, view, fields)


def _kind_rows(records: Iterable[query_pb2.ResourceRecord], view: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    wanted = frozenset(fields)
    rows = []
    for record in records:
        data = _record_data(record)
        if not isinstance(data, dict):
            raise RecordError(f"the data of {_where(record)} is not a JSON object")
        row: dict[str, Any] = {
            "cluster": record.cluster,
            "namespace": record.namespace,
            "name": record.name,
            "uid": record.uid,
            "resource_version": record.resource_version,
            "labels": record_labels(record),
        }
        row.update(data)
        if not _COMMON.isdisjoint(data):  # rare: the common fields win
            row = resource_row(record_dict(record), view, fields)
        elif not wanted <= row.keys():  # rare: the data lacks a declared field
            row.update((key, None) for key in fields if key not in row)
        rows.append(row)
    return rows


#: JSON-encode into a buffer (``offset=-1``: append); ``Raw`` values are written as they are.
_encode_into = msgspec.json.Encoder().encode_into
#: A JSON object's top-level fields, each value left as its raw JSON text (validated, not decoded).
_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
#: A JSON text checked (syntax only, nothing built) and kept as it is, for splicing: a record's ``labels_json``.
_checked_raw = msgspec.json.Decoder(msgspec.Raw).decode


def json_rows(
    records: Iterable[query_pb2.ResourceRecord], view: str = "resources", fields: Sequence[str] = ()
) -> bytearray:
    """The rows of ``view`` for a page of records as JSON text: one compact object per row, joined by ``,\\n``.

    It parses as ``view_rows`` gives them (same keys, same order), but the stored
    JSON of each object is never decoded: the ``resources`` view splices it whole as
    ``data``; a kind view splits it into its top-level fields, each value's text
    copied as it is. ``labels_json`` (sorted by the manager) is spliced as it came,
    which saves sorting and copying a protobuf map per record. The cyclic GC is
    paused meanwhile (rows are freed as they go).
    """
    out = bytearray()
    with gc_paused():
        if view == "resources":
            _resources_json(records, out)
        else:
            _kind_json(records, view, fields, out)
    del out[-2:]
    return out


def _bad_labels(record: query_pb2.ResourceRecord, reason: object) -> RecordError:
    return RecordError(f"the labels of {_where(record)} are not a JSON object: {reason}")


def _resources_json(records: Iterable[query_pb2.ResourceRecord], out: bytearray) -> None:
    encode_into = _encode_into
    raw = msgspec.Raw
    checked_raw = _checked_raw
    for record in records:
        labels_json = record.labels_json
        data_json = record.data_json
        if labels_json:
            if labels_json[0] != 0x7B:  # "{"
                raise _bad_labels(record, labels_json[:20])
            try:
                labels: Any = checked_raw(labels_json)
            except msgspec.DecodeError as exc:
                raise _bad_labels(record, exc) from None
        else:
            labels = labels_dict(record.labels)
        row = {
            "kind": record.kind,
            "cluster": record.cluster,
            "namespace": record.namespace,
            "name": record.name,
            "uid": record.uid,
            "resource_version": record.resource_version,
            "labels": labels,
            "data": raw(data_json) if data_json else struct_to_dict(record.data),
        }
        encode_into(row, out, -1)
        out += b",\n"


def _kind_json(
    records: Iterable[query_pb2.ResourceRecord], view: str, fields: Sequence[str], out: bytearray
) -> None:
    encode_into = _encode_into
    checked_raw = _checked_raw
    wanted = frozenset(fields)
    for record in records:
        labels_json = record.labels_json
        data_json = record.data_json
        try:
            data = _raw_fields(data_json) if data_json else struct_to_dict(record.data)
        except msgspec.DecodeError as exc:
            raise RecordError(f"the data of {_where(record)} is not a JSON object: {exc}") from None
        if labels_json:
            if labels_json[0] != 0x7B:  # "{"
                raise _bad_labels(record, labels_json[:20])
            try:
                labels: Any = checked_raw(labels_json)
            except msgspec.DecodeError as exc:
                raise _bad_labels(record, exc) from None
        else:
            labels = labels_dict(record.labels)
        row: dict[str, Any] = {
            "cluster": record.cluster,
            "namespace": record.namespace,
            "name": record.name,
            "uid": record.uid,
            "resource_version": record.resource_version,
            "labels": labels,
        }
        row.update(data)
        if not _COMMON.isdisjoint(data):  # rare: the common fields win
            row = resource_row(record_dict(record), view, fields)
        elif not wanted <= row.keys():  # rare: the data lacks a declared field
            row.update((key, None) for key in fields if key not in row)
        encode_into(row, out, -1)
        out += b",\n"


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
        "labels": labels_dict(record.labels),
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
        "labels": labels_dict(record.labels),
        "data": _data(record.data_json),
    }
