"""A FULL sent as an open chunk set while it is collected (docs/protocol.md, "Open chunk sets").

Against the protocol-speaking double (the bytes the stream produces, parsed) and against a real
manager: numbering, ``count`` 0, ``last``, the header only on the last chunk, every object once;
a kind that starts again part way, a stream that breaks, a cancelled collection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.config.edge import EdgeConfig
from navigator.edge.acks import Outstanding, PendingAcks
from navigator.edge.app import Edge
from navigator.edge.collect import CollectResult, KindFailure
from navigator.edge.live import LiveFull
from navigator.edge.messages import Delta, FullSnapshot, Sequencer
from navigator.edge.outbox import Outbox
from navigator.edge.records import pack
from navigator.edge.stream import StreamClient
from navigator.kubesim import KubeSim
from navigator.resource import Resource
from navigator.testing.edge import edge_config, run_test_edge
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.proxy import TcpProxy
from navigator.testing.waiting import until
from navigator.v1 import sync_pb2

from .conftest import held, running, through
from .fake_manager import FakeManager, complete, is_open

PROTOBUF = ProtobufSerializer()
KINDS = ("services", "endpointslices", "pods")
HEADER = ("kinds", "cached_kinds", "errors", "counts", "deletions")

Key = tuple[str, str, str]


def objects(chunks: list[sync_pb2.ClusterState]) -> Counter[Key]:
    """How often each object is in the set (each must be once)."""
    return Counter((r.kind, r.namespace, r.name) for c in chunks for r in c.resources)


def listed(sim: KubeSim) -> Counter[Key]:
    return Counter(
        (kind, o["metadata"].get("namespace", ""), o["metadata"]["name"]) for kind in KINDS for o in sim.list(kind)
    )


def check_open_set(chunks: list[sync_pb2.ClusterState]) -> sync_pb2.ClusterState:
    """The protocol's shape of a complete open set; returns its last chunk."""
    assert complete(chunks)
    first = chunks[0].sequence
    for i, chunk in enumerate(chunks):
        assert (chunk.sequence, chunk.chunk.snapshot_sequence, chunk.chunk.index) == (first + i, first, i)
        assert chunk.chunk.count == 0 and chunk.type == sync_pb2.STATE_TYPE_FULL
        assert chunk.chunk.last == (i == len(chunks) - 1)
        assert chunk.timestamp == chunks[0].timestamp
        if i < len(chunks) - 1:  # resources only
            assert not any(len(getattr(chunk, name)) for name in HEADER) and not chunk.against_versions
    return chunks[-1]


def big_cluster(kubesim_factory: Any, latency: float = 0.05) -> KubeSim:
    """300 pods read 20 a page, each page a little slow: a collection long enough for chunks to leave during it."""
    sim: KubeSim = kubesim_factory(pods=300, services=20, namespaces=2, seed=1)
    sim.faults.latency("pods", latency, verbs=["list"])
    return sim


def small_chunks(sim: KubeSim, address: str, **overrides: Any) -> Any:
    """Chunks of at most 32 KiB, pages of 20 objects."""
    return edge_config(
        sim.kubeconfig_path,
        sim.context,
        address,
        "big",
        manager={"chunk_fraction": 0.5, "max_message_size": 64 * 1024},
        kubernetes={"page_size": 20},
        **overrides,
    )


