"""What a break costs: bytes on the wire and time until the manager is exact again.

Starts ``navigator kubesim`` (150,000 pods by default), a manager on SQLite and an
edge, each in its own process, the edge talking to the manager through a TCP proxy
that counts bytes. After the full sync it breaks things twice:

1. network cut: the proxy drops the connection and refuses new ones for 5 s while
   500 objects change (label patches, deletions, creations, through the Kubernetes API);
2. manager restart: the manager is killed (SIGKILL) and started again on the same
   database while 500 more objects change;
3. edge restart: the edge is killed (SIGKILL) and a new edge process starts (same
   ``edge_id``) after 500 more changes: it cannot resume, lists the API again and
   sends its first FULL against the manager's versions.

For each it prints the bytes the edge sent after the break, as a share of the full
snapshot's bytes (goal: under 2 %), the time from the reconnect until every change
is visible in ``navigator query``, and whether the manager's copy then equals the
API server's list exactly (namespace/name/uid/resourceVersion of every pod).

    .venv/bin/python benchmarks/resume.py [--pods 150000] [--services 10000] [--changes 500] [--cut 5]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import tempfile
import time
from pathlib import Path

from navigator.client.client import QueryClient
from navigator.processes import free_port
from navigator.testing.chaos import ClusterApi, manager_copy
from navigator.testing.processes import Child, Fleet, wait_until
from navigator.testing.proxy import TcpProxy

LABEL = "navigator-break"


def change(api: ClusterApi, pods: list[tuple[str, str]], count: int, tag: str) -> tuple[int, list[tuple[str, str]]]:
    """``count`` changes: 90 % label patches, 5 % deletions, 5 % new pods (all labelled ``tag``).

    Returns how many pods carry the label afterwards and which were deleted.
    """
    deletions = max(1, count // 20)
    creations = deletions
    patches = count - deletions - creations
    deleted = pods[patches : patches + deletions]
    namespace = pods[0][0]
    done = [api.relabel(ns, name, tag, label=LABEL) for ns, name in pods[:patches]]
    done += [api.delete(ns, name) for ns, name in deleted]
    done += [api.create(namespace, f"break-{tag}-{i}", {LABEL: tag}) for i in range(creations)]
    if not all(done):
        raise SystemExit(f"the simulator refused {done.count(False)} of the {count} changes")
    del pods[: patches + deletions]
    return patches + creations, deleted


def exact(api: ClusterApi, query: QueryClient) -> bool:
    return manager_copy(query, "bench")["pods"] == api.copy()["pods"]


def visible(query: QueryClient, tag: str, labelled: int, deleted: list[tuple[str, str]]) -> bool:
    rows = list(query.resources(kind="pods", selector=f"{LABEL}={tag}"))
    if len(rows) != labelled:
        return False
    return not any(list(query.resources(kind="pods", namespace=ns, name=name)) for ns, name in deleted[:5])


def start_manager(fleet: Fleet, workdir: Path, port: int, name: str) -> Child:
    config = workdir / "manager.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nstorage: {{plugin: sqlite, options: {{path: '{workdir / 'nav.db'}'}}}}\n")
    manager = fleet.start(name, "manager", "--config", str(config))
    manager.wait_for("listening on", timeout=300)
    return manager


def report(what: str, sent: int, full: int, took: float, exact: bool, received: int) -> None:
    print(
        f"{what}: {sent / 1e6:.3f} MB sent after the reconnect = {100 * sent / full:.3f} % of the full snapshot "
        f"({full / 1e6:.1f} MB), {received / 1e6:.3f} MB received; every change visible {took:.2f} s after the reconnect; "
        f"copy exact: {'yes' if exact else 'NO'}; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--cut", type=float, default=5.0, help="seconds the network stays cut")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory(prefix="navigator-resume-") as tmp:
        workdir = Path(tmp)
        fleet = Fleet(workdir)
        try:
            _, kubeconfig = fleet.kubesim(
                "bench", "--pods", str(args.pods), "--services", str(args.services), "--namespaces", "10", "--seed", "1"
            )
            api = ClusterApi(kubeconfig)
            port = free_port()
            manager = start_manager(fleet, workdir, port, "manager")
            with TcpProxy("127.0.0.1", port) as proxy:
                (workdir / "edge.yaml").write_text(
                    f"edge_id: bench-edge\ncluster: {{id: bench}}\nkubernetes: {{kubeconfig: '{kubeconfig}'}}\n"
                    f"manager: {{address: '127.0.0.1:{proxy.port}', reconnect: {{initial: 0.2s, max: 1s}}}}\n"
                )
                edge = fleet.start("edge", "edge", "--config", str(workdir / "edge.yaml"))
                query = QueryClient(f"127.0.0.1:{port}", timeout=300)
                edge.wait_for("sync FULL applied", timeout=900)
                full = proxy.traffic.up
                print(f"full sync: {full / 1e6:.1f} MB from the edge", flush=True)
                pods = api.pods()

                # 1. The network drops for a while.
                proxy.cut()
                edge.wait_for("lost the stream")
                cut_at = time.monotonic()
                labelled, deleted = change(api, pods, args.changes, "cut")
                time.sleep(max(0.0, args.cut - (time.monotonic() - cut_at)))
                before, before_down = proxy.traffic.up, proxy.traffic.down
                proxy.restore()
                restored = time.monotonic()
                wait_until(lambda: visible(query, "cut", labelled, deleted), "the changes made during the cut", edge, 300)
                took = time.monotonic() - restored
                sent = proxy.traffic.up - before
                report("network cut", sent, full, took, exact(api, query), proxy.traffic.down - before_down)

                # 2. The manager dies and comes back on the same database.
                manager.stop(signal.SIGKILL)
                labelled, deleted = change(api, pods, args.changes, "restart")
                before, before_down = proxy.traffic.up, proxy.traffic.down
                restarted = time.monotonic()
                start_manager(fleet, workdir, port, "manager-again")
                wait_until(lambda: visible(query, "restart", labelled, deleted), "the changes made meanwhile", edge, 300)
                took = time.monotonic() - restarted
                sent = proxy.traffic.up - before
                report("manager restart (start included)", sent, full, took, exact(api, query), proxy.traffic.down - before_down)
                resumed = edge.output().count("resuming after state")
                print(f"the edge resumed {resumed} time(s); full states sent: {edge.output().count('sync FULL applied')}")

                # 3. The edge dies; a new edge process cannot resume but needs to send only what differs.
                edge.stop(signal.SIGKILL)
                labelled, deleted = change(api, pods, args.changes, "edge")
                before, before_down = proxy.traffic.up, proxy.traffic.down
                restarted = time.monotonic()
                edge = fleet.start("edge-again", "edge", "--config", str(workdir / "edge.yaml"))
                wait_until(lambda: visible(query, "edge", labelled, deleted), "the changes made meanwhile", edge, 900)
                took = time.monotonic() - restarted
                sent = proxy.traffic.up - before
                report("edge restart (listing included)", sent, full, took, exact(api, query), proxy.traffic.down - before_down)
                line = edge.wait_for(re.compile("full state against the manager's.*"))
                print(f"  edge: {line.group(0)}")
                query.close()
        finally:
            fleet.stop_all()


if __name__ == "__main__":
    main()
