"""Chunk-set assembly: a FULL state split over several messages is applied only when complete.

Chunks of one set arrive in order on one stream. Anything else — a gap, a
mismatch between chunks, a non-chunk state in the middle, a timeout — discards
the whole set, so nothing of a partial snapshot is ever stored.

A closed set says its size (``chunk.count``) in every chunk and repeats its header;
an open set (``count`` 0, docs/protocol.md "Open chunk sets") leaves while the edge
still collects it, and only its last chunk carries the header. Either way each
chunk's objects are checked and staged by the reconciler as the chunk arrives
(``stage_chunk``), not kept as messages: the apply on the last chunk is left with
the writes, and the set's objects are planned while later chunks are on their way.

What waits in memory is bounded: per stream by ``limits.max_chunk_bytes_per_edge``
and for all streams of the process together by ``limits.max_chunk_bytes_total``
(one ``ChunkBudget`` every assembler shares). A chunk that would go over either
discards its set with ``INVALID`` naming the limit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from loguru import logger

from navigator.config.manager import LimitsSection
from navigator.interfaces import Serializer
from navigator.manager.reconciler import Reconciler, abandon
from navigator.manager.validation import InvalidState, StateSet, WireColumns, check_resources, clip
from navigator.v1 import sync_pb2


class ChunkBudget:
    """Bytes of incomplete chunk sets held by all the assemblers sharing it (by default the process's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used = 0

    @property
    def used(self) -> int:
        return self._used

    def reserve(self, size: int, limit: int) -> bool:
        """Take ``size`` bytes if that keeps the total within ``limit``; ``False`` (nothing taken) otherwise."""
        with self._lock:
            if self._used + size > limit:
                return False
            self._used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._used = max(0, self._used - size)


#: The budget every assembler uses unless given its own: one per process.
SHARED_BUDGET = ChunkBudget()


@dataclass(slots=True)
class _Pending:
    snapshot_sequence: int
    count: int
    next_index: int
    last_sequence: int
    header: sync_pb2.ClusterState
    started: float
    state: StateSet
    #: Bytes of this set's chunks taken from the budget.
    held: int = 0
    #: An open set (``chunk.count`` 0): ended by the chunk with ``last``, which alone has the header.
    open: bool = False


def _header(state: sync_pb2.ClusterState) -> sync_pb2.ClusterState:
    """The fields every chunk of a set repeats (everything but sequence, resources and chunk)."""
    header = sync_pb2.ClusterState(
        edge_id=state.edge_id,
        cluster_id=state.cluster_id,
        type=state.type,
        kinds=state.kinds,
        errors=state.errors,
        cached_kinds=state.cached_kinds,
        counts=state.counts,
        deletions=state.deletions,
        against_versions=state.against_versions,
    )
    header.timestamp.CopyFrom(state.timestamp)
    return header


def is_chunk(state: sync_pb2.ClusterState) -> bool:
    """Part of a set: a closed set of two or more, or an open set (``count`` 0)."""
    return state.HasField("chunk") and (state.chunk.count > 1 or state.chunk.count == 0)


def _is_open(chunk: sync_pb2.Chunk) -> bool:
    return chunk.count == 0


def _carries_header(state: sync_pb2.ClusterState) -> bool:
    return bool(
        state.kinds or state.cached_kinds or state.errors or state.counts or state.deletions or state.against_versions
    )


def stage_chunk(
    reconciler: Reconciler,
    cluster: str,
    target: StateSet,
    resources: list[sync_pb2.Resource],
    limits: LimitsSection,
    declared: Collection[str] | None,
    serializer: Serializer,
    more: bool = False,
) -> None:
    """Check one chunk's objects and stage them into ``target``, the set being assembled (on the
    storage thread: the reconciler's index is read there); ``more``: chunks of the set are still to
    come. Raises ``InvalidState``."""
    checked = target.checked
    assert checked is not None
    columns = WireColumns.of(resources)
    checked.update(check_resources(resources, limits.max_payload_bytes, declared, columns))
    if checked.total() > limits.max_resources_per_state:
        raise InvalidState(
            f"the set holds more than limits.max_resources_per_state ({limits.max_resources_per_state}) objects"
        )
    staged = target.staged = reconciler.stage(cluster, target.staged, resources, serializer, more, columns)
    if staged.repeated is not None and target.repeated is None:
        kind, namespace, name = staged.repeated
        target.repeated = f"{clip(kind)}/{clip(namespace) + '/' if namespace else ''}{clip(name)}"


class ChunkAssembler:
    """Collects one stream's chunk sets; ``add`` returns a complete state or ``None`` (buffered)."""

    def __init__(
        self,
        limits: LimitsSection,
        clock: Callable[[], float] = time.monotonic,
        budget: ChunkBudget | None = None,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._budget = budget if budget is not None else SHARED_BUDGET
        self._pending: _Pending | None = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    @property
    def collecting(self) -> StateSet | None:
        """The set the buffered chunks belong to, which ``stage_chunk`` stages them into."""
        return self._pending.state if self._pending is not None else None

    def _drop(self) -> None:
        if self._pending is not None:
            self._budget.release(self._pending.held)
            self._pending = None

    def _hold(self, pending: _Pending, size: int, where: str) -> None:
        """Count ``size`` bytes against both limits; over either, the set is refused (and discarded by the caller)."""
        per_edge = self.limits.max_chunk_bytes_per_edge
        if pending.held + size > per_edge:
            raise InvalidState(
                f"{where}: the set would buffer {pending.held + size} bytes, more than "
                f"limits.max_chunk_bytes_per_edge ({per_edge})"
            )
        total = self.limits.max_chunk_bytes_total
        if not self._budget.reserve(size, total):
            raise InvalidState(
                f"{where}: buffering its {size} bytes would take the chunk sets of all edges over "
                f"limits.max_chunk_bytes_total ({total}); send it again later"
            )
        pending.held += size

    def discard(self, reason: str) -> None:
        if self._pending is not None:
            abandon(self._pending.state)
            logger.warning(
                "discarding incomplete chunk set {} ({} of {} chunks received): {}",
                self._pending.snapshot_sequence,
                self._pending.next_index,
                self._pending.count,
                reason,
            )
            self._drop()

    def expire(self) -> None:
        """Drop a set that has waited longer than ``limits.chunk_timeout`` for its next chunk."""
        if self._pending is not None and self._clock() - self._pending.started > self.limits.chunk_timeout:
            self.discard(f"not completed within limits.chunk_timeout ({self.limits.chunk_timeout:g}s)")

    def add(self, state: sync_pb2.ClusterState, size: int | None = None) -> StateSet | None:
        """A state that is not a chunk as it is; a chunk's set when that chunk completes it, else ``None``.

        A chunk's objects are not taken into the set here: ``stage_chunk`` does that, into
        ``collecting`` for a buffered chunk, into the returned set for the last one.
        ``size`` is the chunk's encoded size when the caller knows it.
        """
        self.expire()
        if not is_chunk(state):
            self.discard(f"state {state.sequence} arrived before the set was complete")
            return StateSet.single(state)
        chunk = state.chunk
        try:
            return self._add_chunk(state, chunk, state.ByteSize() if size is None else size)
        except InvalidState as exc:
            self.discard(str(exc))
            raise

    def _add_chunk(self, state: sync_pb2.ClusterState, chunk: sync_pb2.Chunk, size: int) -> StateSet | None:
        where = f"chunk {chunk.index} of snapshot {chunk.snapshot_sequence}"
        if state.type != sync_pb2.STATE_TYPE_FULL:
            raise InvalidState(f"{where}: only FULL states may be chunked")
        if chunk.count > self.limits.max_chunks or chunk.index >= self.limits.max_chunks:
            raise InvalidState(
                f"{where}: {max(chunk.count, chunk.index + 1)} chunks is more than limits.max_chunks "
                f"({self.limits.max_chunks})"
            )
        if not _is_open(chunk) and chunk.index >= chunk.count:
            raise InvalidState(f"{where}: index must be below count ({chunk.count})")
        if _is_open(chunk) and not chunk.last and _carries_header(state):
            raise InvalidState(
                f"{where}: only the last chunk of an open set may carry kinds, cached_kinds, errors, counts, "
                "deletions or against_versions"
            )
        if chunk.index == 0:
            self.discard(f"a new set {chunk.snapshot_sequence} started")
            if chunk.snapshot_sequence != state.sequence:
                raise InvalidState(
                    f"{where}: snapshot_sequence must equal the first chunk's sequence ({state.sequence})"
                )
            first = StateSet.single(_header(state))
            first.sequence = state.sequence
            first.chunks = chunk.count
            first.checked = Counter()
            started = _Pending(
                snapshot_sequence=chunk.snapshot_sequence,
                count=chunk.count,
                next_index=1,
                last_sequence=state.sequence,
                header=_header(state),
                started=self._clock(),
                state=first,
                open=_is_open(chunk),
            )
            self._hold(started, size, where)
            self._pending = started
            if started.open and chunk.last:  # a set of one
                return self._complete(state, started)
            return None
        pending = self._pending
        if pending is None or pending.snapshot_sequence != chunk.snapshot_sequence:
            raise InvalidState(f"{where} arrived without the set's earlier chunks")
        if chunk.index != pending.next_index:
            raise InvalidState(f"{where} arrived out of order (expected chunk {pending.next_index})")
        if chunk.count != pending.count:
            raise InvalidState(f"{where}: count {chunk.count} differs from the set's count {pending.count}")
        if state.sequence != pending.last_sequence + 1:
            raise InvalidState(
                f"{where}: sequence {state.sequence} does not follow the previous chunk's {pending.last_sequence}"
            )
        if pending.open:
            if state.timestamp != pending.header.timestamp:
                raise InvalidState(f"{where}: timestamp differs from the set's first chunk")
        elif _header(state) != pending.header:
            raise InvalidState(
                f"{where}: timestamp, kinds, cached_kinds, errors, counts or deletions differ from the set's first chunk"
            )
        self._hold(pending, size, where)
        pending.next_index += 1
        pending.last_sequence = state.sequence
        if pending.open:
            pending.started = self._clock()  # an open set waits for its next chunk, not for its whole
            if not chunk.last:
                return None
        elif pending.next_index < pending.count:
            return None
        return self._complete(state, pending)

    def _complete(self, state: sync_pb2.ClusterState, pending: _Pending) -> StateSet:
        """The whole set, on its last chunk: an open set takes its header from that chunk."""
        self._drop()
        collected = pending.state
        if pending.open:
            header = StateSet.single(_header(state))
            collected.kinds, collected.cached_kinds, collected.errors = header.kinds, header.cached_kinds, header.errors
            collected.counts, collected.deletions = header.counts, header.deletions
            collected.against_versions = header.against_versions
            collected.chunks = pending.next_index
        collected.sequence = state.sequence
        return collected
