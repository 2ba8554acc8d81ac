"""``navigator local`` against two simulated clusters reached through one kubeconfig with several contexts."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from navigator import processes
from navigator.kubesim import KubeSim
from navigator.processes import free_port, navigator_command

#: Seconds a wait may take before the test gives up: only a stuck run gets there.
CEILING = 120.0
pytestmark = pytest.mark.timeout(600)


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


def test_local_watches_the_chosen_contexts_until_stopped(kubeconfig: Path, tmp_path: Path) -> None:
    port = free_port()
    run = processes.start("local", [
        "local", "--kubeconfig", str(kubeconfig), "--contexts", "alpha,beta", "--interval", "2s",
        "--port", str(port), "--dir", str(tmp_path / "local"),
    ], tmp_path / "local.log")  # fmt: skip
    try:
        # Readiness is what the run itself prints: a status line per cluster once it is HEALTHY.
        for name in ("alpha", "beta"):
            run.wait_for(re.compile(rf"^\S+ {name} HEALTHY ", re.MULTILINE), timeout=CEILING)
        result = subprocess.run(
            navigator_command("query", "clusters", "--manager", f"127.0.0.1:{port}", "-o", "json"),
            capture_output=True, timeout=CEILING, check=True,
        )  # fmt: skip
        by_id = {c["cluster"]: c for c in orjson.loads(result.stdout)}
        assert set(by_id) == {"alpha", "beta"}
        assert by_id["alpha"]["counts"]["pods"] == 30 and by_id["beta"]["counts"]["pods"] == 20
        assert by_id["alpha"]["metadata"]["context"] == "alpha"
        code = run.stop(signal.SIGTERM, grace=CEILING)  # what Ctrl-C does, from outside
    finally:
        run.stop(signal.SIGKILL)
    text = run.output()
    assert code == 0, text
    assert not re.search(r"^\S+ gone ", text, re.MULTILINE), "a context not asked for was watched"
    assert "2/2 clusters reached HEALTHY" in text


def test_local_ends_by_itself_when_the_duration_is_over(kubeconfig: Path, tmp_path: Path) -> None:
    # "gone" never answers, so the verdict does not depend on how fast this machine is.
    run = processes.start("local", [
        "local", "--kubeconfig", str(kubeconfig), "--contexts", "gone", "--duration", "1s",
        "--port", str(free_port()), "--dir", str(tmp_path / "local"),
    ], tmp_path / "local.log")  # fmt: skip
    try:
        run.wait_until(lambda: not run.alive(), "the run to end by itself", timeout=CEILING)
    finally:
        run.stop(signal.SIGKILL)
    text = run.output()
    assert run.returncode == 1, text
    assert "ends by itself after 1s" in text
    assert "0/1 clusters reached HEALTHY; never: gone" in text


def test_an_unknown_context_is_refused_naming_the_known_ones(kubeconfig: Path) -> None:
    result = subprocess.run(
        navigator_command("local", "--kubeconfig", str(kubeconfig), "--contexts", "alpha,prod"),
        capture_output=True, timeout=CEILING, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "error: --contexts: no context named 'prod' (the kubeconfig has: alpha, beta, gone)"
    )
