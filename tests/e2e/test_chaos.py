"""The short chaos run: one round of every fault against real processes on SQLite, judged by the invariant.

``make chaos ROUNDS=50`` (benchmarks/chaos.py) runs the long one and prints the table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from navigator.testing.chaos import SCENARIOS, Invariant, World, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_every_fault_leaves_the_managers_copy_equal_to_the_cluster(tmp_path: Path) -> None:
    invariant = Invariant()
    with World(tmp_path, pods=60, services=6) as world:
        results = [run_scenario(world, name, 1, invariant=invariant) for name in SCENARIOS]
    failed = {r.name: r.failures for r in results if r.failures}
    assert not failed, failed
    assert all(r.held == r.rounds == 1 for r in results)


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
