"""Manager ingest of one 150,000-pod snapshot, then resyncs, then query latency at that size.

Runs ``navigator manager`` in its own process (SQLite in a temp directory, or a fresh
schema on PostgreSQL) and feeds it over real gRPC exactly what an edge sends: JSON
payloads (the default serializer; ``--serializer protobuf`` for an older edge's Struct
payloads) in a chunked FULL state: an open chunk set of about 4 MiB chunks, as an edge
sends it (``--closed``: closed sets of 50,000 objects). History is on (the default 7 days). Prints:

- ingest: from the first chunk sent to the APPLIED ack of the last
  (targets: <= 4 s on SQLite, <= 5 s on PostgreSQL)
- resync: the same snapshot again (nothing changed: target <= 1 s), and again with 1 % modified
- the manager's CPU time for each (user + system: steadier than wall time on a loaded machine)
- the manager's peak RSS
- one namespace's pods: ``navigator query``-style gRPC query and, on SQLite, the query alone

    .venv/bin/python benchmarks/manager_ingest.py [--pods 150000] [--namespaces 100]
        [--backend sqlite|postgres|both] [--serializer json|protobuf]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.serializers.protobuf import ProtobufSerializer
from navigator_plugins.storage.sqlite import create as create_sqlite

from navigator.client.client import AsyncQueryClient
from navigator.interfaces import ResourceQuery, Serializer
from navigator.testing.raw_edge import RawEdge, chunked, full_state
from navigator.v1 import sync_pb2

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]
#: Objects per chunk: about 15 MB per message, well under the 64 MiB default limit.
#: As an edge sends them: open chunk sets of about 4 MiB (``OPEN_CHUNK_BYTES``), about 10,000 of these
#: pods; ``--closed`` sends closed sets of 50,000 (an edge talking to an older manager sends 32 MiB ones).
PER_OPEN_CHUNK = 10_000
PER_CLOSED_CHUNK = 50_000


def pod_data(i: int) -> dict[str, object]:
    """What the pods collector puts in ``data`` for a typical pod."""
    return {
        "phase": "Running",
        "pod_ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "pod_ips": [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"],
        "host_ip": f"192.168.{i // 256 % 256}.{i % 256}",
        "node_name": f"node-{i % 500}",
        "ready": i % 50 != 0,
        "owner": {"kind": "ReplicaSet", "name": f"app-{i // 10}-7d9f8c6b5"},
        "restarts": i % 3,
        "containers": ["app", "sidecar"],
        "start_time": "2025-01-01T00:00:00Z",
    }


def build_pods(
    n: int, namespaces: int, serializer: Serializer, version: int = 1, modified: float = 0.0
) -> list[sync_pb2.Resource]:
    pods = []
    changed_every = int(1 / modified) if modified else 0
    for i in range(n):
        rv = version if changed_every and i % changed_every == 0 else 1
        pods.append(
            sync_pb2.Resource(
                kind="pods",
                namespace=f"ns-{i % namespaces}",
                name=f"app-{i // 10}-7d9f8c6b5-{i:06d}",
                uid=str(uuid.UUID(int=i)),
                resource_version=str(rv),
                labels={"app": f"app-{i // 10}", "tier": "web" if i % 2 else "api", "pod-template-hash": "7d9f8c6b5"},
                payload=serializer.encode(pod_data(i)),
            )
        )
    return pods


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU so far: on a shared, loaded machine, steadier than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def send_snapshot(
    edge: RawEdge, sequence: int, pods: list[sync_pb2.Resource], closed: bool = False
) -> tuple[float, sync_pb2.Ack]:
    state = full_state("bench", "edge-1", sequence, {"pods": pods})
    chunks = chunked(state, PER_CLOSED_CHUNK) if closed else chunked(state, PER_OPEN_CHUNK, open_set=True)
    started = time.perf_counter()
    for chunk in chunks:
        await edge.send(sync_pb2.EdgeMessage(state=chunk))
    acks = [await edge.recv(timeout=300) for _ in chunks]
    elapsed = time.perf_counter() - started
    last = acks[-1]
    assert last is not None and last.ack.status == sync_pb2.ACK_STATUS_APPLIED, last
    return elapsed, last.ack


SERIALIZERS: dict[str, Serializer] = {"json": JsonSerializer(), "protobuf": ProtobufSerializer()}


DSN = os.environ.get("NAVIGATOR_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def storage_config(backend: str, workdir: Path, schema: str) -> str:
    if backend == "sqlite":
        return f"{{plugin: sqlite, options: {{path: {workdir / 'navigator.db'}}}}}"
    return f"{{plugin: postgres, options: {{dsn: '{DSN}', schema: {schema}}}}}"


async def main(backend: str, pods: int, namespaces: int, serializer_name: str, closed: bool = False) -> None:
    serializer = SERIALIZERS[serializer_name]
    workdir = Path(tempfile.mkdtemp(prefix="navigator-ingest-"))
    db = workdir / "navigator.db"
    config = workdir / "manager.yaml"
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    config.write_text(f"listen: 127.0.0.1:0\nstorage: {storage_config(backend, workdir, schema)}\n")
    print(f"[{backend}] building {pods:,} pods in {namespaces} namespaces ({serializer_name} payloads) ...", flush=True)
    snapshot = build_pods(pods, namespaces, serializer)
    size = sum(p.ByteSize() for p in snapshot) / 2**20
    proc = subprocess.Popen(
        [*NAVIGATOR, "manager", "--config", str(config), "--log-level", "WARNING"], stdout=subprocess.PIPE, text=True
    )
    target = 4.0 if backend == "sqlite" else 5.0
    try:
        assert proc.stdout is not None
        line = ""
        while not line.startswith("listening on"):  # a profiler may print first
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("the manager did not start")
        address = line.split()[-1]
        baseline = peak_rss_mib(proc.pid)
        async with RawEdge(address) as edge:
            await edge.identify("bench", "edge-1", serializers=[serializer_name])
            cpu = cpu_seconds(proc.pid)
            ingest, ack = await send_snapshot(edge, 1, snapshot, closed)
            cpu, used = cpu_seconds(proc.pid), cpu_seconds(proc.pid) - cpu
            print(f"[{backend}] ingest      {pods:,} pods ({size:.0f} MiB on the wire): {ingest:.2f} s, manager CPU "
                  f"{used:.2f} s  (+{ack.added:,}; target <= {target:g} s) {'OK' if ingest <= target else 'MISSED'}")  # fmt: skip
            resync, ack = await send_snapshot(edge, 100, snapshot, closed)
            cpu, used = cpu_seconds(proc.pid), cpu_seconds(proc.pid) - cpu
            print(f"[{backend}] resync      unchanged snapshot: {resync:.2f} s, manager CPU {used:.2f} s  "
                  f"(~{ack.modified}; target <= 1 s) {'OK' if resync <= 1 else 'MISSED'}")  # fmt: skip
            changed = build_pods(pods, namespaces, serializer, version=2, modified=0.01)
            cpu = cpu_seconds(proc.pid)
            resync, ack = await send_snapshot(edge, 200, changed, closed)
            used = cpu_seconds(proc.pid) - cpu
            print(f"[{backend}] resync      1% modified: {resync:.2f} s, manager CPU {used:.2f} s  (~{ack.modified:,})")
        print(f"[{backend}] manager RSS {baseline:.0f} MiB at start, peak {peak_rss_mib(proc.pid):.0f} MiB")

        grpc_times = []
        async with AsyncQueryClient(address) as client:
            for _ in range(20):
                started = time.perf_counter()
                rows = [r async for r in client.resources(kind="pods", namespace="ns-7")]
                grpc_times.append(time.perf_counter() - started)
        print(f"[{backend}] query       one namespace ({len(rows):,} pods): gRPC median "
              f"{statistics.median(grpc_times) * 1000:.1f} ms (p95 {sorted(grpc_times)[18] * 1000:.1f})")  # fmt: skip
        if backend == "sqlite":
            sqlite = create_sqlite({"path": str(db)})
            sql_times = []
            for _ in range(20):
                started = time.perf_counter()
                found = list(sqlite.query(ResourceQuery(kind="pods", namespace="ns-7")))
                sql_times.append(time.perf_counter() - started)
            sqlite.close()
            print(f"[{backend}] query       SQLite alone median {statistics.median(sql_times) * 1000:.1f} ms "
                  f"({len(found):,} rows)")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)  # 180 MB a run: left behind, it slows the next run's writes
        if backend == "postgres":
            # Only a PostgreSQL run needs the plugin installed.
            from navigator_plugin_postgres.testing import drop_schema

            drop_schema(DSN, schema)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--serializer", choices=sorted(SERIALIZERS), default="json")
    parser.add_argument("--closed", action="store_true", help="closed chunk sets of 50,000 instead of open ones")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        asyncio.run(main(name, args.pods, args.namespaces, args.serializer, args.closed))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
