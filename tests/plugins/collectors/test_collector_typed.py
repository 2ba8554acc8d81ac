"""The built-in collectors on the fast path make exactly the records their dict code made.

The reference is the dict code they replaced (``dict_reference``). The inputs: the
upstream Kubernetes fixtures, objects a simulated API server generated and churned,
and hand-written edge cases (explicit nulls, missing fields, loose values). Both
ways an object reaches a collector are checked: listed (its JSON decoded straight
into the collector's Struct) and watched (a dict converted with ``Collector.convert``).
"Exactly" means the same JSON bytes: ``True`` is not ``1`` and key order counts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import yaml
from navigator_plugins.collectors import endpointslices, pods, services

from navigator.config.edge import KubernetesSection
from navigator.edge.kube import KubeClient
from navigator.interfaces import Collector
from navigator.kubesim import KubeSim
from navigator.resource import Resource

from .dict_reference import REFERENCE

COLLECTORS: dict[str, Collector] = {
    "services": services.COLLECTOR,
    "endpointslices": endpointslices.COLLECTOR,
    "pods": pods.COLLECTOR,
}


def record(r: Resource) -> bytes:
    return orjson.dumps([r.kind, r.namespace, r.name, r.uid, r.resource_version, r.labels, r.data])


def listed(collector: Collector, obj: Any) -> Resource:
    """As a list page reads it: the object's JSON decoded into the item type."""
    assert collector.item_type is not None
    return collector.to_resource(msgspec.json.decode(orjson.dumps(obj), type=collector.item_type))


def assert_as_the_dict_code(kind: str, obj: Any) -> None:
    collector = COLLECTORS[kind]
    expected = record(REFERENCE[kind](obj))
    assert record(listed(collector, obj)) == expected, obj
    assert record(collector.convert(obj)) == expected, obj


def test_every_builtin_collector_is_on_the_fast_path() -> None:
    for collector in COLLECTORS.values():
        assert collector.item_type is not None
        assert collector.item_type.__struct_config__.gc is False  # kept out of the garbage collector


def test_upstream_fixtures_give_the_same_records(k8s_fixtures: Path) -> None:
    files = sorted(p for p in k8s_fixtures.iterdir() if p.suffix in (".json", ".yaml"))
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        obj = yaml.safe_load(text) if path.suffix == ".yaml" else orjson.loads(text)
        for kind in COLLECTORS:  # every kind on every object: a Node read as a pod must not differ either
            assert_as_the_dict_code(kind, obj)


def list_everything(client: KubeClient, collector: Collector, typed: bool) -> list[Any]:
    found: list[Any] = []
    token: str | None = None
    while True:
        page = client.list_page(
            collector.collection_path,
            limit=97,
            continue_token=token,
            item_type=collector.item_type if typed else None,
        )
        assert page.rejected == []
        found.extend(page.items)
        token = page.continue_token
        if not token:
            return found


def test_simulated_cluster_objects_give_the_same_records(kubesim_factory: Any) -> None:
    sim: KubeSim = kubesim_factory(pods=400, services=40, namespaces=4, seed=7)
    sim.churn(400)  # restarts, readiness flips, scaling: conditions and counts that differ from the defaults
    client = KubeClient.from_config(KubernetesSection(kubeconfig=sim.kubeconfig_path, context=sim.context))
    records: dict[str, list[Resource]] = {}
    for kind, collector in COLLECTORS.items():
        raw = list_everything(client, collector, typed=False)
        typed = list_everything(client, collector, typed=True)
        assert len(raw) == len(typed) == sim.count(kind) > 0
        records[kind] = []
        for obj, item in zip(raw, typed, strict=True):
            expected = record(REFERENCE[kind](obj))
            resource = collector.to_resource(item)
            assert record(resource) == expected
            assert record(collector.convert(obj)) == expected
            records[kind].append(resource)
    # The churned cluster really exercised the fields that are not defaults.
    pod_data = [r.data for r in records["pods"]]
    assert any(d["restarts"] > 0 for d in pod_data) and any(not d["ready"] for d in pod_data)
    assert any(d["ready"] for d in pod_data) and all(d["owner"] for d in pod_data)
    assert any(e["target_ref"] for r in records["endpointslices"] for e in r.data["endpoints"])


