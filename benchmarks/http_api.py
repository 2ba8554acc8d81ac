"""The HTTP API and dashboard at fleet scale: request latency with 100 clusters x 10,000 pods stored, and the
change feed's latency from an edge's send to the Server-Sent Events client.

The store (SQLite in a temp directory) is filled directly through the manager's own
change detection (``Reconciler.apply``, as the manager's storage thread runs it):
per cluster, ``--pods`` pods in 10 namespaces, a Service per 10 pods (selector
``app=app-N``, the same app names in every cluster) and its EndpointSlice (10 endpoints,
labelled ``kubernetes.io/service-name``). Then ``navigator manager`` runs in its own
process with ``http.listen`` set, and this process asks it, one request at a time over
a kept-alive connection, what the dashboard asks:

- the overview (``GET /api/v1/clusters``: every cluster with its counts), back to back and, as
  dashboards ask it, 1.1 s apart (the manager keeps an overview answer 1 s, then refreshes it)
- a selector search (``GET /api/v1/pods?selector=app=app-5&limit=50``: 10 pods in every cluster)
  and its next page (``continue``)
- a service page (``GET /api/v1/services/ns-5/app-5``: the service in every cluster, slices, pods)

p50 and p99 of each (goal: p99 <= 100 ms), beside references measured in the same run:
``/healthz`` (the HTTP stack alone) and the same questions over the gRPC query service
(``navigator query``'s path). Then the change feed: an edge (raw gRPC) sends a one-pod
delta; the time until an SSE client of ``/api/v1/events`` receives it (goal <= 100 ms),
beside the time until the edge's ack (the apply itself) as reference.

    .venv/bin/python benchmarks/http_api.py [--clusters 100] [--pods 10000] [--requests 100] [--changes 100]
"""

from __future__ import annotations

import os.path
import sys

# Run as a script, this file's folder comes first on the path, and its name would hide the standard
# library's ``http`` package from everything imported below.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.storage.sqlite import create as create_sqlite

from navigator import processes
from navigator.client.client import QueryClient
from navigator.interfaces import ClusterRecord
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import StateSet
from navigator.testing.raw_edge import RawEdge, delta_state, full_state
from navigator.v1 import sync_pb2

NAMESPACES = 10
PER_SERVICE = 10
EDGE_TOKEN = "bench-edge-token"
#: The cluster whose edge sends the changes the feed is timed with (not one of the filled ones).
FEED = "feed"


def cluster_id(c: int) -> str:
    return f"cluster-{c:03d}"


