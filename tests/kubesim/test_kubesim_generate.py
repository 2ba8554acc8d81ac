"""Generated clusters: determinism, consistency of Services/EndpointSlices/Pods, schema validity, churn."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client, watch

from navigator.kubesim import KubeSim

pytestmark = pytest.mark.timeout(90)

NOW = 1_780_000_000.0


def _selected(pods: list[dict[str, Any]], svc: dict[str, Any]) -> list[dict[str, Any]]:
    sel = svc["spec"].get("selector") or {}
    ns = svc["metadata"]["namespace"]
    return [p for p in pods if p["metadata"]["namespace"] == ns
            and all(p["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]


def assert_slices_consistent(sim: KubeSim) -> None:
    """Every Service's slices hold exactly the IPs of its selected, addressable pods."""
    pods = sim.list("pods")
    slices = sim.list("endpointslices")
    by_svc: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in slices:
        by_svc.setdefault((s["metadata"]["namespace"], s["metadata"]["labels"]["kubernetes.io/service-name"]),
                          []).append(s)
    for svc in sim.list("services"):
        key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
        mine = by_svc.pop(key, [])
        assert mine, f"no EndpointSlice for {key}"
        want = {}
        for p in _selected(pods, svc):
            st = p["status"]
            if st.get("podIP") and st.get("phase") not in ("Succeeded", "Failed"):
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
                term = bool(p["metadata"].get("deletionTimestamp"))
                want[st["podIP"]] = (ready and not term, p["metadata"]["uid"], p["spec"]["nodeName"])
        got = {}
        for s in mine:
            md = s["metadata"]
            assert md["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
            assert md["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
            assert md["ownerReferences"][0]["kind"] == "Service"
            assert len(s["endpoints"]) <= 100 and s["addressType"] == "IPv4"
            assert [p["port"] for p in s["ports"]] == [p["targetPort"] for p in svc["spec"]["ports"]]
            for ep in s["endpoints"]:
                (ip,) = ep["addresses"]
                assert ip not in got
                got[ip] = (ep["conditions"]["ready"], ep["targetRef"]["uid"], ep["nodeName"])
                assert ep["zone"].startswith("us-east-1")
        assert got == want, key
    assert not by_svc, f"orphan slices {list(by_svc)}"


def test_deterministic_per_seed() -> None:
    a = KubeSim(pods=300, services=30, namespaces=4, seed=42, now=NOW)
    b = KubeSim(pods=300, services=30, namespaces=4, seed=42, now=NOW)
    c = KubeSim(pods=300, services=30, namespaces=4, seed=43, now=NOW)
    for kind in ("pods", "services", "endpointslices", "nodes", "namespaces", "configmaps"):
        assert a.list(kind) == b.list(kind), kind
    assert [p["metadata"]["uid"] for p in a.list("pods")] != [p["metadata"]["uid"] for p in c.list("pods")]
    assert a.churn(25) == b.churn(25)
    assert [p["metadata"]["name"] for p in a.list("pods")] == [p["metadata"]["name"] for p in b.list("pods")]


def test_counts_and_uniqueness() -> None:
    sim = KubeSim(pods=2500, services=40, namespaces=5, seed=3)
    assert sim.count("pods") == 2500 and sim.count("services") == 40
    ns = [n["metadata"]["name"] for n in sim.list("namespaces")]
    assert len(ns) == 9 and {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(ns)
    pods = sim.list("pods")
    ips = [p["status"]["podIP"] for p in pods if "podIP" in p["status"]]
    assert len(ips) == len(set(ips)) > 2400
    phases = Counter(p["status"]["phase"] for p in pods)
    assert phases["Running"] > 2300 and phases["Pending"] > 5
    nodes = {n["metadata"]["name"]: n for n in sim.list("nodes")}
    for p in pods[:200]:
        assert p["spec"]["nodeName"] in nodes
        assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert p["metadata"]["labels"]["pod-template-hash"] in p["metadata"]["name"]
    cips = [s["spec"]["clusterIP"] for s in sim.list("services") if s["spec"]["clusterIP"] != "None"]
    assert len(cips) == len(set(cips))
    # big services are split into slices of at most 100 endpoints
    assert sim.count("endpointslices") > 40
    assert_slices_consistent(sim)


def test_generated_objects_validate_against_openapi() -> None:
    sim = KubeSim(pods=400, services=40, namespaces=3, seed=5)
    for kind in ("pods", "services", "endpointslices", "nodes", "namespaces", "configmaps"):
        objs = sim.list(kind)
        assert objs
        for o in objs[:: max(1, len(objs) // 25)]:
            kubernetes_validate.validate(o, "1.32.0", strict=True)


def test_churn_keeps_slices_consistent_and_is_visible_in_lists() -> None:
    sim = KubeSim(pods=400, services=12, namespaces=3, seed=9)
    before = {(p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in sim.list("pods")}
    done = sim.churn(150)
    assert len(done) == 150
    ops = Counter(d.split()[0] for d in done)
    assert {"restart", "scale_up", "scale_down"} <= set(ops)
    after = {(p["metadata"]["name"], p["metadata"]["resourceVersion"]) for p in sim.list("pods")}
    assert before != after
    assert sim.count("pods") == 400 + ops["scale_up"] - ops["scale_down"]
    restarted = [p for p in sim.list("pods")
                 if any(cs.get("lastState", {}).get("terminated") for cs in p["status"].get("containerStatuses", []))]
    assert restarted
    assert_slices_consistent(sim)


def test_controller_follows_api_writes(sim: KubeSim, core: client.CoreV1Api) -> None:
    svc = sim.list("services", "search")[0]
    app = svc["spec"]["selector"]["app"]
    template = next(p for p in sim.list("pods", "search") if p["metadata"]["labels"]["app"] == app)
    new = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "extra", "namespace": "search", "labels": {"app": app}},
           "spec": template["spec"], "status": {**template["status"], "podIP": "10.200.0.1",
                                                 "podIPs": [{"ip": "10.200.0.1"}]}}
    sim.create(new)
    assert_slices_consistent(sim)
    core.delete_namespaced_pod("extra", "search")
    core.patch_namespaced_service(svc["metadata"]["name"], "search", {"spec": {"selector": {"app": "nothing"}}})
    assert_slices_consistent(sim)
    core.create_namespaced_service("search", {"metadata": {"name": "again"}, "spec": {
        "selector": {"app": app}, "ports": [{"port": 1234, "targetPort": svc["spec"]["ports"][0]["targetPort"]}]}})
    assert_slices_consistent(sim)
    core.delete_namespaced_service("again", "search")
    assert_slices_consistent(sim)


def test_churn_visible_through_watch(sim: KubeSim, core: client.CoreV1Api) -> None:
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    seen: Counter[str] = Counter()

    def consume() -> None:
        for ev in watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=rv, timeout_seconds=2):
            seen[ev["type"]] += 1

    t = threading.Thread(target=consume)
    t.start()
    sim.start_churn(40)
    time.sleep(1.0)
    sim.stop_churn()
    t.join(10)
    assert sum(seen.values()) >= 15 and seen["MODIFIED"] > 0


def test_build_is_fast() -> None:
    t0 = time.perf_counter()
    sim = KubeSim(pods=20000, services=1400, namespaces=10, seed=1)
    elapsed = time.perf_counter() - t0
    assert sim.count("pods") == 20000
    assert elapsed < 15, elapsed
