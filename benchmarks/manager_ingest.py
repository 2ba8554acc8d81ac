"""Manager ingest of one 150,000-pod snapshot into SQLite, then query latency at that size.

Runs ``navigator manager`` in its own process (SQLite in a temp directory) and
feeds it over real gRPC exactly what an edge sends: protobuf-encoded payloads
(the default serializer) in a chunked FULL state. Prints:

- ingest: from the first chunk sent to the APPLIED ack of the last (target < 10 s)
- resync: the same snapshot again (nothing changed), and again with 1% modified
- the manager's peak RSS (target < 1 GiB)
- one namespace's pods: ``navigator query``-style gRPC query and the SQLite query alone (target < 50 ms)

    .venv/bin/python benchmarks/manager_ingest.py [--pods 150000] [--namespaces 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from navigator_plugins.serializers.protobuf import ProtobufSerializer
from navigator_plugins.storage.sqlite import create as create_sqlite

from navigator.client.client import AsyncQueryClient
from navigator.interfaces import ResourceQuery
from navigator.testing.raw_edge import RawEdge, chunked, full_state
from navigator.v1 import sync_pb2

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]
#: Objects per chunk: about 15 MB per message, well under the 64 MiB default limit.
PER_CHUNK = 50_000


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


def build_pods(n: int, namespaces: int, version: int = 1, modified: float = 0.0) -> list[sync_pb2.Resource]:
    serializer = ProtobufSerializer()
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


async def send_snapshot(edge: RawEdge, sequence: int, pods: list[sync_pb2.Resource]) -> tuple[float, sync_pb2.Ack]:
    chunks = chunked(full_state("bench", "edge-1", sequence, {"pods": pods}), PER_CHUNK)
    started = time.perf_counter()
    for chunk in chunks:
        await edge.send(sync_pb2.EdgeMessage(state=chunk))
    acks = [await edge.recv(timeout=300) for _ in chunks]
    elapsed = time.perf_counter() - started
    last = acks[-1]
    assert last is not None and last.ack.status == sync_pb2.ACK_STATUS_APPLIED, last
    return elapsed, last.ack


async def main(pods: int, namespaces: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="navigator-ingest-"))
    db = workdir / "navigator.db"
    config = workdir / "manager.yaml"
    config.write_text(f"listen: 127.0.0.1:0\nstorage: {{plugin: sqlite, options: {{path: {db}}}}}\n")
    print(f"building {pods:,} pods in {namespaces} namespaces (protobuf payloads) ...", flush=True)
    snapshot = build_pods(pods, namespaces)
    size = sum(p.ByteSize() for p in snapshot) / 2**20
    proc = subprocess.Popen(
        [*NAVIGATOR, "manager", "--config", str(config), "--log-level", "WARNING"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().split()[-1]
        baseline = peak_rss_mib(proc.pid)
        async with RawEdge(address) as edge:
            await edge.identify("bench", "edge-1", serializers=["protobuf"])
            ingest, ack = await send_snapshot(edge, 1, snapshot)
            print(f"ingest      {pods:,} pods ({size:.0f} MiB on the wire): {ingest:.2f} s  (+{ack.added:,})")
            resync, ack = await send_snapshot(edge, 100, snapshot)
            print(f"resync      unchanged snapshot: {resync:.2f} s  (~{ack.modified})")
            changed = build_pods(pods, namespaces, version=2, modified=0.01)
            resync, ack = await send_snapshot(edge, 200, changed)
            print(f"resync      1% modified: {resync:.2f} s  (~{ack.modified:,})")
        print(f"manager RSS {baseline:.0f} MiB at start, peak {peak_rss_mib(proc.pid):.0f} MiB")

        grpc_times = []
        async with AsyncQueryClient(address) as client:
            for _ in range(20):
                started = time.perf_counter()
                rows = [r async for r in client.resources(kind="pods", namespace="ns-7")]
                grpc_times.append(time.perf_counter() - started)
        backend = create_sqlite({"path": str(db)})
        sql_times = []
        for _ in range(20):
            started = time.perf_counter()
            found = list(backend.query(ResourceQuery(kind="pods", namespace="ns-7")))
            sql_times.append(time.perf_counter() - started)
        backend.close()
        print(
            f"query       one namespace ({len(rows):,} pods): gRPC median {statistics.median(grpc_times) * 1000:.1f} ms "
            f"(p95 {sorted(grpc_times)[18] * 1000:.1f}), SQLite alone median "
            f"{statistics.median(sql_times) * 1000:.1f} ms ({len(found):,} rows)"
        )
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--namespaces", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.pods, args.namespaces))
