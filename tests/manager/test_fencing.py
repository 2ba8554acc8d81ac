"""Fencing (issue #14, item 2): a manager that lost its claim never writes again.

The defect: two managers on one PostgreSQL database; the one holding a cluster is
frozen with a state in flight, the standby edge takes the cluster over through the
other manager, the first resumes, and its state was committed anyway: stored
resourceVersions went backwards. Here the freeze is the frozen manager's storage
thread held by a gate (its state queued on it) and its lease run out in the database;
the real-process version with SIGSTOP is in tests/e2e/test_fencing.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from psycopg import sql

from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdges, delta_state, full_state, pod
from navigator.v1 import sync_pb2

from .conftest import TOKENS, StoreOptions


class Gate:
    """Holds a storage thread until opened (always opened at the end of a test)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wait(self) -> None:
        assert self.event.wait(30), "the gate was never opened"


@pytest.fixture
def gate() -> Iterator[Gate]:
    opened = Gate()
    yield opened
    opened.event.set()


async def hold_storage(manager: TestManager, gate: Gate) -> asyncio.Future[None]:
    """The manager's storage thread stops here until the gate opens: frozen, as far as storage goes."""
    held = asyncio.ensure_future(manager.manager.context.worker.call(gate.wait))
    await asyncio.sleep(0.05)
    return held


def stored_versions(manager: TestManager) -> dict[str, str]:
    return {v.name: v.resource_version for v in manager.manager.backend.versions("east")}


# -- two managers on one PostgreSQL schema ---------------------------------------------------------


@pytest.fixture
async def two_managers(tmp_path: Path, store_options: StoreOptions) -> AsyncIterator[tuple[TestManager, TestManager]]:
    options = {**store_options("postgres"), "lease_ttl": 30.0, "heartbeat_interval": 10.0}
    async with (
        run_test_manager(tmp_path / "a", tokens=TOKENS, grace_period=0.2, storage="postgres",
                         storage_options=options, manager_id="mgr-a") as a,
        run_test_manager(tmp_path / "b", tokens=TOKENS, grace_period=0.2, storage="postgres",
                         storage_options=options, manager_id="mgr-b") as b,
    ):  # fmt: skip
        yield a, b


def expire_lease(options: dict[str, object], cluster: str) -> None:
    """What a frozen manager's lease does after ``lease_ttl``: run out (the cluster counts as released)."""
    with psycopg.connect(str(options["dsn"]), autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.cluster_claims SET expires_at = clock_timestamp() WHERE cluster = %s").format(
                sql.Identifier(str(options["schema"]))
            ),
            [cluster],
        )


async def test_a_frozen_managers_state_in_flight_never_lands_after_a_takeover(
    two_managers: tuple[TestManager, TestManager], gate: Gate
) -> None:
    a, b = two_managers
    for mgr in (a, b):  # renewals would notice the lost claim and drop the queued state: not while frozen
        mgr.manager.context.keeper.interval = 3600
    edges_a, edges_b = RawEdges(a.address, TOKENS), RawEdges(b.address, TOKENS)
    try:
        first = await edges_a.claimed("east", "edge-1")
        ack = await first.send_state(full_state("east", "edge-1", 1, {"pods": [pod("web", resource_version="4000")]}))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        # Manager A freezes with the next state in flight.
        held = await hold_storage(a, gate)
        await first.send(sync_pb2.EdgeMessage(state=delta_state("east", "edge-1", 2, [pod("web", resource_version="4051")])))
        storage = a.config.storage.options
        expire_lease(dict(storage), "east")
        await asyncio.sleep(0.3)  # the grace period
        # The standby edge takes over through manager B and moves on.
        second = await edges_b.claimed("east", "edge-2")
        ack = await second.send_state(full_state("east", "edge-2", 1, {"pods": [pod("web", resource_version="4426")]}))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        # A resumes: its state is refused, its stream ends with a clear status, and no ack says otherwise.
        gate.event.set()
        await held
        assert await first.recv(5) is None
        code, details = await first.status()
        assert code is grpc.StatusCode.ALREADY_EXISTS
        assert "claim on cluster 'east' was lost" in details and "newer claim" in details
        assert stored_versions(b) == {"web": "4426"}
        row = await b.wait_for_status("east", "HEALTHY")
        assert row["edge_id"] == "edge-2"
        # B's edge carries on.
        ack = await second.send_state(delta_state("east", "edge-2", 2, [pod("web", resource_version="4430")]))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        assert stored_versions(a) == {"web": "4430"}
    finally:
        await edges_a.close()
        await edges_b.close()


