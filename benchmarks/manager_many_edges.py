"""Many edges of 500 pods each connecting to one manager at once, over real gRPC.

Runs ``navigator manager`` in its own process (SQLite) and opens one Sync
stream per simulated edge from this process, each on its own channel. The
edges behave like ``navigator edge`` with its DEFAULT timeouts: the channel
within ``connect_timeout``, then an answer to Identify within
``connect_timeout``, then each ack within ``ack_timeout``; any failure (or a
stream the manager ends) means reconnecting after the edge's reconnect backoff
(a Reject's ``retry_after`` when it gives one), as a real reconnect storm
would. Every edge sends a FULL state, then, like an edge in watch mode, one
(empty) DELTA per interval. Payloads are JSON (the default serializer) or
protobuf. Prints:

- the machine's load before and after (a shared machine: read the figures with it)
- how long until every cluster is HEALTHY (a ListClusters showing all of them HEALTHY at once)
- how many edges waited over ``connect_timeout`` for their Accept (and so reconnected),
  the Accept wait of the successful handshakes (median, p95, max), ack timeouts
- the manager's CPU time for the connect + ingest burst, and its CPU use while idle-syncing
- the manager's RSS (current and peak)

With ``--restart`` the manager is then restarted on the same storage and port
and the same figures are printed for the reconnect storm that follows (every
edge comes back and resends a FULL state the manager already holds).

    .venv/bin/python benchmarks/manager_many_edges.py [--edges 1000] [--pods 500] [--steady 30]
        [--serializer json|protobuf] [--restart] [--profile manager.prof]

``--profile`` runs the manager under cProfile (event-loop thread only) and writes the
stats there when it exits; read them with ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.backoff import Backoff
from navigator.client.client import AsyncQueryClient
from navigator.config.edge import ManagerSection
from navigator.testing.raw_edge import RawEdge, delta_state, full_state, identify
from navigator.v1 import sync_pb2, sync_pb2_grpc

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    """What the simulated fleet saw in one storm."""

    started: float = field(default_factory=time.perf_counter)
    #: Seconds from sending Identify to the Accept, for every successful handshake.
    accept_waits: list[float] = field(default_factory=list)
    #: Seconds until the channel was connected, for every attempt that connected.
    connect_waits: list[float] = field(default_factory=list)
    connect_timeouts: int = 0
    #: Edges that waited over connect_timeout for an Accept at least once (and reconnected).
    timed_out: set[int] = field(default_factory=set)
    identify_timeouts: int = 0
    ack_timeouts: int = 0
    #: Streams the manager ended (a restart) or answered with something else than an APPLIED ack.
    streams_lost: int = 0
    #: Handshakes answered by a Reject, or by the stream ending with no answer.
    rejected: int = 0
    #: Why, for each of those: the Reject's reason, or "no answer".
    rejections: Counter[str] = field(default_factory=Counter)
    #: DELTAs in the steady state that got no ack in time (the edge reconnects).
    steady_failures: int = 0
    #: Seconds after the start at which each edge's FULL state was acked.
    synced_at: dict[int, float] = field(default_factory=dict)


@dataclass
class Fleet:
    """What every simulated edge shares: where to connect, and the tally of the storm under way."""

    address: str
    args: argparse.Namespace
    tally: Tally = field(default_factory=Tally)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def run_edge(fleet: Fleet, n: int, pods: list[sync_pb2.Resource]) -> None:
    """One edge's life: connect, identify, FULL, then DELTAs; any failure means reconnect after a backoff."""
    args, stop = fleet.args, fleet.stop
    cluster, edge_id = f"cluster-{n:04d}", f"edge-{n:04d}"
    backoff = Backoff(EDGE_DEFAULTS.reconnect)
    sequence = 0
    while not stop.is_set():
        edge = RawEdge(fleet.address)
        wait: float | None = None
        try:
            # As the edge does: the channel first, then Identify, each within connect_timeout.
            dialled = time.perf_counter()
            try:
                await asyncio.wait_for(edge.channel.channel_ready(), args.connect_timeout)
            except TimeoutError:
                fleet.tally.connect_timeouts += 1
                continue
            asked = time.perf_counter()
            fleet.tally.connect_waits.append(asked - dialled)
            # The stream opens once the channel is ready (RawEdge opened one at once, which fails
            # fast while the manager is down).
            edge.call.cancel()
            edge.call = sync_pb2_grpc.SyncStub(edge.channel).Connect()
            await edge.send(
                identify(cluster, edge_id, serializers=[args.serializer], sync_interval=args.interval)
            )
            try:
                answer = await edge.recv(timeout=args.connect_timeout)
            except TimeoutError:
                fleet.tally.identify_timeouts += 1
                fleet.tally.timed_out.add(n)
                continue
            if answer is None or answer.WhichOneof("body") != "accept":
                fleet.tally.rejected += 1
                if answer is not None and answer.HasField("reject"):
                    reason = answer.reject.message
                else:  # the stream ended unanswered: its status says why
                    code, details = await edge.status()
                    reason = f"no answer ({code.name}: {details})"
                fleet.tally.rejections[reason[:80]] += 1
                if answer is not None and answer.reject.retry_after_seconds:
                    wait = answer.reject.retry_after_seconds
                continue
            fleet.tally.accept_waits.append(time.perf_counter() - asked)
            sequence = max(sequence, answer.accept.last_sequence) + 1
            state = full_state(cluster, edge_id, sequence, {"pods": pods})
            try:
                ack = await edge.send_state(state, args.ack_timeout)
            except TimeoutError:
                fleet.tally.ack_timeouts += 1
                continue
            except AssertionError:
                fleet.tally.streams_lost += 1
                continue
            if ack.status != sync_pb2.ACK_STATUS_APPLIED:
                fleet.tally.streams_lost += 1
                continue
            fleet.tally.synced_at[n] = time.perf_counter() - fleet.tally.started
            backoff.reset()
            # Watch mode: a DELTA per interval; a stream the manager ends is noticed at once.
            ended = asyncio.ensure_future(edge.call.code())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                while not stop.is_set():
                    await asyncio.wait([ended, stopping], timeout=args.interval, return_when="FIRST_COMPLETED")
                    if ended.done():
                        fleet.tally.streams_lost += 1
                        break
                    if stop.is_set():
                        break
                    sequence += 1
                    try:
                        await edge.send_state(delta_state(cluster, edge_id, sequence), args.ack_timeout)
                    except (AssertionError, TimeoutError):
                        fleet.tally.steady_failures += 1
                        break
            finally:
                ended.cancel()
                stopping.cancel()
        finally:
            await edge.close()
            if not stop.is_set():
                await asyncio.sleep(wait if wait is not None else backoff.next())


