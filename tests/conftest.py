"""Shared fixtures for the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Upstream Kubernetes objects; present in the development workspace, absent in users' clones.
K8S_FIXTURES = ROOT.parent / "shared" / "fixtures" / "k8s-api"


@pytest.fixture
def k8s_fixtures() -> Path:
    if not K8S_FIXTURES.is_dir():
        pytest.skip("upstream Kubernetes fixtures (../shared/fixtures/k8s-api) are not present")
    return K8S_FIXTURES
