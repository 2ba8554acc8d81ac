"""The acceptance lists of the manager and edge issues, checked from outside with real processes.

Each test starts `navigator kubesim`, `navigator manager` and `navigator edge` as a
user would, and looks only at what a user sees: `navigator query -o json`,
kubectl, exit codes and log lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from navigator.testing.processes import Fleet, free_port, kubectl_count, query, wait_until

#: Seconds a wait may take before the test gives up: only a stuck process gets there.
CEILING = 120.0
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def cluster(port: int, name: str) -> dict[str, Any] | None:
    rows = query(port, "clusters", check=False) or []
    return next((r for r in rows if r["cluster"] == name), None)


def status_is(port: int, name: str, status: str) -> dict[str, Any] | None:
    row = cluster(port, name)
    return row if row is not None and row["status"] == status else None


def by_name(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["namespace"], r["name"]): r for r in rows}


def kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=CEILING,
    ).stdout


def delete_pod(kubeconfig: Path, namespace: str, name: str) -> None:
    """``kubectl delete pod`` without kubectl: the same request, straight to the simulator's API."""
    config = yaml.safe_load(kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    token = config["users"][0]["user"].get("token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.delete(f"{server}/api/v1/namespaces/{namespace}/pods/{name}", headers=headers, timeout=CEILING)
    response.raise_for_status()


def test_counts_fields_and_changes_match_kubectl(fleet: Fleet, tmp_path: Path, kubectl_bin: str) -> None:
    _, kubeconfig = fleet.kubesim(
        "east", "--pods", "120", "--services", "12", "--namespaces", "3", "--seed", "7"
    )
    port = free_port()
    fleet.manager("manager", port, tmp_path / "nav.db")
    fleet.edge("edge", "east", kubeconfig, port)
    wait_until(lambda: status_is(port, "east", "HEALTHY"), "east HEALTHY", timeout=CEILING)

    for kind in ("pods", "services", "endpointslices"):
        expected = kubectl_count(kubeconfig, kind)
        assert expected > 0
        wait_until(lambda kind=kind, expected=expected: len(query(port, kind, "--cluster", "east")) == expected,
                   f"{kind} count {expected}", timeout=CEILING)  # fmt: skip
    row = cluster(port, "east")
    assert row is not None and row["connected"] is True and row["metadata"]["region"] == "test-1"
    assert row["counts"]["pods"] == kubectl_count(kubeconfig, "pods")

    real_pods = orjson.loads(kubectl(kubeconfig, "get", "pods", "-A", "-o", "json"))["items"]
    pods = by_name(query(port, "pods", "--cluster", "east"))
    for pod in real_pods[:20]:
        meta = pod["metadata"]
        mine = pods[(meta["namespace"], meta["name"])]
        assert mine["uid"] == meta["uid"]
        assert mine["labels"] == meta.get("labels", {})
        assert mine["phase"] == pod["status"].get("phase")
        assert mine["pod_ip"] == pod["status"].get("podIP")
        assert mine["node_name"] == pod["spec"].get("nodeName")

    # A deleted and a relabelled pod show up in the manager.
    victim, relabel = real_pods[0]["metadata"], real_pods[1]["metadata"]
    kubectl(kubeconfig, "delete", "pod", "-n", victim["namespace"], victim["name"], "--wait=false")
    kubectl(
        kubeconfig, "label", "pod", "-n", relabel["namespace"], relabel["name"], "tier=gold", "--overwrite"
    )

    def changed() -> bool:
        now = by_name(query(port, "pods", "--cluster", "east"))
        return (victim["namespace"], victim["name"]) not in now and now[
            (relabel["namespace"], relabel["name"])
        ]["labels"].get("tier") == "gold"

    wait_until(changed, "deletion and relabel to arrive", timeout=CEILING)
    gold = query(port, "pods", "-l", "tier=gold")
    assert [(r["namespace"], r["name"]) for r in gold] == [(relabel["namespace"], relabel["name"])]


def test_upstream_objects_keep_their_fields(fleet: Fleet, tmp_path: Path, k8s_fixtures: Path) -> None:
    pod_file = k8s_fixtures / "realistic.apiserver-fieldmanager.core.v1.Pod.yaml"
    svc_file = k8s_fixtures / "realistic.kubectl-edit.core.v1.Service.response.json"
    _, kubeconfig = fleet.kubesim("real", "--load", str(pod_file), "--load", str(svc_file))
    port = free_port()
    fleet.manager("manager", port, tmp_path / "nav.db")
    fleet.edge("edge", "real", kubeconfig, port)
    wait_until(lambda: status_is(port, "real", "HEALTHY"), "HEALTHY", timeout=CEILING)
    (pod,) = wait_until(lambda: query(port, "pods", "--cluster", "real"), "the pod", timeout=CEILING)
    assert (pod["namespace"], pod["name"]) == ("default", "some-name")
    assert pod["labels"]["app"] == "some-app"
    assert pod["phase"] == "Running"
    assert pod["node_name"] == "node-name"
    (svc,) = wait_until(lambda: query(port, "services", "--cluster", "real"), "the service", timeout=CEILING)
    assert (svc["namespace"], svc["name"], svc["cluster_ip"]) == ("edit-test", "svc1", "10.0.0.146")
    assert svc["selector"] == {"app": "svc1"}
    assert svc["type"] == "ClusterIP"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["ports"]] == [("80", 80, "TCP")]


def test_second_edge_rejected_then_standby_takes_over(fleet: Fleet, tmp_path: Path) -> None:
    _, kubeconfig = fleet.kubesim("west", "--pods", "40", "--services", "4")
    port = free_port()
    fleet.manager("manager", port, tmp_path / "nav.db", grace="3s")
    holder = fleet.edge("holder", "west", kubeconfig, port, edge_id="edge-holder")
    wait_until(lambda: status_is(port, "west", "HEALTHY"), "holder HEALTHY", timeout=CEILING)
    standby = fleet.edge("standby", "west", kubeconfig, port, edge_id="edge-standby")
    standby.wait_for("ALREADY_HELD", timeout=CEILING)
    assert "held by connected edge 'edge-holder'" in standby.output()

    holder.stop()
    # Meanwhile the old state stays queryable.
    assert len(query(port, "pods", "--cluster", "west")) == 40
    taken = wait_until(
        lambda: (row := status_is(port, "west", "HEALTHY")) and row["edge_id"] == "edge-standby" and row,
        "standby takes over",
        timeout=CEILING,
    )
    assert taken["connected"] is True
    assert len(query(port, "pods", "--cluster", "west")) == 40


def test_restart_keeps_state_and_is_not_healthy_until_an_edge_returns(fleet: Fleet, tmp_path: Path) -> None:
    _, kubeconfig = fleet.kubesim("north", "--pods", "30", "--services", "3")
    port, db = free_port(), tmp_path / "nav.db"
    manager = fleet.manager("manager", port, db)
    edge = fleet.edge("edge", "north", kubeconfig, port)
    wait_until(lambda: status_is(port, "north", "HEALTHY"), "HEALTHY", timeout=CEILING)
    edge.stop()
    manager.stop(signal.SIGKILL)

    fleet.manager("manager-again", port, db)
    row = cluster(port, "north")
    assert row is not None and row["status"] == "DISCONNECTED" and row["connected"] is False
    assert len(query(port, "pods", "--cluster", "north")) == 30
    fleet.edge("edge-again", "north", kubeconfig, port)
    wait_until(lambda: status_is(port, "north", "HEALTHY"), "HEALTHY after the edge returns", timeout=CEILING)


def test_manager_kill9_edges_reconnect_and_resync(fleet: Fleet, tmp_path: Path) -> None:
    _, kubeconfig = fleet.kubesim("south", "--pods", "30", "--services", "3")
    port, db = free_port(), tmp_path / "nav.db"
    manager = fleet.manager("manager", port, db)
    edge = fleet.edge("edge", "south", kubeconfig, port)
    wait_until(lambda: status_is(port, "south", "HEALTHY"), "HEALTHY", timeout=CEILING)
    pods = query(port, "pods", "--cluster", "south")
    manager.stop(signal.SIGKILL)

    gone = pods[0]
    delete_pod(kubeconfig, gone["namespace"], gone["name"])
    fleet.manager("manager-again", port, db)
    wait_until(lambda: status_is(port, "south", "HEALTHY"), "edge reconnected", edge, timeout=CEILING)
    wait_until(
        lambda: len(query(port, "pods", "--cluster", "south")) == 29,
        "the deletion made while the manager was down",
        timeout=CEILING,
    )


def test_tokens_are_bound_to_their_cluster(fleet: Fleet, tmp_path: Path) -> None:
    _, kubeconfig = fleet.kubesim("secure", "--pods", "5")
    port = free_port()
    fleet.manager(
        "manager", port, tmp_path / "nav.db", tokens={"secure": "right-token", "other": "other-token"}
    )
    wrong = fleet.edge("wrong", "secure", kubeconfig, port, token="wrong-token")
    stolen = fleet.edge("stolen", "secure", kubeconfig, port, token="other-token")
    wrong.wait_for("unauthenticated", timeout=CEILING)
    stolen.wait_for("unauthenticated", timeout=CEILING)
    assert cluster(port, "secure") is None or cluster(port, "secure")["connected"] is False  # type: ignore[index]
    wrong.stop()
    stolen.stop()
    fleet.edge("right", "secure", kubeconfig, port, token="right-token")
    wait_until(lambda: status_is(port, "secure", "HEALTHY"), "HEALTHY with the right token", timeout=CEILING)


def test_random_bytes_do_not_stop_the_manager(fleet: Fleet, tmp_path: Path) -> None:
    port = free_port()
    manager = fleet.manager("manager", port, tmp_path / "nav.db")
    for payload in (
        os.urandom(4096),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512),
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            s.settimeout(2)
            with contextlib.suppress(TimeoutError, ConnectionError):
                s.recv(1024)
    assert manager.alive()
    assert query(port, "clusters") == []


def test_failing_pods_still_delivers_other_kinds_and_reports_the_error(fleet: Fleet, tmp_path: Path) -> None:
    _, kubeconfig = fleet.kubesim("flaky", "--pods", "20", "--services", "4", "--fault", "pods=500")
    port = free_port()
    fleet.manager("manager", port, tmp_path / "nav.db")
    fleet.edge("edge", "flaky", kubeconfig, port)
    row = wait_until(
        lambda: (r := cluster(port, "flaky")) and r["counts"].get("services") and r["errors"] and r,
        "services plus a pods error",
        timeout=CEILING,
    )
    assert row["counts"].get("endpointslices", 0) > 0
    assert any(e["kind"] == "pods" for e in row["errors"])
    assert query(port, "pods", "--cluster", "flaky") == []