def _reason(row: dict[str, Any]) -> str:
    """A status reason without its times and numbers, so that alike ones count together."""
    return f"{row['status']}: " + re.sub(r"[0-9][0-9.:]*", "N", str(row.get("status_reason", "")))[:80]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    return f"median {statistics.median(values):.2f} s, p95 {percentile(values, 95):.2f} s, max {max(values):.2f} s"


def start_manager(config: Path, profile: str | None) -> tuple[subprocess.Popen[str], str]:
    command = [*NAVIGATOR, "manager", "--config", str(config), "--log-level", "ERROR"]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", profile, *command[1:]]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()[-1]


async def storm(fleet: Fleet, label: str, client: AsyncQueryClient, pid: int, tasks: list[asyncio.Task[None]]) -> None:
    """Wait until the manager shows every cluster HEALTHY; print what the storm cost."""
    args, tally = fleet.args, fleet.tally
    cpu0 = cpu_seconds(pid)
    own0 = time.process_time()
    first_look: int | None = None
    why: Counter[str] = Counter()
    while True:
        await asyncio.sleep(0.5)
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()  # type: ignore[misc]
        late = time.perf_counter() - tally.started > args.give_up
        if len(tally.synced_at) < args.edges and not late:
            continue
        asked = time.perf_counter()
        rows = await client.clusters()
        answered = time.perf_counter()
        healthy = sum(1 for r in rows if r["status"] == "HEALTHY")
        if first_look is None:
            first_look = healthy
            why = Counter(_reason(r) for r in rows if r["status"] != "HEALTHY")
        if healthy == args.edges:
            break
        if late:
            print(f"GAVE UP     only {healthy} of {args.edges} clusters HEALTHY after {args.give_up:g} s")
            break
    burst_cpu = cpu_seconds(pid) - cpu0
    # The manager's own word: a ListClusters answer that shows every cluster HEALTHY at once
    # (a cluster synced early turns STALE if its DELTAs wait too long behind others' FULLs).
    all_healthy = answered - tally.started
    total = sum(sum(r["counts"].values()) for r in rows)
    print(
        f"{label:<11} {args.edges} x {args.pods} pods ({args.serializer}): all HEALTHY after {all_healthy:.1f} s "
        f"({total:,} pods stored; the last FULL was acked at {max(tally.synced_at.values(), default=0.0):.1f} s, "
        f"when {first_look} were HEALTHY; a ListClusters took {answered - asked:.2f} s)"
    )
    if why:
        print("not yet     " + "; ".join(f"{n} {reason}" for reason, n in why.most_common(3)))
    print(
        f"accept      {len(tally.timed_out)} of {args.edges} edges waited over connect_timeout "
        f"{args.connect_timeout:g} s for their Accept ({tally.identify_timeouts} timeouts, {tally.rejected} "
        f"rejected or closed unanswered); Accept wait {spread(tally.accept_waits)}"
    )
    if tally.rejections:
        print("refused     " + "; ".join(f"{n}: {why}" for why, n in tally.rejections.most_common(3)))
    print(
        f"acks        {tally.ack_timeouts} ack timeouts over {args.ack_timeout:g} s, {tally.streams_lost} streams "
        f"lost or refused; channel ready {spread(tally.connect_waits)}, {tally.connect_timeouts} connect timeouts"
    )
    print(
        f"manager CPU {burst_cpu:.1f} s for the connect + ingest burst "
        f"(this process, the edges: {time.process_time() - own0:.1f} s)"
    )


