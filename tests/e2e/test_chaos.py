"""The short chaos run: one round of every fault against real processes on SQLite, judged by the invariant.

``make chaos ROUNDS=50`` (benchmarks/chaos.py) runs the long one and prints the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from navigator.testing.chaos import SCENARIOS, Invariant, World, applicable, integrity, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: ``reconnect_storm`` needs many edges: it has its own test below.
LEFT_OUT = {"reconnect_storm"}
#: In the PostgreSQL plugin's chaos test: killed database connections, two managers on one database.
POSTGRES_ONLY = {"storage_kill", "manager_failover"}


def test_every_fault_leaves_the_managers_copy_equal_to_the_cluster(tmp_path: Path) -> None:
    invariant = Invariant()
    with World(tmp_path, pods=60, services=6, pace=0.3) as world:
        names = [name for name in applicable(world) if name not in LEFT_OUT]
        results = [run_scenario(world, name, 1, invariant=invariant) for name in names]
        assert world.sqlite_path is not None and integrity(world.sqlite_path) == []
    assert {r.name for r in results} == set(SCENARIOS) - LEFT_OUT - POSTGRES_ONLY
    failed = {r.name: r.failures for r in results if r.failures}
    assert not failed, failed
    assert all(r.held == r.rounds == 1 for r in results)


def test_ten_edges_reconnect_to_a_restarted_manager_each_to_its_own_cluster(tmp_path: Path) -> None:
    """The reconnect storm: every cluster's copy exact again, each held by its own edge alone."""
    with World(tmp_path, pods=20, services=2, edges=10, api_proxy=False, pace=0.3) as world:
        result = run_scenario(world, "reconnect_storm", 1)
    assert result.failures == []
    assert result.held == 1


def test_the_invariant_sees_lost_phantom_and_backwards_objects() -> None:
    """The judge itself: a copy that is not the cluster's is never called exact."""
    invariant = Invariant()
    cluster = {"pods": {("a", "p1"): ("u1", "10"), ("a", "p2"): ("u2", "11")}}
    assert invariant.judge(cluster, cluster).exact
    lost = invariant.judge(cluster, {"pods": {("a", "p1"): ("u1", "10")}})
    assert (lost.lost, lost.phantom) == (1, 0)
    phantom = invariant.judge(cluster, {"pods": {**cluster["pods"], ("a", "p3"): ("u3", "5")}})
    assert phantom.phantom == 1
    older = {"pods": {("a", "p1"): ("u1", "9"), ("a", "p2"): ("u2", "11")}}
    backwards = invariant.judge(older, older)  # equal copies, but u1 went from 10 back to 9
    assert backwards.backwards == 1 and not backwards.exact
    assert invariant.judge(older, older, "another cluster").exact  # each cluster's versions on their own
