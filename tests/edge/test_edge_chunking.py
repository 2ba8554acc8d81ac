"""Splitting FULL states into chunk sets and big DELTAs into several, under the size target."""

from __future__ import annotations

from collections import Counter

from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.edge.chunking import FullPlan, delta_messages, message_limit, plan_full, size_target
from navigator.edge.collect import CollectResult, KindFailure
from navigator.edge.messages import Delta, FullSnapshot, Sequencer, encode_delta, encode_full
from navigator.edge.records import pack
from navigator.resource import Resource
from navigator.v1 import sync_pb2

SERIALIZER = ProtobufSerializer()


def make(kind: str, n: int, size: int = 100) -> list[Resource]:
    return [
        Resource(kind, f"ns{i % 3}", f"{kind}-{i}", f"uid-{kind}-{i}", str(1000 + i), {"app": f"a{i % 7}"},
                 {"blob": "x" * size, "i": i})
        for i in range(n)
    ]  # fmt: skip


def result(kind: str, resources: list[Resource], **kw: object) -> CollectResult:
    items = [pack(r, SERIALIZER) for r in resources]
    return CollectResult(kind, items, SERIALIZER, **kw)  # type: ignore[arg-type]


def states(plan: FullPlan, sequencer: Sequencer | None = None) -> list[sync_pb2.ClusterState]:
    """Every message of the plan, numbered as the stream client numbers them."""
    sequencer = sequencer or Sequencer()
    built = []
    first = 0
    for index in range(plan.count):
        sequence = sequencer.next()
        first = first or sequence
        built.append(sync_pb2.EdgeMessage.FromString(plan.build(index, sequence, first)).state)
    return built


def snapshot() -> FullSnapshot:
    return FullSnapshot(
        {
            "services": result("services", make("services", 40), resource_version="5"),
            "pods": result("pods", make("pods", 260, 300), resource_version="5"),
            "endpointslices": result(
                "endpointslices", make("endpointslices", 30), error=KindFailure("HTTP 500", 500, 5), cached=True
            ),
        },
        timestamp=1_700_000_000.25,
    )


def envelope_size(state: sync_pb2.ClusterState) -> int:
    return sync_pb2.EdgeMessage(state=state).ByteSize()


def test_target_is_the_smaller_limit_times_the_fraction() -> None:
    assert size_target(64 << 20, 4 << 20, 0.5) == 2 << 20
    assert size_target(1 << 20, 4 << 20, 0.5) == 512 << 10
    assert size_target(1 << 20, 0, 0.25) == 256 << 10  # manager did not say: own limit
    assert message_limit(64 << 20, 4 << 20) == 4 << 20


def test_full_state_splits_under_target_and_reassembles() -> None:
    snap = snapshot()
    header, resources = encode_full(snap, "c1", "e1", SERIALIZER)
    target = 20_000
    plan = plan_full(header, resources, target, 64 << 10)
    sequencer = Sequencer()
    sequencer.advance_past(41)
    chunks = states(plan, sequencer)
    assert len(chunks) > 3
    assert all(envelope_size(s) <= target for s in chunks)
    first = chunks[0].sequence
    assert first == 42
    for i, state in enumerate(chunks):
        assert state.sequence == first + i
        assert (state.chunk.snapshot_sequence, state.chunk.index, state.chunk.count) == (first, i, len(chunks))
        assert state.type == sync_pb2.STATE_TYPE_FULL
        assert (state.cluster_id, state.edge_id) == ("c1", "e1")
        assert list(state.kinds) == ["services", "pods"]
        assert list(state.cached_kinds) == ["endpointslices"]
        assert [(e.kind, e.http_status, e.attempts, e.cached) for e in state.errors] == [
            ("endpointslices", 500, 5, True)
        ]
        assert dict(state.counts) == {"services": 40, "pods": 260, "endpointslices": 30}
        assert state.timestamp.ToNanoseconds() == 1_700_000_000_250_000_000
    together = [r for s in chunks for r in s.resources]
    assert [r.SerializeToString() for r in together] == resources
    assert Counter(r.kind for r in together) == dict(chunks[0].counts)
    decoded = SERIALIZER.decode(together[5].payload)
    assert decoded == {"blob": "x" * 100, "i": 5}