async def test_a_full_leaves_as_an_open_set_while_it_is_collected(
    kubesim_factory: Any, fake_manager: FakeManager
) -> None:
    sim = big_cluster(kubesim_factory)
    fake_manager.open_chunk_sets = True
    async with Edge(small_chunks(sim, fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.open_sets == 1
    (conn,) = fake_manager.connections
    chunks = fake_manager.fulls()[0]
    assert len(chunks) > 3
    last = check_open_set(chunks)
    assert all(sync_pb2.EdgeMessage(state=c).ByteSize() <= 32 * 1024 for c in chunks)
    assert objects(chunks) == listed(sim)  # every object, once
    assert dict(last.counts) == {k: sim.count(k) for k in KINDS}
    assert sorted(last.kinds) == sorted(KINDS) and not last.errors and not last.cached_kinds
    assert not last.against_versions and not last.deletions
    # The listing of pods takes 15 pages x 50 ms: the first chunks were out long before the last.
    arrived = dict(zip((s.sequence for s in conn.states), conn.arrived, strict=True))
    assert arrived[last.sequence] - arrived[chunks[0].sequence] > 0.3


async def test_a_kind_starting_again_part_way_sends_the_full_again_as_a_closed_set(
    kubesim_factory: Any, fake_manager: FakeManager
) -> None:
    sim = big_cluster(kubesim_factory, latency=0.1)
    fake_manager.open_chunk_sets = True
    async with Edge(small_chunks(sim, fake_manager.address)) as edge:
        # Some pods went in an open chunk; then a page fails once: the listing of pods starts again.
        await fake_manager.wait_for(lambda m: any(r.kind == "pods" for s in m.states if is_open(s) for r in s.resources))
        sim.faults.set("pods", 500, times=1, verbs=["list"])
        await edge.wait_until(lambda e: e.stats.applied_full >= 1, timeout=30)
        assert edge.stats.open_sets == 0
    opened, closed, *_ = fake_manager.sets()
    assert is_open(opened[0]) and not complete(opened) and not any(c.chunk.last for c in opened)
    # The new set starts at index 0 (the manager discards the open one) right after the abandoned chunks.
    assert not is_open(closed[0]) and closed[0].chunk.index == 0 and complete(closed)
    assert closed[0].sequence == opened[-1].sequence + 1
    assert objects(closed) == listed(sim)
    assert not closed[0].errors and closed[0].counts["pods"] == sim.count("pods")
    assert all(c.chunk.count == len(closed) for c in closed)


async def test_a_stream_broken_mid_set_gets_the_full_again_from_the_start(
    kubesim_factory: Any, fake_manager: FakeManager
) -> None:
    sim = big_cluster(kubesim_factory, latency=0.1)
    fake_manager.open_chunk_sets = True
    async with Edge(small_chunks(sim, fake_manager.address)) as edge:
        await fake_manager.wait_for(lambda m: len(m.states) >= 2)
        await fake_manager.stop()
        await fake_manager.start()
        await edge.wait_until(lambda e: e.stats.applied_full >= 1, timeout=30)
        assert edge.stats.accepts == 2
    first, second = fake_manager.connections
    assert first.states and all(is_open(s) for s in first.states) and not complete(first.states)
    again = [s for s in second.states if s.type == sync_pb2.STATE_TYPE_FULL]
    assert again[0].chunk.index == 0 and again[0].sequence > first.states[-1].sequence
    (full, *_) = fake_manager.fulls()
    assert full[0] is again[0]  # the FULL being collected, sent again on the new stream (no second collection)
    assert objects(full) == listed(sim)


@pytest.mark.parametrize("closed_too", [False, True], ids=["closed-applied", "closed-refused"])
async def test_an_open_set_refused_goes_once_more_as_a_closed_set(
    kubesim_factory: Any, fake_manager: FakeManager, closed_too: bool
) -> None:
    """An open set that outlived the manager's chunk timeout is refused; the closed one is judged on its own."""
    sim = big_cluster(kubesim_factory)
    fake_manager.open_chunk_sets = True
    refuse = {True: sync_pb2.ACK_STATUS_INVALID, False: sync_pb2.ACK_STATUS_APPLIED}
    fake_manager.ack_status = lambda s: refuse[is_open(s) or (closed_too and s.type == sync_pb2.STATE_TYPE_FULL)]
    async with Edge(small_chunks(sim, fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full + e.stats.invalid >= 2, timeout=30)
        await asyncio.sleep(0.5)  # and no third time
        assert (edge.stats.invalid, edge.stats.applied_full) == ((2, 0) if closed_too else (1, 1))
    opened, closed = fake_manager.sets()
    assert complete(opened) and is_open(opened[0])
    assert complete(closed) and not is_open(closed[0]) and objects(closed) == listed(sim)


async def test_a_manager_without_open_sets_gets_closed_sets(kubesim_factory: Any, fake_manager: FakeManager) -> None:
    """The first FULL is queued when its collection starts (no manager answered yet): it waits and goes closed."""
    sim = big_cluster(kubesim_factory)
    async with Edge(small_chunks(sim, fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.open_sets == 0 and not edge.stream.may_take_open_sets()  # type: ignore[union-attr]
    chunks = fake_manager.fulls()[0]
    assert all(c.chunk.count == len(chunks) > 1 for c in chunks)
    assert all(c.kinds and c.counts for c in chunks)
    assert objects(chunks) == listed(sim)


async def test_an_open_set_against_the_managers_versions_names_deletions_in_its_last_chunk(
    kubesim_factory: Any, fake_manager: FakeManager
) -> None:
    sim = big_cluster(kubesim_factory)
    keys = held(sim)
    stale = next(k for k in keys if k.kind == "pods")
    stale.resource_version = "1"
    keys.append(sync_pb2.ResourceKey(kind="pods", namespace="default", name="gone", uid="u-gone", resource_version="7"))
    fake_manager.versions, fake_manager.open_chunk_sets = keys, True
    async with Edge(small_chunks(sim, fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.open_sets == 1 and edge.stats.fulls_against_versions == 1
        assert edge.stats.unchanged_left_out == len(keys) - 2
    chunks = fake_manager.fulls()[0]
    last = check_open_set(chunks)
    assert last.against_versions and [(d.kind, d.name, d.uid) for d in last.deletions] == [("pods", "gone", "u-gone")]
    assert list(objects(chunks)) == [("pods", stale.namespace, stale.name)]
    assert dict(last.counts) == {k: sim.count(k) for k in KINDS}


async def test_deletions_too_big_for_the_last_chunk_send_the_full_again_plain(
    kubesim_factory: Any, fake_manager: FakeManager
) -> None:
    sim = big_cluster(kubesim_factory)
    gone = [
        sync_pb2.ResourceKey(kind="pods", namespace="default", name=f"gone-{i}", uid=f"u-{i}", resource_version="7")
        for i in range(2000)
    ]  # about 80 KB of deletions: more than a 32 KiB chunk
    keys = held(sim)
    for key in keys:
        key.resource_version = "1"  # every object differs: the open set has chunks to send
    fake_manager.versions, fake_manager.open_chunk_sets = keys + gone, True
    async with Edge(small_chunks(sim, fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.open_sets == 0 and edge.stats.fulls_against_versions == 0
    opened, plain = fake_manager.sets()
    assert is_open(opened[0]) and not complete(opened)
    assert complete(plain) and not any(c.against_versions or c.deletions for c in plain)
    assert objects(plain) == listed(sim)


@pytest.mark.parametrize("open_sets", [False, True], ids=["closed", "open"])
async def test_a_manager_holding_nothing_gets_a_plain_full(
    kubesim: KubeSim, fake_manager: FakeManager, open_sets: bool
) -> None:
    """Versions with no keys: nothing to leave out, so the objects are not parsed and the FULL is plain."""
    fake_manager.versions, fake_manager.open_chunk_sets = [], open_sets
    kubesim.faults.latency("pods", 0.5, verbs=["list"])  # still collecting when the stream is accepted
    config = edge_config(kubesim.kubeconfig_path, kubesim.context, fake_manager.address, "sim")
    async with Edge(config) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.fulls_against_versions == 0 and edge.stats.open_sets == int(open_sets)
    assert fake_manager.connections[0].identify.want_versions
    chunks = fake_manager.fulls()[0]
    assert not any(c.against_versions or c.deletions for c in chunks)
    assert objects(chunks) == listed(kubesim)


# -- the stream on its own, fed by hand ------------------------------------------------------


def packed(n: int, kind: str = "pods") -> list[bytes]:
    return [
        pack(Resource(kind, "ns", f"{kind}-{i}", f"uid-{i}", str(i), {"app": "a"}, {"blob": "x" * 300}), PROTOBUF)
        for i in range(n)
    ]


def stream_client(address: str, outbox: Outbox) -> StreamClient:
    config = edge_config(
        None, None, address, "c1", manager={"chunk_fraction": 0.5, "max_message_size": 64 * 1024}
    )
    parts = Edge(config)  # its plugins: transport and serializers
    return StreamClient(
        config,
        parts.transport,
        parts.serializers,
        outbox,
        Sequencer(),
        kinds=["pods"],
        on_accept=lambda: None,
        on_resync=lambda: None,
    )


async def test_chunks_leave_as_pages_come_and_the_header_goes_last(fake_manager: FakeManager) -> None:
    fake_manager.open_chunk_sets = True
    outbox = Outbox(10)
    stream = stream_client(fake_manager.address, outbox)
    items = packed(600)
    live = LiveFull()
    snapshot = FullSnapshot({}, timestamp=1_700_000_000.5, live=live)
    await outbox.put(snapshot)
    stream.start()
    try:
        live.begin("pods", items, PROTOBUF)
        live.page("pods", 200)  # as a listing thread hands pages over
        await fake_manager.wait_for(lambda m: len(m.states) >= 1)
        sent_early = len(fake_manager.states)
        assert not any(s.chunk.last for s in fake_manager.states)
        live.page("pods", 600)
        result = CollectResult("pods", items, PROTOBUF, resource_version="9")
        snapshot.results = {"pods": result}
        live.finish(snapshot.results)
        await fake_manager.wait_for(lambda m: bool(m.fulls()))
        assert stream.stats.open_sets == 1
    finally:
        await stream.stop()
    chunks = fake_manager.fulls()[0]
    assert sent_early >= 1 and len(chunks) > sent_early
    last = check_open_set(chunks)
    assert (last.timestamp.seconds, last.timestamp.nanos) == (1_700_000_000, 500_000_000)
    assert objects(chunks) == Counter(("pods", "ns", f"pods-{i}") for i in range(600))
    assert dict(last.counts) == {"pods": 600} and list(last.kinds) == ["pods"]


async def test_a_cancelled_collection_does_not_leave_the_stream_hanging(fake_manager: FakeManager) -> None:
    fake_manager.open_chunk_sets = True
    outbox = Outbox(10)
    stream = stream_client(fake_manager.address, outbox)
    items = packed(400)
    live = LiveFull()
    await outbox.put(FullSnapshot({}, live=live))
    stream.start()
    try:
        live.begin("pods", items, PROTOBUF)
        live.page("pods", 300)
        await fake_manager.wait_for(lambda m: len(m.states) >= 1)
        live.cancel()  # the edge stops collecting (loop.cancel) part way
        await outbox.put(FullSnapshot({"pods": CollectResult("pods", items, PROTOBUF)}))  # a later, complete FULL
        await until(lambda: stream.stats.applied_full == 1, "the FULL applied")
    finally:
        await stream.stop()
    abandoned, full = fake_manager.sets()
    assert is_open(abandoned[0]) and not complete(abandoned)
    assert full[0].chunk.index == 0 and not is_open(full[0]) and complete(full)
    assert objects(full) == Counter(("pods", "ns", f"pods-{i}") for i in range(400))


async def test_a_failed_kind_spoils_the_set_even_when_nothing_started_again(fake_manager: FakeManager) -> None:
    """pods listed, services failed (its cached fallback is not what went): the FULL goes again, closed."""
    fake_manager.open_chunk_sets = True
    outbox = Outbox(10)
    stream = stream_client(fake_manager.address, outbox)
    pods, cached = packed(300), packed(5, "services")
    live = LiveFull()
    snapshot = FullSnapshot({}, live=live)
    await outbox.put(snapshot)
    stream.start()
    try:
        live.begin("pods", pods, PROTOBUF)
        live.page("pods", 300)
        await fake_manager.wait_for(lambda m: len(m.states) >= 1)
        failure = KindFailure("HTTP 500", 500, 3)
        snapshot.results = {
            "pods": CollectResult("pods", pods, PROTOBUF),
            "services": CollectResult("services", cached, PROTOBUF, error=failure, cached=True),
        }
        live.finish(snapshot.results)
        await fake_manager.wait_for(lambda m: bool(m.fulls()))
    finally:
        await stream.stop()
    assert live.spoiled.startswith("services failed")
    opened, closed = fake_manager.sets()
    assert is_open(opened[0]) and not complete(opened) and not is_open(closed[0]) and complete(closed)
    assert list(closed[0].cached_kinds) == ["services"] and closed[0].errors[0].cached
    assert objects(closed) == Counter(
        [("pods", "ns", f"pods-{i}") for i in range(300)] + [("services", "ns", f"services-{i}") for i in range(5)]
    )


async def test_a_listing_that_starts_again_spoils_the_set_only_once_it_handed_objects_over() -> None:
    live = LiveFull()
    first: list[bytes] = []
    live.begin("pods", first, PROTOBUF)
    live.begin("pods", [], PROTOBUF)  # failed before its first page: nothing went, nothing to take back
    await asyncio.sleep(0)
    assert not live.spoiled
    second = packed(3)
    live.begin("pods", second, PROTOBUF)
    live.page("pods", 3)
    await asyncio.sleep(0)
    assert [(p.kind, list(p)) for p in live.pages] == [("pods", second)]
    live.begin("pods", [], PROTOBUF)  # a retry, or a continue token that expired
    await asyncio.sleep(0)
    assert "started again after 3 objects" in live.spoiled


async def test_acks_are_awaited_while_the_set_grows() -> None:
    acks = PendingAcks()
    sent = Outstanding()
    outcome = asyncio.ensure_future(acks.outcome(sent, 1.0))
    sent.add(5)
    acks.received(sync_pb2.Ack(sequence=5, status=sync_pb2.ACK_STATUS_BUFFERED))
    await asyncio.sleep(0.01)
    assert sent.acked == 1 and sent.unacked == 0 and not outcome.done()
    sent.add(6)
    sent.add(7)
    acks.received(sync_pb2.Ack(sequence=6, status=sync_pb2.ACK_STATUS_BUFFERED))
    acks.received(sync_pb2.Ack(sequence=7, status=sync_pb2.ACK_STATUS_APPLIED))  # before the writer says "no more"
    await asyncio.sleep(0.01)
    assert not outcome.done()
    sent.end()
    final = await outcome
    assert final is not None and (final.sequence, final.status) == (7, sync_pb2.ACK_STATUS_APPLIED)


async def test_a_chunk_refused_part_way_is_the_outcome() -> None:
    acks = PendingAcks()
    sent = Outstanding()
    outcome = asyncio.ensure_future(acks.outcome(sent, 1.0))
    sent.add(1)
    sent.add(2)
    acks.received(sync_pb2.Ack(sequence=1, status=sync_pb2.ACK_STATUS_BUFFERED))
    acks.received(sync_pb2.Ack(sequence=2, status=sync_pb2.ACK_STATUS_RETRY, error="disk full"))
    await asyncio.sleep(0.01)
    assert sent.refused is not None and sent.refused.sequence == 2
    sent.end()  # the writer stops sending the set
    final = await outcome
    assert final is not None and final.status == sync_pb2.ACK_STATUS_RETRY


# -- a real manager ---------------------------------------------------------------------------


async def names_held(mgr: Any, kind: str) -> Counter[str]:
    return Counter(f"{r['namespace']}/{r['name']}" for r in await mgr.resources(kind=kind))


def names_listed(sim: KubeSim, kind: str) -> Counter[str]:
    return Counter(f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in sim.list(kind))


@contextlib.asynccontextmanager
async def synced_by_an_edge(sim: KubeSim, tmp_path: Path, **manager: Any) -> AsyncIterator[tuple[TestManager, Edge]]:
    """A real manager and an edge syncing ``sim`` to it in small pages and chunks (many of them per set)."""
    async with (
        run_test_manager(tmp_path, **manager) as mgr,
        run_test_edge(
            sim.kubeconfig_path,
            sim.context,
            mgr.address,
            "big",
            manager={"chunk_fraction": 0.5, "max_message_size": 64 * 1024},
            kubernetes={"page_size": 20},
        ) as edge,
    ):
        yield mgr, edge


async def test_a_real_manager_applies_an_open_set_completely(kubesim_factory: Any, tmp_path: Path) -> None:
    sim = big_cluster(kubesim_factory)
    async with synced_by_an_edge(sim, tmp_path) as (mgr, edge):
        await edge.wait_until(lambda e: e.stats.applied_full >= 1, timeout=30)
        assert edge.stats.open_sets == 1 and edge.stats.invalid == 0 and edge.stats.messages_sent > 3
        row = await mgr.wait_for_status("big", "HEALTHY")
        assert row["counts"] == {k: sim.count(k) for k in KINDS} and row["errors"] == []
        for kind in KINDS:
            assert await names_held(mgr, kind) == names_listed(sim, kind)


async def test_a_real_manager_ends_with_the_full_state_when_a_kind_fails_mid_set(
    kubesim_factory: Any, tmp_path: Path
) -> None:
    sim = big_cluster(kubesim_factory, latency=0.1)
    async with synced_by_an_edge(sim, tmp_path) as (mgr, edge):

        def pods_sent(e: Edge) -> bool:
            live = e.loop.live if e.loop is not None else None
            return live is not None and e.sequencer.last >= 2 and any(p.kind == "pods" for p in live.pages)

        await edge.wait_until(pods_sent, timeout=30)
        sim.faults.set("pods", 500, times=1, verbs=["list"])  # the listing of pods starts again
        await edge.wait_until(lambda e: e.stats.applied_full >= 1, timeout=30)
        assert edge.stats.open_sets == 0 and edge.stats.invalid == 0
        row = await mgr.wait_for_status("big", "HEALTHY")
        assert row["counts"] == {k: sim.count(k) for k in KINDS} and row["errors"] == []
        for kind in KINDS:
            assert await names_held(mgr, kind) == names_listed(sim, kind)


# -- the loop ---------------------------------------------------------------------------------


async def test_the_full_is_queued_when_its_collection_starts_and_let_go_of_when_the_api_stops_answering(
    kubesim: KubeSim, tmp_path: Path, make_config: Callable[..., EdgeConfig]
) -> None:
    """An open set must not silence the edge: while its lists hang, a DELTA still says why (the stream lets
    go of the open set), and the FULL is queued again, complete, when its collection ends."""
    host, port = kubesim.url.removeprefix("http://").split(":")
    with TcpProxy(host, int(port)) as proxy:
        config = make_config(
            "127.0.0.1:1",
            kubernetes={"kubeconfig": str(through(proxy, kubesim, tmp_path)), "request_timeout": 2, "probe_timeout": 0.5},
            sync={"interval": 0.4, "mode": "poll", "adaptive": {"enabled": False}},
        )
        async with running(config) as run:
            run.loop.open_sets = lambda: True
            first = await run.until(lambda i: isinstance(i, FullSnapshot))
            assert isinstance(first, FullSnapshot) and first.live is not None  # queued as its collection started
            await until(lambda: first.live is not None and first.live.finished, "the first FULL finished")
            assert first.results and not first.live.spoiled
            proxy.blackhole(True)
            queued = await run.until(lambda i: isinstance(i, FullSnapshot))  # the next poll's, whose lists hang
            assert isinstance(queued, FullSnapshot) and queued.live is not None and not queued.results
            down = await run.until(lambda i: isinstance(i, Delta) and bool(i.errors))
            assert isinstance(down, Delta) and sorted(e.kind for e in down.errors) == sorted(KINDS)
            assert queued.live.detached and not queued.collecting
            proxy.blackhole(False)
            again = await run.until(lambda i: isinstance(i, FullSnapshot))
            assert isinstance(again, FullSnapshot) and again.live is None and again.results  # complete, queued at the end


async def test_a_real_manager_takes_heartbeats_in_the_middle_of_an_open_set(kubesim_factory: Any, tmp_path: Path) -> None:
    """A page that takes a while leaves the open set quiet: the edge sends heartbeats meanwhile (the manager
    would end a stream silent for three periods), and the set goes on after them."""
    sim = big_cluster(kubesim_factory)
    async with synced_by_an_edge(sim, tmp_path, heartbeat=0.4) as (mgr, edge):

        def chunks_sent(e: Edge) -> bool:
            return e.loop is not None and e.loop.live is not None and e.sequencer.last >= 2

        await edge.wait_until(chunks_sent, timeout=30)
        sim.faults.latency("pods", 1.5, times=1, verbs=["list"])
        await edge.wait_until(lambda e: e.stats.applied_full >= 1, timeout=30)
        assert edge.stats.open_sets == 1 and edge.stats.heartbeats_sent >= 1 and edge.stats.invalid == 0
        row = await mgr.wait_for_status("big", "HEALTHY")
        assert row["counts"] == {k: sim.count(k) for k in KINDS}
        assert await names_held(mgr, "pods") == names_listed(sim, "pods")
