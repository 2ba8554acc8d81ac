"""Freshness: how long a change made through the Kubernetes API takes to show in Navigator.

Starts ``navigator kubesim`` (optionally with background churn), a manager on SQLite
and an edge with the default configuration (watch mode), each in its own process, and
``navigator watch pods -o json``. Then it patches a label on random pods through the
Kubernetes API (the official client, over HTTP) and measures, from the moment each
patch is sent:

- watch: until the ``navigator watch`` line carrying the new label is read;
- query: until ``navigator query``'s ListResources (the client library, in this process,
  polled every 10 ms, so add ~5 ms of polling granularity) returns the pod with it.

Prints p50 / p95 / p99 / max per scenario, with the machine's load. Goals (issue "Real
time"): p50 <= 100 ms and p99 <= 1 s at 3,000 pods; p99 <= 2 s at 150,000 pods under churn.

    .venv/bin/python benchmarks/freshness.py [--scenario quiet|churn|big|all] [--samples 200]
        [--rate 10] [--query-samples 30]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from navigator.client.client import QueryClient
from navigator.processes import free_port
from navigator.testing.processes import Fleet, wait_until

LABEL = "navigator-bench"


@dataclass(frozen=True)
class Scenario:
    name: str
    pods: int
    services: int
    churn: float


SCENARIOS = {
    "quiet": Scenario("3,000 pods, quiet", 3000, 300, 0.0),
    "churn": Scenario("3,000 pods, churn 50/s", 3000, 300, 50.0),
    "big": Scenario("150,000 pods, churn 200/s", 150_000, 10_000, 200.0),
}


def percentiles(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] * 1000

    return (
        f"p50 {at(0.50):7.1f} ms   p95 {at(0.95):7.1f} ms   p99 {at(0.99):7.1f} ms   "
        f"max {ordered[-1] * 1000:7.1f} ms   (n={len(ordered)}, mean {statistics.fmean(ordered) * 1000:.1f} ms)"
    )


class WatchReader:
    """Reads ``navigator watch -o json`` lines on a thread; remembers when each bench label value arrived."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.seen: dict[str, float] = {}
        self.lines = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            self.lines += 1
            value = (row.get("labels") or {}).get(LABEL)
            if value is not None:
                with self._changed:
                    self.seen.setdefault(value, now)
                    self._changed.notify_all()

    def wait_for(self, value: str, timeout: float) -> float | None:
        with self._changed:
            self._changed.wait_for(lambda: value in self.seen or self.proc.poll() is not None, timeout)
            return self.seen.get(value)


def patch(api: k8s.CoreV1Api, namespace: str, name: str, value: str) -> bool:
    try:
        api.patch_namespaced_pod(name, namespace, {"metadata": {"labels": {LABEL: value}}})
    except ApiException as exc:
        if exc.status == 404:  # churn scaled it away
            return False
        raise
    return True


def query_sees(query: QueryClient, cluster: str, namespace: str, name: str, value: str) -> bool:
    rows = query.resources(kind="pods", cluster=cluster, namespace=namespace, name=name)
    return any((row.get("labels") or {}).get(LABEL) == value for row in rows)


