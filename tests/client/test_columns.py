"""Columns as collectors declare them, as the client reads them: paths, cells, kinds and short names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from navigator.client.client import manager_address
from navigator.client.columns import (
    NONE,
    Kinds,
    PathError,
    age,
    human_duration,
    kind_from_dict,
    lookup,
    parse_path,
    ports,
    ready_count,
    text,
)


def test_paths_as_kubectl_writes_them() -> None:
    assert parse_path(".owner.name") == ("owner", "name")
    assert parse_path("{.containers[0]}") == ("containers", 0)
    assert parse_path("$.labels['app.kubernetes.io/name']") == ("labels", "app.kubernetes.io/name")
    assert parse_path(r".labels.app\.kubernetes\.io/name") == ("labels", "app.kubernetes.io/name")
    for bad in ("name", ".", ".a..b", ".a[x]", ""):
        with pytest.raises(PathError, match="is not a field path"):
            parse_path(bad)
    row = {"owner": {"name": "rs"}, "containers": ["a", "b"]}
    assert lookup(row, ("owner", "name")) == "rs" and lookup(row, ("containers", 1)) == "b"
    assert lookup(row, ("containers", 5)) is None and lookup(row, ("owner", "kind")) is None


def test_cells() -> None:
    assert [text(v) for v in (None, "", [], {}, True, False, 3, ["a", 1], {"b": 2, "a": "x"})] == [
        NONE, NONE, NONE, NONE, "true", "false", "3", "a,1", "a=x,b=2",
    ]  # fmt: skip
    assert [human_duration(s) for s in (5, 150, 700, 5 * 3600 + 1800, 30 * 3600, 5 * 86400 + 3 * 3600, 45 * 86400)] == [
        "5s", "2m30s", "11m", "5h30m", "30h", "5d3h", "45d",
    ]  # fmt: skip
    assert age("2026-12-03T00:00:00Z", datetime(2026, 12, 3, 0, 5, tzinfo=UTC)) == "5m" and age(None, datetime.now(UTC)) == NONE
    assert ports([{"port": 80, "target_port": 8080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]) == "80/TCP→8080,53/UDP"
    assert ports(None) == NONE and ready_count([{"ready": True}, {"ready": False}, "odd"]) == "1/2"


def test_kinds_resolve_names_short_names_and_singulars() -> None:
    kinds = Kinds.of([
        {"kind": "pods", "short_names": ["po"], "namespaced": True,
         "columns": [{"name": "ip", "path": ".pod_ip", "wide": True}, {"name": "bad", "path": "nope"}]},
        {"kind": "widgets", "short_names": ["wd"], "columns": []},
    ])  # fmt: skip
    assert [kinds.resolve(w) for w in ("pods", "po", "pod", "wd", "widget", "nope")] == [
        "pods", "pods", "pods", "widgets", "widgets", None,
    ]  # fmt: skip
    pods = kinds.get("pods")
    assert [c.name for c in pods.columns] == ["ip"] and pods.fields == ("pod_ip",)  # the bad path is left out
    # Nothing declared, or nothing described: the generic columns.
    assert [c.name for c in kinds.get("widgets").columns] == [c.name for c in kinds.get("gadgets").columns] == ["version"]
    newer = kind_from_dict({"kind": "x", "columns": [{"name": "n", "path": ".n", "type": "quantity"}]})
    assert newer.columns[0].type == "quantity"  # a type this client does not know shows as text


def test_manager_addresses_default_to_port_50051() -> None:
    assert manager_address("localhost") == "localhost:50051"
    assert manager_address("10.0.0.1:7000") == "10.0.0.1:7000"
    assert manager_address("[::1]") == "[::1]:50051" and manager_address("::1") == "[::1]:50051"
    assert manager_address("unix:/run/navigator.sock") == "unix:/run/navigator.sock"
    for bad in ("", ":80", "host:0", "host:http", "host:70000"):
        with pytest.raises(ValueError, match="invalid manager address"):
            manager_address(bad)
