"""pytest fixtures: ``kubesim`` (a small served cluster) and ``kubesim_factory`` (build your own).

Registered through the ``pytest11`` entry point, so any test suite with Navigator installed
has them; the simulator itself is imported only when a test asks for a fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from navigator.kubesim.sim import KubeSim


@pytest.fixture
def kubesim_factory(tmp_path: Path) -> Iterator[Callable[..., KubeSim]]:
    """Start any number of simulators; all are stopped at teardown."""
    from navigator.kubesim.sim import KubeSim

    started: list[KubeSim] = []

    def make(**kwargs: Any) -> KubeSim:
        kwargs.setdefault("kubeconfig_path", tmp_path / f"kubeconfig-{len(started)}")
        sim = KubeSim(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def kubesim(kubesim_factory: Callable[..., KubeSim]) -> KubeSim:
    """A served 3-namespace cluster with 40 pods and 8 services (seed 1)."""
    return kubesim_factory(pods=40, services=8, namespaces=3, seed=1)
