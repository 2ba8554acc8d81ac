"""Server-side defaulting and allocation for created objects, so API-created objects look real."""

from __future__ import annotations

import ipaddress
import random
import time
from typing import Any

import orjson

from .resources import ResourceType
from .store import Store

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")
NODE_PORT_RANGE = (30000, 32767)


def now_str(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def rand_suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choices(ALPHANUMS, k=n))


def default_tolerations() -> list[dict[str, Any]]:
    return [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
    ]


def _container_defaults(c: dict[str, Any]) -> None:
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = str(c.get("image", ""))
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    latest = image.endswith(":latest") or not tagged
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")


def default_pod(obj: dict[str, Any], reset_status: bool) -> None:
    spec = obj.setdefault("spec", {})
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            _container_defaults(c)
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            _container_defaults(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("tolerations", default_tolerations())
    spec.setdefault("priority", 0)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    if reset_status or "status" not in obj:
        obj["status"] = {"phase": "Pending", "qosClass": _qos(spec)}


def _qos(spec: dict[str, Any]) -> str:
    res = [c.get("resources") or {} for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all(r.get("limits") and r.get("requests", r.get("limits")) == r.get("limits") for r in res):
        return "Guaranteed"
    return "Burstable"


def default_namespace(obj: dict[str, Any]) -> None:
    name = obj["metadata"].get("name", "")
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


class ServiceAllocator:
    """Cluster IPs and node ports, seeded from the services already stored."""

    def __init__(self, store: Store, rt: ResourceType, rng: random.Random) -> None:
        self.store, self.rt, self.rng = store, rt, rng
        self._ips: set[str] | None = None
        self._ports: set[int] | None = None

    def _scan(self) -> None:
        ips: set[str] = set()
        ports: set[int] = set()
        b = self.store.bucket(self.rt)
        for e in list(b.entries.values()):
            ip = e.field(self.rt, "spec.clusterIP")
            if ip:
                ips.add(ip)
            if e.field(self.rt, "spec.type") in ("NodePort", "LoadBalancer"):
                spec = orjson.loads(e.body).get("spec") or {}
                ports.update(p.get("nodePort", 0) for p in spec.get("ports") or [])
        self._ips, self._ports = ips, ports

    def cluster_ip(self) -> str:
        if self._ips is None:
            self._scan()
        assert self._ips is not None
        base, size = int(SERVICE_CIDR.network_address), SERVICE_CIDR.num_addresses
        while True:
            ip = str(ipaddress.IPv4Address(base + self.rng.randrange(2, size - 1)))
            if ip not in self._ips:
                self._ips.add(ip)
                return ip

    def node_port(self) -> int:
        if self._ports is None:
            self._scan()
        assert self._ports is not None
        lo, hi = NODE_PORT_RANGE
        for _ in range(hi - lo + 1):
            p = self.rng.randint(lo, hi)
            if p not in self._ports:
                self._ports.add(p)
                return p
        raise RuntimeError("node port range exhausted")

    def note(self, obj: dict[str, Any]) -> None:
        """Record an object's allocations (for objects created around the allocator)."""
        if self._ips is None:
            return
        spec = obj.get("spec") or {}
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            self._ips.add(ip)
        if self._ports is not None:
            self._ports.update(p.get("nodePort", 0) for p in spec.get("ports") or [] if isinstance(p, dict))

    def default_service(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        stype = spec.setdefault("type", "ClusterIP")
        for p in spec.get("ports") or []:
            if not isinstance(p, dict):
                continue
            p.setdefault("protocol", "TCP")
            if stype != "ExternalName":
                p.setdefault("targetPort", p.get("port"))
            if stype in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
                p["nodePort"] = self.node_port()
        if stype != "ExternalName":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = self.cluster_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {"loadBalancer": {}})
        self.note(obj)
