"""``navigator demo`` as a user runs it: a real command with simulators, a manager and edges.

While it runs, the same things a user would try from another terminal must
work: ``navigator query`` against its manager, a scrape of its metrics port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from navigator import processes
from navigator.processes import free_port, navigator_command

#: Seconds a wait may take before the test gives up: only a stuck run gets there.
CEILING = 120.0
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """Children started meanwhile take SIGINT even if this run ignores it, as a background job of a
    non-interactive shell does (they would inherit the ignoring and never see the test's Ctrl-C)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions ``text`` (the demo's directory): its children, if any are left."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


def query_pods(port: int) -> list[dict[str, object]] | None:
    result = subprocess.run(
        navigator_command("query", "pods", "--manager", f"127.0.0.1:{port}", "-o", "json"),
        capture_output=True, timeout=CEILING, check=False,
    )
    if result.returncode != 0:
        return None
    rows: list[dict[str, object]] = orjson.loads(result.stdout)
    return rows


def test_demo_syncs_every_cluster_and_is_queryable_while_it_runs(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    workdir = tmp_path / "demo"
    demo = processes.start("demo", [
        "demo", "--clusters", "2", "--pods", "300",
        "--port", str(port), "--metrics-port", str(metrics_port), "--dir", str(workdir),
    ], tmp_path / "demo.log")  # fmt: skip
    try:
        pods = demo.wait_until(
            lambda: (rows := query_pods(port)) and len(rows) == 2 * 300 and rows, "all 600 pods", timeout=CEILING
        )
        assert {p["cluster"] for p in pods} == {"production-east", "staging-west"}
        assert all(p["name"] and p["uid"] and p["resource_version"] for p in pods)

        scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=CEILING)
        assert scrape.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
        assert "navigator_manager_connected_edges" in families
        assert "navigator_manager_storage_apply_seconds" in families
        assert all(name.startswith(("navigator_", "python_")) for name in families)

        # The demo's own status lines say when it has seen each cluster HEALTHY.
        for name in ("production-east", "staging-west"):
            demo.wait_for(re.compile(rf"^\S+ {name} HEALTHY ", re.MULTILINE), timeout=CEILING)
        code = demo.stop(signal.SIGTERM, grace=CEILING)  # as a service manager (or `timeout`) would
    finally:
        demo.stop(signal.SIGKILL)
    text = demo.output()
    assert code == 0, text
    assert "2/2 clusters reached HEALTHY" in text
    # Without a terminal the header is printed once: what to try while the demo runs.
    assert f"navigator query pods --manager 127.0.0.1:{port}" in text
    assert f"curl -s http://127.0.0.1:{metrics_port}/metrics" in text
    # --dir keeps what the run produced: the database, the configs, the logs.
    assert (workdir / "navigator.db").is_file()
    assert (workdir / "manager.yaml").is_file() and (workdir / "logs" / "manager.log").is_file()
    assert processes_mentioning(str(workdir)) == []


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_stops_the_demo_and_everything_it_started(tmp_path: Path) -> None:
    port = free_port()
    workdir = tmp_path / "demo"
    demo = processes.start("demo", [
        "demo", "--clusters", "1", "--pods", "20", "--port", str(port), "--dir", str(workdir),
    ], tmp_path / "demo.log")  # fmt: skip
    try:
        demo.wait_for(re.compile(r"^\S+ \S+ HEALTHY ", re.MULTILINE), timeout=CEILING)
        children = set(processes_mentioning(str(workdir))) - {demo.pid}
        assert len(children) == 3, demo.output()  # simulator, manager, edge
        code = demo.stop(signal.SIGINT, grace=CEILING)
    finally:
        demo.stop(signal.SIGKILL)
    text = demo.output()
    assert code == 0, text
    assert "1/1 clusters reached HEALTHY" in text
    assert processes_mentioning(str(workdir)) == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the manager still listens after Ctrl-C"


def test_bad_options_are_refused_with_the_option_named() -> None:
    result = subprocess.run(navigator_command("demo", "--clusters", "0"), capture_output=True, timeout=CEILING, check=False)
    assert result.returncode == 2
    assert b"--clusters" in result.stderr and b"at least 1" in result.stderr
    result = subprocess.run(
        navigator_command("demo", "--duration", "soon"), capture_output=True, timeout=CEILING, check=False
    )
    assert result.returncode == 2
    assert b"--duration" in result.stderr and b"invalid duration" in result.stderr
