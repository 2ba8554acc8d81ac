"""The official Python client against the simulator: lists, paging, selectors, writes, errors."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import orjson
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from navigator.kubesim import KubeSim

pytestmark = pytest.mark.timeout(60)


def _raw(sim: KubeSim, path: str, **headers: str) -> Any:
    req = urllib.request.Request(sim.url + path, headers=headers)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def test_list_all_namespaces_matches_store(sim: KubeSim, core: client.CoreV1Api) -> None:
    pods = core.list_pod_for_all_namespaces()
    assert len(pods.items) == 60 == sim.count("pods")
    assert pods.kind == "PodList" and pods.api_version == "v1"
    assert int(pods.metadata.resource_version) == int(sim.resource_version)
    names = [(p.metadata.namespace, p.metadata.name) for p in pods.items]
    assert names == sorted(names)  # etcd key order
    assert all(p.metadata.resource_version and p.metadata.uid for p in pods.items)


def test_list_items_are_shaped_like_the_real_server(sim: KubeSim, core: client.CoreV1Api) -> None:
    resp = core.list_namespaced_pod("payments", _preload_content=False)
    body = json.loads(resp.data)
    assert list(body) == ["kind", "apiVersion", "metadata", "items"]
    assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
    assert set(body["metadata"]) == {"resourceVersion"}
    # built-in typed lists omit kind/apiVersion on items, as the real server does
    assert body["items"] and all("kind" not in i and "apiVersion" not in i for i in body["items"])
    assert {i["metadata"]["namespace"] for i in body["items"]} == {"payments"}
    single = core.read_namespaced_pod(body["items"][0]["metadata"]["name"], "payments", _preload_content=False)
    obj = json.loads(single.data)
    assert obj["kind"] == "Pod" and obj["apiVersion"] == "v1"
    assert {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} == body["items"][0]


def test_paging_with_limit_and_continue(sim: KubeSim, core: client.CoreV1Api) -> None:
    seen: list[str] = []
    token = None
    first_rv = None
    pages = 0
    while True:
        page = core.list_pod_for_all_namespaces(limit=7, _continue=token)
        pages += 1
        first_rv = first_rv or page.metadata.resource_version
        assert page.metadata.resource_version == first_rv
        seen += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count == 60 - len(seen)
        assert len(page.items) == 7
    assert pages == 9 and len(seen) == len(set(seen)) == 60


def test_bogus_and_compacted_continue_tokens_are_410(sim: KubeSim, core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as bogus:
        core.list_pod_for_all_namespaces(limit=5, _continue="not-a-token")
    assert bogus.value.status == 410
    assert json.loads(bogus.value.body)["reason"] == "Expired"
    page = core.list_pod_for_all_namespaces(limit=5)
    sim.churn(3)
    sim.compact()
    with pytest.raises(ApiException) as old:
        core.list_pod_for_all_namespaces(limit=5, _continue=page.metadata._continue)
    status = json.loads(old.value.body)
    assert old.value.status == 410 and status["reason"] == "Expired" and status["code"] == 410
    assert status["kind"] == "Status" and status["status"] == "Failure"


def test_label_selectors(sim: KubeSim, core: client.CoreV1Api) -> None:
    pods = sim.list("pods")
    app = pods[0]["metadata"]["labels"]["app"]
    want = {p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("app") == app}
    for sel in (f"app={app}", f"app=={app}", f"app in ({app},nope)", f"app,app={app}"):
        got = {p.metadata.name for p in core.list_pod_for_all_namespaces(label_selector=sel).items}
        assert got == want, sel
    assert len(core.list_pod_for_all_namespaces(label_selector=f"app!={app}").items) == 60 - len(want)
    assert len(core.list_pod_for_all_namespaces(label_selector=f"app notin ({app})").items) == 60 - len(want)
    assert len(core.list_pod_for_all_namespaces(label_selector="pod-template-hash").items) == 60
    assert core.list_pod_for_all_namespaces(label_selector="!pod-template-hash").items == []
    with pytest.raises(ApiException) as bad:
        core.list_pod_for_all_namespaces(label_selector="app in (")
    assert bad.value.status == 400


def test_field_selectors(sim: KubeSim, core: client.CoreV1Api) -> None:
    pods = sim.list("pods")
    p0 = pods[0]
    got = core.list_pod_for_all_namespaces(field_selector=f"metadata.name={p0['metadata']['name']}").items
    assert [p.metadata.name for p in got] == [p0["metadata"]["name"]]
    ns = core.list_pod_for_all_namespaces(field_selector="metadata.namespace=search").items
    assert ns and {p.metadata.namespace for p in ns} == {"search"}
    running = core.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
    assert len(running) == sum(1 for p in pods if p["status"]["phase"] == "Running")
    node = p0["spec"]["nodeName"]
    on_node = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node},status.phase!=Failed").items
    assert {p.spec.node_name for p in on_node} == {node}
    with pytest.raises(ApiException) as bad:
        core.list_pod_for_all_namespaces(field_selector="spec.bogus=1")
    assert bad.value.status == 400 and "field label not supported" in bad.value.body


def test_selector_paging_stays_consistent(sim: KubeSim, core: client.CoreV1Api) -> None:
    seen, token = [], None
    while True:
        page = core.list_pod_for_all_namespaces(limit=4, field_selector="status.phase=Running", _continue=token)
        seen += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert sorted(seen) == sorted(p["metadata"]["name"] for p in sim.list("pods", field_selector="status.phase=Running"))


def test_create_get_patch_replace_delete(sim: KubeSim, core: client.CoreV1Api) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg", labels={"a": "1"}), data={"k": "v"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid and created.metadata.creation_timestamp
    rv1 = int(created.metadata.resource_version)
    assert rv1 == int(sim.resource_version)
    patched = core.patch_namespaced_config_map("cfg", "default", {"metadata": {"labels": {"b": "2"}}})
    assert patched.metadata.labels == {"a": "1", "b": "2"}
    assert int(patched.metadata.resource_version) > rv1
    patched.data["k"] = "v2"
    replaced = core.replace_namespaced_config_map("cfg", "default", patched)
    assert replaced.data == {"k": "v2"}
    # a stale resourceVersion conflicts
    patched.metadata.resource_version = str(rv1)
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("cfg", "default", patched)
    status = json.loads(conflict.value.body)
    assert conflict.value.status == 409 and status["reason"] == "Conflict"
    assert status["details"] == {"name": "cfg", "kind": "configmaps"}
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_config_map("default", body)
    assert dup.value.status == 409 and json.loads(dup.value.body)["reason"] == "AlreadyExists"
    core.delete_namespaced_config_map("cfg", "default")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("cfg", "default")
    assert json.loads(gone.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "cfg" not found', "reason": "NotFound",
        "details": {"name": "cfg", "kind": "configmaps"}, "code": 404,
    }


def test_json_patch_and_strategic_merge(sim: KubeSim, core: client.CoreV1Api) -> None:
    name = sim.list("pods", "search")[0]["metadata"]["name"]
    core.patch_namespaced_pod(name, "search", [{"op": "add", "path": "/metadata/labels/extra", "value": "yes"}])
    assert sim.get("pods", "search", name)["metadata"]["labels"]["extra"] == "yes"
    # strategic merge merges containers by name instead of replacing the list
    before = sim.get("pods", "search", name)["spec"]["containers"]
    cname = before[0]["name"]
    # the client sends dict patches as application/strategic-merge-patch+json
    core.patch_namespaced_pod(name, "search", {"spec": {"containers": [{"name": cname, "image": "example/new:2"}]}})
    after = sim.get("pods", "search", name)["spec"]["containers"]
    assert len(after) == len(before) and after[0]["image"] == "example/new:2"
    assert after[0]["ports"] == before[0]["ports"]


def test_validation_errors_are_422_and_400(sim: KubeSim, core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("default", {"metadata": {}})
    st = json.loads(missing.value.body)
    assert missing.value.status == 422 and st["reason"] == "Invalid"
    assert st["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as upper:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert upper.value.status == 422
    with pytest.raises(ApiException) as wrong_ns:
        core.create_namespaced_config_map("default", {"metadata": {"name": "x", "namespace": "search"}})
    assert wrong_ns.value.status == 400
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    assert no_ns.value.status == 404
    assert json.loads(no_ns.value.body)["message"] == 'namespaces "nope" not found'


def test_generate_name_and_defaults(sim: KubeSim, core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod("default", {
        "metadata": {"generateName": "web-"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    })
    assert pod.metadata.name.startswith("web-") and len(pod.metadata.name) == 9
    assert pod.status.phase == "Pending" and pod.spec.restart_policy == "Always"
    assert pod.spec.containers[0].image_pull_policy == "Always"
    svc = core.create_namespaced_service("default", {"metadata": {"name": "s1"},
                                                     "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}})
    assert svc.spec.cluster_ip.startswith("10.") and svc.spec.type == "ClusterIP"
    assert svc.spec.ports[0].target_port == 80


def test_status_subresource_and_dry_run(sim: KubeSim, core: client.CoreV1Api) -> None:
    p = sim.list("pods", "search")[0]
    name = p["metadata"]["name"]
    # main-resource writes keep the stored status, as with the real status subresource
    core.patch_namespaced_pod(name, "search", {"status": {"phase": "Failed"}, "metadata": {"labels": {"z": "1"}}})
    assert sim.get("pods", "search", name)["status"]["phase"] == p["status"]["phase"]
    core.patch_namespaced_pod_status(name, "search", {"status": {"phase": "Failed"}})
    assert sim.get("pods", "search", name)["status"]["phase"] == "Failed"
    rv = sim.resource_version
    core.delete_namespaced_pod(name, "search", dry_run="All")
    assert sim.get("pods", "search", name) is not None and sim.resource_version == rv


def test_delete_namespace_removes_its_objects(sim: KubeSim, core: client.CoreV1Api) -> None:
    assert sim.count("pods", "search") > 0
    core.delete_namespace("search")
    assert sim.count("pods", "search") == 0 and sim.count("services", "search") == 0
    assert sim.get("namespaces", None, "search") is None


def test_finalizers_hold_deletion(sim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    core.delete_namespaced_config_map("held", "default")
    held = core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("held", "default")
    assert gone.value.status == 404


def test_discovery_and_custom_resources(sim: KubeSim) -> None:
    assert _raw(sim, "/version")["major"] == "1"
    assert _raw(sim, "/api")["versions"] == ["v1"]
    v1 = {r["name"]: r for r in _raw(sim, "/api/v1")["resources"]}
    assert {"pods", "pods/status", "services", "namespaces", "nodes", "configmaps"} <= set(v1)
    assert v1["pods"]["namespaced"] and not v1["nodes"]["namespaced"] and v1["pods"]["shortNames"] == ["po"]
    groups = {g["name"] for g in _raw(sim, "/apis")["groups"]}
    assert "discovery.k8s.io" in groups
    sim.register_kind("example.com", "v1alpha1", "Widget", "widgets")
    assert [r["name"] for r in _raw(sim, "/apis/example.com/v1alpha1")["resources"]] == ["widgets"]
    with sim.api_client() as api:
        co = client.CustomObjectsApi(api)
        co.create_namespaced_custom_object("example.com", "v1alpha1", "default", "widgets", {
            "apiVersion": "example.com/v1alpha1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}})
        got = co.list_namespaced_custom_object("example.com", "v1alpha1", "default", "widgets")
        assert got["kind"] == "WidgetList"
        # unstructured list items keep apiVersion/kind
        assert got["items"][0]["kind"] == "Widget" and got["items"][0]["spec"] == {"size": 3}
        assert got["items"][0]["metadata"]["generation"] == 1
        co.patch_namespaced_custom_object("example.com", "v1alpha1", "default", "widgets", "w1", {"spec": {"size": 4}})
        assert sim.get("widgets", "default", "w1")["metadata"]["generation"] == 2
    with pytest.raises(urllib.error.HTTPError) as e:
        _raw(sim, "/openapi/v2")
    assert e.value.code == 404


def test_table_output(sim: KubeSim) -> None:
    t = _raw(sim, "/api/v1/pods?limit=5", Accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in t["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert len(t["rows"]) == 5 and t["metadata"]["continue"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_python_api_roundtrip(sim: KubeSim) -> None:
    obj = sim.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "fresh"},
                      "data": {"a": "b"}})
    assert obj["metadata"]["uid"] and sim.get("namespaces", None, "fresh") is not None
    obj["data"]["a"] = "c"
    assert sim.update(obj)["data"] == {"a": "c"}
    assert sim.patch("cm", "fresh", "m", {"data": {"x": "y"}})["data"] == {"a": "c", "x": "y"}
    assert [c["metadata"]["name"] for c in sim.list("configmaps", "fresh")] == ["m"]
    sim.delete("configmaps", "fresh", "m")
    assert sim.get("configmaps", "fresh", "m") is None


def test_keep_alive_many_requests_fast(sim: KubeSim, core: client.CoreV1Api) -> None:
    t0 = time.perf_counter()
    for _ in range(100):
        core.read_namespace("default")
    assert time.perf_counter() - t0 < 5  # no Nagle/delayed-ACK stalls on keep-alive connections
    assert orjson.loads(core.read_namespace("default", _preload_content=False).data)["kind"] == "Namespace"


def test_delete_responses_match_the_real_registry(sim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "c1"}})
    st = json.loads(core.delete_namespaced_config_map("c1", "default", _preload_content=False).data)
    assert st["kind"] == "Status" and st["status"] == "Success"
    assert st["details"]["name"] == "c1" and st["details"]["kind"] == "configmaps" and st["details"]["uid"]
    name = sim.list("pods", "search")[0]["metadata"]["name"]
    pod = core.delete_namespaced_pod(name, "search")  # pods answer with the deleted object
    assert pod.kind == "Pod" and pod.metadata.name == name
    core.create_namespaced_config_map("default", {"metadata": {"name": "c2", "finalizers": ["a/b"]}})
    resp = core.delete_namespaced_config_map("c2", "default", _preload_content=False)
    assert resp.status == 202


def test_delete_collection(sim: KubeSim, core: client.CoreV1Api) -> None:
    app = sim.list("pods", "search")[0]["metadata"]["labels"]["app"]
    n = len(sim.list("pods", "search", label_selector=f"app={app}"))
    resp = json.loads(core.delete_collection_namespaced_pod("search", label_selector=f"app={app}",
                                                            _preload_content=False).data)
    assert resp["kind"] == "PodList" and len(resp["items"]) == n
    assert sim.list("pods", "search", label_selector=f"app={app}") == []
