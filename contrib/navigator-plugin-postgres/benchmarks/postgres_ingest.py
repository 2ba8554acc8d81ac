"""How fast the postgres backend ingests and serves a big cluster: prints figures, asserts nothing.

    .venv/bin/python contrib/navigator-plugin-postgres/benchmarks/postgres_ingest.py [--pods 150000]

Uses ``NAVIGATOR_TEST_POSTGRES_DSN`` (a fresh database is created and dropped)
or a throwaway ``pgserver`` server. Target: a 150,000-pod snapshot in under 5 s.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from navigator.interfaces import ClusterRecord, ResourceQuery
from navigator.resource import Resource
from navigator.selectors import parse_selector
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.testing import postgres_dsn

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


def timed(label: str, work: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = work()
    print(f"{label:<52} {time.perf_counter() - start:8.3f} s")
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
        try:
            changes = timed(f"full snapshot, {args.pods} pods (first)", lambda: backend.apply_snapshot(
                cluster, ["pods"], pods))  # fmt: skip
            print(f"  -> {len(changes)} changes")

            changes = timed("same snapshot again (nothing changed)", lambda: backend.apply_snapshot(
                cluster, ["pods"], pods))  # fmt: skip
            print(f"  -> {len(changes)} changes")

            picked = rng.sample(range(args.pods), int(args.pods * args.change))
            third = len(picked) // 3
            changed = list(pods)
            for i in picked[:third]:
                changed[i] = pod(i, version=2)
            gone = set(picked[third : 2 * third])
            changed = [p for j, p in enumerate(changed) if j not in gone]
            changed.extend(pod(args.pods + k) for k in range(len(picked) - 2 * third))
            changes = timed(f"re-apply with {args.change:.0%} changed (modify/delete/add)", lambda: backend.apply_snapshot(
                cluster, ["pods"], changed))  # fmt: skip
            print(f"  -> {len(changes)} changes")

            delta = [pod(i, version=3) for i in rng.sample(range(args.pods), 500)]
            timed("delta of 500 upserts", lambda: backend.apply_delta(cluster, delta, []))

            found = timed("query one namespace (team-3, all rows)", lambda: list(backend.query(
                ResourceQuery(kind="pods", namespace="team-3"))))  # fmt: skip
            print(f"  -> {len(found)} pods")
            found = timed("query one namespace, first 100", lambda: list(backend.query(
                ResourceQuery(namespace="team-3", limit=100))))  # fmt: skip
            selector = parse_selector("app=app-42,tier in (web,api)")
            found = timed(f"query label selector {selector}", lambda: list(backend.query(
                ResourceQuery(selector=selector))))  # fmt: skip
            print(f"  -> {len(found)} pods")
            found = timed("query every pod of the cluster", lambda: list(backend.query(
                ResourceQuery(cluster="bench", kind="pods"))))  # fmt: skip
            print(f"  -> {len(found)} pods")
            timed("counts", lambda: backend.counts("bench"))
        finally:
            backend.close()


if __name__ == "__main__":
    main()
