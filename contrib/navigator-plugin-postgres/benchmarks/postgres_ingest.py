"""How fast the postgres backend ingests and serves a big cluster, history on: prints figures, asserts nothing.

    .venv/bin/python contrib/navigator-plugin-postgres/benchmarks/postgres_ingest.py [--pods 150000]
        [--history-rows 1000000]

States go through the core's ``Reconciler`` over the backend, as the manager
applies them (JSON payloads, decoded only when they changed). Uses
``NAVIGATOR_TEST_POSTGRES_DSN``, else the local server on 127.0.0.1:5432, else a
throwaway ``pgserver`` (a fresh database is created and dropped). Targets: a
150,000-pod snapshot in under 5 s with history on; with 1,000,000 history rows,
"changes in one namespace in the last hour" and "pods of one namespace at T"
each under 100 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.connection import APPLICATION_NAME
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.testing import postgres_dsn

from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import StateSet
from navigator.plugin import ClusterRecord, HistoryQuery, ResourceQuery, Serializer, parse_selector, sync_pb2

#: 1,500 pods per namespace at 150,000 pods, as in benchmarks/history.py.
NAMESPACES = 100


class Json:
    """The payload encoding of these states: orjson, as the built-in ``json`` serializer."""

    name = "json"

    def encode(self, data: Any) -> bytes:
        return orjson.dumps(data)

    def decode(self, payload: bytes) -> dict[str, Any]:
        return orjson.loads(payload)


def pod(i: int, version: int = 1) -> sync_pb2.Resource:
    """A pod shaped like the pods collector's output (about 500 bytes of JSON)."""
    app = f"app-{i % 500}"
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
    return sync_pb2.Resource(
        kind="pods",
        namespace=f"team-{i % NAMESPACES}",
        name=f"{app}-{i:07d}",
        uid=f"uid-{i:07d}",
        resource_version=str(version),
        labels={"app": app, "tier": ("web", "api", "db")[i % 3], "pod-template-hash": f"{i % 997:x}5f7c9"},
        payload=orjson.dumps(data),
    )


def full(sequence: int, pods: list[sync_pb2.Resource]) -> StateSet:
    return StateSet(sequence=sequence, type=sync_pb2.STATE_TYPE_FULL, kinds=["pods"], cached_kinds=[], errors=[],
                    counts={"pods": len(pods)}, resources=pods, observed_at=datetime.now(UTC))  # fmt: skip


def delta(sequence: int, pods: list[sync_pb2.Resource]) -> StateSet:
    return StateSet(sequence=sequence, type=sync_pb2.STATE_TYPE_DELTA, kinds=[], cached_kinds=[], errors=[],
                    counts={}, resources=pods, observed_at=datetime.now(UTC))  # fmt: skip


def churned(pods: list[sync_pb2.Resource], fraction: float, rng: random.Random) -> list[sync_pb2.Resource]:
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
    server = "   n/a"
    if server_before is not None and server_after is not None:
        server = f"{server_after - server_before:6.2f}"
    print(f"{label:<64} {wall:7.3f} s   (client cpu {cpu:5.2f} s, server cpu {server} s)")
    return result


