"""One edge's sync stream: handshake and claim, then validate, apply and acknowledge every state.

Everything a stream sends comes from its own session task, one message at a
time, in order (the single writer); acks go out in the order states arrived.

A handshake never queues behind other clusters' applies on the storage thread
(in a reconnect storm that queue is every other edge's full state): storage
calls are tracked per cluster (``StorageTracker``), a new claim drops what
earlier streams of its cluster still have queued and waits only for the call
running, if any; the stored record is then read beside the storage thread, and
reloading the reconciler's index plus saving the claimed record are handed to
the storage thread without waiting for them, ahead of the session's first
apply (which does not run if they failed). Claims and their renewals go
through the ``ClaimKeeper`` (one renewal pass for all sessions).

What an edge reports about its own reading of the cluster (protocol 2): every DELTA's
``errors`` are the kinds it cannot vouch for now (its Kubernetes API unreachable, a
watch failing); the session keeps the latest list in memory (``EdgeSession.reported``)
and does not store it, so the next DELTA without them clears them. A FULL's errors
are stored with the record as before (and a protocol 1 edge's DELTA errors too).
When storage fails, the cluster's ``SyncContext.storage_failures`` entry says so
(in memory: storage cannot be written) until a state of it is applied again.

Fencing: every write of a session carries its claim's epoch (``ClusterRecord.epoch``)
and storage refuses it once a newer claim exists (``StorageFenced``), on this manager
or another one sharing the database. A fenced session ends at once with
``ALREADY_EXISTS``: nothing it sends is stored any more, and retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from loguru import logger

from navigator import metrics
from navigator.config.manager import ManagerConfig
from navigator.interfaces import (
    ClaimOutcome,
    ClusterClaims,
    ClusterRecord,
    KindErrorRecord,
    ManagerStream,
    Serializer,
    StorageBackend,
)
from navigator.interfaces.storage import StorageFenced, StorageRegressed
from navigator.manager import acks
from navigator.manager.apply import Grouping, StorageWorker, apply_state, record_status_changed
from navigator.manager.auth import authenticate
from navigator.manager.chunking import ChunkAssembler, is_chunk, stage_chunk
from navigator.manager.claims import ClaimKeeper, InMemoryClaims
from navigator.manager.reconciler import Reconciler, abandon
from navigator.manager.sinks import SinkFanout
from navigator.manager.status import RECORD_EVERY, StorageFailure
from navigator.manager.validation import (
    InvalidState,
    StateSet,
    check_header,
    check_identify,
    check_sequence,
    check_state_set,
    unsupported_protocol,
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


class Dropped(Exception):
    """A storage call that never ran: dropped while queued, or refused on the storage thread."""


class _Call:
    """One storage call of a cluster, from submission until it has run or was dropped unstarted."""

    __slots__ = ("_lock", "_loop", "_state", "_worker", "ended")

    def __init__(self, loop: asyncio.AbstractEventLoop, worker: StorageWorker) -> None:
        self._lock = threading.Lock()
        self._loop = loop
        self._worker = worker
        self._state = 0  # 0 queued, 1 running, 2 over
        self.ended: asyncio.Future[None] = loop.create_future()

    def run(self, guard: Callable[[], str | None] | None, fn: Callable[..., T], *args: object) -> T:
        """On the storage thread."""
        with self._lock:
            if self._state:
                raise Dropped("a newer stream of the cluster took over first")
            self._state = 1
        try:
            if guard is not None and (refused := guard()):
                raise Dropped(refused)
            return fn(*args)
        finally:
            # Over once its group committed (or failed): a new claim's read must see what it wrote.
            self._worker.after_group(self._over)

    def _over(self) -> None:
        """On the storage thread."""
        with self._lock:
            self._state = 2
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self._loop.call_soon_threadsafe(self._end)

    def drop(self) -> None:
        """On the loop: a call still queued never runs."""
        with self._lock:
            if self._state == 0:
                self._state = 2
                self._end()

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class StorageTracker:
    """Every session's storage calls, per cluster, until they have run.

    A new claim of a cluster drops the calls of earlier streams still queued (as
    cancelling them would) and waits for the one running, if any: then nothing of
    an earlier stream can land after the new stream's read, and the new stream
    never waits for the storage thread's queue.
    """

    def __init__(self) -> None:
        self._calls: dict[str, set[_Call]] = {}

    async def call(
        self,
        worker: StorageWorker,
        cluster: str,
        fn: Callable[..., T],
        *args: object,
        guard: Callable[[], str | None] | None = None,
        grouping: Grouping | None = None,
    ) -> T:
        """``worker.call(fn, *args)``, tracked; ``guard`` (on the storage thread) may refuse it (``Dropped``).
        With ``grouping``: ``worker.call_grouped``, which may share a transaction with other clusters' calls."""
        entry = _Call(asyncio.get_running_loop(), worker)
        calls = self._calls.setdefault(cluster, set())
        calls.add(entry)
        entry.ended.add_done_callback(lambda _: self._forget(cluster, entry))
        try:
            if grouping is not None:
                return await worker.call_grouped(grouping, entry.run, guard, fn, *args)
            return await worker.call(entry.run, guard, fn, *args)
        except BaseException:
            # Cancelled, or never submitted (shut down): a call that had not started never will;
            # one that ran (and raised) or still runs stays tracked until it ends.
            entry.drop()
            raise

    def _forget(self, cluster: str, entry: _Call) -> None:
        calls = self._calls.get(cluster)
        if calls is not None:
            calls.discard(entry)
            if not calls:
                del self._calls[cluster]

    async def quiet(self, cluster: str) -> None:
        """Drop what of ``cluster`` is queued, wait for what is running."""
        calls = list(self._calls.get(cluster, ()))
        for entry in calls:
            entry.drop()
        running = [entry.ended for entry in calls if not entry.ended.done()]
        if running:
            await asyncio.wait(running)


