"""Applying a validated state: the reconciler decides what changed, the backend writes it, on one thread.

Storage calls run on a single dedicated worker thread: the backend sees one
writer at a time (so applies from different edges never interleave, and the
reconciler's index needs no lock) and the event loop keeps serving streams and
queries while a big snapshot commits. States of different clusters queued
together share one transaction when the backend can (group commit, see
``StorageWorker``): in a reconnect storm the COMMIT is paid once per group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from navigator.interfaces import ClusterRecord, Serializer, StorageBackend
from navigator.interfaces.storage import BatchingStorageBackend, batch_writes
from navigator.manager import partial
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import StateSet
from navigator.resource import Change

T = TypeVar("T")


#: A group commit's bounds: the states applied in one transaction, and their objects (the first
#: state of a group is taken whatever its size). Small enough that a lone DELTA behind a group
#: waits for tens of milliseconds, not seconds.
GROUP_STATES = 32
GROUP_OBJECTS = 20_000
#: Calls of at most this many objects join a group before bigger ones queued ahead of them.
SMALL = 100
#: How far down the queue a group's calls are looked for.
GROUP_SCAN = 1024


@dataclass(frozen=True, slots=True)
class Grouping:
    """How a call may join a group commit: whose cluster it writes, how big it is, how to forget it."""

    backend: StorageBackend
    cluster: str
    #: Objects the call writes (a state's resources and deletions): bounds the group.
    weight: int
    #: On the storage thread, when the group's COMMIT failed after this call's writes succeeded:
    #: drop what the call remembered of them (the reconciler's index of the cluster).
    undo: Callable[[], None] | None = None


@dataclass(slots=True)
class _Job:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    grouping: Grouping | None


class StorageWorker:
    """The one thread every storage write (and the reads that must follow them) goes through.

    Calls run one at a time in the order they were made. Calls made with ``call_grouped``
    that are queued back to back, on a backend with group commit (``BatchingStorageBackend``),
    run in one transaction (``GROUP_STATES``, ``GROUP_OBJECTS``, one call per cluster): under
    a burst of states the storage thread pays one COMMIT per group instead of one per state.
    Each call still reports its own outcome (a call that raised was undone alone), and no call
    of a group reports success before the COMMIT did; a failed COMMIT fails every call that
    had succeeded. Without group commit, or when nothing else is queued, a call is alone.
    """

    def __init__(self) -> None:
        self._jobs: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        #: While a group runs (on the storage thread): what waits for its end (``after_group``).
        self._after: list[Callable[[], None]] | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._submit(fn, args, None))

    async def call_grouped(self, grouping: Grouping, fn: Callable[..., T], *args: Any) -> T:
        """``call``, allowed to share a transaction with the calls queued next to it."""
        return await asyncio.wrap_future(self._submit(fn, args, grouping))

    def after_group(self, callback: Callable[[], None]) -> None:
        """On the storage thread: run ``callback`` once the current call's group has committed or
        failed (at once outside a group), so that nothing waiting on it resumes before the COMMIT."""
        if self._after is None:
            callback()
        else:
            self._after.append(callback)

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], grouping: Grouping | None) -> Future[Any]:
        future: Future[Any] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="navigator-storage_0", daemon=True)
                self._thread.start()
            self._jobs.append(_Job(future, fn, args, grouping))
            self._wake.notify()
        return future

    def shutdown(self) -> None:
        """Run what is queued, then stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._closed:
                    self._wake.wait()
                if not self._jobs:
                    return
                group = self._take()
            if len(group) == 1:
                _run_alone(group[0])
            else:
                self._run_group(group)
            del group

    def _take(self) -> list[_Job]:
        """The next call, and the grouped calls queued behind it that may share its transaction.

        Small calls first (a DELTA, a claim: ``SMALL``), then in queue order, from the calls
        queued before the first one that may not join (another backend, or not grouped: nothing
        passes that). A call never passes an earlier call of its cluster, so each cluster's
        calls run in the order they were made; other clusters' small states may pass a big one,
        which keeps the copies of clusters already synced fresh while a storm's first states queue.
        """
        first = self._jobs.popleft()
        grouping = first.grouping
        if grouping is None or not self._jobs or not isinstance(grouping.backend, BatchingStorageBackend):
            return [first]
        window: list[_Job] = []
        while self._jobs and len(window) < GROUP_SCAN:
            following = self._jobs[0].grouping
            if following is None or following.backend is not grouping.backend:
                break
            window.append(self._jobs.popleft())
        group, weight = {0: first}, grouping.weight
        for small in (True, False):
            clusters = {grouping.cluster}  # those of every call before the one looked at, taken or not
            for i, job in enumerate(window, 1):
                g = cast(Grouping, job.grouping)
                if i not in group and g.cluster not in clusters and (g.weight <= SMALL or not small):
                    if len(group) >= GROUP_STATES:
                        break
                    if weight + g.weight <= GROUP_OBJECTS:
                        group[i] = job
                        weight += g.weight
                clusters.add(g.cluster)
        self._jobs.extendleft(reversed([job for i, job in enumerate(window, 1) if i not in group]))
        return [group[i] for i in sorted(group)]

    def _run_group(self, group: list[_Job]) -> None:
        started = [job for job in group if job.future.set_running_or_notify_cancel()]
        if not started:
            return
        backend = cast(Grouping, started[0].grouping).backend
        outcomes: list[tuple[_Job, bool, Any]] = []
        self._after = []
        try:
            with batch_writes(backend):
                for job in started:
                    try:
                        outcomes.append((job, True, job.fn(*job.args)))
                    except BaseException as exc:  # undone alone (a savepoint): the group goes on
                        outcomes.append((job, False, exc))
        except BaseException as exc:  # the COMMIT failed: nothing of the group is stored
            for i, (job, ok, _) in enumerate(outcomes):
                if ok:
                    outcomes[i] = (job, False, exc)
                    undo = cast(Grouping, job.grouping).undo
                    if undo is not None:
                        undo()
            applied = {id(job) for job, _, _ in outcomes}
            outcomes += [(job, False, exc) for job in started if id(job) not in applied]
        finally:
            after, self._after = self._after, None
            for callback in after:
                callback()
        for job, ok, value in outcomes:
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
        del outcomes


