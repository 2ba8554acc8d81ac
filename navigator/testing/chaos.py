"""Chaos rounds against real processes, judged by one invariant: the manager's copy equals the cluster.

A ``World`` runs ``navigator kubesim``, a manager and one edge or many (through
``TcpProxy``s: one in front of the manager, one in front of the API server) as a
user would. Each round changes the cluster through its API while a fault hits,
then stops changing it and waits until the manager's objects equal the API
server's list again. Faults: a manager or edge killed with SIGKILL, a frozen
manager, the edge-manager network cut, blackholed or slowed; the edge-API
network blackholed, delayed, reset or dripping; the API answering 500, 429,
403, 503, slowly, dropping lists halfway, 410 Gone, or with watches that go
silent; many edges reconnecting at once; the manager's disk full (SQLite); its
database connections killed (a backend that can, e.g. PostgreSQL). The
``Invariant`` judges a round: nothing lost (in the cluster, missing or older in
the manager), nothing phantom (in the manager only), and no resourceVersion
going backwards for one uid across rounds. A plugin author runs the same rounds
against a backend of their own by giving the ``World`` its storage section.

    world = World(tmp, storage={"plugin": "sqlite", "options": {"path": str(tmp / "nav.db")}})
    with world:
        result = run_scenario(world, "manager_kill9", rounds=5)
"""

from __future__ import annotations

import random
import resource
import signal
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import yaml

from navigator import processes
from navigator.client.client import QueryClient
from navigator.processes import Child, free_port
from navigator.testing.processes import Fleet
from navigator.testing.proxy import TcpProxy

KINDS = {"pods": "/api/v1/pods", "services": "/api/v1/services", "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices"}
#: What an edge asks the API for: faults limited to these spare the writes that change the cluster meanwhile.
READ_VERBS = ["list", "watch", "get"]
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

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        """Switch the simulator's injected faults on (its ``/_kubesim/faults`` rules)."""
        self.http.put("/_kubesim/faults", content=orjson.dumps(rules)).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_kubesim/faults").raise_for_status()

    def compact(self) -> None:
        """Forget the event history, as etcd compacts: older watch and continue versions get 410 Gone."""
        self.http.post("/_kubesim/compact").raise_for_status()

    def close(self) -> None:
        self.http.close()


def manager_copy(query: QueryClient, cluster: str) -> Copy:
    return manager_copies(query, [cluster], cluster=cluster)[cluster]


