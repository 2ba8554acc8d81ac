"""Pod churn: restarts, readiness flips, pending pods starting, scale up and down.

Every mutation is a normal write, so watchers see it and the EndpointSlice controller
updates the slices. ``step``/``run`` are synchronous and seeded for deterministic tests;
``start`` runs them at a rate in a background thread.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from typing import Any

from loguru import logger

from .api import Api
from .defaults import now_str, rand_suffix
from .resources import Registry
from .store import Store

OPS = (("restart", 0.35), ("readiness", 0.25), ("scale_up", 0.15), ("scale_down", 0.15), ("start", 0.10))


class Churner:
    def __init__(self, store: Store, registry: Registry, api: Api, seed: int = 0) -> None:
        self.store = store
        self.api = api
        self.rng = random.Random(seed * 7919 + 17)
        pods, nodes = registry.get("", "v1", "pods"), registry.get("", "v1", "nodes")
        assert pods is not None and nodes is not None
        self.pods_rt, self.nodes_rt = pods, nodes
        self._used: set[str] | None = None
        self._cidrs: dict[str, tuple[int, int, int]] = {}  # node -> (base, size, next offset)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.done = 0

    # -- helpers ---------------------------------------------------------------------------------

    def _random_pod(self) -> tuple[str, str, dict[str, Any]] | None:
        keys = self.store.keys(self.pods_rt)
        if not keys:
            return None
        e = self.store.bucket(self.pods_rt).entries[keys[self.rng.randrange(len(keys))]]
        return e.namespace, e.name, e.obj(self.pods_rt)

    def _alloc_ip(self, node: str) -> str | None:
        if self._used is None:
            self._used = {
                e.field(self.pods_rt, "status.podIP") for e in self.store.bucket(self.pods_rt).entries.values()
            }
        c = self._cidrs.get(node)
        if c is None:
            ne = self.store.get(self.nodes_rt, "", node)
            cidr = ((ne.obj(self.nodes_rt).get("spec") or {}).get("podCIDR") if ne else None) or ""
            try:
                net = ipaddress.IPv4Network(cidr)
            except ValueError:
                return None
            c = (int(net.network_address), net.num_addresses, 2)
        base, size, nxt = c
        for i in range(size - 3):
            off = 2 + (nxt - 2 + i) % (size - 3)
            ip = str(ipaddress.IPv4Address(base + off))
            if ip not in self._used:
                self._used.add(ip)
                self._cidrs[node] = (base, size, off + 1)
                return ip
        return None

    def _release_ip(self, ip: str | None) -> None:
        if ip and self._used is not None:
            self._used.discard(ip)

    def _random_node(self) -> str | None:
        keys = self.store.keys(self.nodes_rt)
        return keys[self.rng.randrange(len(keys))] if keys else None

    @staticmethod
    def _set_ready(pod: dict[str, Any], ready: bool, ts: str) -> None:
        status = pod.setdefault("status", {})
        val = "True" if ready else "False"
        for c in status.get("conditions") or []:
            if c.get("type") in ("Ready", "ContainersReady") and c.get("status") != val:
                c["status"] = val
                c["lastTransitionTime"] = ts
                if ready:
                    c.pop("reason", None)
                    c.pop("message", None)
                else:
                    c["reason"] = "ContainersNotReady"
                    c["message"] = "containers with unready status: [app]"
        for cs in status.get("containerStatuses") or []:
            cs["ready"] = ready

    def _run_pod(self, pod: dict[str, Any], ts: str) -> bool:
        """Pending -> Running: give it a node and an IP, mark everything ready."""
        spec, status = pod.setdefault("spec", {}), pod.setdefault("status", {})
        node = spec.get("nodeName") or self._random_node()
        if not node:
            return False
        ip = self._alloc_ip(node)
        if ip is None:
            return False
        spec["nodeName"] = node
        ne = self.store.get(self.nodes_rt, "", node)
        addrs = ((ne.obj(self.nodes_rt).get("status") or {}).get("addresses") or []) if ne else []
        host = next((a.get("address") for a in addrs if a.get("type") == "InternalIP"), None)
        status["phase"] = "Running"
        if host:
            status["hostIP"], status["hostIPs"] = host, [{"ip": host}]
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
        status.setdefault("startTime", ts)
        conds = status.setdefault("conditions", [])
        have = {c.get("type") for c in conds}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
            if t not in have:
                conds.append({"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": ts})
        for c in conds:
            if c.get("status") != "True":
                c["status"], c["lastTransitionTime"] = "True", ts
                c.pop("reason", None)
                c.pop("message", None)
        cstats = []
        for c in spec.get("containers") or []:
            cstats.append({
                "name": c.get("name", ""), "state": {"running": {"startedAt": ts}}, "lastState": {}, "ready": True,
                "restartCount": 0, "image": c.get("image", ""), "imageID": c.get("image", ""),
                "containerID": f"containerd://{self.rng.getrandbits(256):064x}", "started": True,
            })
        status["containerStatuses"] = cstats
        return True

    # -- operations --------------------------------------------------------------------------------

    def restart(self) -> str | None:
        picked = self._random_pod()
        if picked is None:
            return None
        ns, name, pod = picked
        cstats = (pod.get("status") or {}).get("containerStatuses") or []
        if not cstats or "running" not in (cstats[0].get("state") or {}):
            return self.start()
        ts = now_str()
        cs = cstats[0]
        cs["lastState"] = {"terminated": {
            "exitCode": self.rng.choice((1, 2, 137, 143)), "reason": self.rng.choice(("Error", "OOMKilled")),
            "startedAt": cs["state"]["running"].get("startedAt", ts), "finishedAt": ts,
            "containerID": cs.get("containerID", ""),
        }}
        cs["restartCount"] = int(cs.get("restartCount") or 0) + 1
        cs["state"] = {"running": {"startedAt": ts}}
        cs["containerID"] = f"containerd://{self.rng.getrandbits(256):064x}"
        self.api.replace(self.pods_rt, ns, name, pod, raw=True)
        return f"restart {ns}/{name}"

    def readiness(self) -> str | None:
        picked = self._random_pod()
        if picked is None:
            return None
        ns, name, pod = picked
        status = pod.get("status") or {}
        if status.get("phase") != "Running":
            return self.start()
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        self._set_ready(pod, not ready, now_str())
        self.api.replace(self.pods_rt, ns, name, pod, raw=True)
        return f"{'unready' if ready else 'ready'} {ns}/{name}"

    def start(self) -> str | None:
        """Start a Pending pod if there is one near a random pick, else restart one."""
        keys = self.store.keys(self.pods_rt)
        if not keys:
            return None
        i0 = self.rng.randrange(len(keys))
        entries = self.store.bucket(self.pods_rt).entries
        for k in range(min(len(keys), 2000)):
            e = entries[keys[(i0 + k) % len(keys)]]
            if e.field(self.pods_rt, "status.phase") == "Pending":
                pod = e.obj(self.pods_rt)
                if self._run_pod(pod, now_str()):
                    self.api.replace(self.pods_rt, e.namespace, e.name, pod, raw=True)
                    return f"start {e.namespace}/{e.name}"
        return self.scale_up()

    def scale_up(self) -> str | None:
        picked = self._random_pod()
        if picked is None:
            return None
        ns, _name, pod = picked
        meta = pod["metadata"]
        prefix = meta.get("generateName") or (meta.get("name", "pod") + "-")
        for _ in range(100):
            name = prefix + rand_suffix(self.rng)
            if self.store.get(self.pods_rt, ns, name) is None:
                break
        new_meta = {k: v for k, v in meta.items()
                    if k in ("generateName", "labels", "annotations", "ownerReferences")}
        new_meta["name"], new_meta["namespace"] = name, ns
        spec = dict(pod.get("spec") or {})
        spec.pop("nodeName", None)
        spec["nodeName"] = self._random_node() or ""
        new = {"metadata": new_meta, "spec": spec, "status": {"phase": "Pending",
                                                               "qosClass": (pod.get("status") or {}).get("qosClass",
                                                                                                        "BestEffort")}}
        if not self._run_pod(new, now_str()):
            return None
        self.api.create(self.pods_rt, ns, new, raw=True)
        return f"scale_up {ns}/{name}"

    def scale_down(self) -> str | None:
        picked = self._random_pod()
        if picked is None:
            return None
        ns, name, pod = picked
        meta = pod["metadata"]
        meta["deletionTimestamp"] = now_str()
        meta["deletionGracePeriodSeconds"] = 30
        with self.store.lock:
            e = self.store.put(self.pods_rt, pod)  # Terminating first: endpoints go terminating
            self.store.remove(self.pods_rt, e.key)
        self._release_ip((pod.get("status") or {}).get("podIP"))
        return f"scale_down {ns}/{name}"

    def step(self) -> str | None:
        r = self.rng.random()
        acc = 0.0
        for op, weight in OPS:
            acc += weight
            if r < acc:
                with self.store.lock:
                    done: str | None = getattr(self, op)()
                if done:
                    self.done += 1
                return done
        return None

    def run(self, n: int) -> list[str]:
        """Do ``n`` mutations now; returns what was done (fewer if there are no pods)."""
        out = []
        for _ in range(n):
            d = self.step()
            if d:
                out.append(d)
        return out

    # -- background ----------------------------------------------------------------------------------

    def start_background(self, rate: float) -> None:
        self.stop_background()
        if rate <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(rate,), name="kubesim-churn", daemon=True)
        self._thread.start()

    def _loop(self, rate: float) -> None:
        owed = 0.0
        last = time.monotonic()
        while not self._stop.wait(0.05):
            now = time.monotonic()
            owed += (now - last) * rate
            last = now
            n = int(owed)
            owed -= n
            try:
                self.run(n)
            except Exception:
                logger.exception("kubesim churn step failed")

    def stop_background(self) -> None:
        t = self._thread
        if t is not None:
            self._stop.set()
            t.join(timeout=5)
            self._thread = None
