"""Fuzzing the manager (issue #14, "Chaos"): a few hundred hostile and malformed messages, every kind
the manager accepts, against one real manager over gRPC with SQLite; ``make fuzz`` runs thousands.

The cases come from a fixed seed, so a failure here is the same failure on every machine; the
message shows the minimal example hypothesis shrank it to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from navigator.manager import edge_session
from navigator.testing.fuzz import (
    KNOWN_DEFECTS,
    MESSAGE_TYPES,
    FuzzRunner,
    PropertyFailed,
    Step,
    StreamCase,
    base_state,
    known_defect,
    run_message_type,
)
from navigator.v1 import sync_pb2

#: Cases per message type: 12 types, 300 cases in all.
CASES = 25
SEED = 14


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzRunner]:
    """One manager and one victim cluster for every message type: starting them is most of a case's cost."""
    with FuzzRunner(tmp_path_factory.mktemp("fuzz")) as started:
        yield started


@pytest.mark.parametrize("message_type", list(MESSAGE_TYPES))
def test_manager_survives_hostile_messages(runner: FuzzRunner, message_type: str) -> None:
    """Known defects (reported, each with a test below) are counted, so the rest of the type is still fuzzed."""
    result = run_message_type(runner, message_type, CASES, seed=SEED, tolerate_known=True)
    assert not result.failures, "\n\n".join(result.failures)
    assert result.cases >= CASES


#: Minimal reproductions of the known defects: each test fails (xfail) while its defect is there.
def _delta(resource_version: str) -> Step:
    state = base_state(sync_pb2.STATE_TYPE_DELTA)
    state.resources.add(kind="pods", namespace="default", name="web-1", uid="u1", resource_version=resource_version,
                        payload=b"{}")  # fmt: skip
    return Step(state)


REPRODUCTIONS = {
    "resource-version-back": [StreamCase("json", [_delta("845"), _delta("1")])],
    "reconnect-dropped-save": [StreamCase("json", [Step(base_state(sync_pb2.STATE_TYPE_DELTA))], reconnect=True)] * 100,
}


@pytest.mark.parametrize(
    "defect",
    [pytest.param(name, marks=pytest.mark.xfail(reason=why, raises=PropertyFailed, strict=True))
     for name, (_, why) in KNOWN_DEFECTS.items()],
)  # fmt: skip
def test_known_defect(runner: FuzzRunner, defect: str) -> None:
    """Passes once the defect is fixed: then remove it from ``KNOWN_DEFECTS`` (strict xfail says so)."""
    try:
        for case in REPRODUCTIONS[defect]:
            runner.run(case)
        runner.check_at_end()
    except PropertyFailed as exc:
        assert known_defect(str(exc)) == defect, str(exc)
        raise


def test_fuzzing_finds_a_planted_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The properties can fail: a manager whose check of a state header raises on a DELTA with two
    deletions (an unhandled exception that ends the stream) is caught and the example shrunk."""
    checked = edge_session.check_header

    def planted(state: sync_pb2.ClusterState, cluster_id: str, edge_id: str) -> None:
        if state.type == sync_pb2.STATE_TYPE_DELTA and len(state.deletions) >= 2:
            raise RuntimeError("planted defect")
        checked(state, cluster_id, edge_id)

    monkeypatch.setattr(edge_session, "check_header", planted)
    with FuzzRunner(tmp_path) as fuzzing:
        result = run_message_type(fuzzing, "delta", 200, seed=SEED)
    assert result.failures, "the planted crash went unnoticed"
    assert "planted defect" in result.failures[0] or "ended the fuzzer's stream" in result.failures[0], result.failures[0]
