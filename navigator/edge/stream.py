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
FULL (everything queued after it builds on it), else the queue is discarded and
the sync loop is asked for a fresh full resync at once. An edge with nothing
applied yet (it just started) asks for the manager's versions (protocol 2) and
sends that first FULL against them: only the objects that differ, the
deletions, and the counts, so a restarted edge costs the wire what changed.

A single writer task sends states in order and waits for each one's ack
(``ack_timeout``); any failure — stream error, ack timeout, protocol violation —
ends the session, and the client reconnects with jittered exponential backoff.
A state acked RETRY (the manager's storage failed) goes again, after a backoff,
from this copy: listing the API again would not help the manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from loguru import logger

from navigator import __version__, metrics
from navigator.backoff import Backoff
from navigator.config.edge import EdgeConfig
from navigator.edge.acks import AckOutOfOrder, AckTimeout, PendingAcks, ack_status_name
from navigator.edge.chunking import delta_messages, message_limit, plan_full, size_target
from navigator.edge.messages import (
    Delta,
    FullSnapshot,
    HeldVersions,
    Outgoing,
    Sequencer,
    against_versions,
    encode_delta,
    encode_full,
)
from navigator.edge.outbox import Outbox
from navigator.interfaces import EdgeStream, Serializer, StreamClosed, Transport
from navigator.interfaces.transport import send_serialized
from navigator.protocol import PROTOCOL_VERSION
from navigator.v1 import sync_pb2

T = TypeVar("T")


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
        # The manager rejects an unsupported protocol version as MALFORMED; its message says which it is.
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
        )
        inflight, self._inflight = self._inflight, None
        if resumed:
            again = inflight is not None and (not inflight[1] or inflight[1][-1] > manager_has)
            if again and inflight is not None:
                await self.outbox.put_first(inflight[0])
            plan = f"resuming after state {manager_has}" + (" (sending the unacknowledged state again)" if again else "")
            self._update(resumes=self.stats.resumes + 1, resent=self.stats.resent + int(again))
            queued_full = False
        else:
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
                heartbeat = sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat())
                heartbeat.heartbeat.time.GetCurrentTime()
                await stream.send(heartbeat)
                self._update(heartbeats_sent=self.stats.heartbeats_sent + 1)
                session.idle = True  # still nothing owed: the manager's answer is what is awaited
                continue
            if item is None:
                return
            if isinstance(item, Delta) and not sent_full:
                # Older than the full resync that must come first on this stream; it covers these changes.
                continue
            await self._deliver(stream, acks, item, session)
            sent_full = sent_full or isinstance(item, FullSnapshot)

    async def _messages(
        self, item: Outgoing, session: Negotiated
    ) -> AsyncIterator[tuple[int, sync_pb2.EdgeMessage | bytes]]:
        """The item's messages with their sequences, in order; FULL chunks are built one at a time,
        off the event loop, as serialized bytes."""
        cluster, edge = self.config.cluster.id, self.config.edge_id
        if isinstance(item, FullSnapshot):
            header, items = await asyncio.to_thread(encode_full, item, cluster, edge, session.serializer)
            held = await self._held_versions(session)
            if held is not None:
                whole = len(items)
                header, items = await asyncio.to_thread(against_versions, header, items, held)
                if header.ByteSize() > session.target // 4:  # deletions repeat in every chunk: too many
                    header, items = await asyncio.to_thread(encode_full, item, cluster, edge, session.serializer)
                else:
                    self._update(
                        fulls_against_versions=self.stats.fulls_against_versions + 1,
                        unchanged_left_out=self.stats.unchanged_left_out + whole - len(items),
                    )
                    logger.info(
                        "full state against the manager's {} versions: {} of {} objects differ, {} deletions",
                        len(held),
                        len(items),
                        whole,
                        len(header.deletions),
                    )
                del held
            plan = await asyncio.to_thread(plan_full, header, items, session.target, session.limit)
            del items
            first = 0
            for index in range(plan.count):
                sequence = self.sequencer.next()
                first = first or sequence
                yield sequence, await asyncio.to_thread(plan.build, index, sequence, first)
            return
        header, upserts, deletions = encode_delta(item, cluster, edge, session.serializer)
        for message in delta_messages(header, upserts, deletions, session.target, self.sequencer):
            yield message.state.sequence, message

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
    ) -> None:
        """Send every message of ``item``, then wait for each one's ack in order."""
        timeout = self.config.manager.ack_timeout
        started = time.monotonic()
        size = 0
        sequences: list[int] = []
        self._inflight = (item, sequences)
        async for sequence, message in self._messages(item, session):
            if isinstance(message, bytes):
                size += len(message)
                sending = send_serialized(stream, message)
            else:
                size += message.ByteSize()
                sending = stream.send(message)
            sequences.append(sequence)
            try:
                await asyncio.wait_for(sending, timeout)
            except TimeoutError:
                self._update(ack_timeouts=self.stats.ack_timeouts + 1)
                raise AckTimeout(f"the manager did not take state {sequence} within {timeout:.1f}s") from None
            del message
        self._update(
            states_sent=self.stats.states_sent + 1,
            messages_sent=self.stats.messages_sent + len(sequences),
            bytes_sent=self.stats.bytes_sent + size,
        )
        metrics.count_edge_bytes(self.config.cluster.id, sent=size)
        try:
            final = await acks.outcome(sequences, timeout)
        except AckTimeout:
            self._update(ack_timeouts=self.stats.ack_timeouts + 1)
            raise
        self._inflight = None
        if final is None:
            return
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
