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
    MESSAGE_TYPES,
    FuzzRunner,
    QueryCase,
    RawCase,
    Step,
    StreamCase,
    base_state,
    run_message_type,
)
from navigator.v1 import query_pb2, sync_pb2

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
    """Defects awaiting their fix (``KNOWN_DEFECTS``) are counted, so the rest of the type is still fuzzed."""
    result = run_message_type(runner, message_type, CASES, seed=SEED, tolerate_known=True)
    assert not result.failures, "\n\n".join(result.failures)
    assert result.cases >= CASES


def _delta(resource_version: str) -> Step:
    state = base_state(sync_pb2.STATE_TYPE_DELTA)
    state.resources.add(kind="pods", namespace="default", name="web-1", uid="u1", resource_version=resource_version,
                        payload=b"{}")  # fmt: skip
    return Step(state)


def _full(payload: bytes) -> Step:
    state = base_state(sync_pb2.STATE_TYPE_FULL)
    state.kinds.append("pods")
    state.counts["pods"] = 1
    state.resources.add(kind="pods", namespace="default", name="big", uid="u2", resource_version="1", payload=payload)
    return Step(state)


#: The minimal cases of the defects fuzzing found, each fixed since: they stay fixed.
FOUND = {
    # Stored, it broke ListResources (data as Structs) for every cluster; its next version was RETRY forever.
    "a payload number beyond a double": [StreamCase("json", [_full(b'{"a":1e999}')])],
    # UNKNOWN and a logged traceback instead of INVALID_ARGUMENT.
    "bytes that do not parse": [RawCase("/navigator.v1.Sync/Connect", b"\x00"), RawCase("/navigator.v1.Query/ListClusters", b"\x00")],
    # OverflowError from SQLite: UNKNOWN and a logged traceback.
    "a query limit of 2^63": [QueryCase("ListChanges", query_pb2.ListChangesRequest(limit=2**63))],
    # Taken for a stale writer: the connected edge's stream ended, no ack, every resend the same.
    "a resourceVersion going back": [StreamCase("json", [_delta("845"), _delta("1")])],
    # The old session's dropped save logged 'Task exception was never retrieved'.
    "a reconnect at once after a broken stream": [
        StreamCase("json", [Step(base_state(sync_pb2.STATE_TYPE_DELTA))], reconnect=True)
    ] * 100,
}


@pytest.mark.parametrize("defect", list(FOUND))
def test_defects_found_by_fuzzing_stay_fixed(runner: FuzzRunner, defect: str) -> None:
    for case in FOUND[defect]:
        runner.run(case)
    runner.check_at_end()


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
