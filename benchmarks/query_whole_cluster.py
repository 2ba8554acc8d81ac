"""``navigator query pods -o json`` of a whole cluster, against reading the same rows straight from SQLite.

Starts ``navigator manager`` (SQLite in a temp directory) in its own process,
stores a big cluster (150,000 pods) and a small one (20,000 pods) through real
gRPC, as an edge sends them (JSON payloads, chunked FULL states), then runs
``navigator query pods --cluster X -o json`` as a subprocess whose stdout is
read and thrown away. Prints, as medians of ``--runs`` runs:

- start-up: ``navigator --version`` (the command's imports, before it asks anything)
- the fixed cost: the same command for a cluster that does not exist (start-up, connect, ``[]``)
- first row: from starting the command until its stdout has shown the first row (target <= 0.3 s)
- total: until the command has exited (target <= 1.5 s at 150,000 rows)
- the command's peak RSS (VmHWM) at 20,000 and at 150,000 rows: flat when the output streams
- raw read: the same rows read from the SQLite file with ``sqlite3`` in this process (the query's SQL), and the ratio

With ``--lean`` the command also runs with only ``navigator.cli.query`` imported (``navigator.cli.main``
imports every command): the share of the start-up that is other commands' imports.
With ``--profile FILE`` the command runs once more under cProfile and writes its profile there
(``python -m pstats FILE``). ``--workdir DIR`` keeps the database there and reuses it when it
already holds the clusters (the ingest takes a while).

    .venv/bin/python benchmarks/query_whole_cluster.py [--pods 150000] [--small 20000] [--runs 3]
        [--profile cli.prof] [--workdir DIR] [--lean]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from navigator.testing.raw_edge import RawEdge, chunked, full_state
from navigator.v1 import sync_pb2

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]
#: GNU time, for the command's peak RSS (``%M``).
TIME = shutil.which("time") or "/usr/bin/time"
#: Objects per chunk: about 22 MB per message, well under the 64 MiB default limit.
PER_CHUNK = 50_000
BIG, SMALL = "big", "small"
SQL = (
    "SELECT cluster, kind, namespace, name, uid, resource_version, labels, data FROM resources "
    "WHERE cluster = ? AND kind = ? ORDER BY cluster, kind, namespace, name"
)


def pod_data(i: int) -> dict[str, object]:
    """What the pods collector puts in ``data`` for a typical pod, in its key order."""
    ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
    return {
        "phase": "Running",
        "pod_ip": ip,
        "pod_ips": [ip],
        "host_ip": f"192.168.{i // 256 % 256}.{i % 256}",
        "node_name": f"node-{i % 500}",
        "ready": i % 50 != 0,
        "owner": {"kind": "ReplicaSet", "name": f"app-{i // 10}-7d9f8c6b5"},
        "restarts": i % 3,
        "containers": ["app", "sidecar"],
        "start_time": "2025-01-01T00:00:00Z",
    }


def build_pods(n: int, namespaces: int) -> list[sync_pb2.Resource]:
    return [
        sync_pb2.Resource(
            kind="pods",
            namespace=f"ns-{i % namespaces}",
            name=f"app-{i // 10}-7d9f8c6b5-{i:06d}",
            uid=str(uuid.UUID(int=i)),
            resource_version="1",
            labels={"app": f"app-{i // 10}", "tier": "web" if i % 2 else "api", "pod-template-hash": "7d9f8c6b5"},
            payload=orjson.dumps(pod_data(i)),
        )
        for i in range(n)
    ]


async def store(address: str, cluster: str, pods: int, namespaces: int) -> float:
    snapshot = build_pods(pods, namespaces)
    chunks = chunked(full_state(cluster, f"edge-{cluster}", 1, {"pods": snapshot}), PER_CHUNK)
    del snapshot
    started = time.perf_counter()
    async with RawEdge(address) as edge:
        accept = await edge.identify(cluster, f"edge-{cluster}", serializers=["json"])
        assert accept is not None and accept.WhichOneof("body") == "accept", accept
        for chunk in chunks:
            await edge.send(sync_pb2.EdgeMessage(state=chunk))
        acks = [await edge.recv(timeout=600) for _ in chunks]
    last = acks[-1]
    assert last is not None and last.ack.status == sync_pb2.ACK_STATUS_APPLIED, last
    return time.perf_counter() - started


def stored_counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return dict(conn.execute("SELECT cluster, count(*) FROM resources WHERE kind = 'pods' GROUP BY cluster"))
        except sqlite3.Error:
            return {}


@dataclass
class Run:
    first_row: float
    total: float
    peak_rss_mib: float
    size: int
    code: int
    #: CPU seconds (user + system) the command used.
    cpu: float
    output: bytes | None = None


#: ``navigator query`` with only its own module imported (``navigator.cli.main`` imports every command).
LEAN = [
    sys.executable, "-c",
    "import argparse, sys; from navigator.cli import query; p = argparse.ArgumentParser(); query.configure(p); "
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.run(a))",
]  # fmt: skip


def run_query(
    address: str, cluster: str, keep: bool = False, profile: Path | None = None, lean: bool = False
) -> Run:
    """The command as a subprocess: time to its first row on stdout, to its exit, and its peak RSS.

    The peak RSS is GNU time's ``%M``: a child forked straight from this (big) process would
    report this process's size as its own high-water mark.
    """
    command = [*NAVIGATOR, "query", "pods", "--manager", address, "--cluster", cluster, "-o", "json"]
    if lean:
        command = [*LEAN, *command[4:]]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "navigator.cli.main", *command[3:]]
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [TIME, "-f", "%M %U %S", "-o", rss.name, *command], stdout=subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        first_row = float("nan")
        size = 0
        kept: list[bytes] = []
        while block := os.read(fd, 1 << 20):
            if first_row != first_row and b"{" in block:  # nan until the first row begins
                first_row = time.perf_counter() - started
            size += len(block)
            if keep:
                kept.append(block)
        code = proc.wait()
        total = time.perf_counter() - started
        proc.stdout.close()
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({code}): {err.read().decode()[-2000:]}")
        peak, user, system = Path(rss.name).read_text().split()[-3:]
    return Run(first_row, total, int(peak) / 1024, size, code, float(user) + float(system), b"".join(kept) if keep else None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_read(db: Path, cluster: str) -> tuple[float, int]:
    """The query's SQL straight from the file: the rows as Python tuples, then thrown away."""
    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = 0
    cursor = conn.execute(SQL, (cluster, "pods"))
    while page := cursor.fetchmany(500):
        rows += len(page)
    conn.close()
    return time.perf_counter() - started, rows


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(runs: list[Run]) -> str:
    return (
        f"first row {median([r.first_row for r in runs]):.2f} s, total {median([r.total for r in runs]):.2f} s "
        f"(runs {', '.join(f'{r.total:.2f}' for r in runs)}); command: peak RSS "
        f"{median([r.peak_rss_mib for r in runs]):.0f} MiB, CPU {median([r.cpu for r in runs]):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=150_000, help="pods in the big cluster")
    parser.add_argument("--small", type=int, default=20_000, help="pods in the small cluster")
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of one more big run here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the database here")
    parser.add_argument(
        "--lean", action="store_true",
        help="also run the query with only navigator.cli.query imported: the cost of the other commands' imports",
    )  # fmt: skip
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="navigator-query-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "navigator.db"
    config = workdir / "manager.yaml"
    config.write_text(f"listen: 127.0.0.1:0\nstorage: {{plugin: sqlite, options: {{path: {db}}}}}\n")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    proc = subprocess.Popen(
        [*NAVIGATOR, "manager", "--config", str(config), "--log-level", "WARNING"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().split()[-1]
        have = stored_counts(db)
        for cluster, pods in ((BIG, args.pods), (SMALL, args.small)):
            if have.get(cluster) == pods:
                print(f"stored      {cluster}: {pods:,} pods already in {db}")
                continue
            took = asyncio.run(store(address, cluster, pods, args.namespaces))
            print(f"stored      {cluster}: {pods:,} pods through gRPC in {took:.1f} s", flush=True)

        startup = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run([*NAVIGATOR, "--version"], check=True, stdout=subprocess.DEVNULL)
            startup.append(time.perf_counter() - started)
        print(f"start-up    navigator --version: median {median(startup):.2f} s (the command's imports)")
        empty = [run_query(address, "no-such-cluster") for _ in range(args.runs)]
        check = run_query(address, SMALL, keep=True)
        assert check.output is not None
        rows = orjson.loads(check.output)
        assert len(rows) == args.small and rows[0]["phase"] == "Running", (len(rows), rows[:1])
        del rows, check
        print(f"fixed cost  empty result ([]): median {median([r.total for r in empty]):.2f} s "
              f"(start-up, connect, query), peak RSS {median([r.peak_rss_mib for r in empty]):.0f} MiB, "
              f"CPU {median([r.cpu for r in empty]):.2f} s")  # fmt: skip

        for cluster, pods in ((SMALL, args.small), (BIG, args.pods)):
            runs, manager_cpu = [], []
            for _ in range(args.runs):
                before = cpu_seconds(proc.pid)
                runs.append(run_query(address, cluster))
                manager_cpu.append(cpu_seconds(proc.pid) - before)
            raws = [raw_read(db, cluster) for _ in range(args.runs)]
            assert all(n == pods for _, n in raws), raws
            total = median([r.total for r in runs])
            raw = median([t for t, _ in raws])
            print(f"query pods  {cluster} ({pods:,} rows, {runs[0].size / 2**20:.0f} MiB of JSON): {report(runs)}; "
                  f"manager CPU {median(manager_cpu):.2f} s")  # fmt: skip
            print(f"raw read    {cluster}: sqlite3 SELECT of the same rows {raw:.2f} s; query / raw = {total / raw:.1f}x")
            if args.lean:
                lean = [run_query(address, cluster, lean=True) for _ in range(args.runs)]
                print(f"  lean      only navigator.cli.query imported: {report(lean)}")
        if args.profile is not None:
            run_query(address, BIG, profile=args.profile)
            print(f"profile     of one big run written to {args.profile}")
    finally:
        proc.terminate()
        proc.wait(30)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
