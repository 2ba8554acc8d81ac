"""Chaos rounds against real processes, judged by one invariant: the manager's copy equals the cluster.

A ``World`` runs ``navigator kubesim``, a manager and an edge (through a
``TcpProxy``) as a user would. Each round changes the cluster through its API
while a fault hits (a manager or edge killed with SIGKILL, a frozen manager, the
network cut, blackholed or slowed), then stops changing it and waits until the
manager's objects equal the API server's list again. The ``Invariant`` judges a
round: nothing lost (in the cluster, missing or older in the manager), nothing
phantom (in the manager only), and no resourceVersion going backwards for one
uid across rounds. A plugin author runs the same rounds against a backend of
their own by giving the ``World`` its storage section.

    world = World(tmp, storage={"plugin": "sqlite", "options": {"path": str(tmp / "nav.db")}})
    with world:
        result = run_scenario(world, "manager_kill9", rounds=5)
"""

from __future__ import annotations

import random
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from navigator.client.client import QueryClient
from navigator.processes import Child, free_port
from navigator.testing.processes import Fleet
from navigator.testing.proxy import TcpProxy

KINDS = {"pods": "/api/v1/pods", "services": "/api/v1/services", "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices"}
Copy = dict[str, dict[tuple[str, str], tuple[str, str]]]


def _rv(value: str) -> int | None:
    return int(value) if value.isdigit() else None


