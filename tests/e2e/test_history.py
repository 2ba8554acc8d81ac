"""History from outside, as a user sees it: kubectl changes a simulated cluster, `navigator query` remembers.

Real processes (`navigator kubesim`, `navigator manager` on SQLite with the default
history settings, `navigator edge`), real kubectl against the simulator's API, and
only what `navigator query` prints.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from navigator.client.times import rfc3339
from navigator.testing.processes import Fleet, free_port, kubectl_count, navigator_command, query, wait_until

#: Seconds a wait may take before the test gives up: only a stuck process gets there.
CEILING = 120.0
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], check=True, capture_output=True, text=True,
        timeout=CEILING,
    ).stdout  # fmt: skip


def table(port: int, *args: str) -> str:
    result = subprocess.run(
        navigator_command("query", *args, "--manager", f"127.0.0.1:{port}"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def moment() -> str:
    """Now, strictly between what was applied before and what is applied after."""
    time.sleep(0.05)
    when = rfc3339(datetime.now(UTC))
    time.sleep(0.05)
    return when


def test_a_kubectl_patch_and_delete_are_in_the_history(fleet: Fleet, tmp_path: Path, kubectl_bin: str) -> None:
    _, kubeconfig = fleet.kubesim("east", "--pods", "12", "--services", "2", "--namespaces", "2", "--seed", "5")
    port = free_port()
    fleet.manager("manager", port, tmp_path / "nav.db")
    edge = fleet.edge("edge", "east", kubeconfig, port)
    total = kubectl_count(kubeconfig, "pods")
    wait_until(lambda: len(query(port, "pods", "--cluster", "east")) == total, f"{total} pods", edge, timeout=CEILING)

    pods = orjson.loads(kubectl(kubeconfig, "get", "pods", "-A", "-o", "json"))["items"]
    patched, victim = pods[0]["metadata"], pods[1]["metadata"]
    started = moment()
    kubectl(kubeconfig, "patch", "pod", "-n", patched["namespace"], patched["name"],
            "-p", '{"metadata": {"labels": {"tier": "gold"}}}')  # fmt: skip

    # The patch shows up in `query changes` with the field that changed.
    [change] = wait_until(
        lambda: query(port, "changes", "--since", started, "--name", patched["name"], "-n", patched["namespace"]),
        "the patch in the history",
        edge,
        timeout=CEILING,
    )
    assert (change["type"], change["cluster"], change["kind"]) == ("MODIFIED", "east", "pods")
    assert change["changed_fields"] == ["labels"] and change["labels"]["tier"] == "gold"
    assert change["uid"] == patched["uid"] and change["resource_version"] != patched["resourceVersion"]
    assert started < change["applied_at"] and change["observed_at"] <= change["applied_at"]
    shown = table(port, "changes", "--since", started)
    assert any(line.split()[1:] == ["MODIFIED", "east", "pods", patched["namespace"], patched["name"],
                                    change["resource_version"], "labels"] for line in shown.splitlines()), shown  # fmt: skip
    assert query(port, "changes", "-l", "tier=gold") == [change]

    # A pod deleted with kubectl is gone now, still there --at a time before, and REMOVED in the diff
    # (its endpoint slice changes too, as in a real cluster).
    before_delete = moment()
    kubectl(kubeconfig, "delete", "pod", "-n", victim["namespace"], victim["name"], "--wait=false")
    wait_until(
        lambda: victim["name"] not in {p["name"] for p in query(port, "pods", "-n", victim["namespace"])},
        "the deletion",
        edge,
        timeout=CEILING,
    )
    then = {p["name"]: p for p in query(port, "pods", "-n", victim["namespace"], "--at", before_delete)}
    assert then[victim["name"]]["uid"] == victim["uid"]
    assert len(query(port, "pods", "--at", before_delete)) == total
    [east] = query(port, "clusters", "--at", before_delete)
    assert east["counts"]["pods"] == total and east["status"] == "HEALTHY"

    diff = query(port, "diff", "--from", before_delete, "--kind", "pods")
    assert [(d["type"], d["kind"], d["namespace"], d["name"]) for d in diff] == [
        ("REMOVED", "pods", victim["namespace"], victim["name"])
    ]
    assert any(c["type"] == "CHANGED" and c["name"] == patched["name"]
               for c in query(port, "diff", "--from", started, "--to", before_delete))  # fmt: skip
    [deleted] = query(port, "changes", "--name", victim["name"], "--since", before_delete)
    assert (deleted["type"], deleted["uid"]) == ("DELETED", victim["uid"])
