"""Deterministic, realistic clusters: nodes, namespaces, Deployment pods, Services, EndpointSlices.

Everything random comes from one ``random.Random(seed)`` so names, uids and IPs repeat for a
seed; timestamps are relative to ``now``. Objects are serialised as they are built and only
bytes are kept, which is what makes 150k pods take seconds and modest memory.
"""

from __future__ import annotations

import gc
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from .defaults import ALPHANUMS, NODE_PORT_RANGE, SERVICE_CIDR, default_tolerations, now_str
from .endpoints import MAX_ENDPOINTS, make_endpoint, make_slice, slice_ports
from .resources import Registry, ResourceType
from .store import Entry, Store, dumps, extract_fields

SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
POD_CIDR_BASE = (10 << 24) | (128 << 16)  # 10.128.0.0/9
POD_CIDR_BITS = 23
NODE_IP_BASE = (172 << 24) | (16 << 16)  # 172.16.0.0/12

TEAMS = (
    "payments", "search", "checkout", "identity", "catalog", "shipping", "ads", "analytics", "platform",
    "billing", "messaging", "media", "growth", "risk", "support", "data", "infra", "mobile", "web", "ml",
)
APPS = (
    "api", "web", "worker", "gateway", "auth", "cart", "orders", "ledger", "inventory", "pricing", "mailer",
    "notifier", "indexer", "crawler", "scheduler", "reports", "profile", "session", "cache", "frontend",
    "backend", "ingest", "export", "recommender", "tracker", "uploader", "resizer", "router", "metrics",
)
ROLES = ("svc", "consumer", "sync", "proxy", "jobs", "edge", "core", "store", "feed", "agent")
PORT_SETS: tuple[tuple[tuple[str, int, int], ...], ...] = (
    (("http", 80, 8080),),
    (("http", 80, 8080), ("metrics", 9090, 9090)),
    (("grpc", 9000, 9000),),
    (("https", 443, 8443),),
    (("http", 8080, 8080), ("grpc", 9090, 9090)),
    (("tcp", 6379, 6379),),
)
ZONE_SUFFIXES = ("a", "b", "c")


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def _ip(n: int) -> str:
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@dataclass
class ClusterSpec:
    pods: int = 0
    services: int = 0
    namespaces: int = 1
    nodes: int | None = None
    seed: int = 0
    name: str = "sim"
    now: float | None = None
    region: str = "us-east-1"


