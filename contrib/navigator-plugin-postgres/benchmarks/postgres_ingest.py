"""How fast the postgres backend ingests and serves a big cluster: prints figures, asserts nothing.

    .venv/bin/python contrib/navigator-plugin-postgres/benchmarks/postgres_ingest.py [--pods 150000]

Uses ``NAVIGATOR_TEST_POSTGRES_DSN`` (a fresh database is created and dropped)
or a throwaway ``pgserver`` server. Target: a 150,000-pod snapshot in under 5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.connection import APPLICATION_NAME
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.testing import postgres_dsn

from navigator.interfaces import ClusterRecord, ResourceQuery
from navigator.resource import Resource
from navigator.selectors import parse_selector

NAMESPACES = 20


def pod(i: int, version: int = 1) -> Resource:
    """A pod shaped like the pods collector's output (about 500 bytes of JSON)."""
    namespace = f"team-{i % NAMESPACES}"
    app = f"app-{i % 500}"
    labels = {"app": app, "tier": ("web", "api", "db")[i % 3], "pod-template-hash": f"{i % 997:x}5f7c9"}
    data = {
        "phase": "Running",
        "pod_ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        "node_name": f"node-{i % 300}",
        "ready": True,
        "host_ip": f"192.168.{i % 300 >> 8}.{i % 300 & 255}",
        "start_time": "2024-05-01T12:00:00Z",
        "owner": {"kind": "ReplicaSet", "name": f"{app}-{i % 997:x}5f7c9"},
        "containers": [
            {"name": "main", "image": f"registry.example.com/{app}:1.{version}", "ready": True, "restarts": 0},
            {"name": "sidecar", "image": "envoyproxy/envoy:v1.30", "ready": True, "restarts": 0},
        ],
        "conditions": {"Ready": True, "ContainersReady": True, "PodScheduled": True, "Initialized": True},
    }
    return Resource("pods", namespace, f"{app}-{i:07d}", f"uid-{i:07d}", str(version), labels, data)


class ServerCpu:
    """CPU seconds of this benchmark's PostgreSQL server processes (local server, Linux /proc only).

    On a shared machine wall time depends on the neighbours; CPU time shows the work itself.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def __call__(self) -> float | None:
        try:
            with psycopg.connect(self.dsn) as conn:
                pids = [row[0] for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = %s", [APPLICATION_NAME])]  # fmt: skip
            total = 0.0
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            return total
        except (OSError, psycopg.Error, IndexError, ValueError):
            return None


def timed(label: str, work: Callable[[], Any], server_cpu: Callable[[], float | None]) -> Any:
    server_before = server_cpu()
    cpu = time.process_time()
    start = time.perf_counter()
    result = work()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    server_after = server_cpu()
    server = f"{server_after - server_before:6.2f}" if server_before is not None and server_after is not None else "   n/a"
    print(f"{label:<56} {wall:7.3f} s   (client cpu {cpu:5.2f} s, server cpu {server} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--change", type=float, default=0.01, help="fraction changed in the re-apply")
    args = parser.parse_args()

    pods = [pod(i) for i in range(args.pods)]
    cluster = ClusterRecord("bench", edge_id="edge-1", last_sync=datetime.now(UTC))
    rng = random.Random(7)
    with postgres_dsn("navigator_bench") as dsn:
        backend = PostgresBackend(parse_options({"dsn": dsn, "schema": "bench"}))
        backend.migrate()
        cpu = ServerCpu(dsn)

        def snapshot(label: str, items: list[Resource]) -> None:
            changes = timed(label, lambda: backend.apply_snapshot(cluster, ["pods"], items), cpu)
            print(f"  -> {len(changes)} changes")

        def query(label: str, q: ResourceQuery) -> None:
            found = timed(label, lambda: list(backend.query(q)), cpu)
            print(f"  -> {len(found)} rows")

        try:
            snapshot(f"full snapshot, {args.pods} pods (first)", pods)
            snapshot("same snapshot again (nothing changed)", pods)
            snapshot(f"re-apply with {args.change:.0%} changed (modify/delete/add)", churned(pods, args.change, rng))
            delta = [pod(i, version=3) for i in rng.sample(range(args.pods), 500)]
            timed("delta of 500 upserts", lambda: backend.apply_delta(cluster, delta, []), cpu)
            query("query one namespace (kind pods, team-3)", ResourceQuery(kind="pods", namespace="team-3"))
            query("query one namespace, first 100", ResourceQuery(namespace="team-3", limit=100))
            query("query label selector app=app-42,tier in (web,api)",
                  ResourceQuery(selector=parse_selector("app=app-42,tier in (web,api)")))  # fmt: skip
            query("query every pod of the cluster", ResourceQuery(cluster="bench", kind="pods"))
            timed("counts", lambda: backend.counts("bench"), cpu)
        finally:
            backend.close()


def churned(pods: list[Resource], fraction: float, rng: random.Random) -> list[Resource]:
    """``fraction`` of the pods touched: a third modified, a third deleted, a third replaced by new ones."""
    picked = rng.sample(range(len(pods)), int(len(pods) * fraction))
    third = len(picked) // 3
    changed = list(pods)
    for i in picked[:third]:
        changed[i] = pod(i, version=2)
    gone = set(picked[third : 2 * third])
    changed = [p for j, p in enumerate(changed) if j not in gone]
    changed.extend(pod(len(pods) + k) for k in range(len(picked) - 2 * third))
    return changed

if __name__ == "__main__":
    main()
