"""Shared fixtures for the whole suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from navigator.testing.processes import Fleet

ROOT = Path(__file__).resolve().parent.parent
#: Upstream Kubernetes objects; present in the development workspace, absent in users' clones.
K8S_FIXTURES = ROOT.parent / "shared" / "fixtures" / "k8s-api"


@pytest.fixture
def k8s_fixtures() -> Path:
    """The upstream Kubernetes API fixtures; the test skips, saying where it looked, when they are absent."""
    if not K8S_FIXTURES.is_dir():
        pytest.skip(
            f"needs the upstream Kubernetes API fixtures, which are not in this repository: no folder "
            f"{K8S_FIXTURES} (../shared/fixtures/k8s-api beside the clone; only the development workspace has it)"
        )
    return K8S_FIXTURES


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Real ``navigator`` processes (simulator, manager, edges), stopped at the end of the test."""
    started = Fleet(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def kubectl_bin() -> str:
    """For tests that use or compare with the real kubectl; they skip, saying so, without it."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("uses the real kubectl, and no kubectl is on PATH (install kubectl to run it)")
    return path
