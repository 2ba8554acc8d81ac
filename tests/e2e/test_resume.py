"""After every kind of break the manager's copy equals what kubectl lists, and a break costs only what changed.

Real processes: `navigator kubesim`, `navigator manager`, `navigator edge` (through a
TCP proxy that can cut the connection), and kubectl making the changes meanwhile.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from navigator.testing.processes import Child, Fleet, free_port, query, wait_until
from navigator.testing.proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KINDS = ("pods", "services", "endpointslices")
Copy = dict[str, set[tuple[str, str, str, str]]]


def kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def in_the_cluster(kubeconfig: Path) -> Copy:
    items = orjson.loads(kubectl(kubeconfig, "get", ",".join(KINDS), "-A", "-o", "json"))["items"]
    plural = {"Pod": "pods", "Service": "services", "EndpointSlice": "endpointslices"}
    copy: Copy = {kind: set() for kind in KINDS}
    for item in items:
        meta = item["metadata"]
        copy[plural[item["kind"]]].add((meta["namespace"], meta["name"], meta["uid"], meta["resourceVersion"]))
    return copy


def in_the_manager(port: int) -> Copy:
    return {
        kind: {(r["namespace"], r["name"], r["uid"], r["resource_version"]) for r in query(port, kind)}
        for kind in KINDS
    }


def exact(port: int, kubeconfig: Path) -> bool:
    return in_the_manager(port) == in_the_cluster(kubeconfig)


def change_things(kubeconfig: Path, tag: str) -> None:
    """A label on some pods, a deleted pod, a new pod and a new service: made with kubectl."""
    pods = orjson.loads(kubectl(kubeconfig, "get", "pods", "-A", "-o", "json"))["items"]
    namespace = pods[0]["metadata"]["namespace"]
    names = [p["metadata"]["name"] for p in pods if p["metadata"]["namespace"] == namespace]
    for name in names[:5]:
        kubectl(kubeconfig, "label", "pod", "-n", namespace, name, f"break={tag}", "--overwrite")
    kubectl(kubeconfig, "delete", "pod", "-n", namespace, names[-1], "--wait=false")
    kubectl(kubeconfig, "run", f"born-{tag}", "-n", namespace, "--image=busybox", "--restart=Never")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"svc-{tag}", "namespace": namespace},
        "spec": {"selector": {"app": f"born-{tag}"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    manifest = kubeconfig.parent / f"svc-{tag}.json"
    manifest.write_bytes(orjson.dumps(service))
    kubectl(kubeconfig, "create", "--validate=false", "-f", str(manifest))


def start(fleet: Fleet, tmp_path: Path) -> tuple[Path, int, Child]:
    _, kubeconfig = fleet.kubesim("sim", "--pods", "60", "--services", "6", "--namespaces", "2")
    port = free_port()
    manager = fleet.manager("manager", port, tmp_path / "nav.db", grace="30s")
    return kubeconfig, port, manager


def fulls_applied(edge: Child) -> int:
    return edge.output().count("sync FULL applied")


def converge(port: int, kubeconfig: Path, edge: Child) -> None:
    wait_until(lambda: exact(port, kubeconfig), "the manager's copy equal to kubectl's list", edge, timeout=60)


@pytest.mark.usefixtures("kubectl_bin")
def test_a_network_cut_resumes_without_a_snapshot(fleet: Fleet, tmp_path: Path) -> None:
    kubeconfig, port, _ = start(fleet, tmp_path)
    with TcpProxy("127.0.0.1", port) as proxy:
        edge = fleet.edge("edge", "sim", kubeconfig, proxy.port)
        converge(port, kubeconfig, edge)
        proxy.cut()
        edge.wait_for("lost the stream")
        change_things(kubeconfig, "cut")
        proxy.restore()
        converge(port, kubeconfig, edge)
    edge.wait_for("resuming after state")
    assert fulls_applied(edge) == 1  # the first one; the break cost only the changes


@pytest.mark.usefixtures("kubectl_bin")
def test_a_manager_killed_and_restarted_gets_only_what_changed(fleet: Fleet, tmp_path: Path) -> None:
    kubeconfig, port, manager = start(fleet, tmp_path)
    edge = fleet.edge("edge", "sim", kubeconfig, port)
    converge(port, kubeconfig, edge)
    manager.stop(signal.SIGKILL)
    edge.wait_for(re.compile("lost the stream|cannot connect"))
    change_things(kubeconfig, "restart")
    fleet.manager("manager-again", port, tmp_path / "nav.db", grace="30s")
    converge(port, kubeconfig, edge)
    edge.wait_for("resuming after state")
    assert fulls_applied(edge) == 1


@pytest.mark.usefixtures("kubectl_bin")
def test_a_restarted_edge_sends_a_full_state_and_the_copy_is_exact(fleet: Fleet, tmp_path: Path) -> None:
    kubeconfig, port, _ = start(fleet, tmp_path)
    first = fleet.edge("edge", "sim", kubeconfig, port, edge_id="edge-a")
    converge(port, kubeconfig, first)
    first.stop(signal.SIGKILL)
    change_things(kubeconfig, "edge")
    # Same edge id (the grace period lets only it back in); a new process cannot resume.
    second = fleet.edge("edge-again", "sim", kubeconfig, port, edge_id="edge-a")
    converge(port, kubeconfig, second)
    assert fulls_applied(second) >= 1 and "resuming after state" not in second.output()
    # It listed everything again but sent the manager only what differs from the versions it holds.
    second.wait_for("full state against the manager's")

