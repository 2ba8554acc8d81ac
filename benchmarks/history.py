"""History: ingest cost with history on, and history queries at a million stored changes.

Drives the manager's own change detection (``navigator.manager.reconciler.Reconciler``)
over each backend in this process, as the manager's storage thread does, and prints:

- a 150,000-pod FULL snapshot ingested with history on, beside the same ingest with
  history off measured in the same run (the reference), and the ratio (target: <= 5 s);
- an unchanged re-apply (a version comparison, nothing written);
- with 1,000,000 stored changes: "changes in one namespace in the last hour" and
  "pods of one namespace at time T", median of 20 (target: <= 100 ms each);
- disk used per million changes.

    .venv/bin/python benchmarks/history.py [--pods 150000] [--changes 1000000] [--backend sqlite|postgres|both]

PostgreSQL comes from ``NAVIGATOR_TEST_POSTGRES_DSN``, else the local server (127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from navigator_plugins.serializers.json import JsonSerializer

from navigator.interfaces import ClusterRecord, ResourceQuery, StorageBackend
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import StateSet
from navigator.v1 import sync_pb2

NAMESPACES = 100


#: The built-in ``json`` serializer, as a stream that negotiated it hands the reconciler.
Json = JsonSerializer


def pod(i: int, version: int = 1) -> sync_pb2.Resource:
    data = {
        "phase": "Running",
        "pod_ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "node_name": f"node-{i % 500}",
        "ready": i % 50 != 0,
        "restarts": version - 1,
        "containers": ["app", "sidecar"],
    }
    return sync_pb2.Resource(
        kind="pods",
        namespace=f"ns-{i % NAMESPACES}",
        name=f"app-{i // 10}-{i:07d}",
        uid=str(uuid.UUID(int=i)),
        resource_version=str(version),
        labels={"app": f"app-{i // 10}", "tier": "web" if i % 2 else "api"},
        payload=orjson.dumps(data),
    )


def full(sequence: int, pods: list[sync_pb2.Resource]) -> StateSet:
    return StateSet(sequence=sequence, type=sync_pb2.STATE_TYPE_FULL, kinds=["pods"], cached_kinds=[], errors=[],
                    counts={"pods": len(pods)}, resources=pods, observed_at=datetime.now(UTC))  # fmt: skip


def delta(sequence: int, pods: list[sync_pb2.Resource]) -> StateSet:
    return StateSet(sequence=sequence, type=sync_pb2.STATE_TYPE_DELTA, kinds=[], cached_kinds=[], errors=[],
                    counts={}, resources=pods, observed_at=datetime.now(UTC))  # fmt: skip


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_ms(fn: Callable[[], Any], runs: int = 20) -> tuple[float, Any]:
    result = None
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


@contextmanager
def sqlite_backend(name: str) -> Iterator[tuple[StorageBackend, Callable[[], int]]]:
    from navigator_plugins.storage.sqlite import create

    with tempfile.TemporaryDirectory(prefix="navigator-history-") as tmp:
        path = Path(tmp) / f"{name}.db"
        backend = create({"path": str(path)})
        backend.migrate()

        def size() -> int:
            return sum(p.stat().st_size for p in Path(tmp).glob(f"{name}.db*"))

        try:
            yield backend, size
        finally:
            backend.close()


@contextmanager
def postgres_backend(name: str) -> Iterator[tuple[StorageBackend, Callable[[], int]]]:
    import psycopg
    from navigator_plugin_postgres.plugin import create
    from navigator_plugin_postgres.testing import drop_schema

    dsn = os.environ.get("NAVIGATOR_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    backend = create({"dsn": dsn, "schema": schema})
    backend.migrate()

    def size() -> int:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()
            return int(row[0]) if row else 0

    try:
        yield backend, size
    finally:
        backend.close()
        drop_schema(dsn, schema)


def run(kind: str, open_backend: Callable[[str], Any], pods: int, changes: int) -> None:
    snapshot = [pod(i) for i in range(pods)]
    record = ClusterRecord("east", edge_id="edge-1")

    with open_backend("off") as (backend, _):
        reference = timed(lambda: Reconciler(backend, history=False).apply(record, full(1, snapshot), Json(),
                                                                           datetime.now(UTC)))  # fmt: skip
    with open_backend("on") as (backend, size):
        reconciler = Reconciler(backend, history=True)
        ingest = timed(lambda: reconciler.apply(record, full(1, snapshot), Json(), datetime.now(UTC)))
        resync = timed(lambda: reconciler.apply(record, full(2, snapshot), Json(), datetime.now(UTC)))
        print(f"{kind:<8} ingest {pods:,} pods, history on: {ingest:.2f} s; off (reference, same run): "
              f"{reference:.2f} s; ratio {ingest / reference:.2f}x")  # fmt: skip
        print(f"{kind:<8} unchanged re-apply: {resync:.2f} s")

        # Fill the history to `changes` rows with deltas of modified pods spread over the past day.
        before = size()
        stored = pods
        version, sequence, batch = 1, 3, 20_000
        start = datetime.now(UTC) - timedelta(days=1)
        step = timedelta(days=1) / max(1, (changes - pods) // batch)
        when = start
        fill_started = time.perf_counter()
        while stored < changes:
            version += 1
            first = (stored - pods) % pods
            chunk = [pod((first + j) % pods, version) for j in range(min(batch, changes - stored))]
            reconciler.apply(record, delta(sequence, chunk), Json(), when)
            stored += len(chunk)
            sequence += 1
            when += step
        fill = time.perf_counter() - fill_started
        per_million = (size() - before) / (stored - pods) * 1_000_000 / 2**20
        print(f"{kind:<8} {stored:,} changes stored (filled in {fill:.0f} s); disk per million changes: "
              f"{per_million:.0f} MiB")  # fmt: skip

        now = datetime.now(UTC)
        hour = HistoryQuery(cluster="east", namespace="ns-7", since=now - timedelta(hours=1))
        ms, rows = median_ms(lambda: list(backend.history(hour)))
        print(f"{kind:<8} changes in one namespace in the last hour: {ms:.1f} ms median ({len(rows):,} rows)")
        at = ResourceQuery(cluster="east", kind="pods", namespace="ns-7", at=start + timedelta(hours=12))
        ms, rows = median_ms(lambda: list(backend.query(at)))
        print(f"{kind:<8} pods of one namespace at T (12 h ago): {ms:.1f} ms median ({len(rows):,} pods)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.backend in ("sqlite", "both"):
        run("sqlite", sqlite_backend, args.pods, args.changes)
    if args.backend in ("postgres", "both"):
        run("postgres", postgres_backend, args.pods, args.changes)


if __name__ == "__main__":
    main()