# -- one manager on SQLite --------------------------------------------------------------------------


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[TestManager]:
    async with run_test_manager(tmp_path, tokens=TOKENS, grace_period=0.2) as mgr:
        yield mgr


async def test_a_session_whose_writes_are_fenced_ends_and_writes_nothing(manager: TestManager) -> None:
    """Storage refusing a session's write (a newer claim wrote the cluster) ends the stream at once,
    ``ALREADY_EXISTS``, with no RETRY ack to loop on; its other writes (last_seen) are not made either."""
    edges = RawEdges(manager.address, TOKENS)
    try:
        edge = await edges.claimed("east", "edge-1")
        ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("web", resource_version="10")]}))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        backend = manager.manager.backend
        record = await asyncio.to_thread(backend.get_cluster, "east")
        assert record is not None and record.epoch > 0
        newer = dataclasses.replace(record, edge_id="edge-elsewhere", epoch=record.epoch + 1, last_sequence=7)
        await asyncio.to_thread(backend.save_cluster, newer)  # another writer's newer claim
        await edge.send(sync_pb2.EdgeMessage(state=delta_state("east", "edge-1", 2, [pod("web", resource_version="11")])))
        assert await edge.recv(5) is None
        code, details = await edge.status()
        assert code is grpc.StatusCode.ALREADY_EXISTS and "newer claim" in details
        await asyncio.sleep(0.2)
        assert stored_versions(manager) == {"web": "10"}
        assert await asyncio.to_thread(backend.get_cluster, "east") == newer
    finally:
        await edges.close()


async def test_an_object_going_back_under_the_current_claim_is_invalid_and_the_stream_goes_on(
    manager: TestManager,
) -> None:
    """Found by fuzzing: the holder's own state moving a pod back to an older resourceVersion was taken
    for a stale writer and the stream ended (to reconnect and send the same again). It is the state that
    is wrong: INVALID naming the object, nothing of it stored, and the stream applies the next state."""
    edges = RawEdges(manager.address, TOKENS)
    try:
        edge = await edges.claimed("east", "edge-1")
        ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("web", resource_version="10")]}))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        back = delta_state("east", "edge-1", 2, [pod("web", resource_version="9"), pod("db", resource_version="3")])
        ack = await edge.send_state(back)
        assert ack.status == sync_pb2.ACK_STATUS_INVALID, ack
        assert "web" in ack.error and "10" in ack.error and "9" in ack.error
        assert stored_versions(manager) == {"web": "10"}
        ack = await edge.send_state(delta_state("east", "edge-1", 3, [pod("web", resource_version="11")]))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        assert stored_versions(manager) == {"web": "11"}
    finally:
        await edges.close()


async def test_every_claim_takes_a_newer_epoch_and_writes_with_it(manager: TestManager) -> None:
    edges = RawEdges(manager.address, TOKENS)
    backend = manager.manager.backend
    try:
        epochs = []
        for sequence in (1, 2):
            edge = await edges.claimed("east", "edge-1")  # a reconnect: a new claim
            ack = await edge.send_state(full_state("east", "edge-1", sequence, {"pods": [pod("web")]}))
            assert ack.status == sync_pb2.ACK_STATUS_APPLIED
            record = await asyncio.to_thread(backend.get_cluster, "east")
            assert record is not None
            epochs.append(record.epoch)
            await edge.close()
        assert 0 < epochs[0] < epochs[1]
        # After a restart the epochs go on from the stored one.
        await manager.restart()
        edge = await RawEdges(manager.address, TOKENS).claimed("east", "edge-2")
        ack = await edge.send_state(full_state("east", "edge-2", 1, {"pods": [pod("web")]}))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        record = await asyncio.to_thread(manager.manager.backend.get_cluster, "east")
        assert record is not None and record.epoch > epochs[1]
        await edge.close()
    finally:
        await edges.close()
