"""Shared fixtures for the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

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
