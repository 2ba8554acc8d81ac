"""Fixtures for acceptance tests that run real `navigator` processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from navigator.testing.processes import Fleet


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.stop_all()


@pytest.fixture
def kubectl_bin() -> str:
    """For tests that compare with what kubectl itself shows; they skip, saying so, without it."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("compares Navigator with kubectl, and no kubectl is on PATH (install kubectl to run it)")
    return path
