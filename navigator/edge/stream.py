"""The reliable stream client: claim the cluster, send states, wait for their acks, reconnect forever.

One session is: connect (with timeout) → ``Identify`` → ``Accept`` or ``Reject``.
A rejected edge is a standby: it retries with backoff (honouring
``retry_after_seconds``) and takes over once the holder is gone. A rejection
that the same Identify would get again (wrong token, unknown cluster, no common
protocol or serializer) is permanent: after ``manager.max_rejections`` of them
in a row the client gives up (``GaveUp``), so a misconfigured edge exits with
the reason instead of knocking on the manager's door forever.

After an ``Accept`` the stream *resumes* when the manager holds exactly what
this edge process last had applied (``Accept.last_sequence`` is at least the
last sequence acked APPLIED here, and no newer than any this process sent): the
state that was in flight goes again unless the manager says it applied it, then
the queue, then whatever the watches saw meanwhile (merged) — no snapshot. Else
(the edge restarted, another edge held the cluster, the manager lost its
database) a full state goes first: the queued one if the queue starts with a
FULL (everything queued after it builds on it), or the one in flight if its
collection is still running, else the queue is discarded and the sync loop is
asked for a fresh full resync at once. An edge with nothing
applied yet (it just started) asks for the manager's versions (protocol 2) and
sends that first FULL against them: only the objects that differ, the
deletions, and the counts, so a restarted edge costs the wire what changed.

A manager that sets ``Accept.open_chunk_sets`` gets a FULL as an *open chunk set*
while it is collected (docs/protocol.md): the loop queues the FULL when its
collection starts, and chunks of at most ``OPEN_CHUNK_BYTES`` leave as the pages
are listed, the header (kinds, counts, errors, deletions) with the last. A kind
that starts again or fails part way spoils the set: the FULL goes again, once
collected, as a closed set (a new set, which discards the open one). A manager
without the flag gets closed sets only; a FULL still being collected waits for
its collection, sending heartbeats meanwhile.

A single writer task sends states in order; their acks are awaited as they
come, at most ``SEND_AHEAD`` messages behind (``ack_timeout`` each); any failure
— stream error, ack timeout, protocol violation — ends the session, and the
client reconnects with jittered exponential backoff. A state acked RETRY (the
manager's storage failed) goes again, after a backoff, from this copy: listing
the API again would not help the manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from loguru import logger

from navigator import __version__, metrics
from navigator.backoff import Backoff
from navigator.config.edge import EdgeConfig
from navigator.edge.acks import AckOutOfOrder, AckTimeout, Outstanding, PendingAcks, ack_status_name
from navigator.edge.chunking import (
    OPEN_CHUNK_BYTES,
    OpenSet,
    delta_messages,
    message_limit,
    plan_full,
    size_target,
)
from navigator.edge.live import LiveFull, LivePage
from navigator.edge.messages import (
    AgainstVersions,
    Delta,
    FullSnapshot,
    HeldVersions,
    Outgoing,
    Sequencer,
    against_versions,
    encode_delta,
    encode_full,
    full_header,
    open_header,
)
from navigator.edge.outbox import Outbox
from navigator.edge.records import reencode
from navigator.interfaces import EdgeStream, Serializer, StreamClosed, Transport
from navigator.interfaces.transport import send_serialized
from navigator.protocol import PROTOCOL_VERSION
from navigator.v1 import sync_pb2

T = TypeVar("T")

#: A state's message and its sequence; sequence 0: a heartbeat sent while a FULL waits for its collection.
Message = tuple[int, sync_pb2.EdgeMessage | bytes]
#: Messages of one state sent and not acked yet, at most: the edge holds a few chunks in flight, not the state.
SEND_AHEAD = 3


class StreamState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    #: Rejected (another edge holds the cluster, grace period, ...): waiting to retry.
    STANDBY = "standby"
    CONNECTED = "connected"
    STOPPED = "stopped"


class ProtocolError(Exception):
    """The manager sent something the protocol does not allow here."""


#: Rejections the same Identify would get again: only a change of configuration (or of the manager) helps.
#: ALREADY_HELD and GRACE_PERIOD are a standby's wait, UNAVAILABLE a manager shutting down: not permanent.
PERMANENT_REJECTIONS = frozenset({"UNAUTHENTICATED", "MALFORMED", "UNSUPPORTED"})

#: What to check, per permanent rejection.
_HINTS = {
    "UNAUTHENTICATED": "check manager.token (or token_file, or the client certificate) against the manager's auth",
    "MALFORMED": "check cluster.id and edge_id",
    "UNSUPPORTED": "the edge and the manager share no protocol version or serializer: upgrade the older one",
}


class Rejected(Exception):
    def __init__(self, reject: sync_pb2.Reject) -> None:
        self.reason = reason_name(reject.reason)
        self.message = reject.message
        self.retry_after = reject.retry_after_seconds
        self.holder = reject.holder_edge_id
        super().__init__(self.describe())

    @property
    def permanent(self) -> bool:
        """Trying again with the same Identify gets the same answer."""
        return self.reason in PERMANENT_REJECTIONS

    def describe(self) -> str:
        text = self.reason
        if self.holder:
            text += f" (held by edge {self.holder})"
        if self.message:
            text += f": {self.message}"
        return text


class GaveUp(Exception):
    """The manager rejected this edge permanently ``manager.max_rejections`` times in a row: the edge stops."""

    def __init__(self, address: str, rejected: Rejected, times: int) -> None:
        self.rejected = rejected
        # Managers before 2026-12-04 rejected an unsupported protocol version as MALFORMED, naming it.
        unsupported = "protocol" in rejected.message
        hint = _HINTS["UNSUPPORTED"] if unsupported else _HINTS.get(rejected.reason, "")
        super().__init__(
            f"the manager at {address} rejected this edge {times} time(s) in a row: {rejected}"
            + (f"; {hint}" if hint else "")
        )


def reason_name(reason: int) -> str:
    try:
        return sync_pb2.RejectReason.Name(reason).removeprefix("REJECT_REASON_")  # type: ignore[arg-type]
    except ValueError:
        return f"UNKNOWN({reason})"


@dataclass(slots=True)
class StreamStats:
    """Counters tests, the demo and logs read; updated as things happen."""

    state: StreamState = StreamState.DISCONNECTED
    connect_attempts: int = 0
    accepts: int = 0
    rejects: int = 0
    last_reject: str = ""
    last_error: str = ""
    manager_id: str = ""
    serializer: str = ""
    states_sent: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    heartbeats_sent: int = 0
    applied_full: int = 0
    applied_delta: int = 0
    invalid: int = 0
    retry: int = 0
    ack_timeouts: int = 0
    last_applied_sequence: int = 0
    #: Accepted streams that continued where the last one stopped (no full resync).
    resumes: int = 0
    #: States sent again after a reconnect because the manager had not applied them.
    resent: int = 0
    #: FULL states sent against the manager's versions, and the objects they left out as unchanged.
    fulls_against_versions: int = 0
    unchanged_left_out: int = 0
    #: FULL states sent as open chunk sets while they were collected (completely: the last chunk went).
    open_sets: int = 0


@dataclass(slots=True)
class Negotiated:
    """What one accepted stream negotiated."""

    serializer: Serializer
    target: int
    limit: int
    manager_id: str
    #: Continues the previous stream: deltas may go before any FULL.
    resumed: bool = False
    #: The manager's versions, arriving after Accept (None: not asked for).
    versions: VersionsInbox | None = None
    #: The manager's heartbeat period (``Accept.heartbeat_seconds``; 0: it does not answer heartbeats).
    heartbeat: float = 0.0
    #: When the last message from the manager arrived (monotonic), and whether the writer is idle.
    last_heard: float = field(default_factory=time.monotonic)
    idle: bool = False
    #: The manager takes open chunk sets (``Accept.open_chunk_sets``): a FULL may leave while it is collected.
    open_sets: bool = False


class VersionsInbox:
    """The Versions pages the manager sends after Accept, until the last."""

    def __init__(self) -> None:
        self.held: HeldVersions = {}
        self.complete = asyncio.Event()
        #: Taken by the stream's first FULL; later ones are sent plain.
        self.used = False

    def add(self, page: sync_pb2.Versions) -> None:
        for key in page.keys:
            self.held[(key.kind, key.namespace, key.name)] = (key.uid, key.resource_version)
        if page.last:
            self.complete.set()


class StreamClient:
    """Runs the edge's side of the sync stream until stopped."""

    def __init__(
        self,
        config: EdgeConfig,
        transport: Transport,
        serializers: Mapping[str, Serializer],
        outbox: Outbox,
        sequencer: Sequencer,
        *,
        kinds: list[str],
        on_accept: Callable[[], None],
        on_resync: Callable[[], None],
        on_update: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.serializers = dict(serializers)
        self.outbox = outbox
        self.sequencer = sequencer
        self.kinds = kinds
        #: A new stream was accepted: a full resync must follow at once.
        self.on_accept = on_accept
        #: What the manager has may be incomplete: do a full resync at the next sync.
        self.on_resync = on_resync
        self.on_update = on_update
        self.stats = StreamStats()
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_every = max(1.0, config.sync.interval)
        #: Chosen once per process: a stream of another process with this edge id cannot displace this one.
        self._instance_key = os.urandom(16)
        #: The state being delivered and the sequences its messages got so far, until its ack.
        self._inflight: tuple[Outgoing, list[int]] | None = None
        #: Spaces out sending a state again after the manager answered RETRY (its storage failed).
        self._retry_backoff = Backoff(config.manager.reconnect, self._rng)
        #: Whether the last manager that accepted this edge takes open chunk sets (None: none accepted yet).
        self._open_sets: bool | None = None

    def may_take_open_sets(self) -> bool:
        """Whether a FULL should be queued when its collection starts, for an open chunk set: the last
        manager took them, or none answered yet (the first FULL; a manager without them gets it closed)."""
        return self._open_sets is None or self._open_sets

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="navigator-edge-stream")
        return self._task

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish the in-flight state within ``timeout`` (or abandon it), then close the stream."""
        self._stopping.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            logger.warning("abandoning the in-flight send after {:.1f}s to shut down", timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _update(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.stats, key, value)
        if self.on_update is not None:
            self.on_update()

    async def _unless_stopped(self, awaitable: Awaitable[T]) -> T | None:
        """Await ``awaitable`` unless stop is requested first (then cancel it and return None)."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # Our caller was cancelled (the session ended): the inner task must not outlive it, or an
            # orphaned outbox.get() would take the next state, which then is never sent.
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return None

    # -- reconnect loop --------------------------------------------------------------------

    async def run(self) -> None:
        manager = self.config.manager
        backoff = Backoff(manager.reconnect, self._rng)
        #: Permanent rejections since the last Accept or the last rejection that was a wait.
        refused = 0
        while not self._stopping.is_set():
            stream: EdgeStream | None = None
            wait = 0.0
            try:
                self._update(state=StreamState.CONNECTING, connect_attempts=self.stats.connect_attempts + 1)
                if self.stats.connect_attempts > 1:
                    metrics.count_edge_reconnect(self.config.cluster.id)
                stream = await self._unless_stopped(self._connect())
                if stream is None:
                    break
                accept = await self._unless_stopped(self._handshake(stream))
                if accept is None:
                    break
                session = await self._accepted(accept)
                refused = 0
                backoff.reset()
                await self._session(stream, session)
            except Rejected as rejected:
                metrics.count_edge_error(self.config.cluster.id, "rejected")
                refused = refused + 1 if rejected.permanent else 0
                self._update(state=StreamState.STANDBY, rejects=self.stats.rejects + 1, last_reject=str(rejected))
                limit = manager.max_rejections
                if limit and refused >= limit:
                    self._update(state=StreamState.STOPPED)
                    raise GaveUp(manager.address, rejected, refused) from None
                wait = rejected.retry_after * (1.0 + 0.1 * self._rng.random()) if rejected.retry_after else 0.0
                wait = wait or backoff.next()
                logger.warning(
                    "manager at {} rejected edge {} for cluster {}: {}; {}, retrying in {:.1f}s",
                    manager.address,
                    self.config.edge_id,
                    self.config.cluster.id,
                    rejected,
                    f"permanent rejection {refused} of {limit}" if limit and refused else "standing by",
                    wait,
                )
            except (StreamClosed, AckTimeout, AckOutOfOrder, ProtocolError, TimeoutError, OSError) as exc:
                wait = backoff.next()
                what = f"{type(exc).__name__}: {exc}" if not isinstance(exc, StreamClosed) else str(exc)
                was_connected = self.stats.state == StreamState.CONNECTED
                failure = "ack_timeout" if isinstance(exc, AckTimeout) else "stream" if was_connected else "connection"
                metrics.count_edge_error(self.config.cluster.id, failure)
                self._update(state=StreamState.DISCONNECTED, last_error=what)
                if what.startswith("cannot reach the manager"):  # the transport named address and reason
                    logger.warning("{}; reconnecting in {:.1f}s", what, wait)
                else:
                    logger.warning(
                        "{} manager at {}: {}; reconnecting in {:.1f}s",
                        "lost the stream to" if was_connected else "cannot connect to",
                        manager.address,
                        what or "stream closed",
                        wait,
                    )
            finally:
                if stream is not None:
                    await self._close(stream)
            if self._stopping.is_set():
                break
            await self._unless_stopped(asyncio.sleep(wait))
        self._update(state=StreamState.STOPPED)

    async def _connect(self) -> EdgeStream:
        timeout = self.config.manager.connect_timeout
        try:
            # The transport keeps its own timeout and then names the reason (a probe takes a few seconds more).
            return await asyncio.wait_for(self.transport.connect(self.config.manager.endpoint()), timeout + 10.0)
        except TimeoutError:
            raise StreamClosed(f"no connection within {timeout:.1f}s") from None

    def _identify(self) -> sync_pb2.EdgeMessage:
        identify = sync_pb2.Identify(
            protocol_version=PROTOCOL_VERSION,
            cluster_id=self.config.cluster.id,
            edge_id=self.config.edge_id,
            metadata=self.config.cluster.metadata,
            token=self.config.manager.resolved_token() or "",
            serializers=list(self.serializers),
            sync_interval_seconds=self.config.sync.interval,
            edge_version=__version__,
            kinds=self.kinds,
            want_versions=self.stats.last_applied_sequence == 0,
            instance_key=self._instance_key,
        )
        return sync_pb2.EdgeMessage(identify=identify)

    async def _handshake(self, stream: EdgeStream) -> sync_pb2.Accept:
        await stream.send(self._identify())
        timeout = self.config.manager.connect_timeout
        try:
            reply = await asyncio.wait_for(stream.recv(), timeout)
        except TimeoutError:
            raise StreamClosed(f"no answer to Identify within {timeout:.1f}s") from None
        if reply is None:
            raise StreamClosed("the manager closed the stream without answering Identify")
        body = reply.WhichOneof("body")
        if body == "accept":
            return reply.accept
        if body == "reject":
            raise Rejected(reply.reject)
        raise ProtocolError(f"expected Accept or Reject, got {body}")

    async def _accepted(self, accept: sync_pb2.Accept) -> Negotiated:
        serializer = self.serializers.get(accept.serializer)
        if serializer is None:
            raise ProtocolError(
                f"the manager chose serializer {accept.serializer!r}, which this edge did not offer "
                f"({', '.join(self.serializers)})"
            )
        manager_has = accept.last_sequence
        resumed = self._resumable(manager_has)
        self.sequencer.advance_past(manager_has)
        manager = self.config.manager
        accepted_max = int(accept.max_message_bytes)
        session = Negotiated(
            serializer=serializer,
            target=size_target(manager.max_message_size, accepted_max, manager.chunk_fraction),
            limit=message_limit(manager.max_message_size, accepted_max),
            manager_id=accept.manager_id,
            resumed=resumed,
            versions=VersionsInbox() if accept.versions_follow else None,
            heartbeat=accept.heartbeat_seconds if accept.heartbeat_seconds > 0 else 0.0,
            open_sets=accept.open_chunk_sets,
        )
        self._open_sets = accept.open_chunk_sets
        inflight, self._inflight = self._inflight, None
        if resumed:
            again = inflight is not None and (not inflight[1] or inflight[1][-1] > manager_has)
            if again and inflight is not None:
                await self.outbox.put_first(inflight[0])
            plan = f"resuming after state {manager_has}" + (" (sending the unacknowledged state again)" if again else "")
            self._update(resumes=self.stats.resumes + 1, resent=self.stats.resent + int(again))
            queued_full = False
        else:
            if inflight is not None and isinstance(inflight[0], FullSnapshot) and inflight[0].collecting:
                # Queued when its collection started, which goes on: it is the fresh FULL this stream needs
                # (the loop would not queue another until the one after it).
                await self.outbox.put_first(inflight[0])
            queued_full = await self.outbox.starts_with_full()
            plan = "sending the queued full state first" if queued_full else "full resync"
        self._update(
            state=StreamState.CONNECTED,
            accepts=self.stats.accepts + 1,
            manager_id=accept.manager_id,
            serializer=serializer.name,
            last_error="",
        )
        logger.info(
            "connected to manager {} at {}: cluster {} claimed by edge {} (serializer {}, messages up to {} bytes); {}",
            accept.manager_id or "?",
            manager.address,
            self.config.cluster.id,
            self.config.edge_id,
            serializer.name,
            session.limit,
            plan,
        )
        if not queued_full and not resumed:
            self.on_accept()
        return session

    def _resumable(self, manager_has: int) -> bool:
        """Whether the manager holds what this process last had applied, plus at most what it sent since.

        Deltas are idempotent (an upsert of the version held and a deletion of what is gone
        change nothing), so a state that may or may not have been applied can go again.
        """
        confirmed = self.stats.last_applied_sequence
        return 0 < confirmed <= manager_has <= self.sequencer.last

    async def _close(self, stream: EdgeStream) -> None:
        try:
            await asyncio.wait_for(stream.close(), 5.0)
        except Exception as exc:  # closing a broken stream may fail in many ways
            logger.debug("closing the stream: {!r}", exc)

    # -- one accepted stream ---------------------------------------------------------------

    async def _session(self, stream: EdgeStream, session: Negotiated) -> None:
        acks = PendingAcks()
        reader = asyncio.create_task(self._read(stream, acks, session), name="navigator-edge-reader")
        writer = asyncio.create_task(self._write(stream, acks, session), name="navigator-edge-writer")
        tasks = {reader, writer}
        if session.heartbeat:
            tasks.add(asyncio.create_task(self._watch_manager(session), name="navigator-edge-liveness"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # Prefer the writer's error: an ack timeout explains more than the reader's cancellation.
        for task in (writer, *(tasks - {writer})):
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _watch_manager(self, session: Negotiated) -> None:
        """A manager that answers heartbeats and stays silent 3 periods while the edge owes it nothing is gone
        (frozen, or a link that dropped without closing): end the stream, do not wait for an ack timeout."""
        limit = 3 * session.heartbeat
        while True:
            await asyncio.sleep(session.heartbeat / 2)
            silent = time.monotonic() - session.last_heard
            if session.idle and silent > limit:
                raise StreamClosed(f"the manager sent nothing for {silent:.1f}s (heartbeat every {session.heartbeat:g}s)")

    async def _read(self, stream: EdgeStream, acks: PendingAcks, session: Negotiated) -> None:
        while True:
            message = await stream.recv()
            if message is None:
                raise StreamClosed("the manager ended the stream")
            session.last_heard = time.monotonic()
            metrics.count_edge_bytes(self.config.cluster.id, received=message.ByteSize())
            body = message.WhichOneof("body")
            if body == "ack":
                acks.received(message.ack)
                metrics.count_edge_ack(self.config.cluster.id, message.ack.status)
            elif body == "versions":
                if session.versions is not None:
                    session.versions.add(message.versions)
            elif body == "reject":
                raise StreamClosed(f"the manager revoked the claim: {Rejected(message.reject)}")
            elif body != "heartbeat":
                logger.debug("ignoring unexpected {} from the manager", body)

    async def _next(self, session: Negotiated) -> Outgoing | None:
        """The next state to send; None when stopping; TimeoutError after an idle heartbeat interval."""
        if self._stopping.is_set():
            return None
        every = session.heartbeat or self._heartbeat_every
        session.idle = True
        # The getter runs on its own: a state it took while this task was being cancelled (the session
        # ended at that moment) or timing out goes back to the queue instead of vanishing.
        getter = asyncio.ensure_future(self.outbox.get())
        taken = False
        try:
            item = await self._unless_stopped(asyncio.wait_for(asyncio.shield(getter), every))
            taken = item is not None
            return item
        finally:
            session.idle = False
            if not taken:
                getter.cancel()
                if getter.done() and not getter.cancelled() and getter.exception() is None:
                    self.outbox.unget(getter.result())

    async def _write(self, stream: EdgeStream, acks: PendingAcks, session: Negotiated) -> None:
        sent_full = session.resumed
        while not self._stopping.is_set():
            try:
                item = await self._next(session)
            except TimeoutError:
                await stream.send(_heartbeat())
                self._update(heartbeats_sent=self.stats.heartbeats_sent + 1)
                session.idle = True  # still nothing owed: the manager's answer is what is awaited
                continue
            if item is None:
                return
            if isinstance(item, Delta) and not sent_full:
                # Older than the full resync that must come first on this stream; it covers these changes.
                continue
            delivered = await self._deliver(stream, acks, item, session)
            sent_full = sent_full or (delivered and isinstance(item, FullSnapshot))

    async def _messages(
        self, item: Outgoing, session: Negotiated, delivery: _Delivery
    ) -> AsyncGenerator[Message, None]:
        """The item's messages with their sequences, in order (sequence 0: a heartbeat, sent while a FULL
        waits for its collection); FULL chunks are built one at a time, off the event loop, as serialized bytes."""
        if isinstance(item, FullSnapshot):
            async for message in self._full_messages(item, session, delivery):
                yield message
            return
        header, upserts, deletions = encode_delta(item, self.config.cluster.id, self.config.edge_id, session.serializer)
        for state in delta_messages(header, upserts, deletions, session.target, self.sequencer):
            yield state.state.sequence, state

    async def _full_messages(
        self, item: FullSnapshot, session: Negotiated, delivery: _Delivery
    ) -> AsyncGenerator[Message, None]:
        """A FULL still being collected goes as an open set when the manager takes one; else, or when the open
        set is spoiled (a kind started again or failed), the whole FULL goes as a closed set once collected."""
        held = await self._held_versions(session)
        live = item.live
        if live is not None and session.open_sets and item.collecting and not live.spoiled:
            async for message in self._open_messages(item, live, session, held, delivery):
                yield message
            if delivery.complete:
                return
        if live is not None:
            async for heartbeat in self._until_collected(live, session):
                yield heartbeat
            if live.cancelled or live.detached or not live.finished:
                # Cancelled, let go of (the loop queues it again when collected), or this edge stops.
                delivery.cancelled = True
                return
        async for message in self._closed_messages(item, session, held):
            yield message

    async def _closed_messages(
        self, item: FullSnapshot, session: Negotiated, held: HeldVersions | None
    ) -> AsyncGenerator[Message, None]:
        """The FULL as a closed set (or one message): every chunk repeats the header and says the count."""
        cluster, edge = self.config.cluster.id, self.config.edge_id
        header, items = await asyncio.to_thread(encode_full, item, cluster, edge, session.serializer)
        if held:  # an empty manager holds nothing to leave out: the plain FULL says the same, unparsed
            whole = len(items)
            header, items = await asyncio.to_thread(against_versions, header, items, held)
            if header.ByteSize() > session.target // 4:  # deletions repeat in every chunk: too many
                header, items = await asyncio.to_thread(encode_full, item, cluster, edge, session.serializer)
            else:
                self._against_versions(len(held), whole, whole - len(items), len(header.deletions))
        del held
        plan = await asyncio.to_thread(plan_full, header, items, session.target, session.limit)
        del items
        first = 0
        for index in range(plan.count):
            sequence = self.sequencer.next()
            first = first or sequence
            yield sequence, await asyncio.to_thread(plan.build, index, sequence, first)

    async def _open_messages(
        self,
        item: FullSnapshot,
        live: LiveFull,
        session: Negotiated,
        held: HeldVersions | None,
        delivery: _Delivery,
    ) -> AsyncGenerator[Message, None]:
        """The FULL as an open set while it is collected: a chunk of about ``session.target`` bytes (at most
        ``OPEN_CHUNK_BYTES``) whenever the pages listed so far fill one, then, once the collection ended, the
        last chunk with the header. Returns early (``delivery.complete`` unset) when the set is spoiled, the
        edge stops, or the deletions would take the last chunk over the target (the closed set goes plain)."""
        cluster, edge = self.config.cluster.id, self.config.edge_id
        target = min(session.target, OPEN_CHUNK_BYTES)
        chunks = OpenSet(open_header(item, cluster, edge), target, session.limit)
        against = AgainstVersions(held) if held else None
        every = session.heartbeat or self._heartbeat_every
        cursor = 0
        quiet_since = time.monotonic()
        logger.info("sending the full state as an open chunk set while it is collected")
        while True:
            while chunks.ready and not live.spoiled:
                sequence = self.sequencer.next()
                delivery.opened = True
                yield sequence, await asyncio.to_thread(chunks.build, chunks.ready.popleft(), sequence)
                quiet_since = time.monotonic()
            if live.spoiled or self._stopping.is_set():
                return
            if cursor < len(live.pages):
                cursor = await asyncio.to_thread(
                    _take, chunks, live.pages, cursor, len(live.pages), against, session.serializer
                )
                continue
            if live.finished:
                break
            if not await self._woken(live.changed(), quiet_since + every - time.monotonic()):
                yield 0, _heartbeat()
                quiet_since = time.monotonic()
        header = full_header(item, cluster, edge)
        if against is not None:
            against.finish(header)
            if header.ByteSize() > session.target:  # they go once, in the last chunk: as big as any chunk
                logger.info("too many deletions for the open chunk set: sending the full state again, plain")
                return
            self._against_versions(len(against.held), against.seen, against.left_out, len(header.deletions))
        chunks.finish(header)
        while chunks.ready:
            sequence = self.sequencer.next()
            yield sequence, await asyncio.to_thread(chunks.build, chunks.ready.popleft(), sequence)
        sequence = self.sequencer.next()
        delivery.opened = delivery.complete = True
        self._update(open_sets=self.stats.open_sets + 1)
        yield sequence, await asyncio.to_thread(chunks.build, chunks.rest(), sequence, header)

    async def _until_collected(self, live: LiveFull, session: Negotiated) -> AsyncGenerator[Message, None]:
        """Heartbeats while the FULL's collection runs (the manager would take silence for a dead edge)."""
        every = session.heartbeat or self._heartbeat_every
        while not live.finished and not live.detached and not self._stopping.is_set():
            if not await self._woken(live.changed(), every):
                yield 0, _heartbeat()

    async def _woken(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for ``event`` or a stop request, at most ``timeout``; False when the time ran out."""
        if timeout <= 0:
            return False
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())}
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return bool(done)

    def _against_versions(self, held: int, whole: int, left_out: int, deletions: int) -> None:
        self._update(
            fulls_against_versions=self.stats.fulls_against_versions + 1,
            unchanged_left_out=self.stats.unchanged_left_out + left_out,
        )
        logger.info(
            "full state against the manager's {} versions: {} of {} objects differ, {} deletions",
            held,
            whole - left_out,
            whole,
            deletions,
        )

    async def _held_versions(self, session: Negotiated) -> HeldVersions | None:
        """The manager's versions for this stream's first FULL (then never again); None without them."""
        inbox = session.versions
        if inbox is None or inbox.used:
            return None
        inbox.used = True  # the reader keeps filling it until the last page
        try:
            await asyncio.wait_for(inbox.complete.wait(), self.config.manager.ack_timeout)
        except TimeoutError:
            logger.warning("the manager's versions did not arrive within the ack timeout; sending a plain full state")
            return None
        held, inbox.held = inbox.held, {}
        return held

    async def _deliver(
        self, stream: EdgeStream, acks: PendingAcks, item: Outgoing, session: Negotiated
    ) -> bool:
        """Send every message of ``item`` while their acks come back (at most ``SEND_AHEAD`` unacked), then
        act on the outcome. False when the state was abandoned: its collection was cancelled, or the edge stops."""
        timeout = self.config.manager.ack_timeout
        started = time.monotonic()
        size = 0
        outstanding = Outstanding()
        delivery = _Delivery()
        self._inflight = (item, outstanding.sequences)
        waiter = asyncio.ensure_future(acks.outcome(outstanding, timeout))
        full = isinstance(item, FullSnapshot)
        try:
            async with contextlib.aclosing(self._messages(item, session, delivery)) as messages:
                async for sequence, message in messages:
                    if isinstance(message, bytes):
                        length = len(message)
                        sending = send_serialized(stream, message)
                    else:
                        length = message.ByteSize()
                        sending = stream.send(message)
                    del message
                    if sequence:
                        size += length
                        outstanding.add(sequence)
                    try:
                        await asyncio.wait_for(sending, timeout)
                    except TimeoutError:
                        what = f"state {sequence}" if sequence else "a heartbeat"
                        raise AckTimeout(f"the manager did not take {what} within {timeout:.1f}s") from None
                    if not sequence:
                        self._update(heartbeats_sent=self.stats.heartbeats_sent + 1)
                        continue
                    await _ahead(outstanding, waiter)
                    if full and outstanding.refused is not None:
                        break  # the manager refused the set part-way: it refuses the rest too
            sequences = outstanding.sequences
            self._update(
                states_sent=self.stats.states_sent + int(not delivery.cancelled),
                messages_sent=self.stats.messages_sent + len(sequences),
                bytes_sent=self.stats.bytes_sent + size,
            )
            metrics.count_edge_bytes(self.config.cluster.id, sent=size)
            outstanding.end()
            final = await waiter
        except AckTimeout:
            self._update(ack_timeouts=self.stats.ack_timeouts + 1)
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await waiter
        self._inflight = None
        if delivery.cancelled:
            logger.info("the full state being collected was let go of after {} chunk(s)", len(sequences))
            return False
        if final is None:
            return True
        self._acked(item, len(sequences), final, size, time.monotonic() - started)
        if final.status == sync_pb2.ACK_STATUS_RETRY:
            # The manager's storage failed, not the data: the same state goes again, from this copy,
            # after a backoff; listing the whole API again would not help and costs the cluster.
            # Until it is queued again it stays in flight: a stream that ends during the backoff
            # (the manager restarted) sends it again when it resumes, instead of losing it.
            self._inflight = (item, sequences)
            wait = self._retry_backoff.next()
            if await self._unless_stopped(asyncio.sleep(wait, True)):
                await self.outbox.put_first(item)
                self._inflight = None
        elif final.status == sync_pb2.ACK_STATUS_APPLIED:
            self._retry_backoff.reset()
        elif delivery.opened and isinstance(item, FullSnapshot) and item.live is not None and not item.live.spoiled:
            # Refused as an open set (it may have outlived the manager's limits.chunk_timeout while the API was
            # slow): once more as a closed set, which the manager judges on its own; not again after that.
            item.live.spoil(f"the manager refused the open set: {final.error}")
            await self.outbox.put_first(item)
        return True

    def _acked(self, item: Outgoing, messages: int, ack: sync_pb2.Ack, size: int, took: float) -> None:
        full = isinstance(item, FullSnapshot)
        label = "FULL" if full else "DELTA"
        status = ack.status
        if status == sync_pb2.ACK_STATUS_APPLIED:
            if full:
                self._update(applied_full=self.stats.applied_full + 1, last_applied_sequence=ack.sequence)
            else:
                self._update(applied_delta=self.stats.applied_delta + 1, last_applied_sequence=ack.sequence)
            log = logger.info if full or item.object_count else logger.debug
            log(
                "sync {} applied: seq {}, {} objects, {} bytes in {} message(s), +{} ~{} -{}, {:.2f}s",
                label,
                ack.sequence,
                item.object_count,
                size,
                messages,
                ack.added,
                ack.modified,
                ack.deleted,
                took,
                kind=label,
                sequence=ack.sequence,
                objects=item.object_count,
                bytes=size,
                added=ack.added,
                modified=ack.modified,
                deleted=ack.deleted,
                seconds=round(took, 3),
            )
            return
        if status == sync_pb2.ACK_STATUS_INVALID:
            self._update(invalid=self.stats.invalid + 1)
            logger.error("the manager rejected {} state {} as invalid: {}", label, ack.sequence, ack.error)
            if not full:
                self.on_resync()
            return
        if status == sync_pb2.ACK_STATUS_RETRY:
            self._update(retry=self.stats.retry + 1)
            logger.warning(
                "the manager could not apply {} state {} ({}); sending it again after a backoff",
                label,
                ack.sequence,
                ack.error,
            )
            return
        raise ProtocolError(f"state {ack.sequence} acked {ack_status_name(status)}, expected a final status")


@dataclass(slots=True)
class _Delivery:
    """What a state's messages tell its delivery."""

    #: An open set's first chunk went, and its last one.
    opened: bool = False
    complete: bool = False
    #: The FULL's collection was cancelled or let go of (or the edge stops) before it could all be sent:
    #: no outcome is owed.
    cancelled: bool = False


def _heartbeat() -> sync_pb2.EdgeMessage:
    message = sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat())
    message.heartbeat.time.GetCurrentTime()
    return message


def _take(
    chunks: OpenSet,
    pages: Sequence[LivePage],
    start: int,
    end: int,
    against: AgainstVersions | None,
    serializer: Serializer,
) -> int:
    """Give ``pages[start:end]`` to the open set until a chunk is ready; where to go on (in a worker thread:
    another serializer than the collection's, or leaving out what the manager holds, parses every object)."""
    for index in range(start, end):
        page = pages[index]
        items: Iterable[bytes] = page
        if page.serializer.name != serializer.name:
            items = (reencode(item, page.serializer, serializer) for item in items)
        if against is not None:
            items = filter(against.differs, items)
        chunks.add(items)
        if chunks.ready:
            return index + 1
    return end


async def _ahead(outstanding: Outstanding, waiter: asyncio.Future[sync_pb2.Ack | None]) -> None:
    """Wait until fewer than ``SEND_AHEAD`` messages are unacked (back-pressure: the manager applies as fast as
    it can, the edge builds no more chunks meanwhile); raises what ended the wait for acks."""
    while outstanding.unacked >= SEND_AHEAD and not waiter.done():
        changed = asyncio.ensure_future(outstanding.changed().wait())
        waits: list[asyncio.Future[Any]] = [waiter, changed]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
    if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
        raise waiter.exception()  # type: ignore[misc]
