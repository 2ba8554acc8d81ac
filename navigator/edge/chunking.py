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

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from loguru import logger

from navigator.edge.messages import Sequencer
from navigator.v1 import sync_pb2

#: Chunks of an open set aim at most this big: the manager stages each as it arrives, so a chunk
#: that leaves early keeps it busy while the edge lists on. 150,000 pods (115 MB): 32 MiB chunks (the
#: default target) took 12.3 s from edge start to applied, 1-8 MiB ones 9.4-9.8 s, and the edge's
#: peak RSS fell from 310 to 230-245 MiB.
OPEN_CHUNK_BYTES = 4 << 20
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
        start, end = self.groups[index]
        return join_state(state, self.items[start:end])


def join_state(state: sync_pb2.ClusterState, items: Iterable[bytes]) -> bytes:
    """A serialized ``EdgeMessage`` holding ``state`` plus the packed resources ``items``, joined as bytes:
    appending repeated fields to a serialized message is what merging them would do, without parsing."""
    parts = [state.SerializeToString()]
    for item in items:
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
            kind = _too_large(item, limit)
            header.counts[kind] = max(0, header.counts[kind] - 1)
        items = kept
        sizes = [field_size(len(item)) for item in items]
    room = max(1, target - header.ByteSize() - ENVELOPE_OVERHEAD)
    return FullPlan(header, items, _groups(sizes, room))


def _too_large(item: bytes, limit: int) -> str:
    """The kind of a resource left out for exceeding the message limit on its own (logged)."""
    resource = sync_pb2.Resource.FromString(item)
    logger.error(
        "{} {}/{} is larger than the message limit ({} bytes) and is left out",
        resource.kind,
        resource.namespace,
        resource.name,
        limit,
    )
    return resource.kind


@dataclass(slots=True)
class OpenSet:
    """A FULL cut into an open chunk set as its objects arrive (docs/protocol.md, "Open chunk sets").

    ``add`` groups objects into chunks of about ``target`` bytes (``ready``); ``build``
    makes one numbered chunk of a group, resources only, and ``last`` the chunks that
    end the set, the last one with the whole header. Objects are joined as bytes, as
    in ``FullPlan.build``, and never parsed (but for one too large to send at all).
    """

    base: sync_pb2.ClusterState
    target: int
    limit: int
    #: Groups of objects ready to go as chunks, oldest first.
    ready: deque[list[bytes]] = field(default_factory=deque)
    #: Objects left out for exceeding the message limit on their own, per kind (``counts`` drop them).
    dropped: Counter[str] = field(default_factory=Counter)
    #: Chunks built so far, and the sequence of the first.
    built: int = 0
    first: int = 0
    _pending: list[bytes] = field(default_factory=list)
    _used: int = 0

    @property
    def _overhead(self) -> int:
        return self.base.ByteSize() + ENVELOPE_OVERHEAD

    def add(self, items: Iterable[bytes]) -> None:
        room = max(1, self.target - self._overhead)
        hard_room = self.limit - self._overhead
        for item in items:
            size = field_size(len(item))
            if size > hard_room:
                self.dropped[_too_large(item, self.limit)] += 1
                continue
            if self._pending and self._used + size > room:
                self.ready.append(self._pending)
                self._pending, self._used = [], 0
            self._pending.append(item)
            self._used += size

    def build(self, items: Sequence[bytes], sequence: int, header: sync_pb2.ClusterState | None = None) -> bytes:
        """The next chunk, numbered ``sequence``: resources only, or the last one when ``header`` is given."""
        state = sync_pb2.ClusterState()
        state.CopyFrom(self.base if header is None else header)
        state.sequence = sequence
        self.first = self.first or sequence
        state.chunk.snapshot_sequence = self.first
        state.chunk.index = self.built
        state.chunk.count = 0
        state.chunk.last = header is not None
        self.built += 1
        return join_state(state, items)

    def finish(self, header: sync_pb2.ClusterState) -> None:
        """No more objects: ``header`` (kinds, counts, ...) goes with the last chunk. Its ``counts`` lose the
        objects left out; objects that would take the last chunk over ``target`` go in a chunk before it."""
        for kind, dropped in self.dropped.items():
            header.counts[kind] = max(0, header.counts[kind] - dropped)
        if self._pending and header.ByteSize() + ENVELOPE_OVERHEAD + self._used > self.target:
            self.ready.append(self._pending)
            self._pending, self._used = [], 0

    def rest(self) -> list[bytes]:
        """The objects for the last chunk (after ``finish`` and every group in ``ready`` was sent)."""
        rest, self._pending, self._used = self._pending, [], 0
        return rest


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
