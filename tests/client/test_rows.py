"""Rows keep the documented keys and turn protobuf's doubles back into the integers Kubernetes uses."""

from __future__ import annotations

from google.protobuf import struct_pb2

from navigator.client.rows import cluster_row, record_dict, resource_row
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