SAME_AS_DICT_CODE: list[tuple[str, Any]] = [
    # Empty and null everywhere the API may leave something out or send null.
    *[(kind, obj) for kind in COLLECTORS for obj in ({}, {"metadata": None, "spec": None, "status": None})],
    ("pods", {"metadata": {"name": "p", "uid": "u", "labels": None, "ownerReferences": None},
              "spec": {"containers": None, "nodeName": None},
              "status": {"conditions": None, "podIPs": None, "containerStatuses": None, "phase": None}}),
    ("services", {"spec": {"ports": None, "selector": None, "clusterIPs": None, "externalIPs": None,
                           "type": None}, "status": {"loadBalancer": None}}),
    ("services", {"status": {"loadBalancer": {"ingress": None}}}),
    ("endpointslices", {"metadata": {"name": "s", "labels": None}, "addressType": "IPv4", "endpoints": None,
                        "ports": None}),
    ("endpointslices", {"endpoints": [{"addresses": None, "conditions": None, "targetRef": None},
                                      {"addresses": ["10.0.0.1"], "conditions": {}},
                                      {"conditions": {"ready": None, "serving": None, "terminating": None}}]}),
    # Fields the collectors do not read, of every shape, are skipped.
    ("pods", {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "9",
                           "annotations": {"a": "x" * 1000}, "managedFields": [{"manager": "m", "fieldsV1": {}}],
                           "labels": {"app": "web"}},
              "spec": {"volumes": [{"name": "v", "projected": {"sources": []}}], "initContainers": [{"name": "i"}],
                       "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}, {"image": "nameless"}]},
              "status": {"qosClass": "Burstable", "hostIPs": [{"ip": "10.0.0.9"}], "podIPs": [{"ip": "a"}, {}]}}),
    # The first Ready condition decides; only controller: true owners count; odd restart counts are not counted.
    ("pods", {"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Ready", "status": "True"}],
                         "containerStatuses": [{"restartCount": 2}, {"restartCount": "7"}, {"restartCount": True},
                                               {"restartCount": 1.5}, {"restartCount": None}, {"name": "c"}]},
              "metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": False},
                                               {"name": "no-kind", "controller": True}]}}),
    ("pods", {"status": {"conditions": [{"type": "Ready"}, {"status": "True"}]},
              "metadata": {"ownerReferences": [{"kind": "Job", "name": "j", "controller": "true"}]}}),
    # Values of unexpected types where a value is merely carried: carried as the dict code carried them.
    ("pods", {"metadata": {"name": 5, "namespace": False, "uid": 0, "resourceVersion": 12,
                           "labels": {"a": 1, "b": None, "c": True, "d": [1], "é": "ü"}},
              "spec": {"nodeName": 3, "containers": [{"name": None}, {"name": 7}]},
              "status": {"phase": ["x"], "podIP": {"ip": 1}, "startTime": 1.5, "hostIP": None}}),
    ("services", {"metadata": {"labels": []},
                  "spec": {"type": "LoadBalancer", "clusterIP": "None", "clusterIPs": "10.0.0.1",
                           "selector": {"app": 1, "tier": None}, "externalIPs": {"a": 1},
                           "ports": [{"port": 80}, {"port": 81, "targetPort": None, "protocol": None, "name": None},
                                     {"port": "82", "targetPort": "http", "protocol": "UDP", "nodePort": 30000},
                                     {}]},
                  "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP",
                                                           "ports": [{"port": 80, "protocol": "TCP"}]},
                                                          "junk", None, {"hostname": "lb.example.com"}]}}}),
    ("endpointslices", {"metadata": {"labels": {"kubernetes.io/service-name": 5}},
                        "addressType": 4, "endpoints": [{"addresses": "10.0.0.1", "conditions": {"ready": False},
                                                         "hints": {"forZones": [{"name": "a"}]},
                                                         "targetRef": {"kind": "Pod", "resourceVersion": "1"},
                                                         "nodeName": 1, "zone": None},
                                                        {"conditions": {"ready": "yes", "serving": 0,
                                                                        "terminating": 1}}],
                        "ports": [{}, {"name": None, "port": "80", "protocol": None, "appProtocol": "http"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "obj"), SAME_AS_DICT_CODE)
def test_edge_cases_give_the_same_records(kind: str, obj: Any) -> None:
    assert_as_the_dict_code(kind, obj)


#: Objects whose shape is wrong where the collector needs an object or a list: the dict code made
#: an empty-ish record of them, the typed one refuses them (the edge skips and counts them).
WRONG_SHAPE: list[tuple[str, Any, str]] = [
    ("pods", {"metadata": "nope"}, "Expected `object | null`, got `str` - at `$.metadata`"),
    ("pods", {"spec": {"containers": "a,b"}}, "Expected `array | null`, got `str` - at `$.spec.containers`"),
    ("pods", {"metadata": {"ownerReferences": [None]}}, "got `null` - at `$.metadata.ownerReferences[0]`"),
    ("services", {"spec": {"ports": ["x"]}}, "Expected `object`, got `str` - at `$.spec.ports[0]`"),
    ("services", {"status": 7}, "at `$.status`"),
    ("endpointslices", {"endpoints": "x"}, "at `$.endpoints`"),
    ("endpointslices", {"endpoints": [{"targetRef": "pod/x"}]}, "at `$.endpoints[0].targetRef`"),
]


@pytest.mark.parametrize(("kind", "obj", "why"), WRONG_SHAPE)
def test_wrong_shapes_are_refused_with_the_path(kind: str, obj: Any, why: str) -> None:
    collector = COLLECTORS[kind]
    assert collector.item_type is not None
    with pytest.raises(msgspec.ValidationError, match=re.escape(why)):
        collector.convert(obj)
    with pytest.raises(msgspec.ValidationError, match=re.escape(why)):
        msgspec.json.decode(orjson.dumps(obj), type=collector.item_type)


def test_item_type_must_be_a_struct() -> None:
    with pytest.raises(
        TypeError, match=re.escape("item_type must be a msgspec.Struct class, got <class 'dict'>")
    ):
        Collector("widgets", "example.com/v1", "widgets", to_resource=lambda obj: obj, item_type=dict)  # type: ignore


def test_a_collector_without_item_type_gets_dicts() -> None:
    seen: list[Any] = []

    def to_resource(obj: dict[str, Any]) -> Resource:
        seen.append(obj)
        return services.COLLECTOR.convert(obj)

    plain = Collector("services", "v1", "services", to_resource)
    obj = {"metadata": {"name": "s", "uid": "u"}, "spec": {"ports": [{"port": 80}]}}
    assert record(plain.convert(obj)) == record(REFERENCE["services"](obj))
    assert seen == [obj] and seen[0] is obj