@dataclass
class Generated:
    """What was built, for tests that want to cross-check without listing."""

    namespaces: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class _Gen:
    def __init__(self, spec: ClusterSpec, store: Store, registry: Registry) -> None:
        self.spec = spec
        self.store = store
        self.rng = random.Random(spec.seed)
        self.now = spec.now if spec.now is not None else time.time()
        self.rts: dict[str, ResourceType] = {}
        for plural, group in (("pods", ""), ("services", ""), ("namespaces", ""), ("nodes", ""),
                              ("configmaps", ""), ("endpointslices", "discovery.k8s.io")):
            rt = registry.get(group, "v1", plural)
            assert rt is not None
            self.rts[plural] = rt
        self.out = Generated()
        self._ts_cache: dict[int, str] = {}  # day -> 'YYYY-MM-DDT'
        self._node_ips: list[str] = []
        self._node_objs: list[tuple[dict[str, Any], int]] = []

    def uid(self) -> str:
        """A version-4 UUID string, like ``str(uuid.UUID(int=..., version=4))`` but 4x faster."""
        x = (self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET
        h = f"{x:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def suffix(self, n: int) -> str:
        x = self.rng.getrandbits(5 * n)
        return "".join([ALPHANUMS[((x >> (5 * i)) & 31) % 27] for i in range(n)])

    def ts(self, age_seconds: float) -> str:
        t = int(self.now - age_seconds)
        day, rem = divmod(t, 86400)
        prefix = self._ts_cache.get(day)
        if prefix is None:
            prefix = now_str(day * 86400)[:11]
            self._ts_cache[day] = prefix
        return f"{prefix}{rem // 3600:02d}:{rem % 3600 // 60:02d}:{rem % 60:02d}Z"

    def entry(self, rt: ResourceType, obj: dict[str, Any], rv: int) -> Entry:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        name = meta["name"]
        return Entry(f"{ns}/{name}" if rt.namespaced else name, ns, name, rv, meta.get("labels") or {},
                     extract_fields(rt, obj), dumps(obj))

    # -- build -------------------------------------------------------------------------------

    def run(self) -> Generated:
        spec = self.spec
        n_pods, n_svcs = max(0, spec.pods), max(0, spec.services)
        workloads = self.namespaces(max(0, spec.namespaces))
        nodes = self.nodes(n_pods)
        self.workloads(n_pods, n_svcs, workloads or ["default"], nodes)
        return self.out

    def namespaces(self, k: int) -> list[str]:
        rt = self.rts["namespaces"]
        names: list[str] = []
        for i in range(k):
            base = TEAMS[i % len(TEAMS)]
            names.append(base if i < len(TEAMS) else f"{base}-{i // len(TEAMS) + 1}")
        all_ns = sorted(set(SYSTEM_NAMESPACES) | set(names))
        rv = self.store.reserve(len(all_ns) * 2)
        ents, cms = [], []
        cm_rt = self.rts["configmaps"]
        for i, ns in enumerate(all_ns):
            age = 400 * 86400 if ns in SYSTEM_NAMESPACES else self.rng.uniform(30, 300) * 86400
            ts = self.ts(age)
            obj = {
                "metadata": {"name": ns, "uid": self.uid(), "resourceVersion": str(rv + 2 * i),
                             "creationTimestamp": ts, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            ents.append(self.entry(rt, obj, rv + 2 * i))
            cm = {
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "uid": self.uid(),
                             "resourceVersion": str(rv + 2 * i + 1), "creationTimestamp": ts,
                             "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used "
                                             "to verify the kube-apiserver when using internal endpoints such "
                                             "as the internal service IP or kubernetes.default.svc. No other "
                                             "usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": f"-----BEGIN CERTIFICATE-----\n{self.spec.name}-{self.spec.seed}\n"
                                   "-----END CERTIFICATE-----\n"},
            }
            cms.append(self.entry(cm_rt, cm, rv + 2 * i + 1))
        self.store.bulk_insert(rt, ents)
        self.store.bulk_insert(cm_rt, cms)
        self.out.namespaces = all_ns
        self.out.counts["namespaces"] = len(all_ns)
        self.out.counts["configmaps"] = len(cms)
        return names

    def nodes(self, n_pods: int) -> list[tuple[str, str, int]]:
        """Returns (name, zone, node index) per node."""
        spec = self.spec
        n = spec.nodes if spec.nodes is not None else max(1, math.ceil(n_pods / 60))
        if n <= 0 and n_pods:
            raise ValueError("pods need at least one node")
        rv = self.store.reserve(max(n, 1))
        out: list[tuple[str, str, int]] = []
        ents: list[tuple[dict[str, Any], int]] = []
        pool_hash = self.suffix(8)
        for i in range(n):
            zone = f"{spec.region}{ZONE_SUFFIXES[i % 3]}"
            name = f"{spec.name}-pool-{i // 500 + 1}-{pool_hash}-{self.suffix(4)}"
            ip = _ip(NODE_IP_BASE + 10 + i)
            self._node_ips.append(ip)
            ts = self.ts(self.rng.uniform(20, 120) * 86400)
            hb = self.ts(self.rng.uniform(0, 40))
            cond = [
                {"type": t, "status": "False", "lastHeartbeatTime": hb, "lastTransitionTime": ts,
                 "reason": r, "message": m}
                for t, r, m in (
                    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                )
            ]
            cond.append({"type": "Ready", "status": "True", "lastHeartbeatTime": hb, "lastTransitionTime": ts,
                         "reason": "KubeletReady", "message": "kubelet is posting ready status"})
            obj = {
                "metadata": {
                    "name": name, "uid": self.uid(), "resourceVersion": str(rv + i), "creationTimestamp": ts,
                    "labels": {
                        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                        "node.kubernetes.io/instance-type": "m5.2xlarge",
                        "topology.kubernetes.io/region": spec.region, "topology.kubernetes.io/zone": zone,
                    },
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                    "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
                },
                "spec": {"providerID": f"kubesim:///{zone}/{name}"},
                "status": {
                    "capacity": {"cpu": "8", "ephemeral-storage": "104845292Ki", "hugepages-1Gi": "0",
                                 "hugepages-2Mi": "0", "memory": "32408328Ki", "pods": "110"},
                    "allocatable": {"cpu": "7910m", "ephemeral-storage": "95551679124", "hugepages-1Gi": "0",
                                    "hugepages-2Mi": "0", "memory": "31391496Ki", "pods": "110"},
                    "conditions": cond,
                    "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "nodeInfo": {
                        "machineID": f"{self.rng.getrandbits(128):032x}", "systemUUID": self.uid(),
                        "bootID": self.uid(), "kernelVersion": "6.1.0-28-cloud-amd64",
                        "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "containerd://1.7.24",
                        "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0",
                        "operatingSystem": "linux", "architecture": "amd64",
                    },
                },
            }
            out.append((name, zone, i))
            ents.append((obj, rv + i))
        self._node_objs = ents
        return out

    def _finish_nodes(self, host_bits: int) -> None:
        rt = self.rts["nodes"]
        ents = []
        for i, (obj, rv) in enumerate(self._node_objs):
            cidr = f"{_ip(POD_CIDR_BASE + (i << host_bits))}/{32 - host_bits}"
            obj["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr], **obj["spec"]}
            ents.append(self.entry(rt, obj, rv))
        self.store.bulk_insert(rt, ents)
        self.out.nodes = [e.name for e in ents]
        self.out.counts["nodes"] = len(ents)

    def workloads(self, n_pods: int, n_svcs: int, namespaces: list[str],
                  nodes: list[tuple[str, str, int]]) -> None:
        rng = self.rng
        n_dep = n_svcs if n_svcs else (max(1, math.ceil(n_pods / 8)) if n_pods else 0)
        # replica counts: heavy-tailed, summing exactly to n_pods
        weights = [min(rng.paretovariate(1.3), 40.0) for _ in range(n_dep)]
        total_w = sum(weights) or 1.0
        counts = [int(n_pods * w / total_w) for w in weights]
        for _ in range(n_pods - sum(counts)):
            counts[rng.randrange(n_dep)] += 1
        # node placement decided up front so the per-node pod CIDR can be sized
        n_nodes = len(nodes)
        placement = [rng.randrange(n_nodes) for _ in range(n_pods)] if n_nodes else []
        per_node = [0] * n_nodes
        for p in placement:
            per_node[p] += 1
        host_bits = max(8, (max(per_node, default=0) + 2).bit_length())
        if n_nodes and (n_nodes - 1) >> (POD_CIDR_BITS - host_bits):
            raise ValueError(f"{n_nodes} nodes with {max(per_node)} pods each do not fit the pod CIDR 10.128.0.0/9")
        self._finish_nodes(host_bits)
        node_next = [2] * n_nodes

        pod_rt, svc_rt, eps_rt = self.rts["pods"], self.rts["services"], self.rts["endpointslices"]
        n_eps_est = n_dep + n_pods // MAX_ENDPOINTS + 1
        pod_rv = self.store.reserve(n_pods)
        svc_rv = self.store.reserve(n_svcs)
        eps_rv = self.store.reserve(n_eps_est)
        pods: list[Entry] = []
        svcs: list[Entry] = []
        slices: list[Entry] = []
        used_names: dict[str, set[str]] = {}
        used_ips: set[int] = set()
        used_ports: set[int] = set()
        svc_base, svc_size = int(SERVICE_CIDR.network_address), SERVICE_CIDR.num_addresses
        scheduled = 0
        tolerations = default_tolerations()
        for d in range(n_dep):
            ns = namespaces[d % len(namespaces)]
            names = used_names.setdefault(ns, set())
            app = f"{rng.choice(APPS)}-{rng.choice(ROLES)}"
            if app in names:
                j = 2
                while f"{app}-{j}" in names:
                    j += 1
                app = f"{app}-{j}"
            names.add(app)
            ports = PORT_SETS[rng.randrange(len(PORT_SETS))]
            dep_age = rng.uniform(600, 60 * 86400)
            rs_hash = self.suffix(10)
            rs_name = f"{app}-{rs_hash}"
            rs_uid = self.uid()
            version = f"1.{rng.randrange(40)}.{rng.randrange(10)}"
            image = f"registry.example.com/{ns}/{app}:{version}"
            image_id = f"registry.example.com/{ns}/{app}@sha256:{rng.getrandbits(256):064x}"
            sidecar = rng.random() < 0.2
            labels = {"app": app, "pod-template-hash": rs_hash}
            owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid,
                      "controller": True, "blockOwnerDeletion": True}]
            vol = f"kube-api-access-{self.suffix(5)}"
            mounts = [{"name": vol, "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
            main: dict[str, Any] = {
                "name": app.split("-")[0],
                "image": image,
                "ports": [{"name": pn, "containerPort": tp, "protocol": "TCP"} for pn, _p, tp in ports],
                "env": [{"name": "APP_NAME", "value": app}, {"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                "volumeMounts": mounts,
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": ports[0][2], "scheme": "HTTP"},
                                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                                   "failureThreshold": 3},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
            containers = [main]
            cimages = [(main["name"], image, image_id)]
            if sidecar:
                side = {"name": "log-shipper", "image": "fluent/fluent-bit:3.2.2",
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                        "volumeMounts": mounts, "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
                containers.append(side)
                cimages.append(("log-shipper", "fluent/fluent-bit:3.2.2",
                                 f"docker.io/fluent/fluent-bit@sha256:{rng.getrandbits(256):064x}"))
            pod_spec_base = {
                "volumes": [{"name": vol, "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                                   "fieldPath": "metadata.namespace"}}]}},
                ], "defaultMode": 420}}],
                "containers": containers,
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default",
                "serviceAccount": "default",
                "securityContext": {},
                "schedulerName": "default-scheduler",
                "tolerations": tolerations,
                "priority": 0,
                "enableServiceLinks": True,
                "preemptionPolicy": "PreemptLowerPriority",
            }
            pod_infos: list[tuple[str, str, str, bool, str, str]] = []  # name, uid, ip, ready, node, zone
            pod_names: set[str] = set()
            for _ in range(counts[d]):
                node_i = placement[scheduled]
                node_name, zone, _ni = nodes[node_i]
                rv = pod_rv + scheduled
                scheduled += 1
                while True:
                    name = f"{rs_name}-{self.suffix(5)}"
                    if name not in pod_names:
                        pod_names.add(name)
                        break
                uid = self.uid()
                age = dep_age - rng.uniform(0, min(dep_age, 3600) * 0.9)
                ts = self.ts(age)
                started = self.ts(age - 3)
                r = rng.random()
                pending = r >= 0.985
                ready = r < 0.93 or 0.96 <= r < 0.985
                restarts = rng.randint(1, 6) if 0.96 <= r < 0.985 else 0
                ip = ""
                if not pending:
                    ipn = POD_CIDR_BASE + (node_i << host_bits) + node_next[node_i]
                    node_next[node_i] += 1
                    used_ips.add(ipn)
                    ip = _ip(ipn)
                cstat = []
                for cname, cimg, cid in cimages:
                    if pending:
                        cs: dict[str, Any] = {
                            "name": cname, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {},
                            "ready": False, "restartCount": 0, "image": cimg, "imageID": "", "started": False}
                    else:
                        last: dict[str, Any] = {}
                        if restarts and cname == cimages[0][0]:
                            last = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": ts,
                                                   "finishedAt": started,
                                                   "containerID": f"containerd://{rng.getrandbits(256):064x}"}}
                        cs = {"name": cname, "state": {"running": {"startedAt": started}}, "lastState": last,
                              "ready": ready, "restartCount": restarts if last else 0, "image": cimg,
                              "imageID": cid, "containerID": f"containerd://{rng.getrandbits(256):064x}",
                              "started": True}
                    cstat.append(cs)
                rs = "True" if ready else "False"
                conds: list[dict[str, Any]] = [
                    {"type": "PodReadyToStartContainers", "status": "False" if pending else "True",
                     "lastProbeTime": None, "lastTransitionTime": started},
                    {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": ts},
                    {"type": "Ready", "status": rs, "lastProbeTime": None, "lastTransitionTime": started},
                    {"type": "ContainersReady", "status": rs, "lastProbeTime": None, "lastTransitionTime": started},
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": ts},
                ]
                if not ready:
                    not_ready = [c[0] for c in cimages] if pending else [cimages[0][0]]
                    msg = f"containers with unready status: [{' '.join(not_ready)}]"
                    for c in conds[2:4]:
                        c["reason"], c["message"] = "ContainersNotReady", msg
                node_ip = self._node_ips[node_i]
                status: dict[str, Any] = {
                    "phase": "Pending" if pending else "Running",
                    "conditions": conds,
                    "hostIP": node_ip,
                    "hostIPs": [{"ip": node_ip}],
                }
                if ip:
                    status["podIP"] = ip
                    status["podIPs"] = [{"ip": ip}]
                status["startTime"] = ts
                status["containerStatuses"] = cstat
                status["qosClass"] = "Burstable"
                obj = {
                    "metadata": {"name": name, "generateName": rs_name + "-", "namespace": ns, "uid": uid,
                                 "resourceVersion": str(rv), "creationTimestamp": ts, "labels": labels,
                                 "ownerReferences": owner},
                    "spec": {**pod_spec_base, "nodeName": node_name},
                    "status": status,
                }
                fields = (node_name, status["phase"], ip, "Always", "default-scheduler", "default", "false", "")
                pods.append(Entry(f"{ns}/{name}", ns, name, rv, labels, fields, dumps(obj)))
                if ip:
                    pod_infos.append((name, uid, ip, ready, node_name, zone))
            if d >= n_svcs:
                continue
            # the Service selecting this Deployment, and its EndpointSlices
            r = rng.random()
            stype = "NodePort" if r < 0.05 and len(used_ports) < 2000 else "ClusterIP"
            headless = 0.05 <= r < 0.10
            if headless:
                cip = "None"
            else:
                while True:
                    ipn = svc_base + rng.randrange(2, svc_size - 1)
                    if ipn not in used_ips:
                        used_ips.add(ipn)
                        break
                cip = _ip(ipn)
            sports: list[dict[str, Any]] = []
            for pn, p, tp in ports:
                sp: dict[str, Any] = {"name": pn, "protocol": "TCP", "port": p, "targetPort": tp}
                if stype == "NodePort":
                    while True:
                        np_ = rng.randint(*NODE_PORT_RANGE)
                        if np_ not in used_ports:
                            used_ports.add(np_)
                            break
                    sp["nodePort"] = np_
                sports.append(sp)
            svc_ts = self.ts(dep_age + 5)
            sspec: dict[str, Any] = {"ports": sports, "selector": {"app": app}, "clusterIP": cip,
                                     "clusterIPs": [cip], "type": stype, "sessionAffinity": "None",
                                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                                     "internalTrafficPolicy": "Cluster"}
            if stype == "NodePort":
                sspec["externalTrafficPolicy"] = "Cluster"
            svc = {
                "metadata": {"name": app, "namespace": ns, "uid": self.uid(), "resourceVersion": str(svc_rv + d),
                             "creationTimestamp": svc_ts,
                             "labels": {"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": ns}},
                "spec": sspec,
                "status": {"loadBalancer": {}},
            }
            svcs.append(self.entry(svc_rt, svc, svc_rv + d))
            eports = slice_ports(svc)
            eps = [make_endpoint(ip, rd, rd, False, ns, pn, pu, node, zone)
                   for pn, pu, ip, rd, node, zone in pod_infos]
            chunks = [eps[i : i + MAX_ENDPOINTS] for i in range(0, len(eps), MAX_ENDPOINTS)] or [[]]
            taken: set[str] = set()
            for chunk in chunks:
                while True:
                    sname = f"{app}-{self.suffix(5)}"
                    if sname not in taken:
                        taken.add(sname)
                        break
                sl = make_slice(svc, sname, self.uid(), self.ts(dep_age - 10), chunk, eports)
                rv = eps_rv + len(slices)
                sl["metadata"]["resourceVersion"] = str(rv)
                slices.append(self.entry(eps_rt, sl, rv))
        assert len(slices) <= n_eps_est
        self.store.bulk_insert(pod_rt, pods)
        self.store.bulk_insert(svc_rt, svcs)
        self.store.bulk_insert(eps_rt, slices)
        self.out.counts.update(pods=len(pods), services=len(svcs), endpointslices=len(slices))


def generate(store: Store, registry: Registry, spec: ClusterSpec) -> Generated:
    # The cyclic GC would rescan the growing heap over and over while nothing here is garbage.
    was = gc.isenabled()
    gc.disable()
    try:
        return _Gen(spec, store, registry).run()
    finally:
        if was:
            gc.enable()

