"""Edge full sync of a big cluster, next to kubectl listing the same objects.

Starts ``navigator kubesim`` with 150,000 pods and 10,000 services (and their
EndpointSlices), a real manager on SQLite (in this process), and ``navigator
edge`` in its own process. Prints:

- kubectl: ``kubectl get pods,services,endpointslices -A --chunk-size=500 -o json > /dev/null``
- edge: from starting the edge process until the manager has applied (acked) its full state
- the ratio (target <= 1.5) and the edge's peak RSS (target <= 1 GiB)

    .venv/bin/python benchmarks/edge_full_sync.py [--pods 150000] [--services 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from navigator.testing.manager import run_test_manager

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]


def start_kubesim(workdir: Path, pods: int, services: int, namespaces: int) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen(
        [*NAVIGATOR, "kubesim", "--kubeconfig", str(kubeconfig), "--pods", str(pods), "--services", str(services),
         "--namespaces", str(namespaces), "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        raise SystemExit(f"kubesim did not start: {line!r}")
    return proc, kubeconfig


def time_kubectl(kubeconfig: Path) -> float:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl is not on PATH")
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), "get", "pods,services,endpointslices", "-A",
             "--chunk-size=500", "-o", "json"],
            stdout=devnull,
            check=True,
        )  # fmt: skip
    return time.perf_counter() - started


def peak_rss(pid: int) -> int:
    """VmHWM of a live process, in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


async def time_edge(workdir: Path, kubeconfig: Path, expected: dict[str, int]) -> tuple[float, int, str]:
    async with run_test_manager(workdir, grace_period=1) as mgr:
        config = workdir / "edge.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "cluster": {"id": "big"},
                    "kubernetes": {"kubeconfig": str(kubeconfig)},
                    "manager": {"address": mgr.address, "ack_timeout": "10m"},
                    "logging": {"level": "INFO"},
                }
            )
        )
        log = open(workdir / "edge.log", "w")  # noqa: SIM115 - closed below
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *NAVIGATOR, "edge", "--config", str(config), stdout=log, stderr=log
        )
        try:
            while True:
                row = await mgr.cluster("big")
                if row is not None and row["last_sync"] and all(row["counts"].get(k) == n for k, n in expected.items()):
                    took = time.perf_counter() - started
                    break
                if proc.returncode is not None:
                    raise SystemExit(f"the edge exited with {proc.returncode}; see {workdir / 'edge.log'}")
                if time.perf_counter() - started > 1800:
                    raise SystemExit("no full sync within 30 minutes")
                await asyncio.sleep(0.05)
            rss = peak_rss(proc.pid)
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
    return took, rss, (workdir / "edge.log").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=50)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="navigator-bench-"))
    print(f"generating a cluster: {args.pods} pods, {args.services} services ...", flush=True)
    t0 = time.perf_counter()
    sim, kubeconfig = start_kubesim(workdir, args.pods, args.services, args.namespaces)
    try:
        print(f"  kubesim ready in {time.perf_counter() - t0:.1f}s", flush=True)
        kubectl_runs = [time_kubectl(kubeconfig) for _ in range(2)]
        kubectl = min(kubectl_runs)
        print(f"kubectl get pods,services,endpointslices -A --chunk-size=500 -o json: "
              f"{kubectl:.2f}s (runs: {', '.join(f'{t:.2f}' for t in kubectl_runs)})", flush=True)  # fmt: skip

        expected = {"pods": args.pods, "services": args.services}
        took, rss, log = asyncio.run(time_edge(workdir, kubeconfig, expected))
        print(f"edge: collected and delivered the full state (acked by the manager) in {took:.2f}s")
        for line in log.splitlines():
            if "collected " in line or "sync FULL applied" in line:
                print("  " + line.split(" ", 3)[-1][:200])
        ratio = took / kubectl
        print(f"ratio edge/kubectl: {ratio:.2f} (target <= 1.5) {'OK' if ratio <= 1.5 else 'MISSED'}")
        print(f"edge peak RSS: {rss / 2**20:.0f} MiB (target <= 1024 MiB) {'OK' if rss <= 2**30 else 'MISSED'}")
    finally:
        sim.terminate()
        sim.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
