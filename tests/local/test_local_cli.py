"""``navigator local`` against two simulated clusters reached through one kubeconfig with several contexts."""

from __future__ import annotations

import re
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

pytestmark = pytest.mark.timeout(120)


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


def test_local_watches_the_chosen_contexts_until_the_duration_ends(kubeconfig: Path, tmp_path: Path) -> None:
    port = free_port()
    run = subprocess.Popen(
        navigator(
            "local", "--kubeconfig", str(kubeconfig), "--contexts", "alpha,beta", "--interval", "2s",
            "--duration", "15", "--port", str(port), "--dir", str(tmp_path / "local"),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        clusters: list[dict[str, Any]] = []
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline and run.poll() is None:
            result = subprocess.run(
                navigator("query", "clusters", "--manager", f"127.0.0.1:{port}", "-o", "json"),
                capture_output=True, timeout=30, check=False,
            )
            clusters = orjson.loads(result.stdout) if result.returncode == 0 else []
            if len(clusters) == 2 and all(c["status"] == "HEALTHY" for c in clusters):
                break
            time.sleep(1)
        by_id = {c["cluster"]: c for c in clusters}
        assert set(by_id) == {"alpha", "beta"}
        assert by_id["alpha"]["counts"]["pods"] == 30 and by_id["beta"]["counts"]["pods"] == 20
        assert by_id["alpha"]["metadata"]["context"] == "alpha"
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    text = output.decode(errors="replace")
    assert run.returncode == 0, text
    assert "alpha HEALTHY" in text and "beta HEALTHY" in text
    assert not re.search(r"^\S+ gone ", text, re.MULTILINE), "a context not asked for was watched"
    assert "2/2 clusters reached HEALTHY" in text


def test_an_unknown_context_is_refused_naming_the_known_ones(kubeconfig: Path) -> None:
    result = subprocess.run(
        navigator("local", "--kubeconfig", str(kubeconfig), "--contexts", "alpha,prod"),
        capture_output=True, timeout=30, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "error: --contexts: no context named 'prod' (the kubeconfig has: alpha, beta, gone)"
    )
