"""Fixtures for the simulator's own tests: small served clusters, the official client, kubectl."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from navigator.kubesim import KubeSim

KUBECTL = shutil.which("kubectl")


@pytest.fixture
def make_sim(kubesim_factory: Callable[..., KubeSim]) -> Callable[..., KubeSim]:
    """The fixture plugin authors get, so the simulator's own tests exercise it too."""
    return kubesim_factory


@pytest.fixture
def sim(make_sim: Callable[..., KubeSim]) -> KubeSim:
    return make_sim(pods=60, services=10, namespaces=3, seed=7)


@pytest.fixture
def core(sim: KubeSim) -> Iterator[client.CoreV1Api]:
    with sim.api_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def upstream_fixtures(k8s_fixtures: Path) -> Path:
    """The suite-wide upstream fixtures (tests/conftest.py), under the name these tests use."""
    return k8s_fixtures


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home),
                    "KUBECACHEDIR": str(home / "cache")}

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        res = subprocess.run([KUBECTL, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    def popen(self, *args: str) -> subprocess.Popen[str]:
        assert KUBECTL is not None
        return subprocess.Popen([KUBECTL, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


@pytest.fixture
def kubectl_for(tmp_path: Path) -> Callable[[KubeSim], Kubectl]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")

    def make(s: KubeSim) -> Kubectl:
        assert s.kubeconfig_path is not None
        home = tmp_path / f"home-{s.port}"
        home.mkdir(exist_ok=True)
        return Kubectl(s.kubeconfig_path, home)

    return make


@pytest.fixture
def kubectl_at(tmp_path: Path) -> Callable[[Path], Kubectl]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")

    def make(kubeconfig: Path) -> Kubectl:
        home = tmp_path / "home-cli"
        home.mkdir(exist_ok=True)
        return Kubectl(kubeconfig, home)

    return make