def objects(c: int, pods: int) -> list[sync_pb2.Resource]:
    """One cluster's pods, services and endpoint slices, as the collectors describe them."""
    out: list[sync_pb2.Resource] = []
    for i in range(pods):
        app = f"app-{i // PER_SERVICE}"
        data = {
            "phase": "Running", "pod_ip": f"10.{c}.{i // 256 % 256}.{i % 256}", "node_name": f"node-{i % 50}",
            "ready": i % 50 != 0, "restarts": 0, "containers": ["app"],
        }  # fmt: skip
        out.append(sync_pb2.Resource(
            kind="pods", namespace=f"ns-{(i // PER_SERVICE) % NAMESPACES}", name=f"{app}-{i:06d}",
            uid=str(uuid.uuid4()), resource_version="1", labels={"app": app, "tier": "web"}, payload=orjson.dumps(data),
        ))  # fmt: skip
    for s in range(pods // PER_SERVICE):
        app, ns = f"app-{s}", f"ns-{s % NAMESPACES}"
        service = {"type": "ClusterIP", "cluster_ip": f"10.96.{s // 256 % 256}.{s % 256}", "selector": {"app": app},
                   "ports": [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}]}  # fmt: skip
        out.append(sync_pb2.Resource(kind="services", namespace=ns, name=app, uid=str(uuid.uuid4()),
                                     resource_version="1", labels={"app": app}, payload=orjson.dumps(service)))
        endpoints = [
            {"addresses": [f"10.{c}.{i // 256 % 256}.{i % 256}"], "ready": i % 50 != 0, "serving": i % 50 != 0,
             "terminating": False, "node_name": f"node-{i % 50}", "zone": "a",
             "target_ref": {"kind": "Pod", "namespace": ns, "name": f"{app}-{i:06d}"}}
            for i in range(s * PER_SERVICE, (s + 1) * PER_SERVICE)
        ]  # fmt: skip
        slice_ = {"service": app, "address_type": "IPv4", "endpoints": endpoints,
                  "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}  # fmt: skip
        out.append(sync_pb2.Resource(kind="endpointslices", namespace=ns, name=f"{app}-abcde", uid=str(uuid.uuid4()),
                                     resource_version="1", labels={"kubernetes.io/service-name": app},
                                     payload=orjson.dumps(slice_)))  # fmt: skip
    return out


def fill(path: Path, clusters: int, pods: int) -> float:
    """The store as ``clusters`` edges' first states would leave it; seconds taken."""
    started = time.perf_counter()
    backend = create_sqlite({"path": str(path)})
    backend.migrate()
    reconciler = Reconciler(backend, history=False)
    kinds = ["pods", "services", "endpointslices"]
    for c in range(clusters):
        resources = objects(c, pods)
        counts = {k: sum(1 for r in resources if r.kind == k) for k in kinds}
        state = StateSet(sequence=1, type=sync_pb2.STATE_TYPE_FULL, kinds=kinds, cached_kinds=[], errors=[],
                         counts=counts, resources=resources, observed_at=datetime.now(UTC))  # fmt: skip
        record = ClusterRecord(cluster_id(c), edge_id=f"edge-{c:03d}", metadata={"region": f"r-{c % 6}"},
                               sync_interval=30.0)  # fmt: skip
        reconciler.apply(record, state, JsonSerializer(), datetime.now(UTC))
        if (c + 1) % 10 == 0:
            print(f"  filled {c + 1}/{clusters} clusters ({time.perf_counter() - started:.0f} s)", flush=True)
    backend.close()
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def measure(fn: Callable[[], Any], runs: int, gap: float = 0.0) -> tuple[float, float]:
    """p50 and p99 in ms of ``runs`` calls, ``gap`` seconds apart (not timed)."""
    fn()  # warm: first-use costs (imports, caches) are not what a dashboard user waits for
    times = []
    for _ in range(runs):
        time.sleep(gap)
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return percentiles(times)


def report(name: str, figures: tuple[float, float], reference: tuple[float, float] | None = None,
           ref_name: str = "") -> None:  # fmt: skip
    p50, p99 = figures
    line = f"{name:<44} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"
    if reference is not None:
        line += f"   ({ref_name} p50 {reference[0]:.1f} ms; ratio {p50 / max(reference[0], 1e-6):.2f})"
    print(line, flush=True)


def get(http: httpx.Client, path: str, **params: Any) -> Any:
    response = http.get(path, params=params)
    response.raise_for_status()
    return response.json()


class FeedClient:
    """An SSE client of ``/api/v1/events`` on a thread: the arrival time of each change, by object name."""

    def __init__(self, base: str, params: dict[str, str]) -> None:
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        self.changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(base, params), daemon=True)
        self._thread.start()

    def _run(self, base: str, params: dict[str, str]) -> None:
        with httpx.Client(base_url=base, timeout=None) as http, http.stream("GET", "/api/v1/events", params=params) as r:
            event = ""
            for line in r.iter_lines():
                if self._stop:
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "ready":
                        self.ready.set()
                    elif event == "change":
                        name = orjson.loads(line[5:])["name"]
                        with self.changed:
                            self.arrived[name] = time.perf_counter()
                            self.changed.notify_all()

    def wait_for(self, name: str, timeout: float = 10.0) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: name in self.arrived, timeout):
                raise TimeoutError(f"the change of {name} never reached the SSE client")
            return self.arrived[name]

    def stop(self) -> None:
        self._stop = True


async def feed_latency(manager: str, base: str, changes: int) -> tuple[list[float], list[float]]:
    """(send -> SSE client, send -> ack) per one-pod delta of the cluster ``FEED``."""
    feed = FeedClient(base, {"cluster": FEED, "kind": "pods"})
    if not feed.ready.wait(10):
        raise TimeoutError("the SSE client never got `ready`")
    to_client, to_ack = [], []
    async with RawEdge(manager, EDGE_TOKEN) as edge:
        await edge.identify(FEED, "bench-edge")
        first = full_state(FEED, "bench-edge", 1, {"pods": [], "services": [], "endpointslices": []})
        await edge.send_state(first)
        for n in range(changes):
            name = f"feed-{n:04d}"
            upsert = sync_pb2.Resource(kind="pods", namespace="ns-0", name=name, uid=str(uuid.uuid4()),
                                       resource_version="1", labels={"app": "feed"},
                                       payload=orjson.dumps({"phase": "Running", "ready": True}))  # fmt: skip
            started = time.perf_counter()
            ack = await edge.send_state(delta_state(FEED, "bench-edge", n + 2, upserts=[upsert]))
            acked = time.perf_counter()
            assert ack.status == sync_pb2.ACK_STATUS_APPLIED, ack
            arrived = await asyncio.to_thread(feed.wait_for, name)
            to_client.append(arrived - started)
            to_ack.append(acked - started)
    feed.stop()
    return to_client, to_ack