class ClusterApi:
    """The simulated cluster's API over plain HTTP: its list (fast enough for 150,000 pods) and changes."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        token = config["users"][0]["user"].get("token")
        self.http = httpx.Client(
            base_url=config["clusters"][0]["cluster"]["server"],
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=120,
        )

    def copy(self) -> Copy:
        """Every object of every kind: (namespace, name) -> (uid, resourceVersion)."""
        out: Copy = {}
        for kind, path in KINDS.items():
            objects: dict[tuple[str, str], tuple[str, str]] = {}
            token = ""
            while True:
                page = orjson.loads(self.http.get(path, params={"limit": 5000, "continue": token}).content)
                for item in page["items"]:
                    meta = item["metadata"]
                    objects[(meta.get("namespace", ""), meta["name"])] = (meta["uid"], meta["resourceVersion"])
                token = page["metadata"].get("continue") or ""
                if not token:
                    break
            out[kind] = objects
        return out

    def pods(self) -> list[tuple[str, str]]:
        return sorted(self.copy()["pods"])

    def relabel(self, namespace: str, name: str, value: str, label: str = "navigator-chaos") -> bool:
        body = orjson.dumps({"metadata": {"labels": {label: value}}})
        response = self.http.patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            content=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return response.status_code < 400

    def delete(self, namespace: str, name: str) -> bool:
        return self.http.delete(f"/api/v1/namespaces/{namespace}/pods/{name}").status_code < 400

    def create(self, namespace: str, name: str, labels: Mapping[str, str] | None = None) -> bool:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {"navigator-chaos": "born"})},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        return self.http.post(f"/api/v1/namespaces/{namespace}/pods", content=orjson.dumps(pod)).status_code < 400

    def close(self) -> None:
        self.http.close()


def manager_copy(query: QueryClient, cluster: str) -> Copy:
    out: Copy = {kind: {} for kind in KINDS}
    for row in query.resources(cluster=cluster):
        if row["kind"] in out:
            out[row["kind"]][(row["namespace"], row["name"])] = (row["uid"], row["resource_version"])
    return out


@dataclass
class Verdict:
    """How the manager's copy compares with the cluster's."""

    lost: int = 0
    phantom: int = 0
    backwards: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.lost or self.phantom or self.backwards)


class Invariant:
    """Compares copies, and remembers the newest resourceVersion seen per uid across rounds."""

    def __init__(self) -> None:
        self._newest: dict[str, int] = {}

    def judge(self, cluster: Copy, manager: Copy) -> Verdict:
        verdict = Verdict()
        for kind in KINDS:
            want, have = cluster.get(kind, {}), manager.get(kind, {})
            for key, (uid, version) in want.items():
                if have.get(key) != (uid, version):
                    verdict.lost += 1
                    self._example(verdict, f"lost {kind} {key[0]}/{key[1]}: cluster {version}, manager {have.get(key)}")
            for key in have.keys() - want.keys():
                verdict.phantom += 1
                self._example(verdict, f"phantom {kind} {key[0]}/{key[1]}")
            for key, (uid, version) in have.items():
                number = _rv(version)
                if number is None:
                    continue
                if number < self._newest.get(uid, 0):
                    verdict.backwards += 1
                    self._example(verdict, f"backwards {kind} {key[0]}/{key[1]}: {version} < {self._newest[uid]}")
                self._newest[uid] = max(number, self._newest.get(uid, 0))
        return verdict

    @staticmethod
    def _example(verdict: Verdict, text: str) -> None:
        if len(verdict.examples) < 5:
            verdict.examples.append(text)


class Mutator:
    """Changes pods through the API on a thread, at a rate, until stopped: the cluster moves while faults hit."""

    def __init__(self, api: ClusterApi, pods: list[tuple[str, str]], rate: float, rng: random.Random) -> None:
        self.api, self.pods, self.rate, self.rng = api, pods, rate, rng
        self.done = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._born = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="navigator-chaos-mutator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(1.0 / self.rate):
            try:
                self._one()
            except httpx.HTTPError:
                continue  # the simulator is not the system under test; keep going
            self.done += 1

    def _one(self) -> None:
        roll = self.rng.random()
        if roll < 0.1 and len(self.pods) > 10:
            namespace, name = self.pods.pop(self.rng.randrange(len(self.pods)))
            self.api.delete(namespace, name)
        elif roll < 0.2:
            namespace = self.pods[0][0]
            self._born += 1
            name = f"chaos-{self.rng.randrange(1 << 30):08x}-{self._born}"
            if self.api.create(namespace, name):
                self.pods.append((namespace, name))
        else:
            namespace, name = self.rng.choice(self.pods)
            self.api.relabel(namespace, name, str(self.rng.randrange(1 << 20)))


class World:
    """kubesim, a manager and an edge (through a TCP proxy), as processes; a context manager."""

    def __init__(
        self,
        tmp: Path,
        *,
        storage: Mapping[str, Any] | None = None,
        pods: int = 200,
        services: int = 20,
        grace: str = "5s",
        seed: int = 1,
    ) -> None:
        self.tmp = tmp
        self.fleet = Fleet(tmp)
        self.storage = dict(storage or {"plugin": "sqlite", "options": {"path": str(tmp / "nav.db")}})
        self.pods, self.services, self.grace = pods, services, grace
        self.rng = random.Random(seed)
        self.cluster = "chaos"
        self.port = 0
        self.proxy: TcpProxy | None = None
        self.manager: Child | None = None
        self.edge: Child | None = None
        self.api: ClusterApi | None = None
        self.query: QueryClient | None = None
        self._managers = 0
        self._edges = 0

    def __enter__(self) -> World:
        _, kubeconfig = self.fleet.kubesim(
            self.cluster, "--pods", str(self.pods), "--services", str(self.services), "--namespaces", "2"
        )
        self.kubeconfig = kubeconfig
        self.api = ClusterApi(kubeconfig)
        self.port = free_port()
        self.start_manager()
        self.proxy = TcpProxy("127.0.0.1", self.port)
        self.proxy.start()
        self.start_edge()
        self.query = QueryClient(f"127.0.0.1:{self.port}", timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.query is not None:
            self.query.close()
        self.fleet.stop_all()
        if self.proxy is not None:
            self.proxy.close()
        if self.api is not None:
            self.api.close()

    def start_manager(self) -> Child:
        self._managers += 1
        config = self.tmp / "manager.yaml"
        config.write_bytes(
            orjson.dumps({"listen": f"127.0.0.1:{self.port}", "storage": self.storage, "grace_period": self.grace})
        )
        self.manager = self.fleet.start(f"manager-{self._managers}", "manager", "--config", str(config))
        self.manager.wait_for("listening on", timeout=120)
        return self.manager

    def start_edge(self) -> Child:
        assert self.proxy is not None
        self._edges += 1
        config = self.tmp / "edge.yaml"
        config.write_bytes(
            orjson.dumps(
                {
                    "edge_id": "chaos-edge",
                    "cluster": {"id": self.cluster},
                    "kubernetes": {"kubeconfig": str(self.kubeconfig)},
                    "manager": {
                        "address": self.proxy.address,
                        "reconnect": {"initial": "0.2s", "max": "2s"},
                        "ack_timeout": "10s",
                    },
                    "sync": {"interval": "2s", "adaptive": {"enabled": False, "min_interval": "1s"}},
                }
            )
        )
        self.edge = self.fleet.start(f"edge-{self._edges}", "edge", "--config", str(config))
        return self.edge

    def copies(self) -> tuple[Copy, Copy]:
        assert self.api is not None and self.query is not None
        return self.api.copy(), manager_copy(self.query, self.cluster)


# -- faults --------------------------------------------------------------------------------------


def _manager_kill9(world: World, rng: random.Random) -> None:
    assert world.manager is not None
    time.sleep(rng.uniform(0.0, 1.5))
    world.manager.stop(signal.SIGKILL)
    time.sleep(rng.uniform(0.0, 1.0))
    world.start_manager()


def _edge_kill9(world: World, rng: random.Random) -> None:
    assert world.edge is not None
    time.sleep(rng.uniform(0.0, 1.5))
    world.edge.stop(signal.SIGKILL)
    time.sleep(rng.uniform(0.0, 1.0))
    world.start_edge()


def _manager_frozen(world: World, rng: random.Random) -> None:
    assert world.manager is not None
    time.sleep(rng.uniform(0.0, 1.0))
    world.manager.process.send_signal(signal.SIGSTOP)
    time.sleep(rng.uniform(0.5, 3.0))
    world.manager.process.send_signal(signal.SIGCONT)


def _network_cut(world: World, rng: random.Random) -> None:
    assert world.proxy is not None
    time.sleep(rng.uniform(0.0, 1.0))
    world.proxy.cut()
    time.sleep(rng.uniform(0.5, 3.0))
    world.proxy.restore()


def _network_blackhole(world: World, rng: random.Random) -> None:
    assert world.proxy is not None
    time.sleep(rng.uniform(0.0, 1.0))
    world.proxy.blackhole(True)
    time.sleep(rng.uniform(0.5, 3.0))
    world.proxy.blackhole(False)


def _network_slow(world: World, rng: random.Random) -> None:
    assert world.proxy is not None
    world.proxy.delay = rng.uniform(0.05, 0.3)
    time.sleep(rng.uniform(1.0, 3.0))
    world.proxy.delay = 0.0


SCENARIOS: dict[str, Callable[[World, random.Random], None]] = {
    "manager_kill9": _manager_kill9,
    "manager_frozen": _manager_frozen,
    "edge_kill9": _edge_kill9,
    "network_cut": _network_cut,
    "network_blackhole": _network_blackhole,
    "network_slow": _network_slow,
}


@dataclass
class ScenarioResult:
    name: str
    rounds: int = 0
    held: int = 0
    reconverge: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def row(self) -> str:
        times = self.reconverge
        p50 = f"{statistics.median(times):.2f}" if times else "-"
        worst = f"{max(times):.2f}" if times else "-"
        return f"{self.name:<18} {self.rounds:>6} {self.held:>6} {p50:>10} {worst:>10}"


def wait_exact(world: World, invariant: Invariant, timeout: float) -> tuple[Verdict, float]:
    """Until the copies agree (or ``timeout``): the last verdict and how long it took."""
    started = time.monotonic()
    verdict = Verdict(lost=-1)
    while time.monotonic() - started < timeout:
        try:
            cluster, manager = world.copies()
        except Exception:  # the manager may still be starting: keep asking
            time.sleep(0.2)
            continue
        verdict = invariant.judge(cluster, manager)
        if verdict.exact:
            break
        time.sleep(0.2)
    return verdict, time.monotonic() - started


def run_scenario(
    world: World,
    name: str,
    rounds: int,
    *,
    rate: float = 20.0,
    timeout: float = 120.0,
    invariant: Invariant | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """``rounds`` rounds of one fault while the cluster changes at ``rate`` per second."""
    assert world.api is not None
    invariant = invariant or Invariant()
    fault = SCENARIOS[name]
    result = ScenarioResult(name)
    pods = world.api.pods()
    for index in range(rounds):
        mutator = Mutator(world.api, pods, rate, world.rng)
        mutator.start()
        try:
            fault(world, world.rng)
        finally:
            mutator.stop()
        verdict, took = wait_exact(world, invariant, timeout)
        result.rounds += 1
        if verdict.exact:
            result.held += 1
            result.reconverge.append(took)
        else:
            result.failures.append(f"round {index + 1}: " + "; ".join(verdict.examples or ["never answered"]))
        if progress is not None:
            state = "held" if verdict.exact else "FAILED"
            progress(f"{name} round {index + 1}/{rounds}: {state} in {took:.2f}s ({mutator.done} changes)")
    return result


def table(results: Iterable[ScenarioResult]) -> str:
    lines = [f"{'scenario':<18} {'rounds':>6} {'held':>6} {'p50 (s)':>10} {'max (s)':>10}"]
    lines.extend(r.row() for r in results)
    return "\n".join(lines)
