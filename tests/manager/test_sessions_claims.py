"""Handshakes at scale: an Accept never queues behind other clusters' applies, claims renew in one pass.

The storage thread is one FIFO thread; these tests hold it (or one apply on it)
with a gate to show what waits for it and what does not.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from navigator.interfaces import Claim, Holding, StorageError
from navigator.manager.claims import ClaimKeeper, InMemoryClaims
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdges, full_state, pod
from navigator.testing.waiting import until
from navigator.v1 import sync_pb2

from .conftest import TOKENS, StoreOptions


class Gate:
    """A threading.Event the storage thread waits on; always opened at the end of a test."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wait(self) -> None:
        assert self.event.wait(30), "the gate was never opened"

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    opened = Gate()
    yield opened
    opened.open()


async def held_storage_thread(manager: TestManager, gate: Gate) -> asyncio.Future[None]:
    """Occupy the storage thread until ``gate`` opens (as a big apply of another cluster would)."""
    busy = asyncio.ensure_future(manager.manager.context.worker.call(gate.wait))
    await asyncio.sleep(0.05)
    return busy


async def test_a_handshake_does_not_wait_behind_a_long_apply(
    edges: RawEdges, manager: TestManager, gate: Gate
) -> None:
    busy = await held_storage_thread(manager, gate)
    # Accepted while the storage thread is busy ...
    edge = await asyncio.wait_for(edges.claimed("east", "edge-1"), 5)
    await edge.send(sync_pb2.EdgeMessage(state=full_state("east", "edge-1", 1, {"pods": [pod("a")]})))
    # ... but its state is applied only after what was there before it (and after the claim's own save).
    acked = asyncio.ensure_future(edge.recv())
    await asyncio.sleep(0.3)
    assert not acked.done()
    gate.open()
    await busy
    answer = await acked
    assert answer is not None and answer.ack.status == sync_pb2.ACK_STATUS_APPLIED
    row = await manager.wait_for_status("east", "HEALTHY")
    assert row["edge_id"] == "edge-1" and row["counts"] == {"pods": 1}


async def test_many_edges_are_accepted_while_the_storage_thread_is_busy(
    edges: RawEdges, manager: TestManager, gate: Gate
) -> None:
    busy = await held_storage_thread(manager, gate)
    answers = await asyncio.wait_for(
        asyncio.gather(*(edges.connect().identify(f"c-{n}", f"edge-{n}") for n in range(50))), 10
    )
    assert all(a is not None and a.WhichOneof("body") == "accept" for a in answers)
    gate.open()
    await busy
    await manager.wait_for(lambda rows: len(rows) == 50 and all(r["status"] == "INITIALIZING" for r in rows))


@pytest.fixture
def manager_options() -> dict[str, Any]:
    return {"tokens": None}  # the many-edges test uses clusters without tokens


