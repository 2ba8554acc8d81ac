"""Fencing across managers: a claim and an apply in flight on another manager, in both orders.

The apply checks its epoch last, holding the cluster's claim row until it commits:
a claim that lands before that check refuses the apply; an apply past it commits
first, and the claim waits for it (so the new holder reads what it wrote).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres import clusters
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.claims import PostgresClaims
from navigator_plugin_postgres.options import parse_options

from navigator.interfaces import Claim, ClusterRecord
from navigator.interfaces.storage import StorageFenced
from navigator.resource import StoredObject
from navigator.testing.storage_conformance import digest_of, make, record


class Manager:
    """One manager's storage and claims on the shared schema."""

    def __init__(self, options: dict[str, Any], manager_id: str) -> None:
        self.backend = PostgresBackend(parse_options(options))
        self.backend.migrate()
        self.claims: PostgresClaims = self.backend.create_claims(manager_id, 0.0)

    def write(self, epoch: int, rv: str, edge: str) -> None:
        pod = make("web", rv=rv)
        self.backend.apply(record(edge_id=edge, epoch=epoch), [StoredObject(pod, digest_of(pod))], [], None)

    def close(self) -> None:
        self.claims.close()
        self.backend.close()


@pytest.fixture
def two(pg_options: dict[str, Any]) -> Iterator[tuple[Manager, Manager]]:
    a, b = Manager(pg_options, "mgr-a"), Manager(pg_options, "mgr-b")
    yield a, b
    a.close()
    b.close()


def stored_rv(manager: Manager) -> str:
    return next(v.resource_version for v in manager.backend.versions("east"))


def in_thread(work: Callable[[], Claim]) -> tuple[threading.Thread, list[Claim]]:
    done: list[Claim] = []
    thread = threading.Thread(target=lambda: done.append(work()), daemon=True)
    thread.start()
    return thread, done


@pytest.fixture
def claimed(two: tuple[Manager, Manager]) -> int:
    """edge-1 holds east through manager A and wrote the pod at 4000; its lease has run out since."""
    a, _ = two
    first = a.claims.claim("east", "edge-1")
    assert first.accepted and first.epoch >= 1
    a.write(first.epoch, "4000", "edge-1")
    a.claims.release("east", "edge-1")  # as a frozen manager's lease runs out (grace period 0 here)
    return first.epoch


def test_a_claim_landing_while_an_apply_is_in_flight_refuses_it(
    two: tuple[Manager, Manager], claimed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two
    fence = clusters.fence
    taken: list[Claim] = []

    def takeover_midway(conn: psycopg.Connection[Any], rec: ClusterRecord) -> None:
        # A's objects are written, its transaction open: edge-2 claims through B meanwhile, unhindered.
        thread, done = in_thread(lambda: b.claims.claim("east", "edge-2"))
        thread.join(10)
        assert done and done[0].accepted, "the claim waited for an apply that had not reached its fence"
        taken.append(done[0])
        fence(conn, rec)

    monkeypatch.setattr(clusters, "fence", takeover_midway)
    with pytest.raises(StorageFenced, match="newer claim"):
        a.write(claimed, "4051", "edge-1")
    monkeypatch.setattr(clusters, "fence", fence)
    assert taken[0].epoch > claimed
    assert stored_rv(a) == "4000"
    b.write(taken[0].epoch, "4426", "edge-2")
    with pytest.raises(StorageFenced):
        a.write(claimed, "4500", "edge-1")
    assert stored_rv(b) == "4426"
    stored = b.backend.get_cluster("east")
    assert stored is not None and (stored.edge_id, stored.epoch) == ("edge-2", taken[0].epoch)


def test_an_apply_past_its_check_commits_before_the_next_claim(
    two: tuple[Manager, Manager], claimed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two
    fence = clusters.fence
    waiting: list[tuple[threading.Thread, list[Claim]]] = []

    def claim_after_the_check(conn: psycopg.Connection[Any], rec: ClusterRecord) -> None:
        fence(conn, rec)
        thread, done = in_thread(lambda: b.claims.claim("east", "edge-2"))
        thread.join(0.5)
        assert thread.is_alive() and not done, "the claim did not wait for the apply that passed its check"
        waiting.append((thread, done))

    monkeypatch.setattr(clusters, "fence", claim_after_the_check)
    a.write(claimed, "4051", "edge-1")  # commits
    monkeypatch.setattr(clusters, "fence", fence)
    thread, done = waiting[0]
    thread.join(10)
    assert done and done[0].accepted and done[0].epoch > claimed
    assert stored_rv(b) == "4051"  # written before the claim, so the new holder reads it
    with pytest.raises(StorageFenced):
        a.write(claimed, "4052", "edge-1")


def test_a_frozen_apply_does_not_hold_up_the_manager_that_took_over(
    pg_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Manager A stops between its writes and its commit (as under SIGSTOP), holding the
    # cluster's lock; once its lease has run out, B takes the cluster over and writes.
    options = {**pg_options, "lease_ttl": "1s", "heartbeat_interval": "0.3s"}
    a, b = Manager(options, "mgr-a"), Manager(options, "mgr-b")
    try:
        first = a.claims.claim("east", "edge-1")
        a.write(first.epoch, "4000", "edge-1")
        fence, frozen, resume = clusters.fence, threading.Event(), threading.Event()

        def freeze_once(conn: psycopg.Connection[Any], rec: ClusterRecord) -> None:
            if not frozen.is_set():
                frozen.set()
                resume.wait(300)  # until the test lets it go
            fence(conn, rec)

        monkeypatch.setattr(clusters, "fence", freeze_once)
        outcome: list[BaseException | None] = []

        def write_frozen() -> None:
            try:
                a.write(first.epoch, "4051", "edge-1")
                outcome.append(None)
            except BaseException as exc:  # handed to the test's thread
                outcome.append(exc)

        frozen_writer = threading.Thread(target=write_frozen, daemon=True)
        frozen_writer.start()
        try:
            assert frozen.wait(30)
            a.claims.release("east", "edge-1")  # as the frozen manager's lease runs out
            taken = b.claims.claim("east", "edge-2")
            assert taken.accepted and taken.epoch > first.epoch
            wrote = threading.Thread(target=b.write, args=(taken.epoch, "4426", "edge-2"), daemon=True)
            wrote.start()
            wrote.join(30)
            assert not wrote.is_alive(), "the frozen manager's open transaction held up the new holder's write"
            assert stored_rv(b) == "4426"
        finally:
            resume.set()
            frozen_writer.join(60)
        # A resumes: its transaction was ended; tried again, its write is refused by the fence.
        assert isinstance(outcome[0], StorageFenced), outcome
        assert stored_rv(b) == "4426"
    finally:
        a.close()
        b.close()