def _run_alone(job: _Job) -> None:
    if not job.future.set_running_or_notify_cancel():
        return
    try:
        result = job.fn(*job.args)
    except BaseException as exc:
        job.future.set_exception(exc)
    else:
        job.future.set_result(result)


def record_status_changed(record: ClusterRecord, state: StateSet) -> bool:
    """Whether the cluster's errors change with this state: worth a row in the history at once."""
    return {e.kind for e in record.errors} != {e.kind for e in state.errors} or bool(
        {e.kind for e in record.errors} & set(state.kinds)
    )


async def apply_state(
    worker: StorageWorker,
    reconciler: Reconciler,
    record: ClusterRecord,
    state: StateSet,
    serializer: Serializer,
    clock: Callable[[], datetime],
    record_cluster: bool = False,
) -> tuple[ClusterRecord, list[Change]]:
    """Persist ``state`` in one transaction; returns the updated cluster record and what changed.

    The record comes back as saved, with the copy's freshness (``fresh_as_of``, ``lag``:
    see ``Reconciler``). The time applied (``last_sync``, the changes' ``applied_at``) is read from ``clock``
    on the storage thread when the apply starts, not when the state arrived: a state
    that waited in the queue behind other clusters' applies is as fresh as it is stored.
    Raises ``InvalidState`` when a payload does not decode (nothing stored) and
    whatever the backend raised when it failed (nothing stored either), also when the
    COMMIT of the group the state was applied in failed.
    """

    def stamped() -> tuple[ClusterRecord, list[Change]]:
        now = clock()
        updated = dataclasses.replace(
            record,
            last_sync=now,
            last_seen=now,
            last_sequence=state.sequence,
            errors=partial.merge_errors(record.errors, state, now),
        )
        return reconciler.apply_with_record(updated, state, serializer, now, state.observed_at, record_cluster)

    if state.staged is not None and state.staged.writer is not None:
        # Alone: its write is finished on another thread, which a group's open transaction would block.
        return await worker.call(stamped)
    weight = state.object_count
    grouping = Grouping(reconciler.backend, record.cluster, weight, lambda: reconciler.forget(record.cluster))
    return await worker.call_grouped(grouping, stamped)
