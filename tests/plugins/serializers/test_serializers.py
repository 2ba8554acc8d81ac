"""Both built-in payload encodings round-trip collector data and refuse garbage clearly."""

from __future__ import annotations

from typing import Any

import pytest

from navigator.interfaces import Serializer
from navigator.plugin_manager import load_plugins, serializers

POD_DATA: dict[str, Any] = {
    "phase": "Running",
    "pod_ip": "10.0.0.7",
    "ready": True,
    "restarts": 3,
    "owner": {"kind": "ReplicaSet", "name": "web-5d8f"},
    "containers": ["app", "sidecar"],
    "start_time": None,
}
SERVICE_DATA: dict[str, Any] = {
    "type": "ClusterIP",
    "ports": [{"name": "http", "port": 80, "target_port": "http", "protocol": "TCP"}],
    "selector": {"app": "web"},
    "ratio": 0.25,
}


@pytest.fixture(params=["protobuf", "json"])
def serializer(request: pytest.FixtureRequest) -> Serializer:
    return serializers(load_plugins({"serializers": [request.param]}))[request.param]


@pytest.mark.parametrize("data", [POD_DATA, SERVICE_DATA, {}])
def test_round_trip_keeps_types(serializer: Serializer, data: dict[str, Any]) -> None:
    decoded = serializer.decode(serializer.encode(data))
    assert decoded == data
    if "restarts" in data:
        assert isinstance(decoded["restarts"], int)


def test_garbage_is_a_value_error(serializer: Serializer) -> None:
    with pytest.raises(ValueError, match="payload"):
        serializer.decode(b"\xff\x00not-a-payload\x01")


def test_both_encodings_decode_to_the_same_data() -> None:
    found = serializers(load_plugins({"serializers": ["protobuf", "json"]}))
    assert found["json"].decode(found["json"].encode(POD_DATA)) == found["protobuf"].decode(
        found["protobuf"].encode(POD_DATA)
    )