def run(scenario: Scenario, samples: int, rate: float, query_samples: int, workdir: Path) -> None:
    fleet = Fleet(workdir)
    try:
        started = time.monotonic()
        extra = ["--pods", str(scenario.pods), "--services", str(scenario.services), "--namespaces", "10", "--seed", "1"]
        if scenario.churn:
            extra += ["--churn", str(scenario.churn)]
        _, kubeconfig = fleet.kubesim("bench", *extra)
        port = free_port()
        (workdir / "manager.yaml").write_text(
            f"listen: 127.0.0.1:{port}\nstorage: {{plugin: sqlite, options: {{path: '{workdir / 'nav.db'}'}}}}\n"
        )
        manager = fleet.start("manager", "manager", "--config", str(workdir / "manager.yaml"))
        manager.wait_for("listening on")
        (workdir / "edge.yaml").write_text(
            f"cluster: {{id: bench}}\nkubernetes: {{kubeconfig: '{kubeconfig}'}}\n"
            f"manager: {{address: '127.0.0.1:{port}'}}\n"
        )
        edge = fleet.start("edge", "edge", "--config", str(workdir / "edge.yaml"))
        address = f"127.0.0.1:{port}"
        query = QueryClient(address, timeout=120)

        def synced() -> bool:
            rows = query.clusters("bench")
            return bool(rows) and rows[0]["status"] == "HEALTHY" and rows[0]["counts"].get("pods", 0) > 0

        wait_until(synced, "cluster bench HEALTHY", edge, timeout=900)
        print(f"  synced in {time.monotonic() - started:.1f} s (simulator start included)", flush=True)

        k8s_config.load_kube_config(str(kubeconfig))
        api = k8s.CoreV1Api()
        listed = api.list_pod_for_all_namespaces(limit=2000)
        targets = [(str(p.metadata.namespace), str(p.metadata.name)) for p in listed.items if p.metadata]
        rng = random.Random(7)

        watcher = subprocess.Popen(
            [sys.executable, "-m", "navigator.cli.main", "watch", "pods", "--manager", address, "--cluster", "bench",
             "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=open(workdir / "watch.log", "wb"),  # noqa: SIM115 - closed with the process
        )  # fmt: skip
        reader = WatchReader(watcher)
        # The watch is live once a change made now reaches it.
        warm = 0
        while True:
            warm += 1
            namespace, name = rng.choice(targets)
            if patch(api, namespace, name, f"warm-{warm}") and reader.wait_for(f"warm-{warm}", 5.0):
                break
            if watcher.poll() is not None:
                raise SystemExit(f"navigator watch exited: {(workdir / 'watch.log').read_text()}")

        sent: dict[str, float] = {}
        pace = 1.0 / rate
        next_at = time.monotonic()
        for i in range(samples):
            namespace, name = rng.choice(targets)
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += pace
            value = f"w{i}"
            t0 = time.time()
            if patch(api, namespace, name, value):
                sent[value] = t0
        watch_lags = []
        missing = 0
        for value, t0 in sent.items():
            arrived = reader.wait_for(value, 30.0)
            if arrived is None:
                missing += 1
            else:
                watch_lags.append(arrived - t0)

        query_lags = []
        for i in range(query_samples):
            namespace, name = rng.choice(targets)
            value = f"q{i}"
            t0 = time.time()
            if not patch(api, namespace, name, value):
                continue
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if query_sees(query, "bench", namespace, name, value):
                    query_lags.append(time.time() - t0)
                    break
                time.sleep(0.01)
            else:
                missing += 1

        print(f"  watch: {percentiles(watch_lags)}")
        print(f"  query: {percentiles(query_lags)}")
        if missing:
            print(f"  NOT SEEN within 30 s: {missing}")
        print(f"  watch lines read: {reader.lines}; load average now {os.getloadavg()[0]:.2f}", flush=True)
        watcher.terminate()
        watcher.wait(10)
        query.close()
    finally:
        fleet.stop_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--samples", type=int, default=200, help="patches measured through navigator watch")
    parser.add_argument("--rate", type=float, default=10.0, help="patches per second")
    parser.add_argument("--query-samples", type=int, default=30, help="patches measured through navigator query")
    args = parser.parse_args(argv)
    chosen = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    for key in chosen:
        scenario = SCENARIOS[key]
        print(f"{scenario.name}: {args.samples} patches at {args.rate:g}/s", flush=True)
        with tempfile.TemporaryDirectory(prefix="navigator-freshness-") as tmp:
            run(scenario, args.samples, args.rate, args.query_samples, Path(tmp))


if __name__ == "__main__":
    main()

