"""One edge's sync stream: handshake and claim, then validate, apply and acknowledge every state.

Everything a stream sends comes from its own session task, one message at a
time, in order (the single writer); acks go out in the order states arrived.

A handshake does not queue behind other clusters' applies on the storage
thread: when no storage work of its cluster can still be running (the usual
case, a reconnect storm included), the stored record is read beside the
storage thread, and reloading the reconciler's index plus saving the claimed
record are handed to the storage thread without waiting for them; the
session's first apply waits for them instead. Only when an earlier stream's
apply of the same cluster may still be running does the handshake go through
the storage thread, in one call, so that apply lands first. Claims and their
renewals go through the ``ClaimKeeper`` (one renewal pass for all sessions).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from loguru import logger

from navigator import metrics
from navigator.config.manager import ManagerConfig
from navigator.interfaces import (
    ClaimOutcome,
    ClusterClaims,
    ClusterRecord,
    ManagerStream,
    Serializer,
    StorageBackend,
)
from navigator.manager import acks
from navigator.manager.apply import StorageWorker, apply_state, record_status_changed
from navigator.manager.auth import authenticate
from navigator.manager.chunking import ChunkAssembler
from navigator.manager.claims import ClaimKeeper
from navigator.manager.reconciler import Reconciler
from navigator.manager.sinks import SinkFanout
from navigator.manager.status import RECORD_EVERY
from navigator.manager.validation import (
    InvalidState,
    check_header,
    check_identify,
    check_sequence,
    check_state_set,
)
from navigator.v1 import sync_pb2

T = TypeVar("T")

#: The first message must be an Identify arriving within this many seconds.
IDENTIFY_TIMEOUT = 10.0
#: States with more objects than this are validated off the event loop.
_BIG_STATE = 2000

#: Reject reason -> the gRPC status the call ends with.
REJECT_STATUS: dict[int, str] = {
    sync_pb2.REJECT_REASON_MALFORMED: "INVALID_ARGUMENT",
    sync_pb2.REJECT_REASON_UNAUTHENTICATED: "UNAUTHENTICATED",
    sync_pb2.REJECT_REASON_UNSUPPORTED: "FAILED_PRECONDITION",
    sync_pb2.REJECT_REASON_ALREADY_HELD: "ALREADY_EXISTS",
    sync_pb2.REJECT_REASON_GRACE_PERIOD: "UNAVAILABLE",
    sync_pb2.REJECT_REASON_UNAVAILABLE: "UNAVAILABLE",
}


class StorageTracker:
    """Which clusters may still have a session's work running on the storage thread.

    A handshake may read its cluster off the storage thread only when none may:
    an apply of an earlier stream must land before the new stream reads.
    """

    def __init__(self) -> None:
        self._busy: dict[str, int] = {}
        #: Clusters whose storage call was cancelled while it may have been running.
        self._unsettled: set[str] = set()

    def settled(self, cluster: str) -> bool:
        return not self._busy.get(cluster) and cluster not in self._unsettled

    def begin(self, cluster: str) -> None:
        self._busy[cluster] = self._busy.get(cluster, 0) + 1

    def end(self, cluster: str) -> None:
        left = self._busy.get(cluster, 0) - 1
        if left > 0:
            self._busy[cluster] = left
        else:
            self._busy.pop(cluster, None)

    @contextmanager
    def using(self, cluster: str) -> Iterator[None]:
        """Around an awaited storage call: a cancelled wait leaves the call perhaps still running."""
        self.begin(cluster)
        try:
            yield
        except asyncio.CancelledError:
            self._unsettled.add(cluster)
            raise
        finally:
            self.end(cluster)

    def caught_up(self, cluster: str) -> None:
        """A call through the storage thread returned: everything submitted before it has landed."""
        self._unsettled.discard(cluster)


@dataclass(slots=True)
class SyncContext:
    """What every session shares: built once by the manager."""

    config: ManagerConfig
    backend: StorageBackend
    claims: ClusterClaims
    worker: StorageWorker
    reconciler: Reconciler
    serializers: Mapping[str, Serializer]
    sinks: SinkFanout
    #: cluster id -> the session currently holding it on this manager.
    sessions: dict[str, EdgeSession] = field(default_factory=dict)
    stopping: bool = False
    clock: Callable[[], float] = time.time
    #: How sessions claim, release and renew (built from ``claims``).
    keeper: ClaimKeeper = field(init=False)
    storage: StorageTracker = field(default_factory=StorageTracker)

    def __post_init__(self) -> None:
        self.keeper = ClaimKeeper(self.claims)


class EdgeSession:
    def __init__(self, ctx: SyncContext, stream: ManagerStream) -> None:
        self.ctx = ctx
        self.stream = stream
        self.cluster = ""
        self.edge_id = ""
        self.record: ClusterRecord | None = None
        self.serializer: Serializer | None = None
        self.last_seen = 0.0
        #: When this session last kept the cluster record in the history (``None``: not yet).
        self._cluster_recorded_at: float | None = None
        self.done = asyncio.Event()
        self._sequence = 0
        self._claimed = False
        self._task: asyncio.Task[None] | None = None
        self._ending: tuple[str, str] | None = None
        self._chunks = ChunkAssembler(ctx.config.limits)
        #: The claim's save and index load, on the storage thread, until the first apply has seen them land.
        self._landing: asyncio.Future[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        self._task = asyncio.current_task()
        try:
            if await self._handshake():
                await self._receive()
        except asyncio.CancelledError:
            if self._ending is None:
                raise
            if self._task is not None:
                self._task.uncancel()
            await self.stream.abort(*self._ending)
        finally:
            try:
                await self._cleanup()
            finally:
                self.done.set()

    def terminate(self, code: str, details: str) -> None:
        """End this stream with a gRPC status (another stream took over, the claim was lost, shutdown)."""
        if self._ending is None:
            self._ending = (code, details)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _cleanup(self) -> None:
        self._chunks.discard("the stream ended")
        ctx = self.ctx
        ctx.keeper.unwatch(self)
        if self._claimed:
            metrics.edge_disconnected()
        if self._claimed and ctx.sessions.get(self.cluster) is self:
            del ctx.sessions[self.cluster]
            # On the loop, right after the check above: a reconnect of the same edge cannot slip in
            # between (a claims on a thread gets the release before any later claim).
            ctx.keeper.release(self.cluster, self.edge_id)
            logger.info("edge {} of cluster {} disconnected; grace period starts", self.edge_id, self.cluster)
            if self.record is not None:
                record = dataclasses.replace(self.record, last_seen=_utc(self.last_seen))
                saved = self._store(ctx.backend.save_cluster, record)
                try:
                    await asyncio.shield(saved)
                except Exception as exc:
                    logger.warning("could not save last_seen of cluster {}: {}", self.cluster, exc)

    def _store(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Submit ``fn`` to the storage thread, counted against this cluster until it has run.

        The returned future is never cancelled on behalf of the session: its end is the call's end.
        """
        cluster, tracker = self.cluster, self.ctx.storage
        tracker.begin(cluster)
        future = asyncio.ensure_future(self.ctx.worker.call(fn, *args))
        future.add_done_callback(lambda _: tracker.end(cluster))
        return future

    # -- handshake -------------------------------------------------------------------

    async def _reject(self, reason: int, message: str, retry_after: float = 0.0, holder: str = "") -> bool:
        name = sync_pb2.RejectReason.Name(reason)  # type: ignore[arg-type]
        metrics.count_rejection(name)
        logger.warning("rejected edge from {}: {}: {}", self.stream.peer.address, name, message)
        reject = sync_pb2.Reject(
            reason=reason,  # type: ignore[arg-type]
            message=message,
            retry_after_seconds=retry_after,
            holder_edge_id=holder,
        )
        try:
            await self.stream.send(sync_pb2.ManagerMessage(reject=reject))
        finally:
            await self.stream.abort(REJECT_STATUS[reason], message)
        return False

    async def _handshake(self) -> bool:
        try:
            first = await asyncio.wait_for(self.stream.recv(), IDENTIFY_TIMEOUT)
        except TimeoutError:
            return await self._reject(
                sync_pb2.REJECT_REASON_MALFORMED, f"no Identify received within {IDENTIFY_TIMEOUT:g}s"
            )
        if first is None:
            return False
        body = first.WhichOneof("body")
        if body != "identify":
            return await self._reject(
                sync_pb2.REJECT_REASON_MALFORMED,
                f"the first message must be Identify, got {body or 'an empty message'}",
            )
        ident = first.identify
        if problem := check_identify(ident):
            return await self._reject(sync_pb2.REJECT_REASON_MALFORMED, problem)
        token = self.stream.peer.token or ident.token or None
        if problem := authenticate(self.ctx.config.auth, ident.cluster_id, token, self.stream.peer.identity):
            return await self._reject(sync_pb2.REJECT_REASON_UNAUTHENTICATED, problem)
        chosen = next((n for n in ident.serializers if n in self.ctx.serializers), None)
        if chosen is None:
            return await self._reject(
                sync_pb2.REJECT_REASON_UNSUPPORTED,
                f"no serializer in common: the edge offers [{', '.join(ident.serializers)}], "
                f"the manager has [{', '.join(self.ctx.serializers)}]",
            )
        if self.ctx.stopping:
            return await self._reject(sync_pb2.REJECT_REASON_UNAVAILABLE, "the manager is shutting down")
        # The keeper releases a claim whose handshake was cancelled while it was being made.
        claim = await self.ctx.keeper.claim(ident.cluster_id, ident.edge_id)
        if claim.accepted and self.ctx.stopping:
            self.ctx.keeper.release(ident.cluster_id, ident.edge_id)
            return await self._reject(sync_pb2.REJECT_REASON_UNAVAILABLE, "the manager is shutting down")
        if claim.outcome is ClaimOutcome.ALREADY_HELD:
            return await self._reject(
                sync_pb2.REJECT_REASON_ALREADY_HELD,
                f"cluster {ident.cluster_id!r} is held by connected edge {claim.holder_edge_id!r}",
                holder=claim.holder_edge_id,
            )
        if claim.outcome is ClaimOutcome.GRACE_PERIOD:
            return await self._reject(
                sync_pb2.REJECT_REASON_GRACE_PERIOD,
                f"cluster {ident.cluster_id!r} was held by edge {claim.holder_edge_id!r} until recently; "
                f"other edges may claim it in {claim.retry_after:.1f}s (grace period)",
                retry_after=claim.retry_after,
                holder=claim.holder_edge_id,
            )
        self.cluster, self.edge_id = ident.cluster_id, ident.edge_id
        self.serializer = self.ctx.serializers[chosen]
        self.last_seen = self.ctx.clock()
        self._claimed = True
        metrics.edge_connected()
        previous = self.ctx.sessions.get(self.cluster)
        self.ctx.sessions[self.cluster] = self
        if previous is not None:
            previous.terminate("ALREADY_EXISTS", f"edge {self.edge_id!r} reconnected on a newer stream")
        self.record = await self._claimed_record(ident)
        accept = sync_pb2.Accept(
            manager_id=self.ctx.config.manager_id,
            serializer=chosen,
            max_message_bytes=self.ctx.config.limits.max_message_size,
            last_sequence=self.record.last_sequence,
        )
        await self.stream.send(sync_pb2.ManagerMessage(accept=accept))
        logger.info(
            "edge {} claimed cluster {} from {} (serializer {}, interval {:g}s)",
            self.edge_id,
            self.cluster,
            self.stream.peer.address,
            chosen,
            self.record.sync_interval,
        )
        self.ctx.keeper.watch(self, self.cluster, self.edge_id, self._claim_lost)
        return True

    async def _claimed_record(self, ident: sync_pb2.Identify) -> ClusterRecord:
        """The cluster's record as this edge claimed it; saved, and the reconciler's index (re)read,
        on the storage thread before this session's first apply.

        The index is read at every claim: another manager may have written the cluster
        while this one did not hold it.
        """
        ctx, cluster = self.ctx, self.cluster
        backend, reconciler = ctx.backend, ctx.reconciler

        def claimed(stored: ClusterRecord | None) -> ClusterRecord:
            stored = stored or ClusterRecord(cluster)
            return dataclasses.replace(
                stored,
                edge_id=self.edge_id,
                metadata=dict(ident.metadata),
                sync_interval=ident.sync_interval_seconds or 30.0,
                manager_id=ctx.config.manager_id,
                last_seen=_utc(self.last_seen),
                last_sequence=stored.last_sequence if stored.edge_id == self.edge_id else 0,
            )

        def land(record: ClusterRecord) -> None:
            reconciler.load(cluster)
            backend.save_cluster(record)

        if not ctx.storage.settled(cluster):
            # An apply of an earlier stream may still be running: read through the storage
            # thread so it lands first, all in one call.
            def through_storage() -> ClusterRecord:
                record = claimed(backend.get_cluster(cluster))
                land(record)
                return record

            with ctx.storage.using(cluster):
                record = await ctx.worker.call(through_storage)
            ctx.storage.caught_up(cluster)
            return record
        # Nothing of this cluster is on the storage thread: read the record beside it (queries'
        # readers), and let the index and the save land there without waiting for them; the
        # first apply waits for them instead (``_landed``).
        record = claimed(await asyncio.to_thread(backend.get_cluster, cluster))
        self._landing = self._store(land, record)
        self._landing.add_done_callback(self._saved)
        return record

    def _saved(self, done: asyncio.Future[None]) -> None:
        if done.cancelled() or (exc := done.exception()) is None:
            return
        metrics.count_manager_error("storage")
        logger.warning("could not save the claim of cluster {} by edge {}: {}", self.cluster, self.edge_id, exc)
        self.terminate("UNAVAILABLE", f"storage failed at the claim: {exc}")

    async def _landed(self) -> None:
        """Before the first apply: the claim's index and record are in place (raises what they raised)."""
        if self._landing is not None:
            await asyncio.shield(self._landing)
            self._landing = None

    def _claim_lost(self) -> None:
        logger.warning("edge {} lost its claim on cluster {}", self.edge_id, self.cluster)
        self.terminate("ALREADY_EXISTS", f"the claim on cluster {self.cluster!r} was lost")

    # -- states ----------------------------------------------------------------------

    async def _receive(self) -> None:
        while (message := await self.stream.recv()) is not None:
            self.last_seen = self.ctx.clock()
            metrics.count_manager_bytes(self.cluster, received=message.ByteSize())
            self._chunks.expire()
            body = message.WhichOneof("body")
            if body == "state":
                ack = await self._process(message.state)
                metrics.count_manager_ack(self.cluster, ack.status, size=ack.ByteSize())
                await self.stream.send(sync_pb2.ManagerMessage(ack=ack))
            elif body == "identify":
                logger.warning("edge {} sent a second Identify; ignored", self.edge_id)

    def _invalid(self, sequence: int, error: InvalidState) -> sync_pb2.Ack:
        self._chunks.discard(str(error))
        metrics.count_manager_error("invalid_state")
        logger.warning(
            "invalid state {} from edge {} of cluster {}: {}", sequence, self.edge_id, self.cluster, error
        )
        return acks.invalid(sequence, str(error))

    async def _process(self, state: sync_pb2.ClusterState) -> sync_pb2.Ack:
        sequence = state.sequence
        metrics.count_received_objects(self.cluster, len(state.resources))
        try:
            check_sequence(sequence, self._sequence)
            self._sequence = sequence
            check_header(state, self.cluster, self.edge_id)
            assembled = self._chunks.add(state)
            if assembled is None:
                return acks.buffered(sequence)
            if len(assembled.resources) > _BIG_STATE:
                await asyncio.to_thread(check_state_set, assembled, self.ctx.config.limits)
            else:
                check_state_set(assembled, self.ctx.config.limits)
        except InvalidState as exc:
            return self._invalid(sequence, exc)
        assert self.record is not None and self.serializer is not None
        started = time.perf_counter()
        try:
            await self._landed()
            now = self.ctx.clock()
            record_cluster = self._cluster_recorded_at is None or now - self._cluster_recorded_at >= RECORD_EVERY
            with self.ctx.storage.using(self.cluster):
                record, changes = await apply_state(
                    self.ctx.worker,
                    self.ctx.reconciler,
                    self.record,
                    assembled,
                    self.serializer,
                    _utc(now),
                    record_cluster or record_status_changed(self.record, assembled),
                )
            if record_cluster:
                self._cluster_recorded_at = now
        except InvalidState as exc:
            return self._invalid(sequence, exc)
        except Exception as exc:
            metrics.count_manager_error("storage")
            logger.opt(exception=exc).error("storing state {} of cluster {} failed", sequence, self.cluster)
            return acks.retry(sequence, f"storage failed: {exc}")
        self.record = record
        metrics.record_applied(
            self.cluster, assembled.full, time.perf_counter() - started, changes, assembled.counts
        )
        await self.ctx.sinks.send(changes)
        ack = acks.applied(sequence, changes)
        logger.debug(
            "applied {} state {} of cluster {}: {} objects, +{} ~{} -{} in {:.3f}s",
            "FULL" if assembled.full else "DELTA",
            sequence,
            self.cluster,
            len(assembled.resources),
            ack.added,
            ack.modified,
            ack.deleted,
            time.perf_counter() - started,
        )
        return ack


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
