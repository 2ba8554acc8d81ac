"""``navigator demo`` as a user runs it: a real command with simulators, a manager and edges.

While it runs, the same things a user would try from another terminal must
work: ``navigator query`` against its manager, a scrape of its metrics port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def navigator(*args: str) -> list[str]:
    return [sys.executable, "-m", "navigator.cli.main", *args]


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
        navigator("query", "pods", "--manager", f"127.0.0.1:{port}", "-o", "json"),
        capture_output=True, timeout=30, check=False,
    )
    if result.returncode != 0:
        return None
    rows: list[dict[str, object]] = orjson.loads(result.stdout)
    return rows


def exited(demo: subprocess.Popen[bytes]) -> str:
    """The demo's output if it ended early: the reason a check failed."""
    if demo.poll() is None or demo.stdout is None:
        return ""
    return f"; the demo exited with code {demo.returncode}:\n" + demo.stdout.read().decode(errors="replace")


def test_demo_syncs_every_cluster_and_is_queryable_while_it_runs(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    workdir = tmp_path / "demo"
    demo = subprocess.Popen(
        navigator(
            "demo", "--clusters", "2", "--pods", "300", "--duration", "30",
            "--port", str(port), "--metrics-port", str(metrics_port), "--dir", str(workdir),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        pods: list[dict[str, object]] | None = None
        deadline = time.monotonic() + 28
        while time.monotonic() < deadline and demo.poll() is None:
            pods = query_pods(port)
            if pods is not None and len(pods) == 2 * 300:
                break
            time.sleep(1)
        assert pods is not None, f"navigator query pods never answered while the demo ran{exited(demo)}"
        assert len(pods) == 2 * 300, exited(demo)
        assert {p["cluster"] for p in pods} == {"production-east", "staging-west"}
        assert all(p["name"] and p["uid"] and p["resource_version"] for p in pods)

        scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert scrape.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
        assert "navigator_manager_connected_edges" in families
        assert "navigator_manager_storage_apply_seconds" in families
        assert all(name.startswith(("navigator_", "python_")) for name in families)

        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    text = output.decode(errors="replace")
    assert demo.returncode == 0, text
    assert "production-east HEALTHY" in text and "staging-west HEALTHY" in text
    assert "2/2 clusters reached HEALTHY" in text
    # Without a terminal the header is printed once: what to try while the demo runs.
    assert f"navigator query pods --manager 127.0.0.1:{port}" in text
    assert f"curl -s http://127.0.0.1:{metrics_port}/metrics" in text
    # --dir keeps what the run produced: the database, the configs, the logs.
    assert (workdir / "navigator.db").is_file()
    assert (workdir / "manager.yaml").is_file() and (workdir / "logs" / "manager.log").is_file()
    assert processes_mentioning(str(workdir)) == []


def test_ctrl_c_stops_the_demo_and_everything_it_started(tmp_path: Path) -> None:
    port = free_port()
    workdir = tmp_path / "demo"
    demo = subprocess.Popen(
        navigator("demo", "--clusters", "1", "--pods", "20", "--port", str(port), "--dir", str(workdir)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and demo.poll() is None:
            pods = query_pods(port)
            if pods:
                break
            time.sleep(1)
        children = set(processes_mentioning(str(workdir))) - {demo.pid}
        assert len(children) == 3, exited(demo)  # simulator, manager, edge
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    text = output.decode(errors="replace")
    assert demo.returncode == 0, text
    assert "1/1 clusters reached HEALTHY" in text
    assert processes_mentioning(str(workdir)) == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the manager still listens after Ctrl-C"


def test_bad_options_are_refused_with_the_option_named() -> None:
    result = subprocess.run(navigator("demo", "--clusters", "0"), capture_output=True, timeout=30, check=False)
    assert result.returncode == 2
    assert b"--clusters" in result.stderr and b"at least 1" in result.stderr
    result = subprocess.run(navigator("demo", "--duration", "soon"), capture_output=True, timeout=30, check=False)
    assert result.returncode == 2
    assert b"--duration" in result.stderr and b"invalid duration" in result.stderr
