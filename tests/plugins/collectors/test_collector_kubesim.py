"""The built-in collectors on objects a (simulated) API server generated, read by the official client."""

from __future__ import annotations

import asyncio
from typing import Any

from navigator.config.edge import EdgeConfig
from navigator.edge.once import collect_once
from navigator.kubesim import KubeSim


def config(sim: KubeSim, **kubernetes: Any) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "cluster": {"id": "sim"},
            "kubernetes": {"kubeconfig": str(sim.kubeconfig_path), "context": sim.context, **kubernetes},
        }
    )


def test_every_object_is_collected_with_its_fields(kubesim: KubeSim) -> None:
    report = asyncio.run(collect_once(config(kubesim, page_size=7)))
    assert report.exit_code == 0
    for kind in ("services", "endpointslices", "pods"):
        raw = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in kubesim.list(kind)}
        got = {(r.namespace, r.name): r for r in report.results[kind].resources}
        assert got.keys() == raw.keys()
        for key, resource in got.items():
            meta = raw[key]["metadata"]
            assert resource.uid == meta["uid"]
            assert resource.resource_version == meta["resourceVersion"]
            assert resource.labels == meta.get("labels", {})

    for pod in report.results["pods"].resources:
        raw = kubesim.get("pods", pod.namespace, pod.name)
        assert raw is not None
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in raw["status"].get("conditions", []))
        assert pod.data["ready"] is ready
        assert pod.data["phase"] == raw["status"]["phase"]
        assert pod.data["node_name"] == raw["spec"].get("nodeName")
        assert pod.data["containers"] == [c["name"] for c in raw["spec"]["containers"]]
        assert pod.data["owner"]["kind"] == "ReplicaSet"

    slices = report.results["endpointslices"].resources
    service_names = {(s.namespace, s.name) for s in report.results["services"].resources}
    assert slices and all((s.namespace, s.data["service"]) in service_names for s in slices)
    pod_uids = {p.uid for p in report.results["pods"].resources}
    targets = [e["target_ref"] for s in slices for e in s.data["endpoints"] if e["target_ref"]]
    assert targets and all(t["kind"] == "Pod" and t["uid"] in pod_uids for t in targets)

    for svc in report.results["services"].resources:
        raw = kubesim.get("services", svc.namespace, svc.name)
        assert raw is not None
        assert svc.data["cluster_ip"] == raw["spec"].get("clusterIP")
        assert svc.data["selector"] == raw["spec"].get("selector", {})
        assert [p["port"] for p in svc.data["ports"]] == [p["port"] for p in raw["spec"]["ports"]]
