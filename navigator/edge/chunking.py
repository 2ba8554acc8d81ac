"""Splitting a state into messages that stay under the negotiated size target.

A FULL state too big for one message becomes a chunk set (docs/protocol.md,
"Chunked snapshots") that the manager applies atomically; a big DELTA becomes
several independent DELTAs (upserts and deletions per object commute, since
the loop keeps only the latest event per object).

A FULL state is planned from the sizes of its packed resources and each chunk is
built only when it is about to be sent, straight from those bytes into the bytes
the transport sends: a 150,000-pod snapshot never exists as one message, nor as
Python objects, and no chunk is parsed back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loguru import logger

from navigator.edge.messages import Sequencer
from navigator.v1 import sync_pb2

#: Room for what is added after planning: the EdgeMessage wrapper, sequence and chunk fields.
ENVELOPE_OVERHEAD = 64
#: Wire tags: ClusterState.resources (field 8) and EdgeMessage.state (field 2), length-delimited.
_TAG_RESOURCES = bytes([8 << 3 | 2])
_TAG_STATE = bytes([2 << 3 | 2])


def size_target(max_message_size: int, accepted_max: int, fraction: float) -> int:
    """``min(edge limit, manager limit) * fraction``: chunks aim well below the hard limit."""
    return int(message_limit(max_message_size, accepted_max) * fraction)


def message_limit(max_message_size: int, accepted_max: int) -> int:
    """The hard limit: nothing larger may be sent."""
    return min(max_message_size, accepted_max) if accepted_max else max_message_size


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_size(message_size: int) -> int:
    """Bytes a message of ``message_size`` takes as a repeated field entry (tag + length + body)."""
    return 1 + len(varint(message_size)) + message_size


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


@dataclass(slots=True)
class FullPlan:
    """How a FULL state is cut into messages; ``build`` makes one of them."""

    header: sync_pb2.ClusterState
    items: Sequence[bytes]
    groups: list[tuple[int, int]]

    @property
    def count(self) -> int:
        return len(self.groups)

    def build(self, index: int, sequence: int, snapshot_sequence: int) -> bytes:
        """Message ``index`` of the set, numbered ``sequence``: a serialized ``EdgeMessage`` joined from
        the packed resources, never parsed (the transport sends these bytes as they are)."""
        state = sync_pb2.ClusterState()
        state.CopyFrom(self.header)
        state.sequence = sequence
        if self.count > 1:
            state.chunk.snapshot_sequence = snapshot_sequence
            state.chunk.index = index
            state.chunk.count = self.count
        head = state.SerializeToString()
        start, end = self.groups[index]
        parts = [head]
        for item in self.items[start:end]:
            parts += (_TAG_RESOURCES, varint(len(item)), item)
        body = b"".join(parts)
        return b"".join((_TAG_STATE, varint(len(body)), body))


def plan_full(header: sync_pb2.ClusterState, items: Sequence[bytes], target: int, limit: int) -> FullPlan:
    """Plan the FULL state as one message or a chunk set, each under ``target`` where at all possible.

    ``header`` carries everything but the resources; its ``counts`` are corrected
    for resources dropped for exceeding ``limit`` on their own.
    """
    hard_room = limit - header.ByteSize() - ENVELOPE_OVERHEAD
    sizes = [field_size(len(item)) for item in items]
    if any(size > hard_room for size in sizes):
        kept = []
        for item, size in zip(items, sizes, strict=True):
            if size <= hard_room:
                kept.append(item)
                continue
            resource = sync_pb2.Resource.FromString(item)
            header.counts[resource.kind] = max(0, header.counts[resource.kind] - 1)
            logger.error(
                "{} {}/{} is larger than the message limit ({} bytes) and is left out",
                resource.kind,
                resource.namespace,
                resource.name,
                limit,
            )
        items = kept
        sizes = [field_size(len(item)) for item in items]
    room = max(1, target - header.ByteSize() - ENVELOPE_OVERHEAD)
    return FullPlan(header, items, _groups(sizes, room))


def delta_messages(
    header: sync_pb2.ClusterState,
    upserts: Sequence[sync_pb2.Resource],
    deletions: Sequence[sync_pb2.ResourceKey],
    target: int,
    sequencer: Sequencer,
) -> list[sync_pb2.EdgeMessage]:
    """One DELTA, or several when it is bigger than ``target`` (each valid on its own), numbered."""
    room = max(1, target - header.ByteSize() - ENVELOPE_OVERHEAD)
    sizes = [field_size(r.ByteSize()) for r in upserts] + [field_size(d.ByteSize()) for d in deletions]
    split = len(upserts)
    messages = []
    for start, end in _groups(sizes, room):
        message = sync_pb2.EdgeMessage()
        state = message.state
        state.CopyFrom(header)
        state.sequence = sequencer.next()
        state.resources.extend(upserts[start:min(end, split)])
        state.deletions.extend(deletions[max(start, split) - split : max(end, split) - split])
        messages.append(message)
    return messages