async def steady(fleet: Fleet, client: AsyncQueryClient, pid: int) -> None:
    args = fleet.args
    failures = fleet.tally.steady_failures
    cpu1, t1 = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(args.steady)
    cpu_share = (cpu_seconds(pid) - cpu1) / (time.perf_counter() - t1) * 100
    rows = await client.clusters()
    still = sum(1 for r in rows if r["status"] == "HEALTHY")
    print(
        f"steady      {args.steady:.0f} s of one DELTA per edge every {args.interval:g} s: manager CPU "
        f"{cpu_share:.1f}% of one core, {still}/{args.edges} HEALTHY, "
        f"{fleet.tally.steady_failures - failures} DELTAs unacked"
    )
    rss, peak = rss_mib(pid)
    print(f"manager RSS {rss:.0f} MiB now, peak {peak:.0f} MiB")


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="navigator-edges-"))
    config = workdir / "manager.yaml"
    # A fixed port: after --restart the edges reconnect to the same address.
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        f"storage: {{plugin: sqlite, options: {{path: {workdir / 'n.db'}}}}}\n"
    )
    encoded = payloads(args.pods, args.serializer)
    states = [edge_pods(n, encoded) for n in range(args.edges)]
    print(f"before      {load()}")
    proc, address = start_manager(config, args.profile)
    fleet = Fleet(address, args)
    tasks: list[asyncio.Task[None]] = []
    try:
        fleet.tally = Tally()
        tasks = [asyncio.create_task(run_edge(fleet, n, states[n])) for n in range(args.edges)]
        async with AsyncQueryClient(address) as client:
            await storm(fleet, "edges", client, proc.pid, tasks)
            await steady(fleet, client, proc.pid)
        if args.restart:
            stopped = time.perf_counter()
            proc.terminate()
            # Off the loop: the edges see their streams end and back off as real ones would.
            await asyncio.to_thread(proc.wait, 60)
            proc, address = await asyncio.to_thread(start_manager, config, None)
            # The storm's clock starts when the manager listens again (edges were backing off meanwhile).
            fleet.tally = Tally()
            print(f"restart     serving again {time.perf_counter() - stopped:.1f} s after SIGTERM; {load()}")
            async with AsyncQueryClient(address) as client:
                await storm(fleet, "reconnect", client, proc.pid, tasks)
                await steady(fleet, client, proc.pid)
        print(f"after       {load()}")
        fleet.stop.set()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--steady", type=float, default=30.0, help="seconds of steady-state syncing to measure")
    parser.add_argument("--interval", type=float, default=5.0, help="the edges' declared sync interval")
    parser.add_argument("--serializer", choices=["json", "protobuf"], default="json", help="payload encoding")
    parser.add_argument(
        "--connect-timeout", type=float, default=EDGE_DEFAULTS.connect_timeout,
        help="seconds an edge waits for its channel, then for its Accept (default: the edge's default)",
    )  # fmt: skip
    parser.add_argument(
        "--ack-timeout", type=float, default=EDGE_DEFAULTS.ack_timeout,
        help="seconds an edge waits for an ack before reconnecting (default: the edge's default)",
    )  # fmt: skip
    parser.add_argument("--restart", action="store_true", help="then restart the manager and measure the reconnects")
    parser.add_argument("--give-up", type=float, default=300.0, help="stop waiting for all HEALTHY after this long")
    parser.add_argument("--profile", metavar="FILE", help="run the (first) manager under cProfile, stats to FILE")
    asyncio.run(main(parser.parse_args()))
