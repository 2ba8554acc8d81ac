"""The short chaos run on PostgreSQL: a manager killed and frozen, the network cut, judged by the invariant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from navigator.testing.chaos import Invariant, World, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_faults_on_postgresql_leave_the_managers_copy_equal_to_the_cluster(
    tmp_path: Path, pg_options: dict[str, Any]
) -> None:
    invariant = Invariant()
    storage = {"plugin": "postgres", "options": pg_options}
    with World(tmp_path, storage=storage, pods=60, services=6) as world:
        results = [
            run_scenario(world, name, 1, invariant=invariant)
            for name in ("manager_kill9", "manager_frozen", "network_cut")
        ]
    failed = {r.name: r.failures for r in results if r.failures}
    assert not failed, failed
