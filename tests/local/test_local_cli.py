"""``navigator local`` against two simulated clusters reached through one kubeconfig with several contexts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from navigator.kubesim import KubeSim

#: Seconds a wait may take before the test gives up: only a stuck run gets there.
CEILING = 120.0
pytestmark = pytest.mark.timeout(600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def navigator(*args: str) -> list[str]:
    return [sys.executable, "-m", "navigator.cli.main", *args]


def merge(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``KUBECONFIG=a:b kubectl config view --flatten`` would write."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for config in configs:
        for key in ("clusters", "users", "contexts"):
            merged[key] += config[key]
    merged["current-context"] = configs[0]["current-context"]
    return merged


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    """Contexts alpha (HTTPS with a bearer token, 30 pods), beta (HTTP, 20 pods) and gone (nothing listens)."""
    with (
        KubeSim(pods=30, services=5, seed=1, name="alpha", token="alpha-token", tls=True,
                kubeconfig_path=tmp_path / "alpha") as alpha,
        KubeSim(pods=20, services=4, seed=2, name="beta", kubeconfig_path=tmp_path / "beta") as beta,
    ):
        gone = beta.kubeconfig()
        gone["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{free_port()}"
        for key in ("clusters", "users", "contexts"):
            gone[key][0]["name"] = "gone"
        gone["contexts"][0]["context"].update(cluster="gone", user="gone")
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(merge([alpha.kubeconfig(), beta.kubeconfig(), gone])))
        yield path


class Run:
    """``navigator <args>`` as a child whose output goes to a file the test reads while it runs."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                navigator(*args), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, what: str) -> None:
        """Until a line of the output matches ``pattern``; fails at once if the run exits first."""
        deadline = time.monotonic() + CEILING
        while not re.search(pattern, self.output(), re.MULTILINE):
            assert self.proc.poll() is None, f"exited ({self.proc.returncode}) before {what}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {what} after {CEILING:g}s:\n{self.output()}"
            time.sleep(0.2)

    def wait(self) -> int:
        try:
            return self.proc.wait(CEILING)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_local_watches_the_chosen_contexts_until_stopped(kubeconfig: Path, tmp_path: Path) -> None:
    port = free_port()
    run = Run(
        tmp_path / "local.log",
        "local", "--kubeconfig", str(kubeconfig), "--contexts", "alpha,beta", "--interval", "2s",
        "--port", str(port), "--dir", str(tmp_path / "local"),
    )  # fmt: skip
    try:
        # Readiness is what the run itself prints: a status line per cluster once it is HEALTHY.
        run.wait_for(r"^\S+ alpha HEALTHY ", "status line 'alpha HEALTHY'")
        run.wait_for(r"^\S+ beta HEALTHY ", "status line 'beta HEALTHY'")
        result = subprocess.run(
            navigator("query", "clusters", "--manager", f"127.0.0.1:{port}", "-o", "json"),
            capture_output=True, timeout=CEILING, check=True,
        )  # fmt: skip
        by_id = {c["cluster"]: c for c in orjson.loads(result.stdout)}
        assert set(by_id) == {"alpha", "beta"}
        assert by_id["alpha"]["counts"]["pods"] == 30 and by_id["beta"]["counts"]["pods"] == 20
        assert by_id["alpha"]["metadata"]["context"] == "alpha"
        run.proc.send_signal(signal.SIGTERM)  # what Ctrl-C does, from outside
        code = run.wait()
    finally:
        run.kill()
    text = run.output()
    assert code == 0, text
    assert not re.search(r"^\S+ gone ", text, re.MULTILINE), "a context not asked for was watched"
    assert "2/2 clusters reached HEALTHY" in text


def test_local_ends_by_itself_when_the_duration_is_over(kubeconfig: Path, tmp_path: Path) -> None:
    # "gone" never answers, so the verdict does not depend on how fast this machine is.
    run = Run(
        tmp_path / "local.log",
        "local", "--kubeconfig", str(kubeconfig), "--contexts", "gone", "--duration", "1s",
        "--port", str(free_port()), "--dir", str(tmp_path / "local"),
    )  # fmt: skip
    code = run.wait()
    text = run.output()
    assert code == 1, text
    assert "ends by itself after 1s" in text
    assert "0/1 clusters reached HEALTHY; never: gone" in text


def test_an_unknown_context_is_refused_naming_the_known_ones(kubeconfig: Path) -> None:
    result = subprocess.run(
        navigator("local", "--kubeconfig", str(kubeconfig), "--contexts", "alpha,prod"),
        capture_output=True, timeout=CEILING, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "error: --contexts: no context named 'prod' (the kubeconfig has: alpha, beta, gone)"
    )