class _ClusterWorker(StorageWorker):
    """The storage worker as one session's applies see it: every call tracked (``StorageTracker``)
    and refused on the storage thread when the session's claim did not land there."""

    def __init__(self, session: EdgeSession) -> None:
        # No StorageWorker.__init__: no thread of its own, calls go to the manager's worker.
        self._session = session

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        session = self._session
        return await session.ctx.storage.call(
            session.ctx.worker, session.cluster, fn, *args, guard=session._claim_refusal
        )

    async def call_grouped(self, grouping: Grouping, fn: Callable[..., T], *args: Any) -> T:
        session = self._session
        return await session.ctx.storage.call(
            session.ctx.worker, session.cluster, fn, *args, guard=session._claim_refusal, grouping=grouping
        )

    def shutdown(self) -> None:
        pass


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
    #: cluster id -> why storage last refused a state of it, until one applies again (in memory only).
    storage_failures: dict[str, StorageFailure] = field(default_factory=dict)

    def storage_failed(self, cluster: str, exc: BaseException) -> None:
        """Keep the first failure's time: the reason says since when the cluster's states are not stored."""
        message = str(exc) or type(exc).__name__
        previous = self.storage_failures.get(cluster)
        self.storage_failures[cluster] = StorageFailure(message, previous.since if previous else self.clock())

    def __post_init__(self) -> None:
        if isinstance(self.claims, InMemoryClaims):
            # Its epochs must start above those saved before this manager started (fencing).
            self.claims.seed_epochs({r.cluster: r.epoch for r in self.backend.list_clusters()})
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
        #: The kinds the edge declared in its Identify: the only ones its states may name.
        self._kinds: frozenset[str] = frozenset()
        #: The edge process's Identify.instance_key: only that process may take this stream over.
        self.instance_key = b""
        #: Heartbeat period agreed with the edge (0: a protocol 1 edge, or heartbeats off).
        self._heartbeat = 0.0
        #: The edge's protocol version (Identify.protocol_version).
        self.protocol = 0
        #: What a protocol 2 edge's latest DELTA listed in ``errors``: what it cannot vouch for now.
        self.reported: list[KindErrorRecord] = []
        #: When the edge last sent anything (monotonic), and whether a state of it is being handled.
        self._heard = time.monotonic()
        self._busy = False
        #: Why the claim did not land on the storage thread (then no apply of this session runs).
        self._claim_failed: str | None = None
        #: Why storage refused this session's writes (a newer claim exists), once it did.
        self._fenced: str | None = None
        self._worker = _ClusterWorker(self)

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        self._task = asyncio.current_task()
        watchdog: asyncio.Task[None] | None = None
        try:
            if await self._handshake():
                if self._heartbeat:
                    watchdog = asyncio.create_task(self._watch_edge(), name=f"navigator-liveness-{self.cluster}")
                await self._receive()
        except asyncio.CancelledError:
            if self._ending is None:
                raise
            if self._task is not None:
                self._task.uncancel()
            await self.stream.abort(*self._ending)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            try:
                await self._cleanup()
            finally:
                self.done.set()

    async def _watch_edge(self) -> None:
        """A protocol 2 edge sends something at least every heartbeat while idle: three periods of silence
        while the manager is not busy with one of its states mean a frozen edge or a link cut without a close."""
        limit = 3 * self._heartbeat
        while True:
            await asyncio.sleep(self._heartbeat / 2)
            silent = time.monotonic() - self._heard
            if not self._busy and silent > limit:
                logger.warning(
                    "edge {} of cluster {} sent nothing for {:.1f}s; ending its stream", self.edge_id, self.cluster, silent
                )
                self.terminate("UNAVAILABLE", f"the edge sent nothing for {silent:.1f}s (heartbeat every {self._heartbeat:g}s)")
                return

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
            metrics.forget_freshness(self.cluster)
            # On the loop, right after the check above: a reconnect of the same edge cannot slip in
            # between (a claims on a thread gets the release before any later claim).
            ctx.keeper.release(self.cluster, self.edge_id)
            logger.info("edge {} of cluster {} disconnected; grace period starts", self.edge_id, self.cluster)
            if self.record is not None and self._fenced is None:  # fenced: the record is another's now
                record = dataclasses.replace(self.record, last_seen=_utc(self.last_seen))
                saved = self._store(ctx.backend.save_cluster, record)
                # Retrieved even when this session is cancelled while waiting (the edge reconnected
                # at once): a save the new claim dropped is no error to log as unretrieved.
                saved.add_done_callback(_retrieve)
                try:
                    await asyncio.shield(saved)
                except (Dropped, StorageFenced):
                    pass  # the cluster was claimed again meanwhile: its record supersedes this one
                except Exception as exc:
                    logger.warning("could not save last_seen of cluster {}: {}", self.cluster, exc)

    def _store(self, fn: Callable[..., T], *args: object, grouping: Grouping | None = None) -> asyncio.Future[T]:
        """Hand ``fn`` to the storage thread (tracked); a task no cancellation of the session reaches.

        Submitted when the task first runs: yield once before anything that must come after it.
        """
        return asyncio.ensure_future(
            self.ctx.storage.call(self.ctx.worker, self.cluster, fn, *args, grouping=grouping)
        )

    def _claim_refusal(self) -> str | None:
        return self._claim_failed

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds the edge declared in its Identify."""
        return self._kinds

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
        if problem := check_identify(ident, self.ctx.config.limits):
            return await self._reject(sync_pb2.REJECT_REASON_MALFORMED, problem)
        if problem := unsupported_protocol(ident):
            return await self._reject(sync_pb2.REJECT_REASON_UNSUPPORTED, problem)
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
        holder = self.ctx.sessions.get(ident.cluster_id)
        if (
            holder is not None
            and holder.edge_id == ident.edge_id
            and holder.instance_key
            and not holder.done.is_set()
            and not hmac.compare_digest(holder.instance_key, ident.instance_key)
        ):
            # The same edge id from another process: knowing the id (and the cluster's token) is not enough.
            return await self._reject(
                sync_pb2.REJECT_REASON_ALREADY_HELD,
                f"cluster {ident.cluster_id!r} is held by a connected edge with this edge id from another process; "
                "two edges must not share an edge_id",
            )
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
        self._kinds = frozenset(ident.kinds)
        self.protocol = ident.protocol_version
        self.instance_key = bytes(ident.instance_key)
        self._heartbeat = self.ctx.config.heartbeat if ident.protocol_version >= 2 else 0.0
        self.serializer = self.ctx.serializers[chosen]
        self.last_seen = self.ctx.clock()
        self._claimed = True
        metrics.edge_connected()
        previous = self.ctx.sessions.get(self.cluster)
        self.ctx.sessions[self.cluster] = self
        if previous is not None:
            previous.terminate("ALREADY_EXISTS", f"edge {self.edge_id!r} reconnected on a newer stream")
        self.record = await self._claimed_record(ident, claim.epoch)
        versions = ident.protocol_version >= 2 and ident.want_versions
        accept = sync_pb2.Accept(
            manager_id=self.ctx.config.manager_id,
            serializer=chosen,
            max_message_bytes=self.ctx.config.limits.max_message_size,
            last_sequence=self.record.last_sequence,
            versions_follow=versions,
            heartbeat_seconds=self._heartbeat,
            open_chunk_sets=True,
        )
        await self.stream.send(sync_pb2.ManagerMessage(accept=accept))
        if versions:
            with contextlib.suppress(Dropped):  # the claim did not land: the stream is being ended
                await self._send_versions()
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

    async def _claimed_record(self, ident: sync_pb2.Identify, epoch: int) -> ClusterRecord:
        """The cluster's record as this edge claimed it; saved, and the reconciler's index (re)read,
        on the storage thread before this session's first apply.

        Never waits for the storage thread's queue: what earlier streams of this cluster
        still have queued there is dropped, what is running is waited for, then the record
        is read beside the storage thread (queries' readers). The index is read again at
        every claim: another manager may have written the cluster while this one did not
        hold it.
        """
        ctx, cluster = self.ctx, self.cluster
        backend, reconciler = ctx.backend, ctx.reconciler
        await ctx.storage.quiet(cluster)
        stored = await asyncio.to_thread(backend.get_cluster, cluster) or ClusterRecord(cluster)
        record = dataclasses.replace(
            stored,
            edge_id=self.edge_id,
            metadata=dict(ident.metadata),
            sync_interval=ident.sync_interval_seconds or 30.0,
            manager_id=ctx.config.manager_id,
            last_seen=_utc(self.last_seen),
            last_sequence=stored.last_sequence if stored.edge_id == self.edge_id else 0,
            epoch=epoch,
        )

        def land() -> None:
            try:
                # Saved first: from here on storage refuses the writes of the cluster's earlier
                # claims, so the index read next cannot miss one of them.
                backend.save_cluster(record)
                reconciler.load(cluster)
            except BaseException as exc:
                # Seen by this session's applies, next on the storage thread: none runs on a stale index.
                self._claim_failed = f"the claim did not land: {exc}"
                raise

        def undo() -> None:
            # The group it was saved in did not commit: this session's applies must not run.
            self._claim_failed = "the claim did not land: storage failed to commit it"
            reconciler.forget(cluster)

        # Not waited for: it is submitted before the Accept goes out (the yield lets its task
        # run), so the storage thread takes it before this session's first apply. In a storm it
        # shares a transaction with other clusters' claims and applies (group commit).
        self._store(land, grouping=Grouping(backend, cluster, 1, undo)).add_done_callback(self._landed)
        await asyncio.sleep(0)
        return record

    async def _send_versions(self) -> None:
        """Every object held for the cluster, in pages under the message limit, after the claim landed.

        Read from the reconciler's index on the storage thread, behind the claim's reload,
        so they are exactly what this session's first FULL will be reconciled against.
        """
        held = await self.ctx.storage.call(
            self.ctx.worker, self.cluster, self.ctx.reconciler.held, self.cluster, guard=self._claim_refusal
        )
        room = max(64 * 1024, self.ctx.config.limits.max_message_size // 4)
        page = sync_pb2.Versions()
        size = 0
        for key in held:
            entry = key.ByteSize() + 3
            if size + entry > room and page.keys:
                await self.stream.send(sync_pb2.ManagerMessage(versions=page))
                page, size = sync_pb2.Versions(), 0
            page.keys.append(key)
            size += entry
        page.last = True
        await self.stream.send(sync_pb2.ManagerMessage(versions=page))
        logger.debug("sent the versions of {} objects of cluster {} to edge {}", len(held), self.cluster, self.edge_id)

    def _landed(self, done: asyncio.Future[None]) -> None:
        if done.cancelled() or isinstance(exc := done.exception(), Dropped | None):
            return
        if isinstance(exc, StorageFenced):
            self._fence(exc)
            return
        metrics.count_manager_error("storage")
        self.ctx.storage_failed(self.cluster, exc)
        logger.warning("could not save the claim of cluster {} by edge {}: {}", self.cluster, self.edge_id, exc)
        self.terminate("UNAVAILABLE", f"storage failed at the claim: {exc}")

    def _claim_lost(self) -> None:
        logger.warning("edge {} lost its claim on cluster {}", self.edge_id, self.cluster)
        self.terminate("ALREADY_EXISTS", f"the claim on cluster {self.cluster!r} was lost")

    def _fence(self, exc: StorageFenced) -> None:
        """Storage refused a write: a newer claim of the cluster exists. Nothing more of this
        session may be written (queued calls are refused), and the stream ends."""
        if self._fenced is None:
            self._fenced = str(exc)
            self._claim_failed = self._claim_failed or f"fenced: {exc}"
            metrics.count_manager_error("fenced")
            logger.warning(
                "edge {} of cluster {}: storage refused this manager's writes, the claim was lost: {}",
                self.edge_id,
                self.cluster,
                exc,
            )
        self.terminate(
            "ALREADY_EXISTS", f"the claim on cluster {self.cluster!r} was lost (a newer claim exists): {exc}"
        )

    # -- states ----------------------------------------------------------------------

    async def _receive(self) -> None:
        while (message := await self.stream.recv()) is not None:
            self.last_seen = self.ctx.clock()
            self._heard = time.monotonic()
            size = message.ByteSize()
            metrics.count_manager_bytes(self.cluster, received=size)
            self._chunks.expire()
            body = message.WhichOneof("body")
            if body == "state":
                self._busy = True
                try:
                    ack = await self._process(message.state, size)
                    metrics.count_manager_ack(self.cluster, ack.status, size=ack.ByteSize())
                    await self.stream.send(sync_pb2.ManagerMessage(ack=ack))
                finally:
                    self._busy = False
                    self._heard = time.monotonic()
            elif body == "heartbeat" and self._heartbeat:
                await self.stream.send(sync_pb2.ManagerMessage(heartbeat=sync_pb2.Heartbeat()))
            elif body == "identify":
                logger.warning("edge {} sent a second Identify; ignored", self.edge_id)

    def _invalid(self, sequence: int, error: InvalidState) -> sync_pb2.Ack:
        self._chunks.discard(str(error))
        metrics.count_manager_error("invalid_state")
        logger.warning(
            "invalid state {} from edge {} of cluster {}: {}", sequence, self.edge_id, self.cluster, error
        )
        return acks.invalid(sequence, str(error))

    async def _process(self, state: sync_pb2.ClusterState, size: int | None = None) -> sync_pb2.Ack:
        sequence = state.sequence
        metrics.count_received_objects(self.cluster, len(state.resources))
        assembled: StateSet | None = None
        try:
            check_sequence(sequence, self._sequence)
            self._sequence = sequence
            check_header(state, self.cluster, self.edge_id)
            assembled = self._chunks.add(state, size)
            if is_chunk(state):
                try:
                    await self._stage(state, assembled)
                except (InvalidState, asyncio.CancelledError):
                    raise
                except Exception as exc:  # the set cannot be staged here now: the edge sends it again
                    self._chunks.discard(f"staging chunk {state.chunk.index} failed: {exc}")
                    if not isinstance(exc, Dropped):
                        logger.opt(exception=exc).error("staging state {} of cluster {} failed", sequence, self.cluster)
                    return acks.retry(sequence, f"not applied: {exc}")
            if assembled is None:
                return acks.buffered(sequence)
            if len(assembled.resources) > _BIG_STATE:
                await asyncio.to_thread(check_state_set, assembled, self.ctx.config.limits, self._kinds)
            else:
                check_state_set(assembled, self.ctx.config.limits, self._kinds)
        except InvalidState as exc:
            if assembled is not None:
                abandon(assembled)
            return self._invalid(sequence, exc)
        try:
            return await self._apply(sequence, assembled)
        finally:
            abandon(assembled)  # not applied after all (a no-op when it was)

    async def _apply(self, sequence: int, assembled: StateSet) -> sync_pb2.Ack:
        assert self.record is not None and self.serializer is not None
        self._take_report(assembled)
        started = time.perf_counter()
        try:
            now = self.ctx.clock()
            record_cluster = self._cluster_recorded_at is None or now - self._cluster_recorded_at >= RECORD_EVERY
            record, changes = await apply_state(
                self._worker,
                self.ctx.reconciler,
                self.record,
                assembled,
                self.serializer,
                lambda: _utc(self.ctx.clock()),
                record_cluster or record_status_changed(self.record, assembled),
            )
            if record_cluster:
                self._cluster_recorded_at = now
        except InvalidState as exc:
            return self._invalid(sequence, exc)
        except StorageRegressed as exc:
            # This stream still holds the cluster: the state is wrong (an object going back), not the
            # writer. Refused by name like any invalid state; the stream goes on.
            return self._invalid(sequence, InvalidState(f"not applied: {exc}"))
        except StorageFenced as exc:
            # No ack: the state was not stored, and the edge must take it elsewhere. The stream
            # ends here (the cancellation lands at the yield).
            self._fence(exc)
            await asyncio.sleep(0)
            return acks.retry(sequence, f"not applied: {exc}")  # not reached: the session was cancelled
        except Dropped as exc:  # the claim did not land; the stream is ending
            return acks.retry(sequence, f"not applied: {exc}")
        except Exception as exc:
            metrics.count_manager_error("storage")
            self.ctx.storage_failed(self.cluster, exc)
            logger.opt(exception=exc).error("storing state {} of cluster {} failed", sequence, self.cluster)
            return acks.retry(sequence, f"storage failed: {exc}")
        self.ctx.storage_failures.pop(self.cluster, None)
        self.record = record
        metrics.record_applied(
            self.cluster, assembled.full, time.perf_counter() - started, changes, assembled.counts
        )
        metrics.record_freshness(self.cluster, assembled.full, changes, record.fresh_as_of, record.lag)
        await self.ctx.sinks.send(changes)
        ack = acks.applied(sequence, changes)
        logger.debug(
            "applied {} state {} of cluster {}: {} objects, +{} ~{} -{} in {:.3f}s",
            "FULL" if assembled.full else "DELTA",
            sequence,
            self.cluster,
            assembled.object_count,
            ack.added,
            ack.modified,
            ack.deleted,
            time.perf_counter() - started,
        )
        return ack


    async def _stage(self, chunk: sync_pb2.ClusterState, assembled: StateSet | None) -> None:
        """A chunk's objects checked and planned while the set's later chunks are on their way."""
        target = assembled if assembled is not None else self._chunks.collecting
        assert target is not None and self.serializer is not None
        limits, kinds = self.ctx.config.limits, self._kinds
        resources = list(chunk.resources)
        await self._worker.call(
            stage_chunk, self.ctx.reconciler, self.cluster, target, resources, limits, kinds, self.serializer,
            assembled is None,
        )

    def _take_report(self, state: StateSet) -> None:
        """A protocol 2 DELTA's errors are the edge's condition now: kept in memory (a kind still
        reported keeps its ``since``) and left out of the stored record, so that a later DELTA
        without them clears them. A FULL's errors are stored as they always were."""
        if self.protocol < 2:
            return
        if state.full:
            self.reported = []
            return
        now = _utc(self.ctx.clock())
        before = {e.kind: e for e in self.reported}
        latest = {e.kind: e for e in state.errors}  # a kind listed twice: the last entry wins
        self.reported = [
            KindErrorRecord(e.kind, e.message, e.http_status, e.cached, before[e.kind].since if e.kind in before else now)
            for _, e in sorted(latest.items())
        ]
        state.errors = []


def _retrieve(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