@contextlib.contextmanager
def manager_process(tmp: Path, db: Path) -> Iterator[tuple[str, str]]:
    grpc_port, http_port = processes.free_port(), processes.free_port()
    config = tmp / "manager.yaml"
    config.write_text(orjson.dumps({
        "listen": f"127.0.0.1:{grpc_port}", "storage": {"plugin": "sqlite", "options": {"path": str(db)}},
        "auth": {"tokens": {FEED: EDGE_TOKEN}}, "history": {"retention": "off"},
        "http": {"listen": f"127.0.0.1:{http_port}"}, "logging": {"level": "WARNING"},
    }).decode())  # fmt: skip
    child = processes.start("manager", ["manager", "--config", str(config)], tmp / "manager.log")
    try:
        child.wait_for("listening on", timeout=300)
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}"
    finally:
        processes.stop([child])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--pods", type=int, default=10_000, help="pods per cluster")
    parser.add_argument("--requests", type=int, default=100, help="requests per question")
    parser.add_argument("--changes", type=int, default=100, help="changes sent through the feed")
    parser.add_argument("--spaced", type=int, default=15, help="overview asks 1.1 s apart")
    args = parser.parse_args()
    total = args.clusters * args.pods * 12 // 10
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="navigator-http-") as name:
        tmp = Path(name)
        db = tmp / "navigator.db"
        print(f"filling {args.clusters} clusters x {args.pods:,} pods (+ services, slices: {total:,} objects)", flush=True)
        print(f"  filled in {fill(db, args.clusters, args.pods):.0f} s", flush=True)
        with manager_process(tmp, db) as (grpc_address, base):
            with httpx.Client(base_url=base, timeout=60) as http, QueryClient(grpc_address, timeout=60) as grpc:
                runs = args.requests
                health = measure(lambda: get(http, "/healthz"), runs)
                report("GET /healthz (reference: the HTTP stack)", health)
                rows = get(http, "/api/v1/clusters")["items"]
                assert len(rows) >= args.clusters, len(rows)
                core = measure(lambda: grpc.clusters(), runs)
                report("overview  GET /api/v1/clusters", measure(lambda: get(http, "/api/v1/clusters"), runs),
                       core, "gRPC ListClusters")  # fmt: skip
                # As a dashboard asks: each answer is kept 1 s, so every ask here has a refresh running behind it.
                report("overview  one ask every 1.1 s (a refresh behind each)",
                       measure(lambda: get(http, "/api/v1/clusters"), args.spaced, gap=1.1),
                       core, "gRPC ListClusters")  # fmt: skip
                page = get(http, "/api/v1/pods", selector="app=app-5", limit=50)
                assert page["count"] == 50 and page["continue"], page["count"]
                report("search    GET /api/v1/pods?selector=app=app-5",
                       measure(lambda: get(http, "/api/v1/pods", selector="app=app-5", limit=50), runs),
                       measure(lambda: list(grpc.resources(kind="pods", selector="app=app-5", limit=50)), runs),
                       "gRPC ListResources limit 50")  # fmt: skip
                token = page["continue"]
                report("search    next page (continue)",
                       measure(lambda: get(http, "/api/v1/pods", selector="app=app-5", limit=50,
                                           **{"continue": token}), runs))  # fmt: skip
                view = get(http, "/api/v1/services/ns-5/app-5")
                assert len(view["clusters"]) == args.clusters
                report("service   GET /api/v1/services/ns-5/app-5",
                       measure(lambda: get(http, "/api/v1/services/ns-5/app-5"), runs))
            to_client, to_ack = asyncio.run(feed_latency(grpc_address, base, args.changes))
            report("change feed: edge send -> SSE client", percentiles(to_client), percentiles(to_ack),
                   "send -> ack")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} after the run", flush=True)


if __name__ == "__main__":
    main()
