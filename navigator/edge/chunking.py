"""Splitting a state into messages that stay under the negotiated size target.

A FULL state too big for one message becomes a chunk set (docs/protocol.md,
"Chunked snapshots") that the manager applies atomically; a big DELTA becomes
several independent DELTAs (upserts and deletions per object commute, since
the loop keeps only the latest event per object). Sizes are measured with
``ByteSize()`` on the encoded protobuf, never estimated from Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from loguru import logger

from navigator.edge.state import Sequencer
from navigator.v1 import sync_pb2

#: Room for what is added after packing: the EdgeMessage wrapper, sequence and chunk fields.
ENVELOPE_OVERHEAD = 64


def size_target(max_message_size: int, accepted_max: int, fraction: float) -> int:
    """``min(edge limit, manager limit) * fraction``: chunks aim well below the hard limit."""
    return int(message_limit(max_message_size, accepted_max) * fraction)


def message_limit(max_message_size: int, accepted_max: int) -> int:
    """The hard limit: nothing larger may be sent."""
    return min(max_message_size, accepted_max) if accepted_max else max_message_size


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def field_size(message_size: int) -> int:
    """Bytes a message of ``message_size`` takes as a repeated field entry (tag + length + body)."""
    return 1 + _varint_size(message_size) + message_size


@dataclass(slots=True)
class Packed:
    states: list[sync_pb2.ClusterState]
    #: Resources larger than the hard limit on their own; left out and logged.
    dropped: list[sync_pb2.Resource] = field(default_factory=list)


def _groups(sizes: Sequence[int], room: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) ranges whose total size fits ``room`` (an oversized item goes alone)."""
    groups: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and used + size > room:
            groups.append((start, i))
            start, used = i, 0
        used += size
    groups.append((start, len(sizes)))
    return groups


def pack_full(
    header: sync_pb2.ClusterState, resources: Sequence[sync_pb2.Resource], target: int, limit: int
) -> Packed:
    """The FULL state as one message or a chunk set, each under ``target`` where at all possible.

    ``header`` carries everything but the resources; its ``counts`` are corrected
    for resources dropped for exceeding ``limit``.
    """
    header_size = header.ByteSize() + ENVELOPE_OVERHEAD
    hard_room = limit - header_size
    kept: list[sync_pb2.Resource] = []
    sizes: list[int] = []
    dropped: list[sync_pb2.Resource] = []
    for resource in resources:
        size = field_size(resource.ByteSize())
        if size > hard_room:
            dropped.append(resource)
            continue
        kept.append(resource)
        sizes.append(size)
    if dropped:
        for resource in dropped:
            header.counts[resource.kind] = max(0, header.counts[resource.kind] - 1)
            logger.error(
                "{} {}/{} is larger than the message limit ({} bytes) and is left out",
                resource.kind,
                resource.namespace,
                resource.name,
                limit,
            )
        header_size = header.ByteSize() + ENVELOPE_OVERHEAD
    room = max(1, target - header_size)
    states = []
    for start, end in _groups(sizes, room):
        state = sync_pb2.ClusterState()
        state.CopyFrom(header)
        state.resources.extend(kept[start:end])
        states.append(state)
    return Packed(states, dropped)


def pack_delta(
    header: sync_pb2.ClusterState,
    upserts: Sequence[sync_pb2.Resource],
    deletions: Sequence[sync_pb2.ResourceKey],
    target: int,
) -> list[sync_pb2.ClusterState]:
    """One DELTA, or several when it is bigger than ``target`` (each valid on its own)."""
    room = max(1, target - header.ByteSize() - ENVELOPE_OVERHEAD)
    up_sizes = [field_size(r.ByteSize()) for r in upserts]
    del_sizes = [field_size(d.ByteSize()) for d in deletions]
    items: list[tuple[bool, int]] = [(True, i) for i in range(len(upserts))] + [
        (False, i) for i in range(len(deletions))
    ]
    sizes = up_sizes + del_sizes
    states = []
    for start, end in _groups(sizes, room):
        state = sync_pb2.ClusterState()
        state.CopyFrom(header)
        for is_upsert, i in items[start:end]:
            if is_upsert:
                state.resources.append(upserts[i])
            else:
                state.deletions.append(deletions[i])
        states.append(state)
    return states


def number(states: Sequence[sync_pb2.ClusterState], sequencer: Sequencer) -> None:
    """Give each message its sequence; a multi-message FULL becomes a chunk set, DELTAs stay independent."""
    count = len(states)
    first = 0
    for index, state in enumerate(states):
        state.sequence = sequencer.next()
        if index == 0:
            first = state.sequence
        if count > 1 and state.type == sync_pb2.STATE_TYPE_FULL:
            state.chunk.snapshot_sequence = first
            state.chunk.index = index
            state.chunk.count = count

