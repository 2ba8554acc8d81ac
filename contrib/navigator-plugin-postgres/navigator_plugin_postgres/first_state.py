"""A cluster's first state written while its chunks arrive (``FirstStateWriter``).

The state's objects are COPYed into ``resources`` chunk by chunk, on a connection of
its own and from a thread of its own, inside one transaction that commits when the
manager finishes the state: the server parses and indexes chunk k while the manager
receives and checks chunk k+1, and no reader sees any of it before the commit (a
rollback, or the connection closing, leaves nothing). The cluster's advisory lock is
taken first, as every apply does, and the cluster must hold no objects.

Each such write holds a connection outside the pools for its duration: at most
``MAX_OPEN`` at once per backend; past that, a first state is written by ``apply``
when complete, as every other state.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg

from navigator.plugin import ClusterRecord, StorageError, StoredObject
from navigator_plugin_postgres import clusters, ingest
from navigator_plugin_postgres.connection import connect_writer, describe_error
from navigator_plugin_postgres.options import PostgresOptions

#: First states written as they arrive at once, per backend (each holds a connection and a thread).
MAX_OPEN = 4
#: A write the manager never finished nor aborted (it should not happen) ends on the server after this.
IDLE_LIMIT = "15min"

#: What the backend does after the commit of a state with history (or without): tell other managers.
Announce = Callable[[psycopg.Connection[Any], ClusterRecord, "tuple[datetime, datetime] | None", int], None]

_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))"


def begin(options: PostgresOptions, cluster: str, slots: threading.BoundedSemaphore, announce: Announce) -> FirstState | None:
    """A write of ``cluster``'s first state, or ``None`` (no slot free, the cluster locked by another
    writer or holding objects): the state is then written by ``apply``."""
    if not slots.acquire(blocking=False):
        return None
    try:
        conn = connect_writer(options)
    except BaseException:
        slots.release()
        raise
    try:
        conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{IDLE_LIMIT}'")
        locked = conn.execute(_TRY_LOCK, [ingest.CLUSTER_LOCK_CLASS, cluster]).fetchone()
        if not (locked and locked[0]) or conn.execute(ingest.ANY_OBJECT, [cluster]).fetchone() is not None:
            _close(conn, slots)
            return None
    except psycopg.Error as exc:
        _close(conn, slots)
        raise StorageError(f"postgres: beginning the first state of {cluster}: {describe_error(exc)}") from exc
    except BaseException:
        _close(conn, slots)
        raise
    return FirstState(conn, cluster, slots, announce)


def _close(conn: psycopg.Connection[Any], slots: threading.BoundedSemaphore) -> None:
    """Roll back (closing does) and give the slot back; never raises."""
    try:
        conn.close()
    except Exception:  # the connection may be broken already: closed either way
        pass
    finally:
        slots.release()


class FirstState:
    """One first state being written: ``write`` per chunk, then ``finish`` or ``abort``.

    The connection is only ever used from the write's own thread (COPYs, the commit, closing),
    in the order asked; ``abort`` from elsewhere only cancels what the server is doing.
    """

    def __init__(
        self, conn: psycopg.Connection[Any], cluster: str, slots: threading.BoundedSemaphore, announce: Announce
    ) -> None:
        self._conn = conn
        self._cluster = cluster
        self._announce = announce
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="navigator-postgres-first-state")
        self._copies: list[Future[Any]] = []
        self._written = 0
        self._lock = threading.Lock()
        #: Set by ``finish`` (when it starts) or ``abort``: no more writes; ``abort`` leaves a finish alone.
        self._over = False
        self._released = False
        # Dropped without finish or abort (a bug): the connection is closed, which rolls back.
        self._closer = weakref.finalize(self, _close, conn, slots)

    def write(self, objects: Sequence[StoredObject]) -> None:
        self._check_copies()
        with self._lock:
            if self._over:
                raise StorageError(f"postgres: the first state of {self._cluster} is no longer being written")
            self._written += len(objects)
            self._copies.append(self._thread.submit(ingest.copy_objects, self._conn, objects, False, self._cluster))

    def _check_copies(self) -> None:
        """Raise the failure of a COPY that has ended, if one has (the write is then aborted)."""
        for copy in self._copies:
            if copy.done() and copy.exception() is not None:
                self.abort()
                raise _failed(self._cluster, "writing", copy.exception())

    def finish(
        self,
        cluster: ClusterRecord,
        count: int,
        applied_at: datetime,
        observed_at: datetime | None,
        history: bool,
        record_cluster: bool = False,
    ) -> None:
        try:
            with self._lock:
                if self._over:
                    raise StorageError(f"postgres: the first state of {self._cluster} was abandoned")
                self._over = True
            for copy in self._copies:
                exc = copy.exception()
                if exc is not None:
                    raise _failed(self._cluster, "writing", exc)
            if self._written != count:
                raise StorageError(
                    f"postgres: the first state of {self._cluster}: {self._written} objects written, {count} to store"
                )
            times = (applied_at, observed_at) if history else None
            self._thread.submit(self._commit, cluster, count, times, record_cluster).result()
        finally:
            self._release()

    def _commit(
        self, cluster: ClusterRecord, count: int, times: tuple[datetime, datetime | None] | None, record_cluster: bool
    ) -> None:
        """The history (``times``: applied and observed, when kept), the record, the commit."""
        conn = self._conn
        try:
            written = ingest.history_of_first_state(conn, cluster.cluster, *times) if times is not None else None
            clusters.save(conn, cluster)
            if record_cluster:
                clusters.save_copy(conn, cluster, datetime.now(UTC))
            self._announce(conn, cluster, written, count if times is not None else 0)
            conn.commit()
        except psycopg.Error as exc:
            raise _failed(self._cluster, "finishing", exc) from exc

    def abort(self) -> None:
        with self._lock:
            if self._over:
                return
            self._over = True
        # A COPY under way stops now; asked from a thread of its own, so that abort never waits.
        threading.Thread(target=_cancel, args=(self._conn,), name="navigator-postgres-cancel", daemon=True).start()
        self._release()

    def _release(self) -> None:
        """Close the connection (rolling back what was not committed) once its thread is done with it."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self._thread.submit(self._closer)
        self._thread.shutdown(wait=False)


def _cancel(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(Exception):  # the connection is gone, or no answer: it is closed anyway
        conn.cancel_safe(timeout=5.0)


def _failed(cluster: str, doing: str, exc: BaseException | None) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    reason = describe_error(exc) if isinstance(exc, psycopg.Error) else str(exc)
    return StorageError(f"postgres: {doing} the first state of {cluster} failed: {reason}")
