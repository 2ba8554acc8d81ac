"""EndpointSlice controller: keeps slices equal to the ready/not-ready IPs of selected pods.

The generator builds the initial slices with the same helpers; afterwards this controller
reacts to every pod and service write (API, churn or Python API) like kube-controller-manager.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson

from .defaults import now_str, rand_suffix
from .resources import Registry, ResourceType
from .store import Entry, Store

MANAGED_BY = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MAX_ENDPOINTS = 100
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def pod_endpoint(pod: dict[str, Any], zone: str | None, publish_not_ready: bool = False) -> dict[str, Any] | None:
    """The endpoint the real controller would publish for a pod, or None (no IP / terminal)."""
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") in ("Succeeded", "Failed"):
        return None
    meta = pod.get("metadata") or {}
    terminating = bool(meta.get("deletionTimestamp"))
    ready_cond = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    serving = ready_cond or publish_not_ready
    return make_endpoint(
        ip, serving and not terminating, serving, terminating, meta.get("namespace", ""),
        meta.get("name", ""), meta.get("uid", ""), (pod.get("spec") or {}).get("nodeName"), zone,
    )


def make_endpoint(
    ip: str, ready: bool, serving: bool, terminating: bool, ns: str, name: str, uid: str,
    node: str | None, zone: str | None,
) -> dict[str, Any]:
    ep: dict[str, Any] = {
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": ns, "name": name, "uid": uid},
    }
    if node:
        ep["nodeName"] = node
    if zone:
        ep["zone"] = zone
    return ep


def slice_ports(service: dict[str, Any], pod: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out = []
    named: dict[str, int] = {}
    if pod is not None:
        for c in (pod.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name"):
                    named[p["name"]] = p.get("containerPort", 0)
    for p in (service.get("spec") or {}).get("ports") or []:
        target = p.get("targetPort", p.get("port"))
        port = target if isinstance(target, int) else named.get(str(target), p.get("port"))
        sp: dict[str, Any] = {"name": p.get("name", ""), "protocol": p.get("protocol", "TCP"), "port": port}
        if p.get("appProtocol"):
            sp["appProtocol"] = p["appProtocol"]
        out.append(sp)
    return out


def slice_labels(service: dict[str, Any]) -> dict[str, str]:
    meta = service.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in (SERVICE_NAME, MANAGED_BY_LABEL)}
    labels[SERVICE_NAME] = meta.get("name", "")
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels["service.kubernetes.io/headless"] = ""
    return dict(sorted(labels.items()))


def make_slice(
    service: dict[str, Any],
    name: str,
    uid: str,
    ts: str,
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]],
) -> dict[str, Any]:
    meta = service.get("metadata") or {}
    svc_name = meta.get("name", "")
    return {
        "metadata": {
            "name": name,
            "generateName": svc_name + "-",
            "namespace": meta.get("namespace", ""),
            "uid": uid,
            "generation": 1,
            "creationTimestamp": ts,
            "labels": slice_labels(service),
            "annotations": {TRIGGER_TIME: ts},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": svc_name, "uid": meta.get("uid", ""),
                 "controller": True, "blockOwnerDeletion": True}
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def _selects(selector: dict[str, str], labels: Any) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class EndpointSliceController:
    """Store listener; runs synchronously inside the write that triggered it."""

    def __init__(self, store: Store, registry: Registry, rng: random.Random | None = None) -> None:
        self.store = store
        self.rng = rng or random.Random()
        pods = registry.get("", "v1", "pods")
        svcs = registry.get("", "v1", "services")
        eps = registry.get("discovery.k8s.io", "v1", "endpointslices")
        nodes = registry.get("", "v1", "nodes")
        assert pods and svcs and eps and nodes
        self.pods_rt, self.svc_rt, self.eps_rt, self.nodes_rt = pods, svcs, eps, nodes
        # namespace -> service name -> (selector, publishNotReadyAddresses)
        self._index: dict[str, dict[str, tuple[dict[str, str], bool]]] | None = None
        self.enabled = True

    def attach(self) -> None:
        self.store.listeners.append(self.on_write)

    def _services(self) -> dict[str, dict[str, tuple[dict[str, str], bool]]]:
        if self._index is None:
            idx: dict[str, dict[str, tuple[dict[str, str], bool]]] = {}
            for e in list(self.store.bucket(self.svc_rt).entries.values()):
                self._index_service(idx, e)
            self._index = idx
        return self._index

    @staticmethod
    def _index_service(idx: dict[str, dict[str, tuple[dict[str, str], bool]]], e: Entry) -> None:
        spec = orjson.loads(e.body).get("spec") or {}
        sel = spec.get("selector")
        if sel and spec.get("type") != "ExternalName":
            idx.setdefault(e.namespace, {})[e.name] = (sel, bool(spec.get("publishNotReadyAddresses")))

    def on_write(self, rt: ResourceType, old: Entry | None, new: Entry | None) -> None:
        if not self.enabled:
            return
        if rt is self.pods_rt:
            self._pod_changed(old, new)
        elif rt is self.svc_rt:
            self._service_changed(old, new)

    def _zone(self, node: str | None) -> str | None:
        if not node:
            return None
        e = self.store.get(self.nodes_rt, "", node)
        return e.labels.get("topology.kubernetes.io/zone") if e else None

    def _pod_changed(self, old: Entry | None, new: Entry | None) -> None:
        ref = new or old
        assert ref is not None
        services = self._services().get(ref.namespace)
        if not services:
            return
        pod: dict[str, Any] | None = None
        for svc, (sel, pnr) in list(services.items()):
            now_sel = new is not None and _selects(sel, new.labels)
            if not now_sel and not (old is not None and _selects(sel, old.labels)):
                continue
            desired = None
            if now_sel and new is not None:
                if pod is None:
                    pod = orjson.loads(new.body)
                    pod.setdefault("metadata", {})
                desired = pod_endpoint(pod, self._zone((pod.get("spec") or {}).get("nodeName")), pnr)
            self._apply(ref.namespace, svc, ref.name, desired, pod)

    def _slices(self, ns: str, svc: str) -> list[tuple[Entry, dict[str, Any]]]:
        page = self.store.page(self.eps_rt, ns)
        return [
            (e, orjson.loads(e.body))
            for e in page.entries
            if e.labels.get(SERVICE_NAME) == svc and e.labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        ]

    def _write(self, obj: dict[str, Any], changed: bool) -> None:
        if not changed:
            return
        meta = obj["metadata"]
        meta["generation"] = int(meta.get("generation") or 0) + 1
        meta.setdefault("annotations", {})[TRIGGER_TIME] = now_str()
        self.store.put(self.eps_rt, obj)

    def _new_slice(self, ns: str, svc: str, endpoints: list[dict[str, Any]], pod: dict[str, Any] | None) -> None:
        se = self.store.get(self.svc_rt, ns, svc)
        if se is None:
            return
        service = orjson.loads(se.body)
        for _ in range(100):
            name = f"{svc}-{rand_suffix(self.rng)}"
            if self.store.get(self.eps_rt, ns, name) is None:
                break
        uid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.store.put(self.eps_rt, make_slice(service, name, uid, now_str(), endpoints, slice_ports(service, pod)))

    def _apply(self, ns: str, svc: str, pod_name: str, desired: dict[str, Any] | None,
               pod: dict[str, Any] | None) -> None:
        slices = self._slices(ns, svc)
        for e, obj in slices:
            eps = obj.get("endpoints") or []
            for i, ep in enumerate(eps):
                if (ep.get("targetRef") or {}).get("name") != pod_name:
                    continue
                if desired is None:
                    del eps[i]
                    obj["endpoints"] = eps
                    if not eps and len(slices) > 1:
                        self.store.remove(self.eps_rt, e.key)
                    else:
                        self._write(obj, True)
                else:
                    self._write(obj, _set(eps, i, desired))
                return
        if desired is None:
            return
        for _e, obj in slices:
            eps = obj.get("endpoints") or []
            if len(eps) < MAX_ENDPOINTS:
                eps.append(desired)
                obj["endpoints"] = eps
                if not obj.get("ports") and pod is not None:
                    se = self.store.get(self.svc_rt, ns, svc)
                    if se is not None:
                        obj["ports"] = slice_ports(orjson.loads(se.body), pod)
                self._write(obj, True)
                return
        self._new_slice(ns, svc, [desired], pod)

    def _service_changed(self, old: Entry | None, new: Entry | None) -> None:
        idx = self._services()
        ref = new or old
        assert ref is not None
        idx.get(ref.namespace, {}).pop(ref.name, None)
        if new is None:
            for e, _obj in self._slices(ref.namespace, ref.name):
                self.store.remove(self.eps_rt, e.key)
            return
        self._index_service(idx, new)
        self.sync_service(ref.namespace, ref.name)

    def sync_service(self, ns: str, svc: str) -> None:
        """Recompute every slice of a service from scratch (selector, ports or type changed)."""
        se = self.store.get(self.svc_rt, ns, svc)
        entry = self._services().get(ns, {}).get(svc)
        existing = self._slices(ns, svc)
        if se is None or entry is None:
            for e, _obj in existing:
                self.store.remove(self.eps_rt, e.key)
            return
        sel, pnr = entry
        service = orjson.loads(se.body)
        desired: list[dict[str, Any]] = []
        first_pod: dict[str, Any] | None = None
        for pe in self.store.page(self.pods_rt, ns).entries:
            if not _selects(sel, pe.labels):
                continue
            pod = orjson.loads(pe.body)
            ep = pod_endpoint(pod, self._zone((pod.get("spec") or {}).get("nodeName")), pnr)
            if ep is not None:
                desired.append(ep)
                first_pod = first_pod or pod
        ports = slice_ports(service, first_pod)
        chunks = [desired[i : i + MAX_ENDPOINTS] for i in range(0, len(desired), MAX_ENDPOINTS)] or [[]]
        for i, chunk in enumerate(chunks):
            if i < len(existing):
                e, obj = existing[i]
                want_labels = slice_labels(service)
                changed = obj.get("endpoints") != chunk or obj.get("ports") != ports
                changed = changed or obj["metadata"].get("labels") != want_labels
                obj["endpoints"], obj["ports"] = chunk, ports
                obj["metadata"]["labels"] = want_labels
                self._write(obj, changed)
            else:
                self._new_slice(ns, svc, chunk, first_pod)
        for e, _obj in existing[len(chunks) :]:
            self.store.remove(self.eps_rt, e.key)


def _set(eps: list[dict[str, Any]], i: int, ep: dict[str, Any]) -> bool:
    if eps[i] == ep:
        return False
    eps[i] = ep
    return True
