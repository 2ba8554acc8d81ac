"""Rows keep the documented keys and turn protobuf's doubles back into the integers Kubernetes uses."""

from __future__ import annotations

from google.protobuf import struct_pb2

from navigator.client.rows import change_row, cluster_row, diff_row, record_dict, resource_row
from navigator.structs import struct_to_dict
from navigator.v1 import query_pb2


def test_struct_numbers_come_back_as_ints_where_integral() -> None:
    message = struct_pb2.Struct()
    message.update({"port": 80, "ratio": 0.5, "nested": [{"n": 3}], "none": None, "ok": True})
    assert struct_to_dict(message) == {
        "port": 80,
        "ratio": 0.5,
        "nested": [{"n": 3}],
        "none": None,
        "ok": True,
    }
    assert isinstance(struct_to_dict(message)["port"], int)


def test_kind_rows_always_carry_their_keys() -> None:
    record = query_pb2.ResourceRecord(
        kind="pods", cluster="c", namespace="n", name="p", uid="u", resource_version="9"
    )
    record.data.update({"phase": "Running", "restarts": 2})
    row = resource_row(record_dict(record), "pods")
    assert row == {
        "cluster": "c", "namespace": "n", "name": "p", "uid": "u", "resource_version": "9", "labels": {},
        "phase": "Running", "pod_ip": None, "node_name": None, "ready": None, "restarts": 2,
    }  # fmt: skip
    assert set(resource_row(record_dict(record), "services")) >= {"type", "cluster_ip", "selector", "ports"}
    assert resource_row(record_dict(record))["kind"] == "pods"


def test_cluster_row_times_are_rfc3339_or_null() -> None:
    info = query_pb2.ClusterInfo(cluster="c", status="DISCONNECTED")
    info.last_sync.FromSeconds(1_700_000_000)
    row = cluster_row(info)
    assert row["last_sync"] == "2023-11-14T22:13:20Z"
    assert row["last_seen"] is None and row["errors"] == [] and row["counts"] == {}


def test_change_and_diff_rows() -> None:
    change = query_pb2.ChangeRecord(
        type="MODIFIED", cluster="c", kind="pods", namespace="n", name="p", uid="u", resource_version="2",
        old_resource_version="1", changed_fields=["labels", "phase"], labels={"app": "web"},
        data_json=b'{"phase":"Failed"}',
    )  # fmt: skip
    change.applied_at.FromSeconds(1_700_000_000)
    assert change_row(change) == {
        "type": "MODIFIED", "cluster": "c", "kind": "pods", "namespace": "n", "name": "p", "uid": "u",
        "resource_version": "2", "old_resource_version": "1", "applied_at": "2023-11-14T22:13:20Z",
        "observed_at": None, "changed_fields": ["labels", "phase"], "labels": {"app": "web"},
        "data": {"phase": "Failed"},
    }  # fmt: skip
    deleted = change_row(query_pb2.ChangeRecord(type="DELETED", resource_version="2"))
    assert (deleted["data"], deleted["labels"], deleted["old_resource_version"]) == (None, {}, None)
    row = diff_row(query_pb2.DiffRecord(type="ADDED", name="p", resource_version="3", data_json=b"{}"))
    assert (row["type"], row["old_resource_version"], row["data"], row["changed_fields"]) == ("ADDED", None, {}, [])
