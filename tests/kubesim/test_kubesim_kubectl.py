"""The real kubectl against the simulator, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from navigator.kubesim import KubeSim

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]
Kubectl = Any  # the helper class from conftest, handed out by fixtures


@pytest.fixture
def big(make_sim: Callable[..., KubeSim]) -> KubeSim:
    return make_sim(pods=620, services=45, namespaces=4, seed=11)


def test_get_everything_in_chunks(big: KubeSim, kubectl_for: Callable[[KubeSim], Kubectl]) -> None:
    k = kubectl_for(big)
    pods = json.loads(k.run("get", "pods", "-A", "--chunk-size=250", "-o", "json").stdout)
    assert pods["kind"] == "List" and len(pods["items"]) == 620
    assert {p["metadata"]["uid"] for p in pods["items"]} == {p["metadata"]["uid"] for p in big.list("pods")}
    table = k.run("get", "pods", "-A", "--chunk-size=250").stdout.splitlines()
    assert table[0].split()[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(table) == 621
    assert {tuple(line.split()[:2]) for line in table[1:]} == \
        {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in big.list("pods")}
    for kind, n in (("services", 45), ("endpointslices", big.count("endpointslices"))):
        doc = json.loads(k.run("get", kind, "-A", "--chunk-size=20", "-o", "json").stdout)
        assert len(doc["items"]) == n
        assert len(k.run("get", kind, "-A", "--chunk-size=20").stdout.splitlines()) == n + 1
    wide = k.run("get", "pods", "-n", "search", "-o", "wide").stdout.splitlines()
    assert "NODE" in wide[0] and len(wide) == big.count("pods", "search") + 1


def test_selectors_and_single_objects(big: KubeSim, kubectl_for: Callable[[KubeSim], Kubectl]) -> None:
    k = kubectl_for(big)
    pod = big.list("pods", "search")[0]
    app = pod["metadata"]["labels"]["app"]
    names = k.run("get", "pods", "-A", "-l", f"app={app}", "-o", "name").stdout.split()
    assert f"pod/{pod['metadata']['name']}" in names
    assert len(names) == len(big.list("pods", label_selector=f"app={app}"))
    running = k.run("get", "pods", "-A", "--field-selector=status.phase=Running", "-o", "name").stdout.split()
    assert len(running) == len(big.list("pods", field_selector="status.phase=Running"))
    got = json.loads(k.run("get", "pod", "-n", "search", pod["metadata"]["name"], "-o", "json").stdout)
    assert got["metadata"]["uid"] == pod["metadata"]["uid"]
    assert "Ready" in k.run("get", "nodes").stdout
    assert "kube-system" in k.run("get", "ns").stdout
    missing = k.run("get", "pod", "nope", "-n", "search", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr


def test_watch_create_label_delete(sim: KubeSim, kubectl_for: Callable[[KubeSim], Kubectl], tmp_path: Path) -> None:
    k = kubectl_for(sim)
    pod = tmp_path / "pod.json"
    pod.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "default"},
                               "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}))
    # -v=6 logs each request: the changes are made once kubectl's watch is open, not after a guess.
    w = k.popen("get", "pods", "-A", "--watch-only", "--output-watch-events", "-v=6")
    try:
        assert w.stderr is not None
        opened = time.monotonic() + 60
        while "watch=true" not in (logged := w.stderr.readline()):
            assert logged and time.monotonic() < opened, "kubectl did not open its watch"
        assert "pod/x created" in k.run("create", "--validate=false", "-f", str(pod)).stdout
        assert "pod/x labeled" in k.run("label", "pod", "x", "foo=bar").stdout
        assert sim.get("pods", "default", "x")["metadata"]["labels"] == {"foo": "bar"}
        assert 'pod "x" deleted' in k.run("delete", "pod", "x").stdout
        lines: list[str] = []
        deadline = time.monotonic() + 15
        assert w.stdout is not None
        while time.monotonic() < deadline:
            line = w.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("DELETED"):
                break
    finally:
        w.terminate()
        w.wait(10)
    events = [line.split()[:3] for line in lines if not line.startswith("EVENT")]
    assert ["ADDED", "default", "x"] in events and ["DELETED", "default", "x"] in events
    assert ["MODIFIED", "default", "x"] in events


def test_custom_resources_with_kubectl(sim: KubeSim, kubectl_for: Callable[[KubeSim], Kubectl]) -> None:
    sim.register_kind("example.com", "v1", "Widget", "widgets", short_names=("wd",))
    sim.create({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}})
    k = kubectl_for(sim)
    out = k.run("get", "wd", "-A").stdout.splitlines()
    assert out[0].split() == ["NAMESPACE", "NAME", "AGE"] and out[1].split()[:2] == ["default", "w"]


def _start_cli(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "navigator.kubesim", "--kubeconfig", str(tmp_path / "kc"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(f"no listening line; stderr: {proc.stderr.read() if proc.stderr else ''}")
    return proc, line


def test_cli_serves_until_sigterm(tmp_path: Path, kubectl_at: Callable[[Path], Kubectl]) -> None:
    proc, line = _start_cli(tmp_path, "--pods", "50", "--services", "5", "--token", "tok", "--tls",
                            "--name", "cli", "--churn", "5")
    try:
        assert line.startswith("listening on https://127.0.0.1:")
        k = kubectl_at(tmp_path / "kc")
        out = k.run("get", "pods", "-A", "--no-headers").stdout.splitlines()
        assert len(out) >= 40
        assert k.run("config", "current-context").stdout.strip() == "cli"
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
    assert rc == 0
    assert proc.stdout is not None and proc.stdout.read() == ""  # exactly one line on stdout


def test_cli_faults_and_load(tmp_path: Path, upstream_fixtures: Path) -> None:
    proc, line = _start_cli(tmp_path, "--fault", "services=500", "--load",
                            str(upstream_fixtures / "realistic.kubectl-edit.core.v1.Service.response.json"))
    try:
        url = line.split()[-1]
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{url}/api/v1/namespaces/edit-test/services/svc1", timeout=5)
        assert exc.value.code == 500
        urllib.request.urlopen(f"{url}/_kubesim/faults", data=b"", timeout=5)  # POST with no rule is fine
        req = urllib.request.Request(f"{url}/_kubesim/faults", method="DELETE")
        urllib.request.urlopen(req, timeout=5)
        with urllib.request.urlopen(f"{url}/api/v1/namespaces/edit-test/services/svc1", timeout=5) as r:
            assert json.loads(r.read())["metadata"]["uid"] == "5f7da8db-e8c3-11e6-b7e2-acbc32c1ca87"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0


@pytest.mark.parametrize(("args", "needle"), [
    (["--fault", "pods=abc"], "argument --fault"),
    (["--fault", "pods"], "argument --fault"),
    (["--pods", "-3"], "argument --pods"),
    (["--churn", "fast"], "argument --churn"),
    (["--load", "/nonexistent/file.json"], "--load"),
])
def test_cli_bad_arguments(tmp_path: Path, args: list[str], needle: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "navigator.kubesim", "--kubeconfig", str(tmp_path / "kc"), *args],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 2
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""
