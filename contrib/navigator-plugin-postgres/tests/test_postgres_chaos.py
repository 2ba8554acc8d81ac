"""The short chaos run on PostgreSQL: a manager killed and frozen, the network cut, the manager's database
connections killed under it (pg_terminate_backend), and one of two managers frozen or killed while the
other takes over, judged by the invariant."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from navigator.testing.chaos import Invariant, World, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def connection_killer(dsn: str) -> tuple[str, Callable[[], int]]:
    """A DSN whose connections carry a name of their own, and what ends them all (how many it ended)."""
    name = f"navigator-chaos-{secrets.token_hex(4)}"

    def kill() -> int:
        with psycopg.connect(dsn, autocommit=True) as admin:
            query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            return len(admin.execute(query, (name,)).fetchall())

    return make_conninfo(dsn, application_name=name), kill


def test_faults_on_postgresql_leave_the_managers_copy_equal_to_the_cluster(
    tmp_path: Path, pg_options: dict[str, Any]
) -> None:
    invariant = Invariant()
    dsn, kill = connection_killer(pg_options["dsn"])
    storage = {"plugin": "postgres", "options": {**pg_options, "dsn": dsn}}
    with World(tmp_path, storage=storage, pods=60, services=6, storage_killer=kill) as world:
        results = [
            run_scenario(world, name, 1, invariant=invariant)
            for name in ("manager_kill9", "manager_frozen", "network_cut")
        ]
        world.pace = 0.3
        results.append(run_scenario(world, "storage_kill", 2, invariant=invariant))
        assert kill() > 0  # the name finds the manager's connections
    failed = {r.name: r.failures for r in results if r.failures}
    assert not failed, failed


def test_one_of_two_managers_frozen_or_killed_the_other_takes_over(tmp_path: Path, pg_options: dict[str, Any]) -> None:
    """Failover through a load balancer: the copy exact again; a frozen manager resumed writes nothing."""
    storage = {"plugin": "postgres", "options": pg_options}
    with World(tmp_path, storage=storage, pods=40, services=4, managers=2, pace=0.3) as world:
        result = run_scenario(world, "manager_failover", 1)
    assert result.failures == []
    assert result.held == 1
