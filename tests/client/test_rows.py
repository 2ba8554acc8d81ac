"""Rows keep the kind's declared fields and turn protobuf's doubles back into the integers Kubernetes uses."""

from __future__ import annotations

import orjson
import pytest
from google.protobuf import struct_pb2

from navigator.client.rows import (
    RecordError,
    change_row,
    cluster_row,
    diff_row,
    json_rows,
    record_dict,
    resource_row,
    view_rows,
)
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


#: What the pods collector's declared columns show (``Kind.fields``).
POD_FIELDS = ("phase", "pod_ip", "node_name", "ready")


def test_kind_rows_always_carry_their_fields() -> None:
    record = query_pb2.ResourceRecord(
        kind="pods", cluster="c", namespace="n", name="p", uid="u", resource_version="9"
    )
    record.data.update({"phase": "Running", "restarts": 2})
    row = resource_row(record_dict(record), "pods", POD_FIELDS)
    assert row == {
        "cluster": "c", "namespace": "n", "name": "p", "uid": "u", "resource_version": "9", "labels": {},
        "phase": "Running", "restarts": 2, "pod_ip": None, "node_name": None, "ready": None,
    }  # fmt: skip
    # A kind nobody described: its data as it is.
    assert set(list(resource_row(record_dict(record), "crontabs"))[6:]) == {"phase", "restarts"}
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


def _records() -> list[query_pb2.ResourceRecord]:
    labels = {"tier": "web", "app": "shop", "a": "1"}
    return [
        query_pb2.ResourceRecord(
            kind="pods", cluster="c", namespace="n", name="p1", uid="u1", resource_version="1", labels=labels,
            data_json=b'{"pod_ips":["10.0.0.1"],"ready":true,"phase":"Running","cpu":1.0,"s":"\\u00e9\\n","n":null}',
        ),
        # The data names a common field: the record's own value wins, in its place.
        query_pb2.ResourceRecord(
            kind="pods", cluster="c", namespace="n", name="p2", uid="u2", resource_version="2",
            data_json=b'{"name":"other","extra":{"deep":[1,2,{"x":[]}]}}',
        ),
        # A manager that sends Struct data instead of JSON.
        query_pb2.ResourceRecord(kind="pods", cluster="c", namespace="n", name="p3", uid="u3", resource_version="3"),
    ]  # fmt: skip


def test_json_rows_parse_as_the_view_rows_keys_and_order_included() -> None:
    records = _records()
    records[2].data.update({"phase": "Pending", "restarts": 2})
    for view, fields in (("pods", POD_FIELDS), ("services", ("type", "cluster_ip")), ("resources", ())):
        text = bytes(json_rows(records, view, fields))
        assert text.count(b"\n") == len(records) - 1 and b",\n" in text
        parsed = orjson.loads(b"[" + text + b"]")
        expected = view_rows(records, view, fields)
        assert parsed == expected == [resource_row(record_dict(r), view, fields) for r in records]
        assert [list(row) for row in parsed] == [list(row) for row in expected]
    pods = view_rows(records, "pods", POD_FIELDS)
    assert list(pods[0]) == [
        "cluster", "namespace", "name", "uid", "resource_version", "labels",
        "pod_ips", "ready", "phase", "cpu", "s", "n", "pod_ip", "node_name",
    ]  # fmt: skip
    assert list(pods[0]["labels"]) == ["a", "app", "tier"]  # sorted: a protobuf map's order is not stable
    assert (pods[1]["name"], pods[1]["extra"], pods[2]["restarts"]) == ("p2", {"deep": [1, 2, {"x": []}]}, 2)
    # The stored JSON is spliced as it was stored, not re-encoded.
    assert b'"cpu":1.0,"s":"\\u00e9\\n"' in bytes(json_rows(records[:1], "pods", POD_FIELDS))
    assert bytes(json_rows([], "pods")) == b""


def test_a_record_whose_data_is_not_a_json_object_is_a_record_error() -> None:
    bad = query_pb2.ResourceRecord(kind="pods", cluster="c", namespace="n", name="p", data_json=b"[1, 2]")
    for make in (json_rows, view_rows):
        with pytest.raises(RecordError, match="the data of c/pods/n/p is not a JSON object"):
            make([bad], "pods")
    with pytest.raises(RecordError, match="is not JSON"):
        view_rows([query_pb2.ResourceRecord(kind="x", data_json=b"{oops")], "resources")


def _labels_as_json(records: list[query_pb2.ResourceRecord]) -> list[query_pb2.ResourceRecord]:
    """The same records as a manager answers ``labels_as_json``: the labels as sorted JSON, the map empty."""
    out = []
    for record in records:
        copy = query_pb2.ResourceRecord()
        copy.CopyFrom(record)
        copy.ClearField("labels")
        copy.labels_json = orjson.dumps(dict(record.labels), option=orjson.OPT_SORT_KEYS)
        out.append(copy)
    return out


def test_labels_json_and_the_label_map_give_the_same_rows_byte_for_byte() -> None:
    """A manager that sends ``labels_json`` and one older than it (the map) give the same output, every view."""
    records = _records()
    records[2].data.update({"phase": "Pending"})
    odd = {"z": "last", "é": "accent", "Z": "upper", 'q"uote': "back\\slash", "ctl": "\u0001\n", "": "empty",
           "emoji": "\U0001f600", "a/b.c-d_e": "v"}  # fmt: skip
    records.append(query_pb2.ResourceRecord(
        kind="pods", cluster="c", namespace="n", name="p4", uid="u4", resource_version="4", labels=odd,
        data_json=b'{"phase":"Running"}',
    ))  # fmt: skip
    new = _labels_as_json(records)
    assert all(not r.labels and r.labels_json for r in new)
    for view, fields in (("pods", POD_FIELDS), ("services", ("type",)), ("resources", ())):
        assert bytes(json_rows(new, view, fields)) == bytes(json_rows(records, view, fields)), view
        assert view_rows(new, view, fields) == view_rows(records, view, fields), view
        parsed = orjson.loads(b"[" + bytes(json_rows(new, view, fields)) + b"]")
        assert [list(row["labels"]) for row in parsed] == [sorted(r.labels) for r in records]
    assert [record_dict(r) for r in new] == [record_dict(r) for r in records]
    assert list(record_dict(new[3])["labels"]) == sorted(odd)
    # A record without labels: "{}" from the manager, an empty map from an older one.
    bare = query_pb2.ResourceRecord(kind="pods", name="p", data_json=b"{}", labels_json=b"{}")
    assert json_rows([bare], "pods") == json_rows([query_pb2.ResourceRecord(kind="pods", name="p", data_json=b"{}")],
                                                  "pods")  # fmt: skip


def test_labels_json_that_is_not_a_json_object_is_a_record_error() -> None:
    for bad in (b"[1]", b'{"a":', b'"x"'):
        record = query_pb2.ResourceRecord(
            kind="pods", cluster="c", namespace="n", name="p", data_json=b"{}", labels_json=bad
        )
        for view in ("pods", "resources"):
            for make in (json_rows, view_rows):
                with pytest.raises(RecordError, match="the labels of c/pods/n/p are not a JSON object"):
                    make([record], view)
