"""Label-selector queries at 150,000 stored pods, in process: through the label index and through the scan.

Stores one cluster of ``--pods`` pods into each backend through the manager's reconciler (json
serializer, history off), labelled as Deployments label their pods: per workload of 10 pods
``app``, ``pod-template-hash``, ``tier`` (500 values) and ``team`` (40 values; one workload in 500
has none), all in the workload's namespace (100 of them). Then prints, per selector, the median
of ``--runs`` runs of ``backend.query(...)`` read to the end (rows built, as the manager streams
them), against the same query through the full scan measured in the same run (the reference),
and the ratio; the target is <= 20 ms. Also: the ingest of the pods (wall and CPU of this
process), and the load average before and after (the machine may be shared: compare medians).

- SQLite: the scan is the backend with ``label_index = False`` (the JSON conditions on every row).
- PostgreSQL: the scan is a second backend on the same schema whose sessions have
  ``enable_bitmapscan=off`` (GIN serves only bitmap scans); the plan the server-side cursor
  gets for each selector (``EXPLAIN DECLARE``) is printed, and PostgreSQL comes from
  ``NAVIGATOR_TEST_POSTGRES_DSN``, else the local server (127.0.0.1:5432). The queries run
  after ``VACUUM ANALYZE``, as autovacuum leaves the table soon after an ingest: until then the
  GIN index's pending list (entries not yet merged, up to ``gin_pending_list_limit``) is
  scanned by every lookup; the first selector is also measured before, and printed.

    .venv/bin/python benchmarks/selector_query.py [--pods 150000] [--runs 20] [--backend sqlite|postgres|both]
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
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from navigator_plugins.serializers.json import JsonSerializer

from navigator.interfaces import ClusterRecord, ResourceQuery, StorageBackend
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import StateSet
from navigator.resource import StoredResource
from navigator.selectors import parse_selector
from navigator.v1 import sync_pb2

TARGET_MS = 20.0
#: Pods per workload, and workloads with no ``team`` label (1 in ...).
REPLICAS, UNTEAMED = 10, 500


def selectors(pods: int) -> list[str]:
    workload = min(7777, pods // REPLICAS - 1)
    other_tier = (workload + 1) % 500
    return [
        f"app=app-{workload}",
        "tier in (tier-3,tier-4)",
        f"app=app-{workload},tier!=tier-{other_tier}",
        "!team",
        "team=team-3,tier=tier-3",
    ]


def labels(workload: int) -> dict[str, str]:
    found = {"app": f"app-{workload}", "pod-template-hash": f"{workload * 7919 % 16**10:010x}",
             "tier": f"tier-{workload % 500}"}  # fmt: skip
    if workload % UNTEAMED:
        found["team"] = f"team-{workload % 40}"
    return found


def pod(i: int) -> sync_pb2.Resource:
    workload = i // REPLICAS
    data = {
        "phase": "Running",
        "pod_ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "node_name": f"node-{i % 500}",
        "ready": i % 50 != 0,
        "restarts": 0,
        "containers": ["app", "sidecar"],
    }
    return sync_pb2.Resource(
        kind="pods", namespace=f"ns-{workload % 100}", name=f"app-{workload}-{i:07d}", uid=str(uuid.UUID(int=i)),
        resource_version="1", labels=labels(workload), payload=orjson.dumps(data),
    )  # fmt: skip


def ingest(backend: StorageBackend, pods: list[sync_pb2.Resource]) -> tuple[float, float]:
    state = StateSet(sequence=1, type=sync_pb2.STATE_TYPE_FULL, kinds=["pods"], cached_kinds=[], errors=[],
                     counts={"pods": len(pods)}, resources=pods, observed_at=datetime.now(UTC))  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    Reconciler(backend, history=False).apply(ClusterRecord("east", edge_id="e"), state, JsonSerializer(),
                                             datetime.now(UTC))  # fmt: skip
    return time.perf_counter() - wall, time.process_time() - cpu


def median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Median wall and CPU milliseconds of ``fn``, and its last result."""
    walls, cpus, result = [], [], None
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000, result