async def test_a_reconnect_waits_for_the_running_apply_of_its_cluster(
    edges: RawEdges, manager: TestManager, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await edges.claimed("east", "edge-1")
    backend = manager.storage
    applying = threading.Event()
    original = backend.apply

    def slow_apply(*args: Any, **kwargs: Any) -> None:
        applying.set()
        gate.wait()
        original(*args, **kwargs)

    monkeypatch.setattr(backend, "apply", slow_apply)
    await first.send(sync_pb2.EdgeMessage(state=full_state("east", "edge-1", 5, {"pods": [pod("a")]})))
    assert await asyncio.to_thread(applying.wait, 5)
    # The same edge on a new stream: its Accept must tell the sequence of the apply still running.
    second = edges.connect()
    identify = asyncio.ensure_future(second.identify("east", "edge-1"))
    await asyncio.sleep(0.3)
    assert not identify.done()
    gate.open()
    answer = await identify
    assert answer is not None and answer.accept.last_sequence == 5
    code, details = await first.status()
    assert code is grpc.StatusCode.ALREADY_EXISTS and "newer stream" in details
    ack = await second.send_state(full_state("east", "edge-1", 6, {"pods": [pod("a"), pod("b")]}))
    assert (ack.status, ack.added, ack.modified) == (sync_pb2.ACK_STATUS_APPLIED, 1, 0)


async def test_a_reconnect_drops_what_the_old_stream_still_had_queued(
    edges: RawEdges, manager: TestManager, gate: Gate
) -> None:
    first = await edges.claimed("east", "edge-1")
    busy = await held_storage_thread(manager, gate)
    await first.send(sync_pb2.EdgeMessage(state=full_state("east", "edge-1", 5, {"pods": [pod("a")]})))
    await asyncio.sleep(0.1)
    # The old stream's state is still queued: the new stream is accepted at once, and that state never lands.
    second = edges.connect()
    answer = await asyncio.wait_for(second.identify("east", "edge-1"), 5)
    assert answer is not None and answer.accept.last_sequence == 0
    gate.open()
    await busy
    ack = await second.send_state(full_state("east", "edge-1", 6, {"pods": [pod("b")]}))
    assert (ack.status, ack.added) == (sync_pb2.ACK_STATUS_APPLIED, 1)
    assert [p["name"] for p in await manager.resources(kind="pods", cluster="east")] == ["b"]
    assert [c["name"] for c in await manager.changes(cluster="east")] == ["b"]


async def test_no_apply_runs_when_the_claim_did_not_land(
    edges: RawEdges, manager: TestManager, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = await held_storage_thread(manager, gate)
    edge = await asyncio.wait_for(edges.claimed("east", "edge-1"), 5)
    await edge.send(sync_pb2.EdgeMessage(state=full_state("east", "edge-1", 1, {"pods": [pod("a")]})))
    await asyncio.sleep(0.1)

    def broken(record: Any) -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(manager.storage, "save_cluster", broken)
    gate.open()
    await busy
    # The state is refused (a RETRY ack, if it is answered before the stream ends), never applied.
    while (answer := await edge.recv()) is not None:
        assert answer.ack.status == sync_pb2.ACK_STATUS_RETRY and "disk full" in answer.ack.error
    code, details = await edge.status()
    assert code is grpc.StatusCode.UNAVAILABLE and "disk full" in details
    assert await manager.resources(kind="pods", cluster="east") == []


async def test_a_lost_claim_ends_the_stream_at_the_next_renewal(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1")
    other = await edges.claimed("west", "edge-2")
    manager.manager.claims.release("east", "edge-1")  # as if another manager had taken it
    await manager.manager.context.keeper.renew_once()
    code, details = await edge.status()
    assert code is grpc.StatusCode.ALREADY_EXISTS and "was lost" in details
    # The other session is untouched.
    ack = await other.send_state(full_state("west", "edge-2", 1, {"pods": [pod("a")]}))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED


# -- the keeper over a claims that answers over the network -------------------------------------


class RemoteClaims:
    """In-memory rules behind a ``ClusterClaims`` that is not ``InMemoryClaims``: the keeper
    must call it off the event loop, as it would PostgreSQL. Records the threads it ran on."""

    def __init__(self, delay: float = 0.0) -> None:
        self.inner = InMemoryClaims("mgr-1", 30.0)
        self.delay = delay
        self.threads: set[str] = set()
        self.renewed: list[tuple[str, str]] = []

    def _note(self) -> None:
        self.threads.add(threading.current_thread().name)
        if self.delay:
            threading.Event().wait(self.delay)

    def claim(self, cluster: str, edge_id: str) -> Claim:
        self._note()
        return self.inner.claim(cluster, edge_id)

    def release(self, cluster: str, edge_id: str) -> None:
        self._note()
        self.inner.release(cluster, edge_id)

    def renew(self, cluster: str, edge_id: str) -> bool:
        self._note()
        self.renewed.append((cluster, edge_id))
        return self.inner.renew(cluster, edge_id)

    def holdings(self) -> Mapping[str, Holding]:
        return self.inner.holdings()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
async def keeper() -> AsyncIterator[Callable[..., ClaimKeeper]]:
    made: list[ClaimKeeper] = []

    def make(claims: Any, interval: float = 60.0) -> ClaimKeeper:
        made.append(ClaimKeeper(claims, interval))
        return made[-1]

    yield make
    for k in made:
        await k.close()


async def test_a_remote_claims_is_called_off_the_loop_and_releases_land_before_later_claims(
    keeper: Callable[..., ClaimKeeper],
) -> None:
    claims = RemoteClaims()
    keep = keeper(claims)
    assert (await keep.claim("east", "edge-1")).accepted
    keep.release("east", "edge-1")  # not waited for ...
    refused = await keep.claim("east", "edge-2")  # ... yet this claim sees it: a grace period, not ALREADY_HELD
    assert refused.outcome.name == "GRACE_PERIOD"
    assert claims.threads == {"navigator-claims_0"}


async def test_a_cancelled_claim_is_released_when_it_lands(keeper: Callable[..., ClaimKeeper]) -> None:
    claims = RemoteClaims(delay=0.2)
    keep = keeper(claims)
    claiming = asyncio.ensure_future(keep.claim("east", "edge-1"))
    await asyncio.sleep(0.05)
    claiming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claiming
    # The claim lands 0.2 s after it was asked, and is released then.
    await until(lambda: (held := claims.holdings().get("east")) is not None and not held.connected,
                "the cancelled claim released")  # fmt: skip


async def test_one_pass_renews_every_claim_and_tells_only_the_current_holder(
    keeper: Callable[..., ClaimKeeper],
) -> None:
    claims = RemoteClaims()
    keep = keeper(claims)
    lost: list[str] = []
    for n in range(5):
        await keep.claim(f"c-{n}", f"edge-{n}")
        keep.watch(f"session-{n}", f"c-{n}", f"edge-{n}", lambda n=n: lost.append(f"session-{n}"))  # type: ignore[misc]
    claims.inner.release("c-1", "edge-1")
    keep.unwatch("session-4")
    await keep.renew_once()
    assert sorted(claims.renewed) == [(f"c-{n}", f"edge-{n}") for n in range(4)]
    assert lost == ["session-1"]
    await keep.renew_once()  # a lost registration is dropped: told once
    assert lost == ["session-1"]


async def test_in_memory_claims_renew_on_the_loop_in_one_call(keeper: Callable[..., ClaimKeeper]) -> None:
    calls: list[Collection[tuple[str, str]]] = []

    class Counting(InMemoryClaims):
        def renew_many(self, held: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
            calls.append(held)
            return super().renew_many(held)

    claims = Counting("mgr-1", 30.0)
    keep = keeper(claims)
    assert keep.in_memory
    for n in range(100):
        await keep.claim(f"c-{n}", "edge")
        keep.watch(n, f"c-{n}", "edge", lambda: None)
    await keep.renew_once()
    assert len(calls) == 1 and len(calls[0]) == 100


async def test_the_renewal_pass_runs_on_its_own(keeper: Callable[..., ClaimKeeper]) -> None:
    claims = RemoteClaims()
    keep = keeper(claims, interval=0.05)
    await keep.claim("east", "edge-1")
    lost = asyncio.Event()
    keep.watch("s", "east", "edge-1", lost.set)
    await until(lambda: claims.renewed, "a renewal pass")  # every 0.05 s, as the machine allows
    assert not lost.is_set()
    claims.inner.release("east", "edge-1")
    await asyncio.wait_for(lost.wait(), 2)


# -- a manager on PostgreSQL: shared claims on the keeper's thread -------------------------------


@pytest.fixture
async def pg_manager(tmp_path: Path, store_options: StoreOptions) -> AsyncIterator[TestManager]:
    options = {**store_options("postgres"), "lease_ttl": 2.0, "heartbeat_interval": 0.5}
    async with run_test_manager(
        tmp_path, tokens=TOKENS, grace_period=0.5, storage="postgres", storage_options=options
    ) as mgr:
        yield mgr


async def test_a_manager_on_postgres_claims_renews_and_releases_off_the_loop(pg_manager: TestManager) -> None:
    edges = RawEdges(pg_manager.address, TOKENS)
    try:
        keep = pg_manager.manager.context.keeper
        assert not keep.in_memory
        edge = await edges.claimed("east", "edge-1")
        refused = await edges.connect(TOKENS["east"]).identify("east", "edge-2")
        assert refused is not None and refused.reject.reason == sync_pb2.REJECT_REASON_ALREADY_HELD
        ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a")]}))
        assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        await keep.renew_once()
        row = await pg_manager.wait_for_status("east", "HEALTHY")
        assert row["connected"] and row["edge_id"] == "edge-1"
        await edge.close()
        row = await pg_manager.wait_for_status("east", "DISCONNECTED")
        assert not pg_manager.manager.claims.holdings()["east"].connected
    finally:
        await edges.close()
