"""``navigator watch`` as a real process: against a manager fed by an edge on the simulator, changes made with the
real kubectl show up as lines; a watcher that stops reading is cut off with the reason; errors are one line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from navigator.testing.manager import run_test_manager
from navigator.testing.processes import (
    Child,
    Fleet,
    free_port,
    kubectl_count,
    navigator_command,
    query,
    wait_until,
)
from navigator.testing.raw_edge import RawEdge, delta_state, full_state, pod, resource
from navigator.v1 import sync_pb2

#: Seconds a wait may take before the test gives up: only a stuck process gets there.
CEILING = 120.0


def kubectl(kubeconfig: Path, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], check=True, capture_output=True, text=True,
        timeout=CEILING,
    ).stdout  # fmt: skip


def json_lines(child: Child) -> list[dict[str, Any]]:
    """The JSON lines the watch printed so far (its log holds stdout and stderr)."""
    return [orjson.loads(line) for line in child.output().splitlines() if line.startswith("{")]


def events(child: Child, name: str) -> list[str]:
    return [row["type"] for row in json_lines(child) if row["name"] == name]


def table_lines(child: Child) -> list[list[str]]:
    return [line.split() for line in child.output().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kubectl_create_label_delete_show_up_as_lines(fleet: Fleet, tmp_path: Path, kubectl_bin: str) -> None:
    _, kubeconfig = fleet.kubesim("east", "--pods", "6", "--services", "1", "--namespaces", "1", "--seed", "3")
    port = free_port()
    manager = f"127.0.0.1:{port}"
    fleet.manager("manager", port, tmp_path / "nav.db")
    edge = fleet.edge("edge", "east", kubeconfig, port)
    total = kubectl_count(kubeconfig, "pods")
    wait_until(lambda: len(query(port, "pods", "--cluster", "east")) == total, f"{total} pods", edge, timeout=CEILING)

    # One pod already wears the label the table watch selects: its initial line says the watch is on.
    gold = orjson.loads(kubectl(kubeconfig, "get", "pods", "-A", "-o", "json"))["items"][0]["metadata"]
    kubectl(kubeconfig, "label", "pod", "-n", gold["namespace"], gold["name"], "tier=gold")
    wait_until(lambda: query(port, "pods", "-l", "tier=gold"), "the label applied", edge, timeout=CEILING)

    as_json = fleet.start("watch-json", "watch", "pods", "--manager", manager, "--initial", "-o", "json")
    as_table = fleet.start("watch-table", "watch", "pods", "--manager", manager, "-l", "tier=gold", "--initial")
    as_json.wait_until(lambda: len(json_lines(as_json)) >= total, f"{total} initial lines", timeout=CEILING)
    assert {row["type"] for row in json_lines(as_json)} == {"ADDED"}
    as_table.wait_until(lambda: len(table_lines(as_table)) >= 2, "the initial line", timeout=CEILING)

    spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "watched", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}  # fmt: skip
    (tmp_path / "pod.json").write_bytes(orjson.dumps(spec))
    kubectl(kubeconfig, "create", "--validate=false", "-f", str(tmp_path / "pod.json"))
    as_json.wait_until(lambda: "ADDED" in events(as_json, "watched"), "ADDED watched", timeout=CEILING)
    kubectl(kubeconfig, "label", "pod", "-n", "default", "watched", "tier=gold")
    as_json.wait_until(lambda: "MODIFIED" in events(as_json, "watched"), "MODIFIED watched", timeout=CEILING)
    kubectl(kubeconfig, "delete", "pod", "-n", "default", "watched", "--wait=false")
    as_json.wait_until(lambda: "DELETED" in events(as_json, "watched"), "DELETED watched", timeout=CEILING)

    rows = [row for row in json_lines(as_json) if row["name"] == "watched"]
    assert (rows[0]["type"], rows[-1]["type"]) == ("ADDED", "DELETED")
    added = rows[0]
    labelled = next(r for r in rows if r["type"] == "MODIFIED" and "labels" in r["changed_fields"])
    deleted = rows[-1]
    for row in rows:
        assert (row["cluster"], row["kind"], row["namespace"]) == ("east", "pods", "default")
        assert row["uid"] == added["uid"] and row["resource_version"] and row["applied_at"] and row["observed_at"]
        for key in ("phase", "pod_ip", "node_name", "ready", "labels"):  # as `query pods -o json` has them
            assert key in row, key
    assert labelled["labels"]["tier"] == "gold" and added["labels"].get("tier") is None
    assert deleted["labels"] == {} and deleted["phase"] is None

    # The table: a header, then kubectl-like lines.
    as_table.wait_until(
        lambda: any(line[:4] == ["DELETED", "east", "default", "watched"] for line in table_lines(as_table)),
        "DELETED in the table", timeout=CEILING,
    )  # fmt: skip
    lines = table_lines(as_table)
    assert lines[0] == ["TYPE", "CLUSTER", "NAMESPACE", "NAME", "PHASE", "READY", "AGE"]  # the collector's columns
    assert lines[1][:4] == ["ADDED", "east", gold["namespace"], gold["name"]]
    assert lines[2][:4] == ["MODIFIED", "east", "default", "watched"]  # from its label on
    assert all(line[3] == "watched" for line in lines[2:]) and lines[-1][0] == "DELETED"

    # Ctrl-C ends a watch quietly, with status 0.
    for child in (as_json, as_table):
        assert child.stop(signal.SIGINT) == 0
    assert "Traceback" not in as_json.output() and "Traceback" not in as_table.output()
    assert all(line.startswith("{") for line in as_json.output().splitlines())


async def test_a_stalled_watch_is_cut_off_with_the_reason_on_stderr(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, watch={"buffer": 20}) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-east")
        await edge.send_state(full_state("east", "edge-east", 1, {"pods": [pod("first")]}))
        proc = await asyncio.create_subprocess_exec(
            *navigator_command("watch", "pods", "--manager", mgr.address, "--initial", "-o", "json"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = orjson.loads(await asyncio.wait_for(proc.stdout.readline(), CEILING))
            assert (first["type"], first["name"]) == ("ADDED", "first")
            os.kill(proc.pid, signal.SIGSTOP)  # the watcher stops reading
            sequence = 2
            while len(mgr.manager.feed):
                assert sequence < 2000, "the stalled watch was never cut off"
                big = [pod(f"big-{i}", resource_version=str(sequence), data={"blob": "x" * 20_000}) for i in range(30)]
                ack = await edge.send_state(delta_state("east", "edge-east", sequence, big))
                assert ack.status == sync_pb2.ACK_STATUS_APPLIED
                sequence += 1
            os.kill(proc.pid, signal.SIGCONT)
            out, err = await asyncio.wait_for(proc.communicate(), CEILING)
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                await proc.wait()
    assert proc.returncode == 1
    message = err.decode()
    assert message.startswith("error: the manager at") and "ended the watch" in message, message
    assert "20 changes" in message and "narrow it" in message and "Traceback" not in message
    assert all(orjson.loads(line)["type"] in ("ADDED", "MODIFIED") for line in out.splitlines())


async def first_lines(*args: str, count: int) -> list[str]:
    """The first ``count`` lines ``navigator watch ARGS`` prints; then it is interrupted (Ctrl-C: status 0)."""
    proc = await asyncio.create_subprocess_exec(
        *navigator_command("watch", *args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), CEILING)).decode() for _ in range(count)]
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), CEILING)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0 and err == b"", err
    return lines


async def test_a_service_keeps_its_type_beside_the_change_type(tmp_path: Path) -> None:
    web = resource("services", "web", "shop", labels={"app": "web"}, data={
        "type": "ClusterIP", "cluster_ip": "10.96.0.10", "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}],
    })  # fmt: skip
    async with run_test_manager(tmp_path) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-east")
        await edge.send_state(full_state("east", "edge-east", 1, {"services": [web]}))
        [line] = await first_lines("services", "--manager", mgr.address, "--initial", "-o", "json", count=1)
        header, row = await first_lines("services", "--manager", mgr.address, "--initial", count=2)
    shown = orjson.loads(line)
    assert list(shown)[:11] == ["type", "cluster", "kind", "namespace", "name", "uid", "resource_version",
                                "old_resource_version", "applied_at", "observed_at", "changed_fields"]  # fmt: skip
    assert (shown["type"], shown["kind"], shown["service_type"], shown["cluster_ip"]) == (
        "ADDED", "services", "ClusterIP", "10.96.0.10"
    )
    assert shown["labels"] == {"app": "web"} and shown["ports"][0]["target_port"] == 8080
    assert header.split() == ["TYPE", "CLUSTER", "NAMESPACE", "NAME", "SERVICE-TYPE", "CLUSTER-IP", "PORTS"]
    assert row.split() == ["ADDED", "east", "shop", "web", "ClusterIP", "10.96.0.10", "80/TCP→8080"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--manager", "127.0.0.1:1"], 1, "cannot reach the manager at 127.0.0.1:1"),
        (["--manager", "127.0.0.1:1", "-l", "app in ("], 2, "-l:"),
        (["--manager", "127.0.0.1:1", "--kind", "services"], 2, "--kind is for `navigator watch resources`"),
    ],
)
def test_errors_are_one_line_and_an_exit_status(args: list[str], code: int, needle: str) -> None:
    result = subprocess.run(
        [*navigator_command("watch", "pods", *args)], capture_output=True, text=True, timeout=CEILING,
        env={**os.environ, "NAVIGATOR_MANAGER": ""},
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_navigator_manager_names_the_manager() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "navigator.cli.main", "watch", "services"], capture_output=True, text=True,
        timeout=CEILING, env={**os.environ, "NAVIGATOR_MANAGER": "127.0.0.1:1"},
    )  # fmt: skip
    assert result.returncode == 1 and "127.0.0.1:1" in result.stderr