def manager_copies(query: QueryClient, clusters: Iterable[str], cluster: str | None = None) -> dict[str, Copy]:
    """The manager's copy of each cluster, in one query (of ``cluster`` only, when given)."""
    out: dict[str, Copy] = {name: {kind: {} for kind in KINDS} for name in clusters}
    for row in query.resources(cluster=cluster):
        copy = out.get(row["cluster"])
        if copy is not None and row["kind"] in copy:
            copy[row["kind"]][(row["namespace"], row["name"])] = (row["uid"], row["resource_version"])
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
        self._newest: dict[tuple[str, str], int] = {}

    def judge(self, cluster: Copy, manager: Copy, scope: str = "") -> Verdict:
        """``scope`` keeps apart the versions of copies of one API server held as different clusters."""
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
                newest = self._newest.get((scope, uid), 0)
                if number < newest:
                    verdict.backwards += 1
                    self._example(verdict, f"backwards {kind} {key[0]}/{key[1]}: {version} < {newest}")
                self._newest[(scope, uid)] = max(number, newest)
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
    """kubesim, a manager and ``edges`` edges (through TCP proxies), as processes; a context manager.

    Every edge holds a cluster of its own, all copies of the one simulated API server: many
    edges cost one simulator. With ``api_proxy`` the edges reach the API server through a
    proxy too (``api_proxy``), for faults between edge and API. ``storage_killer`` ends the
    manager's storage connections (a backend that has them) and says how many it ended;
    ``pace`` below 1 shortens the faults (a quick run, e.g. in the test suite). ``managers=2``
    runs a second manager on the same storage, for failover.
    """

    def __init__(
        self,
        tmp: Path,
        *,
        storage: Mapping[str, Any] | None = None,
        pods: int = 200,
        services: int = 20,
        grace: str = "5s",
        seed: int = 1,
        edges: int = 1,
        api_proxy: bool = True,
        storage_killer: Callable[[], int] | None = None,
        pace: float = 1.0,
        managers: int = 1,
    ) -> None:
        self.tmp = tmp
        self.fleet = Fleet(tmp)
        self.storage = dict(storage or {"plugin": "sqlite", "options": {"path": str(tmp / "nav.db")}})
        self.pods, self.services, self.grace = pods, services, grace
        self.rng = random.Random(seed)
        self.clusters = ["chaos"] if edges == 1 else [f"chaos-{index:02d}" for index in range(edges)]
        self.cluster = self.clusters[0]
        self.port = 0
        self.proxy: TcpProxy | None = None
        self.api_proxy: TcpProxy | None = None
        self._want_api_proxy = api_proxy
        self.storage_killer = storage_killer
        #: Scales how long faults last and wait (1: as the figures in the docs were taken).
        self.pace = pace
        self.manager: Child | None = None
        #: With ``managers=2`` (a storage both share, e.g. PostgreSQL): the other manager. The proxy in
        #: front of them sends the edges to one (``serving``: 0 the first, 1 this one), a load balancer.
        self.managers = managers
        self.second_manager: Child | None = None
        self.second_port = 0
        self.serving = 0
        self.edges: dict[str, Child] = {}
        self.api: ClusterApi | None = None
        self.query: QueryClient | None = None
        #: What a fault saw go wrong besides the invariant (a damaged database): the round fails.
        self.problems: list[str] = []
        self._managers = 0
        self._edges = 0

    @property
    def edge(self) -> Child | None:
        """The first cluster's edge."""
        return self.edges.get(self.cluster)

    @property
    def sqlite_path(self) -> Path | None:
        if self.storage.get("plugin") != "sqlite":
            return None
        return Path(self.storage["options"]["path"])

    def __enter__(self) -> World:
        _, kubeconfig = self.fleet.kubesim(
            "chaos",
            "--pods", str(self.pods), "--services", str(self.services), "--namespaces", "2",
            "--bookmark-interval", "1",
        )  # fmt: skip
        self.kubeconfig = self.edge_kubeconfig = kubeconfig
        self.api = ClusterApi(kubeconfig)
        if self._want_api_proxy:
            config = yaml.safe_load(kubeconfig.read_text())
            server = urlsplit(config["clusters"][0]["cluster"]["server"])
            self.api_proxy = TcpProxy(server.hostname or "127.0.0.1", server.port or 80)
            self.api_proxy.start()
            config["clusters"][0]["cluster"]["server"] = f"{server.scheme}://{self.api_proxy.address}"
            self.edge_kubeconfig = self.tmp / "chaos-via-proxy.kubeconfig"
            self.edge_kubeconfig.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.start_manager()
        if self.managers == 2:
            self.second_port = free_port()
            self.start_manager(second=True)
        self.proxy = TcpProxy("127.0.0.1", self.port)
        self.proxy.start()
        for cluster in self.clusters:
            self.start_edge(cluster)
        self.query = QueryClient(f"127.0.0.1:{self.port}", timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.query is not None:
            self.query.close()
        processes.stop(list(self.edges.values()))  # all at once: one by one, 50 edges take a while
        self.fleet.stop_all()
        for proxy in (self.proxy, self.api_proxy):
            if proxy is not None:
                proxy.close()
        if self.api is not None:
            self.api.close()

    def start_manager(self, second: bool = False) -> Child:
        """The manager (or with ``second`` the other one, on the same storage), started again."""
        self._managers += 1
        port = self.second_port if second else self.port
        config = self.tmp / ("manager-b.yaml" if second else "manager.yaml")
        config.write_bytes(
            orjson.dumps({"listen": f"127.0.0.1:{port}", "storage": self.storage, "grace_period": self.grace})
        )
        child = self.fleet.start(f"manager-{self._managers}", "manager", "--config", str(config))
        child.wait_for("listening on", timeout=120)
        if second:
            self.second_manager = child
        else:
            self.manager = child
        return child

    def start_edge(self, cluster: str | None = None) -> Child:
        """A new edge process for ``cluster`` (default: the first).

        Shorter API timeouts than the defaults (a request 10 s, a silent watch 5 s; bookmarks
        come every second) and pages of 50, so a round sees a dead API connection and a list
        that expires while paging in seconds rather than minutes.
        """
        assert self.proxy is not None
        cluster = cluster or self.cluster
        self._edges += 1
        suffix = "" if cluster == "chaos" else cluster.removeprefix("chaos")
        config = self.tmp / f"edge{suffix}.yaml"
        config.write_bytes(
            orjson.dumps(
                {
                    "edge_id": f"chaos-edge{suffix}",
                    "cluster": {"id": cluster},
                    "kubernetes": {
                        "kubeconfig": str(self.edge_kubeconfig),
                        "page_size": 50,
                        "request_timeout": "10s",
                        "watch_idle_timeout": "5s",
                    },
                    "manager": {
                        "address": self.proxy.address,
                        "reconnect": {"initial": "0.2s", "max": "2s"},
                        "ack_timeout": "10s",
                    },
                    "sync": {"interval": "2s", "adaptive": {"enabled": False, "min_interval": "1s"}},
                }
            )
        )
        self.edges[cluster] = self.fleet.start(f"edge-{self._edges}", "edge", "--config", str(config))
        return self.edges[cluster]

    def edge_id(self, cluster: str) -> str:
        return "chaos-edge" if cluster == "chaos" else f"chaos-edge{cluster.removeprefix('chaos')}"

    def copies(self) -> tuple[Copy, dict[str, Copy]]:
        """The API server's list, and the manager's copy of it for each cluster."""
        assert self.api is not None and self.query is not None
        if len(self.clusters) == 1:
            return self.api.copy(), {self.cluster: manager_copy(self.query, self.cluster)}
        return self.api.copy(), manager_copies(self.query, self.clusters)

    def holders(self) -> list[str]:
        """What is wrong with who holds each cluster: each must have one row, held by its own edge."""
        assert self.query is not None
        rows: dict[str, list[dict[str, Any]]] = {}
        for row in self.query.clusters():
            rows.setdefault(row["cluster"], []).append(row)
        wrong = []
        for cluster in self.clusters:
            held = rows.get(cluster, [])
            if len(held) != 1 or held[0]["edge_id"] != self.edge_id(cluster) or not held[0]["connected"]:
                summary = [(r["edge_id"], r["connected"]) for r in held]
                wrong.append(f"cluster {cluster} held by {summary}")
        return wrong

    def break_api_connections(self) -> None:
        """Drop the edges' API connections (they reconnect at once): the next requests meet a fault."""
        if self.api_proxy is not None:
            self.api_proxy.cut()
            self.api_proxy.restore()


# -- faults --------------------------------------------------------------------------------------


def _pause(world: World, rng: random.Random, low: float, high: float) -> None:
    """A random while, scaled by the world's pace (short runs take the same steps faster)."""
    time.sleep(rng.uniform(low, high) * world.pace)


def _manager_kill9(world: World, rng: random.Random) -> None:
    assert world.manager is not None
    _pause(world, rng, 0.0, 1.5)
    world.manager.stop(signal.SIGKILL)
    _pause(world, rng, 0.0, 1.0)
    world.start_manager()


def _edge_kill9(world: World, rng: random.Random) -> None:
    assert world.edge is not None
    _pause(world, rng, 0.0, 1.5)
    world.edge.stop(signal.SIGKILL)
    _pause(world, rng, 0.0, 1.0)
    world.start_edge()


def _manager_frozen(world: World, rng: random.Random) -> None:
    assert world.manager is not None
    _pause(world, rng, 0.0, 1.0)
    world.manager.process.send_signal(signal.SIGSTOP)
    _pause(world, rng, 0.5, 3.0)
    world.manager.process.send_signal(signal.SIGCONT)


def _network_cut(world: World, rng: random.Random) -> None:
    assert world.proxy is not None
    _pause(world, rng, 0.0, 1.0)
    world.proxy.cut()
    _pause(world, rng, 0.5, 3.0)
    world.proxy.restore()


def _network_blackhole(world: World, rng: random.Random) -> None:
    assert world.proxy is not None
    _pause(world, rng, 0.0, 1.0)
    world.proxy.blackhole(True)
    _pause(world, rng, 0.5, 3.0)
    world.proxy.blackhole(False)


def _network_slow(world: World, rng: random.Random) -> None:
    assert world.proxy is not None
    world.proxy.delay = rng.uniform(0.05, 0.3)
    _pause(world, rng, 1.0, 3.0)
    world.proxy.delay = 0.0


# -- between edge and API server --


def _api_blackhole(world: World, rng: random.Random) -> None:
    """The API connections go dead for good (a middlebox lost them): only timeouts notice."""
    assert world.api_proxy is not None
    _pause(world, rng, 0.0, 1.0)
    world.api_proxy.blackhole(True, sever=True)
    _pause(world, rng, 0.5, 3.0)
    world.api_proxy.blackhole(False)


def _api_delay(world: World, rng: random.Random) -> None:
    assert world.api_proxy is not None
    world.api_proxy.delay = rng.uniform(0.05, 0.3)
    _pause(world, rng, 1.0, 3.0)
    world.api_proxy.delay = 0.0


def _api_reset(world: World, rng: random.Random) -> None:
    assert world.api_proxy is not None
    _pause(world, rng, 0.0, 1.0)
    world.api_proxy.cut()
    _pause(world, rng, 0.5, 3.0)
    world.api_proxy.restore()


def _api_drip(world: World, rng: random.Random) -> None:
    """A few hundred bytes at a time: lists and watch events crawl, nothing fails outright."""
    assert world.api_proxy is not None
    world.break_api_connections()
    world.api_proxy.drip = (rng.choice([64, 256, 1024]), rng.uniform(0.01, 0.05))
    _pause(world, rng, 1.0, 3.0)
    world.api_proxy.drip = None


# -- the API server's own failures (the simulator's fault injection) --


def _api_faults(world: World, rng: random.Random, rules: list[dict[str, Any]], during: Callable[[], None]) -> None:
    """``rules`` on for 0.5-3 s; the edges' API connections dropped first, so their next requests meet them."""
    assert world.api is not None
    _pause(world, rng, 0.0, 1.0)
    world.api.set_faults(rules)
    try:
        world.break_api_connections()
        until = time.monotonic() + rng.uniform(0.5, 3.0) * world.pace
        while time.monotonic() < until:
            during()
    finally:
        world.api.clear_faults()


def _idle() -> None:
    time.sleep(0.05)


def _api_status(status: int) -> Callable[[World, random.Random], None]:
    def fault(world: World, rng: random.Random) -> None:
        _api_faults(world, rng, [{"kind": "*", "status": status, "verbs": READ_VERBS}], _idle)

    fault.__doc__ = f"Every list, watch and get answered {status}."
    return fault


def _api_latency(world: World, rng: random.Random) -> None:
    rule = {"kind": "*", "latency": rng.uniform(0.2, 1.5), "latency_verbs": READ_VERBS}
    _api_faults(world, rng, [rule], _idle)


def _api_drop_mid_list(world: World, rng: random.Random) -> None:
    """Every watch breaks once with 410 (the edge lists again), and lists stop halfway through their body."""
    rules = [
        {"kind": kind, "status": 410, "verbs": ["watch"], "times": 1, "drop_mid_list": rng.randint(1, 3)}
        for kind in KINDS
    ]
    _api_faults(world, rng, rules, _idle)


def _api_gone(world: World, rng: random.Random) -> None:
    """The event history compacted again and again: watches behind it and lists paging across it get 410 Gone."""
    api = world.api
    assert api is not None

    def compact() -> None:
        api.compact()
        _pause(world, rng, 0.1, 0.4)

    _api_faults(world, rng, [], compact)


def _api_silent_watch(world: World, rng: random.Random) -> None:
    """Watches stay open and deliver nothing, open ones for good: only the edge's idle timeout notices."""
    _api_faults(world, rng, [{"kind": "*", "silent_watches": True}], _idle)


# -- many edges, the manager's storage --


def _reconnect_storm(world: World, rng: random.Random) -> None:
    """The manager killed (SIGKILL) or stopped (SIGTERM) and started again: every edge reconnects at once."""
    assert world.manager is not None
    _pause(world, rng, 0.0, 1.5)
    world.manager.stop(signal.SIGKILL if rng.random() < 0.5 else signal.SIGTERM)
    _pause(world, rng, 0.0, 1.0)
    world.start_manager()


def integrity(path: Path) -> list[str]:
    """SQLite's own ``PRAGMA integrity_check`` of the database, read alongside the manager: problems, if any."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        return [f"integrity_check failed: {exc}"]
    finally:
        connection.close()
    return [] if rows == ["ok"] else [f"integrity_check: {'; '.join(rows[:5])}"]


def _disk_full(world: World, rng: random.Random) -> None:
    """The manager cannot write files past a size (RLIMIT_FSIZE: writes fail with EFBIG, SQLite reports
    the disk full) for 1-3 s: either nothing new at all (4 KiB) or the database cannot grow. Meanwhile
    the database must stay intact and the manager's copy must not go back. Then space comes back:
    half the rounds while the manager runs, half by starting it again."""
    assert world.manager is not None and world.query is not None
    path = world.sqlite_path
    assert path is not None
    manager = world.manager
    _pause(world, rng, 0.0, 1.0)
    before = manager_copies(world.query, world.clusters)
    limit = 4096 if rng.random() < 0.5 else path.stat().st_size
    resource.prlimit(manager.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        _pause(world, rng, 1.0, 3.0)
        world.problems.extend(integrity(path))
        try:
            during = manager_copies(world.query, world.clusters)
        except Exception:  # a query may need space too (a temporary file); not the point here
            during = {}
        judge = Invariant()
        for cluster, copy in during.items():
            judge.judge(before[cluster], before[cluster], cluster)
            if (verdict := judge.judge(copy, copy, cluster)).backwards:
                world.problems.append("while the disk was full: " + "; ".join(verdict.examples))
    finally:
        if rng.random() < 0.5 and manager.alive():
            resource.prlimit(manager.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        else:
            manager.stop(signal.SIGTERM)
            world.problems.extend(integrity(path))
            world.start_manager()


def _manager_failover(world: World, rng: random.Random) -> None:
    """The serving one of two managers on one storage frozen (SIGSTOP) or killed (SIGKILL); the proxy sends
    the edge to the other, which takes the cluster over. Then the first comes back: resumed, it must
    write nothing (fencing); started again, it stands by."""
    assert world.proxy is not None and world.manager is not None and world.second_manager is not None
    serving = world.serving
    victim = world.second_manager if serving else world.manager
    _pause(world, rng, 0.0, 1.0)
    freeze = rng.random() < 0.5
    victim.process.send_signal(signal.SIGSTOP if freeze else signal.SIGKILL)
    world.proxy.target = ("127.0.0.1", world.port if serving else world.second_port)
    world.proxy.cut()
    world.proxy.restore()
    world.serving = 1 - serving
    _pause(world, rng, 0.5, 3.0)
    if freeze:
        victim.process.send_signal(signal.SIGCONT)
    else:
        victim.process.wait()
        world.start_manager(second=bool(serving))


def _storage_connections_killed(world: World, rng: random.Random) -> None:
    """The manager's storage connections ended under it (e.g. pg_terminate_backend) 1-3 times in 3 s."""
    assert world.storage_killer is not None
    moments = sorted(rng.uniform(0.0, 3.0) * world.pace for _ in range(rng.randint(1, 3)))
    started = time.monotonic()
    for moment in moments:
        time.sleep(max(0.0, started + moment - time.monotonic()))
        world.storage_killer()


SCENARIOS: dict[str, Callable[[World, random.Random], None]] = {
    "manager_kill9": _manager_kill9,
    "manager_frozen": _manager_frozen,
    "edge_kill9": _edge_kill9,
    "network_cut": _network_cut,
    "network_blackhole": _network_blackhole,
    "network_slow": _network_slow,
    "api_blackhole": _api_blackhole,
    "api_delay": _api_delay,
    "api_reset": _api_reset,
    "api_drip": _api_drip,
    "api_500": _api_status(500),
    "api_429": _api_status(429),
    "api_403": _api_status(403),
    "api_503": _api_status(503),
    "api_latency": _api_latency,
    "api_drop_mid_list": _api_drop_mid_list,
    "api_gone": _api_gone,
    "api_silent_watch": _api_silent_watch,
    "reconnect_storm": _reconnect_storm,
    "disk_full": _disk_full,
    "storage_kill": _storage_connections_killed,
    "manager_failover": _manager_failover,
}

#: What a scenario needs of the world; the others run in any.
NEEDS: dict[str, Callable[[World], bool]] = {
    **{name: (lambda world: world.api_proxy is not None) for name in SCENARIOS if name.startswith("api_")},
    "reconnect_storm": lambda world: len(world.clusters) > 1,
    "disk_full": lambda world: world.sqlite_path is not None,
    "storage_kill": lambda world: world.storage_killer is not None,
    "manager_failover": lambda world: world.managers == 2,
}


def applicable(world: World, names: Iterable[str] | None = None) -> list[str]:
    """The scenarios (of ``names``, default all) this world can run."""
    return [name for name in (names or SCENARIOS) if NEEDS.get(name, lambda _: True)(world)]


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
    """Until the copies agree for every cluster, each held by its own edge (or ``timeout``): the last
    verdict and how long it took."""
    started = time.monotonic()
    verdict = Verdict(lost=-1)
    while time.monotonic() - started < timeout:
        try:
            cluster, managers = world.copies()
            holders = world.holders() if len(world.clusters) > 1 else []
        except Exception:  # the manager may still be starting: keep asking
            time.sleep(0.2)
            continue
        verdict = Verdict()
        for name, manager in managers.items():
            one = invariant.judge(cluster, manager, "" if len(managers) == 1 else name)
            verdict.lost, verdict.phantom = verdict.lost + one.lost, verdict.phantom + one.phantom
            verdict.backwards += one.backwards
            prefix = "" if len(managers) == 1 else f"{name}: "
            verdict.examples.extend(prefix + text for text in one.examples[: 5 - len(verdict.examples)])
        if verdict.exact and not holders:
            break
        if verdict.exact:
            verdict.lost = -1  # not yet: a cluster without its edge
            verdict.examples = holders[:5]
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
    if not applicable(world, [name]):
        raise ValueError(f"scenario {name} needs another world (see NEEDS)")
    invariant = invariant or Invariant()
    fault = SCENARIOS[name]
    result = ScenarioResult(name)
    pods = world.api.pods()
    for index in range(rounds):
        mutator = Mutator(world.api, pods, rate, world.rng)
        world.problems.clear()
        mutator.start()
        try:
            fault(world, world.rng)
        finally:
            mutator.stop()
        verdict, took = wait_exact(world, invariant, timeout)
        problems = list(world.problems)
        result.rounds += 1
        if verdict.exact and not problems:
            result.held += 1
            result.reconverge.append(took)
        else:
            result.failures.append(
                f"round {index + 1}: " + "; ".join(problems + verdict.examples or ["never answered"])
            )
        if progress is not None:
            state = "held" if verdict.exact and not problems else "FAILED"
            progress(f"{name} round {index + 1}/{rounds}: {state} in {took:.2f}s ({mutator.done} changes)")
    return result


def table(results: Iterable[ScenarioResult]) -> str:
    lines = [f"{'scenario':<18} {'rounds':>6} {'held':>6} {'p50 (s)':>10} {'max (s)':>10}"]
    lines.extend(r.row() for r in results)
    return "\n".join(lines)
