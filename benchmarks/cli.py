"""``navigator`` on the command line: start-up to the first line, and a 20,000-row table against its JSON and kubectl.

Starts ``navigator kubesim`` with ``--pods`` pods (20,000 by default), a manager on
SQLite and an edge, waits until the cluster is HEALTHY, then runs each command as a
subprocess ``--runs`` times and prints medians:

- start-up to the first line of ``navigator --help``, ``navigator query clusters`` and
  ``navigator query pods --limit 10``, each against bare ``python -c pass`` (the reference)
- the whole table of every pod (``navigator query pods``) against ``-o json`` of the same
  rows (the reference), ``-o wide``, and ``kubectl get pods -A`` (chunks of 500, kubectl's
  default) against the simulator the edge reads: total time and time to the first row
- the machine's load average and core count when the figures were taken (they move with load)

    .venv/bin/python benchmarks/cli.py [--pods 20000] [--runs 3] [--settle 15] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from navigator.testing.processes import Fleet, free_port, query, wait_until

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]


@dataclass
class Timing:
    first_line: float
    total: float
    lines: int


def run(command: Sequence[str]) -> Timing:
    """Time ``command`` to its first line on stdout and to its exit; its output is read and dropped."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    first_at = time.perf_counter() - start
    lines = 1 if first else 0
    for chunk in iter(lambda: proc.stdout.read(1 << 16), b""):  # type: ignore[union-attr]
        lines += chunk.count(b"\n")
    err = proc.stderr.read() if proc.stderr is not None else b""
    code = proc.wait()
    total = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}): {err.decode(errors='replace')[-500:]}")
    return Timing(first_at, total, lines)


def medians(commands: Sequence[Sequence[str]], runs: int) -> list[Timing]:
    """Each command ``runs`` times, taking turns (so a burst of load elsewhere hits them alike); the medians."""
    timings: list[list[Timing]] = [[] for _ in commands]
    for _ in range(runs):
        for command, times in zip(commands, timings, strict=True):
            times.append(run(command))
    return [
        Timing(statistics.median(t.first_line for t in times), statistics.median(t.total for t in times), times[-1].lines)
        for times in timings
    ]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def report(pods: int, runs: int, workdir: Path, settle: float) -> None:
    fleet = Fleet(workdir)
    try:
        _, kubeconfig = fleet.kubesim("bench", "--pods", str(pods), "--services", "200", "--namespaces", "20",
                                      "--seed", "1")  # fmt: skip
        port = free_port()
        fleet.manager("manager", port, workdir / "navigator.db")
        edge = fleet.edge("edge", "bench", kubeconfig, port, interval="30s")

        def synced() -> bool:
            return any(c["status"] == "HEALTHY" and c["counts"].get("pods") == pods for c in query(port, "clusters"))

        wait_until(synced, f"cluster bench HEALTHY with {pods:,} pods", edge, timeout=900)
        # The manager and the edge finish their first sync's work (history, watches) before the clock runs.
        time.sleep(settle)
        manager = ("--manager", f"127.0.0.1:{port}")
        run([*NAVIGATOR, "query", "pods", *manager])  # the manager's first answer warms it up

        print(f"navigator CLI, {pods:,} pods, medians of {runs} runs; {load()}")
        starts = {
            "python -c print()": [sys.executable, "-c", "print()"],
            "navigator --help": [*NAVIGATOR, "--help"],
            "navigator query clusters": [*NAVIGATOR, "query", "clusters", *manager],
            "navigator query pods --limit 10": [*NAVIGATOR, "query", "pods", "--limit", "10", *manager],
        }
        timed = medians(list(starts.values()), runs)
        bare = timed[0]
        print("\nstart-up to the first line (reference: bare python)")
        for name, t in zip(starts, timed, strict=True):
            print(f"  {name:32} {t.first_line:6.3f} s {t.first_line / bare.first_line:5.1f}x")

        print(f"\nevery pod, {pods:,} rows (reference: -o json)")
        print(f"  {'command':32} {'total':>8} {'ratio':>6} {'first row':>10} {'lines':>7}")
        kubectl = shutil.which("kubectl")
        tables = {
            "navigator query pods -o json": [*NAVIGATOR, "query", "pods", "-o", "json", *manager],
            "navigator query pods": [*NAVIGATOR, "query", "pods", *manager],
            "navigator query pods -o wide": [*NAVIGATOR, "query", "pods", "-o", "wide", *manager],
        }
        if kubectl is not None:
            tables["kubectl get pods -A"] = [kubectl, "--kubeconfig", str(kubeconfig), "get", "pods", "-A"]
        timed = medians(list(tables.values()), runs)
        json = timed[0]
        for name, t in zip(tables, timed, strict=True):
            print(f"  {name:32} {t.total:6.2f} s {t.total / json.total:5.2f}x {t.first_line:8.3f} s {t.lines:7,}")
        if kubectl is None:
            print("  (kubectl is not on PATH: its line is left out)")
        print(f"\n{load()}")
    finally:
        fleet.stop_all()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20_000, help="pods in the simulated cluster (default 20,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command; medians are shown (default 3)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and the database here")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait after the sync (default 15)")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report(args.pods, args.runs, args.workdir, args.settle)
        return
    with tempfile.TemporaryDirectory(prefix="navigator-cli-") as tmp:
        report(args.pods, args.runs, Path(tmp), args.settle)


if __name__ == "__main__":
    main()
