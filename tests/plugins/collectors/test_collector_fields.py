"""Field extraction of the built-in collectors: exact keys, odd values carried through, never a crash.

Every object goes through both ways the edge reads it: listed (its JSON decoded into
the collector's Struct) and watched (a dict converted), which must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import yaml
from navigator_plugins.collectors import endpointslices, pods, services
from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.resource import Resource

SERVICE_KEYS = {"type", "cluster_ip", "cluster_ips", "selector", "ports", "external_ips", "load_balancer"}
SLICE_KEYS = {"service", "address_type", "endpoints", "ports"}
POD_KEYS = {
    "phase", "pod_ip", "pod_ips", "host_ip", "node_name", "ready", "owner", "restarts", "containers", "start_time",
}  # fmt: skip


def load(fixtures: Path, name: str) -> dict[str, Any]:
    text = (fixtures / name).read_text()
    data: dict[str, Any] = yaml.safe_load(text) if name.endswith(".yaml") else orjson.loads(text)
    return data


def read(module: Any, obj: Any) -> Resource:
    """The record the edge makes of ``obj``, listed or watched (checked to be the same)."""
    collector = module.COLLECTOR
    watched: Resource = collector.convert(obj)
    listed = collector.to_resource(msgspec.json.decode(orjson.dumps(obj), type=collector.item_type))
    assert (listed.kind, listed.namespace, listed.name, listed.uid, listed.resource_version) == (
        watched.kind, watched.namespace, watched.name, watched.uid, watched.resource_version,
    )  # fmt: skip
    assert orjson.dumps([listed.labels, listed.data]) == orjson.dumps([watched.labels, watched.data])
    return watched


def roundtrips(resource: Resource) -> None:
    """What a collector produces must survive both wire encodings unchanged."""
    for serializer in (JsonSerializer(), ProtobufSerializer()):
        assert serializer.decode(serializer.encode(resource.data)) == resource.data


@pytest.mark.parametrize("version", ["HEAD", "v1.30.0"])
def test_upstream_service_placeholders_are_carried_through(k8s_fixtures: Path, version: str) -> None:
    r = read(services, load(k8s_fixtures, f"{version}.core.v1.Service.json"))
    assert (r.kind, r.namespace, r.name, r.uid, r.resource_version) == (
        "services", "namespaceValue", "nameValue", "uidValue", "resourceVersionValue",
    )  # fmt: skip
    assert r.labels == {"labelsKey": "labelsValue"}
    assert set(r.data) == SERVICE_KEYS
    assert r.data["type"] == "typeValue"
    assert r.data["cluster_ip"] == "clusterIPValue"
    assert r.data["cluster_ips"] == ["clusterIPsValue"]
    assert r.data["selector"] == {"selectorKey": "selectorValue"}
    assert r.data["ports"] == [{"name": "nameValue", "port": 3, "target_port": "targetPortValue", "protocol": "protocolValue"}]
    assert r.data["external_ips"] == ["externalIPsValue"]
    assert r.data["load_balancer"][0]["ip"] == "ipValue"
    assert r.data["load_balancer"][0]["hostname"] == "hostnameValue"
    roundtrips(r)


@pytest.mark.parametrize("version", ["HEAD", "v1.30.0"])
def test_upstream_endpointslice_placeholders_are_carried_through(k8s_fixtures: Path, version: str) -> None:
    r = read(endpointslices, load(k8s_fixtures, f"{version}.discovery.k8s.io.v1.EndpointSlice.json"))
    assert r.kind == "endpointslices"
    assert set(r.data) == SLICE_KEYS
    # The upstream fixture has no kubernetes.io/service-name label.
    assert r.data["service"] is None
    assert r.data["address_type"] == "addressTypeValue"
    assert r.data["endpoints"] == [
        {
            "addresses": ["addressesValue"],
            "ready": True,
            "serving": True,
            "terminating": True,
            "node_name": "nodeNameValue",
            "zone": "zoneValue",
            "target_ref": {"kind": "kindValue", "namespace": "namespaceValue", "name": "nameValue", "uid": "uidValue"},
        }
    ]
    assert r.data["ports"] == [{"name": "nameValue", "port": 3, "protocol": "protocolValue"}]
    roundtrips(r)


@pytest.mark.parametrize("version", ["HEAD", "v1.30.0"])
def test_upstream_pod_placeholders_are_carried_through(k8s_fixtures: Path, version: str) -> None:
    r = read(pods, load(k8s_fixtures, f"{version}.core.v1.Pod.json"))
    assert r.kind == "pods"
    assert set(r.data) == POD_KEYS
    assert r.data["phase"] == "phaseValue"
    assert r.data["pod_ip"] == "podIPValue"
    assert r.data["pod_ips"] == ["ipValue"]
    assert r.data["host_ip"] == "hostIPValue"
    assert r.data["node_name"] == "nodeNameValue"
    assert r.data["ready"] is False  # the only condition is "typeValue", not Ready
    assert r.data["owner"] == {"kind": "kindValue", "name": "nameValue"}
    assert r.data["restarts"] == 5
    assert r.data["containers"] == ["nameValue"]
    assert r.data["start_time"] == "2007-01-01T01:01:01Z"
    roundtrips(r)


def test_realistic_pod(k8s_fixtures: Path) -> None:
    r = read(pods, load(k8s_fixtures, "realistic.apiserver-fieldmanager.core.v1.Pod.yaml"))
    assert (r.namespace, r.name, r.uid, r.resource_version) == ("default", "some-name", "", "")
    assert r.labels["app"] == "some-app"
    assert r.data == {
        "phase": "Running",
        "pod_ip": "10.0.0.1",
        "pod_ips": [],
        "host_ip": "10.0.0.1",
        "node_name": "node-name",
        "ready": True,
        "owner": {"kind": "ReplicaSet", "name": "some-name"},
        "restarts": 6,
        "containers": ["some-name"],
        "start_time": "2019-07-08T09:31:18Z",
    }


def test_realistic_service(k8s_fixtures: Path) -> None:
    r = read(services, load(k8s_fixtures, "realistic.kubectl-edit.core.v1.Service.response.json"))
    assert (r.namespace, r.name, r.resource_version) == ("edit-test", "svc1", "20715")
    assert r.data == {
        "type": "ClusterIP",
        "cluster_ip": "10.0.0.146",
        "cluster_ips": [],
        "selector": {"app": "svc1"},
        "ports": [{"name": "80", "port": 80, "target_port": 80, "protocol": "TCP"}],
        "external_ips": [],
        "load_balancer": [],
    }


ODD_OBJECTS: list[Any] = [
    {},
    {"metadata": None, "spec": None, "status": None},
    {"metadata": "nope", "spec": [], "status": 7},
    {"metadata": {"name": 5, "labels": {"a": 1, "b": None}}, "spec": {"ports": ["x", None, {"port": "80"}]}},
    {"metadata": {"labels": []}, "endpoints": "x", "ports": [1, 2], "addressType": None},
    {
        "metadata": {"ownerReferences": [None, {"controller": "yes"}]},
        "spec": {"containers": [None, {"image": "x"}]},
        "status": {"conditions": ["Ready"], "containerStatuses": [{"restartCount": "7"}, {"restartCount": True}],
                   "podIPs": ["10.0.0.1"]},
    },
    {"endpoints": [{"conditions": None, "targetRef": "pod/x", "addresses": "10.0.0.1"}]},
]


@pytest.mark.parametrize("obj", ODD_OBJECTS)
@pytest.mark.parametrize("module", [services, endpointslices, pods], ids=["services", "endpointslices", "pods"])
def test_missing_or_odd_fields_never_crash(module: Any, obj: Any) -> None:
    """A record, or, when an object or list is of the wrong shape, a ValidationError the edge skips."""
    try:
        r = read(module, obj)
    except msgspec.ValidationError:
        return
    assert isinstance(r.name, str) and isinstance(r.namespace, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in r.labels.items())
    roundtrips(r)


def test_defaults_the_api_server_would_apply() -> None:
    svc = read(services, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    assert svc.data["type"] == "ClusterIP"
    assert svc.data["ports"] == [{"name": "", "port": 80, "target_port": 80, "protocol": "TCP"}]
    eps = read(endpointslices, {"endpoints": [{"addresses": ["10.0.0.1"]}]})
    endpoint = eps.data["endpoints"][0]
    assert (endpoint["ready"], endpoint["serving"], endpoint["terminating"]) == (True, True, False)
    assert endpoint["target_ref"] is None
    pod = read(pods, {"metadata": {"name": "p"}})
    assert pod.data["ready"] is False and pod.data["owner"] is None and pod.data["restarts"] == 0


def test_only_the_controller_owner_counts() -> None:
    pod = read(
        pods,
        {
            "metadata": {
                "ownerReferences": [
                    {"kind": "ConfigMap", "name": "not-controller"},
                    {"kind": "StatefulSet", "name": "db", "controller": True},
                ]
            }
        },
    )
    assert pod.data["owner"] == {"kind": "StatefulSet", "name": "db"}