def median_ms(work: Callable[[], Any], runs: int = 20) -> tuple[float, Any]:
    result, times = None, []
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def fill_history(dsn: str, schema: str, rows: int, pods: int, start: datetime, span: timedelta) -> None:
    """Synthetic history rows written directly (MODIFIED pods spread evenly over ``span``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"""INSERT INTO "{schema}".history (cluster, kind, namespace, name, uid, type, old_resource_version,
                   new_resource_version, applied_at, observed_at, changed_fields, labels, data)
               SELECT 'bench', 'pods', 'team-' || (p %% {NAMESPACES}), 'app-' || (p %% 500) || '-' || lpad(p::text, 7, '0'),
                      'uid-' || lpad(p::text, 7, '0'), 'MODIFIED', (i - 1)::text, i::text,
                      %(start)s + (i * %(step)s), %(start)s + (i * %(step)s), '{{containers}}',
                      jsonb_build_object('app', 'app-' || (p %% 500), 'tier', 'web'),
                      json_build_object('phase', 'Running', 'restarts', i, 'node_name', 'node-' || (p %% 300))
               FROM (SELECT i, i %% %(pods)s AS p FROM generate_series(1, %(rows)s) AS i) AS s""",
            {"start": start, "step": span / rows, "pods": pods, "rows": rows},
        )
        conn.execute(f'ANALYZE "{schema}".history')


def history_bytes(dsn: str, schema: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_total_relation_size(%s)", [f'"{schema}".history']).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--change", type=float, default=0.01, help="fraction changed in the re-apply")
    parser.add_argument("--history-rows", type=int, default=1_000_000, help="synthetic history rows for queries")
    args = parser.parse_args()

    pods = [pod(i) for i in range(args.pods)]
    serializer: Serializer = Json()
    cluster = ClusterRecord("bench", edge_id="edge-1")
    rng = random.Random(7)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with postgres_dsn("navigator_bench") as dsn:
        backend = PostgresBackend(parse_options({"dsn": dsn, "schema": "bench"}))
        backend.migrate()
        cpu = ServerCpu(dsn)
        reconciler = Reconciler(backend, history=True)
        sequence = 0

        def apply(label: str, state: Callable[[int], StateSet]) -> None:
            nonlocal sequence
            sequence += 1
            made = state(sequence)
            changes = timed(label, lambda: reconciler.apply(cluster, made, serializer, datetime.now(UTC)), cpu)
            print(f"  -> {len(changes)} changes")

        def query(label: str, q: ResourceQuery) -> None:
            found = timed(label, lambda: list(backend.query(q)), cpu)
            print(f"  -> {len(found)} rows")

        try:
            apply(f"full snapshot, {args.pods} pods (first), history on", lambda n: full(n, pods))
            timed("versions() of the cluster (the reconciler's index, at a claim)",
                  lambda: reconciler.load("bench"), cpu)  # fmt: skip
            apply("same snapshot again (nothing changed)", lambda n: full(n, pods))
            changed = churned(pods, args.change, rng)
            apply(f"re-apply with {args.change:.0%} changed (modify/delete/add)", lambda n: full(n, changed))
            upserts = [pod(i, version=3) for i in rng.sample(range(args.pods), 500)]
            apply("delta of 500 modified pods", lambda n: delta(n, upserts))
            query("query one namespace (kind pods, team-3)", ResourceQuery(kind="pods", namespace="team-3"))
            query("query one namespace, first 100", ResourceQuery(namespace="team-3", limit=100))
            query("query label selector app=app-42,tier in (web,api)",
                  ResourceQuery(selector=parse_selector("app=app-42,tier in (web,api)")))  # fmt: skip
            query("query every pod of the cluster", ResourceQuery(cluster="bench", kind="pods"))
            timed("counts", lambda: backend.counts("bench"), cpu)

            if args.history_rows:
                before = history_bytes(dsn, "bench")
                now = datetime.now(UTC)
                start = now - timedelta(days=1)
                timed(f"{args.history_rows:,} synthetic history rows over the last day (direct SQL)",
                      lambda: fill_history(dsn, "bench", args.history_rows, args.pods, start, timedelta(days=1)),
                      cpu)  # fmt: skip
                per_million = (history_bytes(dsn, "bench") - before) / args.history_rows * 1e6 / 2**20
                print(f"  -> history on disk: {per_million:.0f} MiB per million changes (table and indexes)")
                recent = HistoryQuery(cluster="bench", namespace="team-7", since=now - timedelta(hours=1))
                ms, rows = median_ms(lambda: list(backend.history(recent)))
                print(f"{'changes in one namespace in the last hour':<64} {ms:7.1f} ms median ({len(rows):,} rows)")
                at = ResourceQuery(cluster="bench", kind="pods", namespace="team-7", at=start + timedelta(hours=12))
                ms, rows = median_ms(lambda: list(backend.query(at)))
                print(f"{'pods of one namespace at T (12 h ago)':<64} {ms:7.1f} ms median ({len(rows):,} pods)")
                timed("prune: keep 6 h (per pod the latest change before)",
                      lambda: backend.prune_history(now - timedelta(hours=6), None), cpu)  # fmt: skip
        finally:
            backend.close()


if __name__ == "__main__":
    main()