def report(kind: str, indexed: StorageBackend, scan: StorageBackend, texts: list[str], runs: int,
           plan: Callable[[ResourceQuery], str] | None = None) -> None:  # fmt: skip
    print(f"{kind:<8} {'selector':<34} {'rows':>6} {'index ms':>9} {'(cpu)':>7} {'scan ms':>8} {'ratio':>6}  target")
    for text in texts:
        query = ResourceQuery(kind="pods", selector=parse_selector(text))
        ms, cpu, rows = median_ms(partial(_read, indexed, query), runs)
        ref, _, same = median_ms(partial(_read, scan, query), runs)
        assert [(r.cluster, r.resource.name) for r in rows] == [(r.cluster, r.resource.name) for r in same], text
        verdict = "ok" if ms <= TARGET_MS else "MISSED"
        print(f"{kind:<8} {text:<34} {len(rows):>6} {ms:>9.1f} {cpu:>7.1f} {ref:>8.1f} {ref / ms:>5.0f}x  {verdict}")
        if plan is not None:
            print(f"{'':<8}   plan: {plan(query)}")


def _read(backend: StorageBackend, query: ResourceQuery) -> list[StoredResource]:
    return list(backend.query(query))


@contextmanager
def sqlite_backends(pods: list[sync_pb2.Resource]) -> Iterator[tuple[StorageBackend, StorageBackend]]:
    from navigator_plugins.storage.sqlite import create

    with tempfile.TemporaryDirectory(prefix="navigator-selector-") as tmp:
        path = str(Path(tmp) / "navigator.db")
        backend, scan = create({"path": path}), create({"path": path})
        backend.migrate()
        scan.label_index = False
        wall, cpu = ingest(backend, pods)
        print(f"sqlite   ingest {len(pods):,} pods (history off): {wall:.2f} s wall, {cpu:.2f} s CPU")
        try:
            yield backend, scan
        finally:
            scan.close()
            backend.close()


@contextmanager
def postgres_backends(pods: list[sync_pb2.Resource]) -> Iterator[tuple[StorageBackend, StorageBackend]]:
    from navigator_plugin_postgres.plugin import create
    from navigator_plugin_postgres.testing import drop_schema

    dsn = os.environ.get("NAVIGATOR_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_selector_{uuid.uuid4().hex[:8]}"
    backend = create({"dsn": dsn, "schema": schema})
    backend.migrate()
    separator = "&" if "?" in dsn else "?"
    scan = create({"dsn": f"{dsn}{separator}options=-c%20enable_bitmapscan%3Doff", "schema": schema})
    try:
        wall, cpu = ingest(backend, pods)
        print(f"postgres ingest {len(pods):,} pods (history off): {wall:.2f} s wall, {cpu:.2f} s CPU (this process)")
        _maintain(dsn, schema, "ANALYZE")
        first = ResourceQuery(kind="pods", selector=parse_selector(selectors(len(pods))[0]))
        before, _, _ = median_ms(lambda: list(backend.query(first)), 10)
        _maintain(dsn, schema, "VACUUM ANALYZE")
        after, _, _ = median_ms(lambda: list(backend.query(first)), 10)
        print(f"postgres {first.selector} before VACUUM (GIN pending list unmerged): {before:.1f} ms; after: {after:.1f} ms")
        yield backend, scan
    finally:
        scan.close()
        backend.close()
        drop_schema(dsn, schema)


def _maintain(dsn: str, schema: str, command: str) -> None:
    """``ANALYZE`` or ``VACUUM ANALYZE`` of the resources, as autovacuum runs them after an ingest."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'{command} "{schema}".resources')


def postgres_plan(dsn: str, schema: str) -> Callable[[ResourceQuery], str]:
    """The plan of the statement the backend runs, as its server-side cursor gets it, in one line."""
    import psycopg
    from navigator_plugin_postgres.query import statement

    def plan(query: ResourceQuery) -> str:
        text, params = statement(query)
        with psycopg.connect(dsn) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("SET cursor_tuple_fraction = 1")  # as the backend's connections
            lines = conn.execute(psycopg.sql.SQL("EXPLAIN DECLARE c CURSOR FOR {}").format(text), params).fetchall()
        nodes = [line.strip().split("  (")[0].removeprefix("->  ") for (line,) in lines if "(cost=" in line]
        return " > ".join(nodes)

    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    pods = [pod(i) for i in range(args.pods)]
    texts = selectors(args.pods)
    if args.backend in ("sqlite", "both"):
        with sqlite_backends(pods) as (backend, scan):
            report("sqlite", backend, scan, texts, args.runs)
    if args.backend in ("postgres", "both"):
        with postgres_backends(pods) as (backend, scan):
            options = backend.options  # type: ignore[attr-defined]
            report("postgres", backend, scan, texts, args.runs, postgres_plan(options.dsn, options.schema_name))
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
