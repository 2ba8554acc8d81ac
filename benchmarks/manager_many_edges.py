"""Many edges of 500 pods each reconnecting to one manager at once, over real gRPC.

Runs ``navigator manager`` in its own process (SQLite) and opens one Sync
stream per simulated edge from this process, each on its own channel. The
edges behave like ``navigator edge`` with its DEFAULT timeouts: an edge that
gets no answer to its Identify within ``connect_timeout`` (or no ack within
``ack_timeout``) drops the stream and reconnects after the edge's reconnect
backoff, as a real reconnect storm would. Every edge sends a FULL state, then,
like an edge in watch mode, one (empty) DELTA per interval. Prints:

- the machine's load before and after (a shared machine: read the figures with it)
- how long until every cluster is HEALTHY (the manager's own status)
- how many edges waited over ``connect_timeout`` for their Accept (and so retried),
  and the Accept wait of the successful handshakes (median, p95, max)
- the manager's CPU time for the connect + ingest burst, and its CPU use while idle-syncing
- the manager's RSS (current and peak)

    .venv/bin/python benchmarks/manager_many_edges.py [--edges 1000] [--pods 500] [--steady 30]
        [--serializer json|protobuf] [--profile manager.prof]

``--profile`` runs the manager under cProfile (event-loop thread only) and writes the
stats there when it exits; read them with ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.backoff import Backoff
from navigator.client.client import AsyncQueryClient
from navigator.config.edge import ManagerSection
from navigator.testing.raw_edge import RawEdge, delta_state, full_state, identify
from navigator.v1 import sync_pb2

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]
TICKS = os.sysconf("SC_CLK_TCK")
#: The edge's defaults: what a fleet runs with unless someone tuned it.
EDGE_DEFAULTS = ManagerSection()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def payloads(pods: int, serializer: str) -> list[bytes]:
    encode = (JsonSerializer() if serializer == "json" else ProtobufSerializer()).encode
    return [
        encode(
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


@dataclass
class Tally:
    """What the simulated fleet saw."""

    #: Seconds from sending Identify to the Accept, for every successful handshake.
    accept_waits: list[float] = field(default_factory=list)
    #: Seconds until the channel was connected, for every attempt that connected.
    connect_waits: list[float] = field(default_factory=list)
    connect_timeouts: int = 0
    #: Edges that waited over connect_timeout for an Accept at least once (and reconnected).
    timed_out: set[int] = field(default_factory=set)
    identify_timeouts: int = 0
    ack_timeouts: int = 0
    rejected: int = 0
    #: DELTAs in the steady state that got no ack in time (the edge reconnects).
    steady_failures: int = 0
    #: Seconds after the start at which each edge's first FULL state was acked.
    synced_at: dict[int, float] = field(default_factory=dict)


async def run_edge(
    address: str,
    n: int,
    pods: list[sync_pb2.Resource],
    args: argparse.Namespace,
    stop: asyncio.Event,
    tally: Tally,
    started: float,
) -> None:
    """One edge's life: connect, identify, FULL, then DELTAs; any timeout means reconnect after a backoff."""
    cluster, edge_id = f"cluster-{n:04d}", f"edge-{n:04d}"
    backoff = Backoff(EDGE_DEFAULTS.reconnect)
    sequence = 0
    while not stop.is_set():
        edge = RawEdge(address)
        try:
            # As the edge does: the channel first, then Identify, each within connect_timeout.
            dialled = time.perf_counter()
            try:
                await asyncio.wait_for(edge.channel.channel_ready(), args.connect_timeout)
            except TimeoutError:
                tally.connect_timeouts += 1
                continue
            asked = time.perf_counter()
            tally.connect_waits.append(asked - dialled)
            await edge.send(identify(cluster, edge_id, serializers=[args.serializer], sync_interval=args.interval))
            try:
                answer = await edge.recv(timeout=args.connect_timeout)
            except TimeoutError:
                tally.identify_timeouts += 1
                tally.timed_out.add(n)
                continue
            if answer is None or answer.WhichOneof("body") != "accept":
                tally.rejected += 1
                continue
            tally.accept_waits.append(time.perf_counter() - asked)
            sequence = max(sequence, answer.accept.last_sequence) + 1
            try:
                ack = await edge.send_state(full_state(cluster, edge_id, sequence, {"pods": pods}), args.ack_timeout)
            except (AssertionError, TimeoutError):
                tally.ack_timeouts += 1
                continue
            assert ack.status == sync_pb2.ACK_STATUS_APPLIED, ack
            tally.synced_at.setdefault(n, time.perf_counter() - started)
            backoff.reset()
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), args.interval)
                except TimeoutError:
                    sequence += 1
                    try:
                        await edge.send_state(delta_state(cluster, edge_id, sequence), args.ack_timeout)
                    except (AssertionError, TimeoutError):
                        tally.steady_failures += 1
                        break
        finally:
            await edge.close()
            if not stop.is_set():
                await asyncio.sleep(backoff.next())


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="navigator-edges-"))
    config = workdir / "manager.yaml"
    config.write_text(f"listen: 127.0.0.1:0\nstorage: {{plugin: sqlite, options: {{path: {workdir / 'n.db'}}}}}\n")
    encoded = payloads(args.pods, args.serializer)
    states = [edge_pods(n, encoded) for n in range(args.edges)]
    command = [*NAVIGATOR, "manager", "--config", str(config), "--log-level", "ERROR"]
    if args.profile:
        command = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "navigator.cli.main", *command[3:]]
    print(f"before      {load()}")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().split()[-1]
        cpu0, own0 = cpu_seconds(proc.pid), time.process_time()
        stop = asyncio.Event()
        tally = Tally()
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(run_edge(address, n, states[n], args, stop, tally, started))
            for n in range(args.edges)
        ]
        first_look: int | None = None
        async with AsyncQueryClient(address) as client:
            while True:
                await asyncio.sleep(0.5)
                for t in tasks:
                    if t.done() and t.exception():
                        raise t.exception()  # type: ignore[misc]
                late = time.perf_counter() - started > args.give_up
                if len(tally.synced_at) < args.edges and not late:
                    continue
                asked = time.perf_counter()
                rows = await client.clusters()
                answered = time.perf_counter()
                healthy = sum(1 for r in rows if r["status"] == "HEALTHY")
                if first_look is None:
                    first_look = healthy
                if healthy == args.edges:
                    break
                if late:
                    print(f"GAVE UP     only {healthy} of {args.edges} clusters HEALTHY after {args.give_up:g} s")
                    break
            burst_cpu = cpu_seconds(proc.pid) - cpu0
            # The manager's own word: a ListClusters answer that shows every cluster HEALTHY at once
            # (a cluster synced early turns STALE if its DELTAs wait too long behind others' FULLs).
            all_healthy = answered - started
            total = sum(sum(r["counts"].values()) for r in rows)
            waits = tally.accept_waits
            print(
                f"edges       {args.edges} x {args.pods} pods ({args.serializer}): all HEALTHY after {all_healthy:.1f} s "
                f"({total:,} pods stored; the last FULL was acked at "
                f"{max(tally.synced_at.values(), default=0.0):.1f} s, when {first_look} were HEALTHY; "
                f"a ListClusters took {answered - asked:.2f} s)"
            )
            print(
                f"accept      {len(tally.timed_out)} of {args.edges} edges waited over connect_timeout "
                f"{args.connect_timeout:g} s for their Accept ({tally.identify_timeouts} timeouts, "
                f"{tally.ack_timeouts} ack timeouts over {args.ack_timeout:g} s, {tally.rejected} rejections); "
                f"Accept wait median {statistics.median(waits):.2f} s, p95 {percentile(waits, 95):.2f} s, "
                f"max {max(waits):.2f} s"
            )
            print(
                f"connect     channel ready median {statistics.median(tally.connect_waits):.2f} s, "
                f"p95 {percentile(tally.connect_waits, 95):.2f} s, max {max(tally.connect_waits):.2f} s, "
                f"{tally.connect_timeouts} connect timeouts"
            )
            print(
                f"manager CPU {burst_cpu:.1f} s for the connect + ingest burst "
                f"(this process, the edges: {time.process_time() - own0:.1f} s)"
            )
            cpu1, t1 = cpu_seconds(proc.pid), time.perf_counter()
            await asyncio.sleep(args.steady)
            cpu_share = (cpu_seconds(proc.pid) - cpu1) / (time.perf_counter() - t1) * 100
            rows = await client.clusters()
            still = sum(1 for r in rows if r["status"] == "HEALTHY")
        rss, peak = rss_mib(proc.pid)
        print(
            f"steady      {args.steady:.0f} s of one DELTA per edge every {args.interval:g} s: manager CPU "
            f"{cpu_share:.1f}% of one core, {still}/{args.edges} HEALTHY, {tally.steady_failures} DELTAs unacked"
        )
        print(f"manager RSS {rss:.0f} MiB now, peak {peak:.0f} MiB")
        print(f"after       {load()}")
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--steady", type=float, default=30.0, help="seconds of steady-state syncing to measure")
    parser.add_argument("--interval", type=float, default=5.0, help="the edges' declared sync interval")
    parser.add_argument("--serializer", choices=["json", "protobuf"], default="json", help="payload encoding")
    parser.add_argument(
        "--connect-timeout", type=float, default=EDGE_DEFAULTS.connect_timeout,
        help="seconds an edge waits for its Accept before reconnecting (default: the edge's default)",
    )  # fmt: skip
    parser.add_argument(
        "--ack-timeout", type=float, default=EDGE_DEFAULTS.ack_timeout,
        help="seconds an edge waits for an ack before reconnecting (default: the edge's default)",
    )  # fmt: skip
    parser.add_argument("--give-up", type=float, default=300.0, help="stop waiting for all HEALTHY after this long")
    parser.add_argument("--profile", metavar="FILE", help="run the manager under cProfile, stats to FILE")
    asyncio.run(main(parser.parse_args()))