def test_small_state_is_one_message_without_chunk() -> None:
    header, resources = encode_full(snapshot(), "c1", "e1", SERIALIZER)
    (state,) = states(plan_full(header, resources, 1 << 20, 4 << 20))
    assert not state.HasField("chunk")
    assert state.sequence == 1
    assert len(state.resources) == 330


def test_empty_full_state_is_still_sent() -> None:
    snap = FullSnapshot({"pods": result("pods", [], resource_version="1")})
    header, resources = encode_full(snap, "c1", "e1", SERIALIZER)
    (state,) = states(plan_full(header, resources, 1000, 100_000))
    assert list(state.kinds) == ["pods"] and dict(state.counts) == {"pods": 0}


def test_object_bigger_than_the_limit_is_left_out_and_counts_agree() -> None:
    pods = [*make("pods", 10), Resource("pods", "ns", "huge", "u", "1", {}, {"blob": "y" * 200_000})]
    snap = FullSnapshot({"pods": result("pods", pods, resource_version="1")})
    header, resources = encode_full(snap, "c1", "e1", SERIALIZER)
    sent = states(plan_full(header, resources, 50_000, 100_000))
    assert [r.name for s in sent for r in s.resources] == [r.name for r in pods[:10]]
    assert all(s.counts["pods"] == 10 for s in sent)


def test_object_between_target_and_limit_travels_alone() -> None:
    big = Resource("pods", "ns", "big", "u", "1", {}, {"blob": "y" * 30_000})
    pods = [*make("pods", 4), big, *make("pods", 4)]
    snap = FullSnapshot({"pods": result("pods", pods, resource_version="1")})
    header, resources = encode_full(snap, "c1", "e1", SERIALIZER)
    sent = states(plan_full(header, resources, 10_000, 100_000))
    sizes = [len(s.resources) for s in sent]
    assert 1 in sizes and sum(sizes) == 9
    assert [r.name for s in sent for r in s.resources] == [r.name for r in pods]


def test_big_delta_becomes_several_independent_deltas() -> None:
    delta = Delta(upserts=make("pods", 120, 200), deletions=make("services", 80))
    header, upserts, deletions = encode_delta(delta, "c1", "e1", SERIALIZER)
    sent = [m.state for m in delta_messages(header, upserts, deletions, 8_000, Sequencer())]
    assert len(sent) > 3
    assert all(envelope_size(s) <= 8_000 for s in sent)
    assert all(not s.HasField("chunk") and s.type == sync_pb2.STATE_TYPE_DELTA for s in sent)
    assert [s.sequence for s in sent] == list(range(1, len(sent) + 1))
    assert [r.name for s in sent for r in s.resources] == [r.name for r in delta.upserts]
    assert [d.name for s in sent for d in s.deletions] == [r.name for r in delta.deletions]
    assert all(d.resource_version for s in sent for d in s.deletions)


def test_empty_delta_is_one_message() -> None:
    header, upserts, deletions = encode_delta(Delta(), "c1", "e1", SERIALIZER)
    (message,) = delta_messages(header, upserts, deletions, 8_000, Sequencer())
    state = message.state
    assert state.type == sync_pb2.STATE_TYPE_DELTA and not state.resources and not state.deletions


def test_sequences_only_grow() -> None:
    seq = Sequencer()
    assert [seq.next(), seq.next()] == [1, 2]
    seq.advance_past(1)  # the manager knows less than we sent: keep counting
    assert seq.next() == 3
    seq.advance_past(100)
    assert seq.next() == 101


def test_payloads_are_reencoded_for_another_negotiated_serializer() -> None:
    from navigator_plugins.serializers.json import JsonSerializer

    snap = FullSnapshot({"services": result("services", make("services", 3))})
    _, items = encode_full(snap, "c1", "e1", JsonSerializer())
    decoded = [JsonSerializer().decode(sync_pb2.Resource.FromString(i).payload) for i in items]
    assert decoded == [r.data for r in make("services", 3)]
