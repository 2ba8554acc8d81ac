"""The stream client against a protocol-speaking gRPC server: claim, acks, reconnects, standby, chunks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from navigator_plugins.serializers.json import JsonSerializer

from navigator.config.edge import EdgeConfig
from navigator.edge.app import Edge
from navigator.edge.stream import StreamState
from navigator.kubesim import KubeSim, tls
from navigator.v1 import sync_pb2

from .conftest import held
from .fake_manager import FakeManager


async def test_identifies_then_sends_a_full_state_first(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.serializer = "json"
    config = make_config(
        fake_manager.address,
        edge_id="edge-1",
        cluster={"id": "sim", "metadata": {"region": "r1"}},
        manager={"token": "s3cret"},
    )
    async with Edge(config) as edge:
        await fake_manager.wait_for(lambda m: len(m.states) >= 2)
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
    (conn,) = fake_manager.connections
    ident = conn.identify
    assert (ident.protocol_version, ident.cluster_id, ident.edge_id) == (2, "sim", "edge-1")
    assert dict(ident.metadata) == {"environment": "test", "region": "r1"}
    assert list(ident.serializers) == ["json", "protobuf"]
    assert list(ident.kinds) == ["services", "endpointslices", "pods"]
    assert ident.sync_interval_seconds == 0.5 and ident.token == "s3cret"
    assert conn.metadata["authorization"] == "Bearer s3cret"

    full, *rest = conn.states
    assert full.type == sync_pb2.STATE_TYPE_FULL and not full.HasField("chunk")
    assert (full.cluster_id, full.edge_id) == ("sim", "edge-1")
    assert dict(full.counts) == {k: kubesim.count(k) for k in ("services", "endpointslices", "pods")}
    pod = next(r for r in full.resources if r.kind == "pods")
    assert (
        JsonSerializer().decode(pod.payload)["phase"]
        == kubesim.get("pods", pod.namespace, pod.name)["status"]["phase"]
    )
    assert all(s.type == sync_pb2.STATE_TYPE_DELTA for s in rest)
    sequences = [s.sequence for s in conn.states]
    assert sequences == sorted(set(sequences))


async def test_reconnects_after_the_manager_goes_away_and_resyncs(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    async with Edge(make_config(fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        await fake_manager.stop()
        await edge.wait_until(lambda e: e.stats.state != StreamState.CONNECTED)
        kubesim.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "while-away", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            }
        )
        await asyncio.sleep(0.3)  # a few failed reconnects with backoff
        await fake_manager.start()
        await fake_manager.wait_for(lambda m: len(m.connections) == 2 and len(m.connections[1].states) >= 1)
        await edge.wait_until(lambda e: e.stats.applied_full >= 2)
        assert edge.stats.accepts == 2
    first, second = fake_manager.connections
    resync = second.states[0]
    assert resync.type == sync_pb2.STATE_TYPE_FULL
    assert "while-away" in {r.name for r in resync.resources}
    assert resync.sequence > max(s.sequence for s in first.states)


def new_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def delta_names(states: list[sync_pb2.ClusterState]) -> set[str]:
    return {r.name for s in states if s.type == sync_pb2.STATE_TYPE_DELTA for r in s.resources}


async def test_a_manager_that_kept_its_state_gets_only_what_changed_meanwhile(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.remember = True
    async with Edge(make_config(fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1 and e.stats.applied_delta >= 1)
        await fake_manager.stop()
        await edge.wait_until(lambda e: e.stats.state != StreamState.CONNECTED)
        kubesim.create(new_pod("while-away"))
        await fake_manager.start()
        await fake_manager.wait_for(lambda m: "while-away" in delta_names(m.connections[-1].states))
        assert edge.stats.resumes == 1 and edge.stats.applied_full == 1
    _, *later = fake_manager.connections
    assert all(s.type == sync_pb2.STATE_TYPE_DELTA for c in later for s in c.states)  # no snapshot again
    sequences = [s.sequence for c in fake_manager.connections for s in c.states]
    assert sequences == sorted(set(sequences))


async def test_a_state_in_flight_when_the_stream_broke_goes_again_unless_it_was_applied(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.remember = True
    config = make_config(fake_manager.address, manager={"ack_timeout": 0.5})
    async with Edge(config) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        # Lost before it was applied: the manager's last_sequence is older, so it goes again.
        fake_manager.ack, fake_manager.apply = False, False
        kubesim.create(new_pod("unapplied"))
        await fake_manager.wait_for(lambda m: "unapplied" in delta_names(m.connections[-1].states))
        fake_manager.ack, fake_manager.apply = True, True
        await fake_manager.wait_for(lambda m: len(m.connections) >= 2 and "unapplied" in delta_names(m.connections[-1].states))
        assert edge.stats.resent >= 1 and edge.stats.applied_full == 1

        # Applied, but the ack was lost: the manager's last_sequence covers it, so it does not go again.
        await edge.wait_until(lambda e: e.stats.state == StreamState.CONNECTED)
        connections = len(fake_manager.connections)
        fake_manager.ack = False
        kubesim.create(new_pod("applied"))
        await fake_manager.wait_for(lambda m: "applied" in delta_names(m.connections[-1].states))
        fake_manager.ack = True
        await fake_manager.wait_for(lambda m: len(m.connections) > connections and len(m.connections[-1].states) >= 1)
        await edge.wait_until(lambda e: e.stats.applied_delta >= 1 and e.stats.state == StreamState.CONNECTED)
    sent = {(r.name, r.resource_version) for s in fake_manager.connections[connections - 1].states for r in s.resources}
    after = fake_manager.connections[connections:]
    again = {(r.name, r.resource_version) for c in after for s in c.states for r in s.resources}
    assert not sent & again  # (the simulator may change the pod again later: a new version is news)
    assert all(s.type == sync_pb2.STATE_TYPE_DELTA for c in after for s in c.states)


async def test_a_manager_that_lost_its_state_gets_a_full_resync(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.remember = True
    async with Edge(make_config(fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        await fake_manager.stop()
        fake_manager.applied_sequence = 0  # a new database
        await fake_manager.start()
        await edge.wait_until(lambda e: e.stats.applied_full >= 2)
    assert edge.stats.resumes == 0
    assert fake_manager.connections[-1].states[0].type == sync_pb2.STATE_TYPE_FULL


async def test_a_new_edge_sends_its_first_full_state_against_the_managers_versions(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    keys = held(kubesim)
    stale = next(k for k in keys if k.kind == "pods")
    stale.resource_version = "1"  # the manager holds an older version of this pod
    keys.append(sync_pb2.ResourceKey(kind="pods", namespace="default", name="gone", uid="u-gone", resource_version="7"))
    fake_manager.versions, fake_manager.versions_page = keys, 10  # several pages
    async with Edge(make_config(fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.fulls_against_versions == 1
    (conn,) = fake_manager.connections
    assert conn.identify.want_versions
    full = conn.states[0]
    assert full.type == sync_pb2.STATE_TYPE_FULL and full.against_versions
    assert [(r.kind, r.name) for r in full.resources] == [("pods", stale.name)]
    assert [(d.kind, d.name, d.uid) for d in full.deletions] == [("pods", "gone", "u-gone")]
    assert dict(full.counts) == {k: kubesim.count(k) for k in ("services", "endpointslices", "pods")}


async def test_without_versions_from_the_manager_the_full_state_is_plain(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    """A protocol 1 manager ignores want_versions: the edge sends every object."""
    async with Edge(make_config(fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
    full = fake_manager.connections[0].states[0]
    assert not full.against_versions and not full.deletions
    assert len(full.resources) == sum(kubesim.count(k) for k in ("services", "endpointslices", "pods"))


async def test_a_silent_manager_is_noticed_after_three_heartbeats_not_at_the_ack_timeout(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.heartbeat = 0.2
    config = make_config(fake_manager.address, manager={"ack_timeout": 600}, sync={"interval": 60})
    async with Edge(config) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        fake_manager.echo = False  # frozen: the stream stays open, nothing comes back
        await edge.wait_until(lambda e: "sent nothing" in e.stats.last_error, timeout=10)
        assert edge.stats.ack_timeouts == 0


async def test_answered_heartbeats_keep_an_idle_stream(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    """No flapping: an idle edge whose manager answers stays on its one stream."""
    fake_manager.heartbeat = 0.1
    async with Edge(make_config(fake_manager.address, sync={"interval": 60})) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        await fake_manager.wait_for(lambda m: m.heartbeats >= 15)  # 1.5 s, five silence limits
        assert len(fake_manager.connections) == 1 and edge.stats.connect_attempts == 1
    assert len(fake_manager.connections[0].identify.instance_key) == 16


async def test_full_resync_after_a_quick_reconnect_is_delivered_while_idle(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    # A long interval keeps the idle writer waiting for its next state for a long time; the
    # resync after a quick reconnect must reach the new stream, not that abandoned wait.
    config = make_config(
        fake_manager.address,
        sync={"interval": "30s", "adaptive": {"enabled": False, "min_interval": "1s", "max_interval": "1m"}},
        manager={"reconnect": {"initial": "0.05s", "max": "0.1s"}},
    )
    async with Edge(config) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        await asyncio.sleep(0.3)
        await fake_manager.stop()
        await edge.wait_until(lambda e: e.stats.state != StreamState.CONNECTED)
        await fake_manager.start()
        await edge.wait_until(lambda e: e.stats.applied_full >= 2, timeout=10)
    assert fake_manager.connections[1].states[0].type == sync_pb2.STATE_TYPE_FULL


async def test_rejected_edge_stands_by_and_takes_over(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    held = True

    def reject(identify: sync_pb2.Identify) -> sync_pb2.Reject | None:
        if not held:
            return None
        return sync_pb2.Reject(
            reason=sync_pb2.REJECT_REASON_ALREADY_HELD,
            message="cluster sim is held",
            holder_edge_id="other-edge",
        )

    fake_manager.reject = reject
    async with Edge(make_config(fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.rejects >= 3)
        assert edge.stats.state == StreamState.STANDBY
        assert "ALREADY_HELD" in edge.stats.last_reject and "other-edge" in edge.stats.last_reject
        assert fake_manager.states == []
        held = False  # the holder went away
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.connected
    accepted = [c for c in fake_manager.connections if c.accepted]
    assert len(accepted) == 1 and accepted[0].states[0].type == sync_pb2.STATE_TYPE_FULL


async def test_retry_after_from_a_reject_is_honoured(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.reject = lambda i: sync_pb2.Reject(
        reason=sync_pb2.REJECT_REASON_GRACE_PERIOD, message="grace period", retry_after_seconds=60
    )
    async with Edge(make_config(fake_manager.address)) as edge:
        await edge.wait_until(lambda e: e.stats.rejects == 1)
        await asyncio.sleep(1.0)  # the edge's own backoff (0.05s..0.5s) would have retried by now
        assert len(fake_manager.connections) == 1
        assert "GRACE_PERIOD" in edge.stats.last_reject


async def test_ack_timeout_reconnects_and_resends_a_full_state(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.ack = False
    async with Edge(make_config(fake_manager.address, manager={"ack_timeout": 0.5})) as edge:
        await edge.wait_until(lambda e: e.stats.ack_timeouts >= 1)
        fake_manager.ack = True
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
    assert len(fake_manager.connections) >= 2
    assert all(c.states[0].type == sync_pb2.STATE_TYPE_FULL for c in fake_manager.connections if c.states)


async def test_graceful_stop_ends_the_stream_at_once(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    keepalive = {"time": 60, "timeout": 20}
    edge = Edge(make_config(fake_manager.address, transport={"options": {"keepalive": keepalive}}))
    await edge.start()
    await edge.wait_until(lambda e: e.stats.applied_full >= 1)
    started = time.monotonic()
    await edge.stop()
    await fake_manager.wait_for(lambda m: m.connections[0].ended, timeout=5)
    assert time.monotonic() - started < 5  # not after a keep-alive timeout (60s + 20s)
    assert edge.stats.state == StreamState.STOPPED


async def test_big_full_state_arrives_as_a_chunk_set(kubesim_factory: Any, fake_manager: FakeManager) -> None:
    sim = kubesim_factory(pods=300, services=20, namespaces=2)
    fake_manager.max_message_bytes = 64 * 1024
    from navigator.testing.edge import edge_config

    config = edge_config(
        sim.kubeconfig_path, sim.context, fake_manager.address, "big", manager={"chunk_fraction": 0.5}
    )
    async with Edge(config) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
    (chunks,) = fake_manager.fulls()[:1]
    assert len(chunks) > 2
    first = chunks[0].sequence
    for i, chunk in enumerate(chunks):
        assert (chunk.sequence, chunk.chunk.snapshot_sequence, chunk.chunk.index) == (first + i, first, i)
        assert chunk.chunk.count == len(chunks)
        assert sync_pb2.EdgeMessage(state=chunk).ByteSize() <= 32 * 1024
    names = [r.name for c in chunks for r in c.resources if r.kind == "pods"]
    assert len(names) == len(set(names)) == sim.count("pods") == chunks[0].counts["pods"]


async def test_a_retry_ack_sends_the_same_state_again_without_listing_the_api_again(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    """RETRY means the manager's storage failed: the edge's own copy goes again, after a backoff."""
    retried: list[sync_pb2.ClusterState] = []

    def status(state: sync_pb2.ClusterState) -> int:
        """RETRY for the first FULL, then for the first delta carrying something."""
        full = state.type == sync_pb2.STATE_TYPE_FULL
        if (full and not retried) or (len(retried) == 1 and not full and state.resources):
            retried.append(state)
            return sync_pb2.ACK_STATUS_RETRY
        return sync_pb2.ACK_STATUS_APPLIED

    fake_manager.ack_status = status
    config = make_config(fake_manager.address, manager={"reconnect": {"initial": "0.05s", "max": "0.1s"}})
    async with Edge(config) as edge:
        await fake_manager.wait_for(lambda m: len(retried) == 1)
        kubesim.faults.set("pods", 500, verbs=["list"])  # a new list would now report pods failed
        await edge.wait_until(lambda e: e.stats.retry == 1 and e.stats.applied_full == 1)
        kubesim.create(new_pod("after-retry"))
        await edge.wait_until(lambda e: e.stats.retry == 2 and e.stats.applied_delta >= 1)
        await fake_manager.wait_for(lambda m: any("after-retry" in delta_names([s]) for s in m.deltas()[-3:]))
        assert edge.stats.applied_full == 1
    full, delta = retried
    fulls = [chunks[0] for chunks in fake_manager.fulls()]
    assert len(fulls) == 2 and not fulls[1].errors  # the same copy again, not a new (failing) list
    assert {r.name for r in fulls[1].resources} == {r.name for r in full.resources}
    again = [s for s in fake_manager.deltas() if s.sequence > delta.sequence and s.resources]
    assert [r.name for r in again[0].resources] == [r.name for r in delta.resources]


async def test_a_state_acked_retry_survives_the_stream_ending_during_the_backoff(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    """The manager's disk was full, then it restarted before the edge sent the state again: the edge
    resumes with that state, from its own copy, instead of losing it until the next full resync."""
    retried: list[sync_pb2.ClusterState] = []

    def status(state: sync_pb2.ClusterState) -> int:
        if not retried and state.type == sync_pb2.STATE_TYPE_DELTA and state.resources:
            retried.append(state)
            return sync_pb2.ACK_STATUS_RETRY
        return sync_pb2.ACK_STATUS_APPLIED

    fake_manager.ack_status = status
    fake_manager.remember = True  # a manager that kept its database: the edge may resume
    config = make_config(
        fake_manager.address,
        manager={"reconnect": {"initial": "1s", "max": "1s"}},
        sync={"full_resync_interval": 3600},
    )
    async with Edge(config) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full == 1)
        kubesim.create(new_pod("stored-on-a-full-disk"))
        await edge.wait_until(lambda e: e.stats.retry == 1)
        await fake_manager.stop()  # during the retry backoff
        await fake_manager.start()
        await edge.wait_until(lambda e: e.stats.accepts >= 2 and e.stats.resumes >= 1, timeout=30)
        await fake_manager.wait_for(
            lambda m: any("stored-on-a-full-disk" in delta_names(c.states) for c in m.connections[1:]), timeout=30
        )
        assert edge.stats.applied_full == 1  # resumed, not resynchronised


async def test_heartbeats_while_a_slow_collection_runs(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    config = make_config(
        fake_manager.address, sync={"mode": "poll", "interval": 1.0, "adaptive": {"enabled": False}}
    )
    async with Edge(config) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        kubesim.faults.latency("pods", 4.0, times=1)  # the next collection takes longer than an interval
        await edge.wait_until(lambda e: e.stats.heartbeats_sent >= 1, timeout=10)


async def test_tls_to_the_manager_with_a_private_ca(
    kubesim: KubeSim, make_config: Callable[..., EdgeConfig], tmp_path: Path
) -> None:
    material = tls.generate()
    (tmp_path / "ca.pem").write_bytes(material.ca_pem)
    manager = FakeManager()
    await manager.start(tls=material)
    try:
        trusted = make_config(
            manager.address,
            manager={"tls": {"enabled": True, "ca_file": str(tmp_path / "ca.pem")}},
            transport={"options": {"compression": "gzip"}},
        )
        async with Edge(trusted) as edge:
            await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        untrusted = make_config(manager.address, manager={"tls": {"enabled": True}, "connect_timeout": 0.5})
        async with Edge(untrusted) as edge:
            await edge.wait_until(lambda e: e.stats.connect_attempts >= 2)
            assert edge.stats.accepts == 0 and "cannot reach the manager" in edge.stats.last_error
    finally:
        await manager.stop()
