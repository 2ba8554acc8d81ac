"""``navigator edge`` as a user runs it: ``--once`` summaries and exit codes, SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from navigator.testing.manager import run_test_manager

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]
#: Seconds a wait may take before the test gives up: only a stuck process gets there.
CEILING = 120.0


@pytest.fixture
def kubesim_process(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Start ``navigator kubesim`` subprocesses; returns the kubeconfig path once it is listening."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Path:
        kubeconfig = tmp_path / f"kubeconfig-{len(procs)}"
        proc = subprocess.Popen(
            [*NAVIGATOR, "kubesim", "--kubeconfig", str(kubeconfig), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        return kubeconfig

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(CEILING)


def write_config(tmp_path: Path, kubeconfig: Path | None, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "cluster": {"id": "cli-test"},
        "kubernetes": {
            "kubeconfig": str(kubeconfig) if kubeconfig else str(tmp_path / "no-such-kubeconfig"),
            "retry_attempts": 2,
            "retry": {"initial": "10ms", "max": "50ms"},
            "request_timeout": "5s",
        },
        "manager": {"address": "127.0.0.1:1"},
    }
    data.update(extra)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NAVIGATOR, "edge", "--config", str(config), "--once", *args], capture_output=True, text=True, timeout=CEILING
    )


def test_once_prints_a_summary_and_exits_0(tmp_path: Path, kubesim_process: Callable[..., Path]) -> None:
    kubeconfig = kubesim_process("--pods", "60", "--services", "6")
    result = once(write_config(tmp_path, kubeconfig))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["pods"][1] == "60" and rows["services"][1] == "6"
    assert "endpointslices" in rows
    assert "Traceback" not in result.stderr


def test_once_json_summary(tmp_path: Path, kubesim_process: Callable[..., Path]) -> None:
    kubeconfig = kubesim_process("--pods", "25", "--services", "4")
    result = once(write_config(tmp_path, kubeconfig), "-o", "json")
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    kinds = {k["kind"]: k for k in summary["kinds"]}
    assert kinds["pods"]["objects"] == 25 and kinds["services"]["objects"] == 4
    assert all(k["error"] is None and k["api_bytes"] > 0 and k["state_bytes"] > 0 for k in kinds.values())
    assert summary["cluster"] == "cli-test" and summary["ok"] is True


def test_once_with_a_failing_kind_exits_3(tmp_path: Path, kubesim_process: Callable[..., Path]) -> None:
    kubeconfig = kubesim_process("--pods", "10", "--services", "2", "--fault", "pods=500")
    result = once(write_config(tmp_path, kubeconfig))
    assert result.returncode == 3, result.stderr
    pods_line = next(line for line in result.stdout.splitlines() if line.startswith("pods "))
    assert "FAILED (HTTP 500)" in pods_line
    assert "pods: failed after 2 attempt(s): HTTP 500" in result.stdout
    services_line = next(line for line in result.stdout.splitlines() if line.startswith("services"))
    assert services_line.split()[1] == "2" and "ok" in services_line


def test_once_forbidden_gives_an_rbac_hint(tmp_path: Path, kubesim_process: Callable[..., Path]) -> None:
    kubeconfig = kubesim_process("--pods", "10", "--fault", "endpointslices=403")
    result = once(write_config(tmp_path, kubeconfig))
    assert result.returncode == 3
    assert "403" in result.stdout and "list and watch" in result.stderr


def test_once_against_an_unreachable_api_server_exits_1(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    result = once(write_config(tmp_path, kubeconfig))
    assert result.returncode == 1
    assert "cannot reach the Kubernetes API" in result.stdout + result.stderr


def test_missing_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    result = once(write_config(tmp_path, None))
    assert result.returncode == 2
    assert "kubernetes.kubeconfig" in result.stderr and "Traceback" not in result.stderr


async def test_sigterm_closes_the_stream_and_exits_0(tmp_path: Path, kubesim_process: Callable[..., Path]) -> None:
    kubeconfig = kubesim_process("--pods", "30", "--services", "3")
    async with run_test_manager(tmp_path, grace_period=30) as mgr:
        config = write_config(
            tmp_path, kubeconfig, manager={"address": mgr.address},
            sync={"interval": "1s", "adaptive": {"min_interval": "0.5s"}}
        )
        proc = await asyncio.create_subprocess_exec(
            *NAVIGATOR, "edge", "--config", str(config), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            try:
                row = await mgr.wait_for_status("cli-test", "HEALTHY", timeout=CEILING)
            except TimeoutError:
                proc.kill()
                raise AssertionError((await proc.communicate())[1].decode()) from None
            assert row["counts"]["pods"] == 30
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), CEILING)
            assert proc.returncode == 0, stderr.decode()
            # The manager sees the stream end and keeps the last known state.
            row = await mgr.wait_for_status("cli-test", "DISCONNECTED", timeout=CEILING)
            assert row["counts"]["pods"] == 30  # the last known state stays
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_a_wrong_token_ends_the_edge_with_exit_4_and_the_reason(
    tmp_path: Path, kubesim_process: Callable[..., Path]
) -> None:
    kubeconfig = kubesim_process("--pods", "3")
    async with run_test_manager(tmp_path, tokens={"cli-test": "right"}) as mgr:
        config = write_config(
            tmp_path, kubeconfig,
            manager={"address": mgr.address, "token": "wrong", "max_rejections": 2,
                     "reconnect": {"initial": "50ms", "max": "100ms"}},
        )  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *NAVIGATOR, "edge", "--config", str(config), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), CEILING)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = stderr.decode()
    assert proc.returncode == 4, text
    assert "rejected this edge 2 time(s) in a row: UNAUTHENTICATED" in text
    assert "the token is not valid for cluster 'cli-test'" in text and "Traceback" not in text


def test_a_bad_environment_override_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    config = write_config(tmp_path, None)
    result = subprocess.run(
        [*NAVIGATOR, "edge", "--config", str(config)],
        capture_output=True, text=True, timeout=CEILING,
        env={**os.environ, "NAVIGATOR_EDGE__MANAGER__CONNECT_TIMEOUT": "soon"},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: NAVIGATOR_EDGE__MANAGER__CONNECT_TIMEOUT: invalid duration 'soon'")
    assert result.stderr.count("\n") == 1 and str(config) not in result.stderr


def test_a_bad_transport_option_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    # The grpc plugin checks its options itself, after the file is loaded.
    config = write_config(tmp_path, None)
    result = subprocess.run(
        [*NAVIGATOR, "edge", "--config", str(config)],
        capture_output=True, text=True, timeout=CEILING,
        env={**os.environ, "NAVIGATOR_EDGE__TRANSPORT__OPTIONS__COMPRESSION": "zip"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "NAVIGATOR_EDGE__TRANSPORT__OPTIONS__COMPRESSION (transport.options.compression): " in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
