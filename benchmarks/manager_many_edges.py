"""200 edges of 500 pods each connected to one manager at once, over real gRPC.

Runs ``navigator manager`` in its own process (SQLite) and opens one Sync
stream per simulated edge from this process (protobuf payloads, each edge on
its own channel). Every edge sends a FULL state, then, like an edge in watch
mode, one (empty) DELTA per interval. Prints:

- how long until every cluster is HEALTHY
- the manager's CPU time for the connect + ingest burst, and its CPU use while idle-syncing
- the manager's RSS (current and peak)

    .venv/bin/python benchmarks/manager_many_edges.py [--edges 200] [--pods 500] [--steady 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.client.client import AsyncQueryClient
from navigator.testing.raw_edge import RawEdge, delta_state, full_state
from navigator.v1 import sync_pb2

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


def payloads(pods: int) -> list[bytes]:
    serializer = ProtobufSerializer()
    return [
        serializer.encode(
            {"phase": "Running", "pod_ip": f"10.0.{i // 256}.{i % 256}", "node_name": f"node-{i % 20}",
             "ready": True, "owner": {"kind": "ReplicaSet", "name": f"app-{i // 10}"}, "restarts": 0,
             "containers": ["app"]}
        )
        for i in range(pods)
    ]  # fmt: skip


def edge_pods(edge: int, encoded: list[bytes]) -> list[sync_pb2.Resource]:
    return [
        sync_pb2.Resource(
            kind="pods", namespace=f"ns-{i % 10}", name=f"app-{i // 10}-{i:04d}", uid=str(uuid.UUID(int=edge << 32 | i)),
            resource_version="1", labels={"app": f"app-{i // 10}"}, payload=payload,
        )
        for i, payload in enumerate(encoded)
    ]  # fmt: skip


async def run_edge(address: str, n: int, pods: list[sync_pb2.Resource], interval: float, stop: asyncio.Event) -> None:
    cluster, edge_id = f"cluster-{n:03d}", f"edge-{n:03d}"
    async with RawEdge(address) as edge:
        answer = await edge.identify(cluster, edge_id, serializers=["protobuf"], sync_interval=interval)
        assert answer is not None and answer.WhichOneof("body") == "accept", answer
        ack = await edge.send_state(full_state(cluster, edge_id, 1, {"pods": pods}), timeout=300)
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED, ack
        sequence = 2
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                await edge.send_state(delta_state(cluster, edge_id, sequence), timeout=300)
                sequence += 1


async def main(edges: int, pods: int, steady: float, interval: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="navigator-edges-"))
    config = workdir / "manager.yaml"
    config.write_text(f"listen: 127.0.0.1:0\nstorage: {{plugin: sqlite, options: {{path: {workdir / 'n.db'}}}}}\n")
    encoded = payloads(pods)
    states = [edge_pods(n, encoded) for n in range(edges)]
    proc = subprocess.Popen(
        [*NAVIGATOR, "manager", "--config", str(config), "--log-level", "ERROR"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().split()[-1]
        cpu0 = cpu_seconds(proc.pid)
        stop = asyncio.Event()
        started = time.perf_counter()
        tasks = [asyncio.create_task(run_edge(address, n, states[n], interval, stop)) for n in range(edges)]
        async with AsyncQueryClient(address) as client:
            while True:
                rows = await client.clusters()
                healthy = sum(1 for r in rows if r["status"] == "HEALTHY")
                if healthy == edges:
                    break
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()  # type: ignore[misc]
                await asyncio.sleep(0.25)
            all_healthy = time.perf_counter() - started
            burst_cpu = cpu_seconds(proc.pid) - cpu0
            total = sum(sum(r["counts"].values()) for r in rows)
            print(f"edges       {edges} x {pods} pods: all HEALTHY after {all_healthy:.1f} s ({total:,} pods stored)")
            print(f"manager CPU {burst_cpu:.1f} s for the connect + ingest burst")
            cpu1, t1 = cpu_seconds(proc.pid), time.perf_counter()
            await asyncio.sleep(steady)
            rows = await client.clusters()
            cpu_share = (cpu_seconds(proc.pid) - cpu1) / (time.perf_counter() - t1) * 100
            still = sum(1 for r in rows if r["status"] == "HEALTHY")
        rss, peak = rss_mib(proc.pid)
        print(
            f"steady      {steady:.0f} s of one DELTA per edge every {interval:g} s: manager CPU {cpu_share:.1f}% "
            f"of one core, {still}/{edges} HEALTHY"
        )
        print(f"manager RSS {rss:.0f} MiB now, peak {peak:.0f} MiB")
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=200)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--steady", type=float, default=30.0, help="seconds of steady-state syncing to measure")
    parser.add_argument("--interval", type=float, default=5.0, help="the edges' declared sync interval")
    args = parser.parse_args()
    asyncio.run(main(args.edges, args.pods, args.steady, args.interval))
