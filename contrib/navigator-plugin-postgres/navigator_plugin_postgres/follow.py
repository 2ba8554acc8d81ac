"""Changes other managers commit, fanned out through the database: ``NOTIFY`` on apply, ``LISTEN`` here.

Every apply that writes history rows ends, inside its transaction, with one
``pg_notify`` on the schema's channel (``announce``). PostgreSQL delivers it only
if the transaction commits, to every listening session, in commit order; the
payload (well under the 8000-byte limit) names the manager that applied, the
cluster, and how to find the rows again in ``history``: their applied times,
their count and the transaction that wrote them (each row's ``xmin``; reading the
history sequence would need a privilege a role limited to reading and writing
rows does not have). The history rows are the changes exactly as the reconciler
made them, so nothing is duplicated into the message.

Each manager runs one ``Follower``: a thread on a connection of its own that
listens on the channel, skips its own manager's notifications, reads the rows
each other notification names and hands them to ``deliver``. A lost connection is
reopened with backoff; after a short outage the follower reads the history
written while it was away (``Follower._recovered``), so nothing committed
meanwhile is lost.

With history off (``history.retention: off``) an apply writes no rows to read
back: its notification says so, and followers log once per such manager that its
changes do not reach their watchers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from loguru import logger
from psycopg import sql

from navigator.plugin import Backoff, Change
from navigator_plugin_postgres.connection import connect_follower, describe_error
from navigator_plugin_postgres.history import COLUMNS, to_change
from navigator_plugin_postgres.options import PostgresOptions

#: Payload format; a follower ignores (and logs once) notifications of a format it does not know.
FORMAT = 1
#: Longest manager id sent as it is; a longer one is sent as a digest (payloads stay far below 8000 bytes).
LONGEST_ID = 200
#: Longest wait for a notification before looking at ``stop()`` again: how promptly a follower stops.
POLL = 0.25
#: Rows read per round trip, and the most changes per ``deliver`` call.
BATCH = 1000
#: After a lost connection, changes committed up to this long before it was last seen alive are
#: read again (covering applies that were running then, and clocks a little apart).
CATCH_UP_MARGIN = timedelta(minutes=2)
#: An outage longer than this is not caught up (logged instead): the history read would be large,
#: and the record of what was already delivered does not reach back that far.
CATCH_UP_LIMIT = 300.0
#: How long (seconds) an apply is remembered as delivered or as this manager's own.
REMEMBER = CATCH_UP_LIMIT + 2 * CATCH_UP_MARGIN.total_seconds()
#: At most this many applies are remembered (about 150 bytes each): the oldest go first. Only a
#: catch-up after an outage, at hundreds of applies a second, could then deliver one twice.
REMEMBER_AT_MOST = 200_000

# One statement, one round trip: the payload is built on the server, with the id of this
# transaction as the rows' ``xmin`` shows it (the 32-bit xid: txid_current() also counts epochs).
# The history rows must be written by the transaction itself, not under a savepoint (whose rows
# carry the subtransaction's id): the tests of this module would see nothing delivered.
_XID = "(txid_current() %% 4294967296)::text"
ANNOUNCE = f"""
SELECT pg_notify(%(channel)s, json_build_object(
    'v', 1, 'm', %(manager)s::text, 'c', %(cluster)s::text,
    'from', %(first)s::timestamptz, 'to', %(last_at)s::timestamptz, 'n', %(count)s::bigint, 'x', {_XID}
)::text), {_XID}
"""

ANNOUNCE_UNRECORDED = """
SELECT pg_notify(%(channel)s, json_build_object('v', 1, 'm', %(manager)s::text, 'c', %(cluster)s::text,
    'n', 0)::text)
"""

# The rows of one apply: its cluster's rows at its applied times (the primary key finds them)
# that its transaction wrote. In apply order.
READ = f"""
SELECT {COLUMNS} FROM history
WHERE applied_at BETWEEN %(first)s AND %(last_at)s AND cluster = %(cluster)s AND xmin::text = %(xid)s
ORDER BY id
"""

# What was applied since a time, one group per apply (per cluster and transaction), in the
# order the ids were taken: per cluster, the commit order (applies of a cluster take a lock).
APPLIES_SINCE = """
SELECT cluster, min(applied_at), max(applied_at), count(*), xmin::text FROM history
WHERE applied_at >= %s AND id > %s
GROUP BY cluster, xmin::text ORDER BY max(id)
"""

# The newest id committed lately, read once the follower listens: whatever it missed later has a
# higher one. (The recent rows only, through the primary key: ``max(id)`` alone reads the table.)
NEWEST_ID = "SELECT coalesce(max(id), 0) FROM history WHERE applied_at >= statement_timestamp() - %s"


def channel(schema: str) -> str:
    """The notification channel of one schema: the Navigator deployments in a database stay apart."""
    name = f"navigator_changes_{schema}"
    if len(name) > 63:  # NAMEDATALEN: a longer channel name is an error
        name = "navigator_changes_" + hashlib.blake2b(schema.encode(), digest_size=16).hexdigest()
    return name


def manager_tag(manager_id: str) -> str:
    """How a manager is named in payloads: its id, or a digest of a very long one."""
    if len(manager_id.encode()) <= LONGEST_ID:
        return manager_id
    return "#" + hashlib.blake2b(manager_id.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Apply:
    """Where one apply's history rows are: what a notification says and a catch-up finds."""

    manager: str
    cluster: str
    count: int
    first: datetime | None = None
    last_at: datetime | None = None
    #: The transaction that wrote the rows, as their ``xmin`` reads.
    xid: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.cluster, self.xid

    @property
    def recorded(self) -> bool:
        return self.count > 0 and self.first is not None and self.last_at is not None and bool(self.xid)


def announce(
    conn: psycopg.Connection[Any],
    schema: str,
    manager_id: str,
    cluster: str,
    written: tuple[datetime, datetime] | None,
    count: int,
) -> str | None:
    """Tell the other managers, on commit, about the ``count`` history rows this apply wrote.

    ``written``: their earliest and latest applied times, ``None`` when history is off (the
    notification then only says that this manager changed ``cluster``). Returns the
    transaction id the rows carry.
    """
    params = {"channel": channel(schema), "manager": manager_tag(manager_id), "cluster": cluster}
    if written is None:
        conn.execute(ANNOUNCE_UNRECORDED, params)
        return None
    row = conn.execute(ANNOUNCE, {**params, "first": written[0], "last_at": written[1], "count": count}).fetchone()
    return str(row[1]) if row is not None else None


def parse(payload: str) -> Apply | None:
    """A notification's payload, or ``None`` when it is not one this follower understands."""
    try:
        body = orjson.loads(payload)
        if body.get("v") != FORMAT:
            return None
        count = int(body.get("n", 0))
        if count <= 0:
            return Apply(str(body["m"]), str(body["c"]), 0)
        return Apply(
            str(body["m"]), str(body["c"]), count,
            datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"]), str(body["x"]),
        )  # fmt: skip
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None


class Remembered:
    """Applies seen to, for a while, so that a catch-up skips them: those a follower delivered
    (its own record), and those its manager applied (the backend's, written on the storage thread).
    """

    def __init__(
        self, keep_for: float = REMEMBER, at_most: int = REMEMBER_AT_MOST, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep_for = keep_for
        self._at_most = at_most
        self._clock = clock
        self._lock = threading.Lock()
        self._order: deque[tuple[float, tuple[str, str]]] = deque()
        self._keys: set[tuple[str, str]] = set()

    def add(self, key: tuple[str, str]) -> None:
        now = self._clock()
        with self._lock:
            if key not in self._keys:
                self._keys.add(key)
                self._order.append((now, key))
            while self._order and (self._order[0][0] < now - self._keep_for or len(self._order) > self._at_most):
                self._keys.discard(self._order.popleft()[1])

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys


class Follower:
    """One thread that listens for other managers' applies and delivers their changes."""

    def __init__(
        self,
        options: PostgresOptions,
        manager_id: str,
        deliver: Callable[[Sequence[Change]], None],
        own: Remembered,
        *,
        poll: float = POLL,
    ) -> None:
        self.options = options
        self.manager = manager_tag(manager_id)
        self.channel = channel(options.schema_name)
        self._deliver = deliver
        #: This manager's applies (recorded by the backend as it applies) and what this follower delivered.
        self._own = own
        self._delivered = Remembered()
        self._poll = poll
        self._stopped = threading.Event()
        #: Held around each ``deliver``: once ``stop()`` has it, no ``deliver`` follows.
        self._delivering = threading.Lock()
        self._listening = threading.Event()
        self._warned: set[str] = set()
        #: The server's clock when the connection was last known to work (a catch-up starts there).
        self._alive_at: datetime | None = None
        #: The newest history id visible when the first ``LISTEN`` was in place: nothing up to it is owed.
        self._floor: int | None = None
        #: The apply being read and how many of its changes were delivered: one cut off by a lost
        #: connection is finished first thing after the reconnect.
        self._reading: tuple[Apply, int] | None = None
        #: The listening connection's server process, while there is one (tests end it on purpose).
        self.backend_pid: int | None = None
        self._thread = threading.Thread(target=self._run, name="navigator-postgres-follow", daemon=True)

    def start(self, wait: float) -> bool:
        """Start listening; ``True`` once the ``LISTEN`` is in place (within ``wait`` seconds)."""
        self._thread.start()
        return self._listening.wait(wait)

    def stop(self) -> None:
        """No ``deliver`` after this returns; the thread ends within about ``POLL`` seconds.

        Waits for a ``deliver`` call in progress, and a little for the thread (one still
        connecting ends when the connection attempt does, delivering nothing).
        """
        with self._delivering:
            self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=4 * self._poll + 1.0)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(self.options.retry_backoff)
        lost_at: float | None = None  # monotonic time the connection was lost, while it is
        while not self._stopped.is_set():
            try:
                with connect_follower(self.options) as conn:
                    self.backend_pid = conn.info.backend_pid
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    alive_before, self._alive_at = self._alive_at, _server_time(conn)
                    if self._floor is None:
                        self._floor = _newest_id(conn)
                        logger.info("postgres: following the changes other managers apply (channel {})", self.channel)
                    if lost_at is not None:
                        self._recovered(conn, time.monotonic() - lost_at, alive_before)
                        lost_at = None
                    backoff.reset()
                    self._listening.set()
                    self._listen(conn)
            except psycopg.Error as exc:
                if self._stopped.is_set():
                    break
                if lost_at is None:
                    lost_at = time.monotonic()
                wait = backoff.next()
                logger.warning(
                    "postgres: the connection following other managers' changes failed ({}); "
                    "reconnecting in {:.2f}s", describe_error(exc), wait,
                )  # fmt: skip
                self._stopped.wait(wait)
            except Exception:
                # A bug, not the database: say so loudly, and keep following after a pause. The
                # apply being read is given up (reading it again would only fail again).
                logger.exception("postgres: following other managers' changes failed")
                self._reading = None
                if lost_at is None:
                    lost_at = time.monotonic()
                self._stopped.wait(backoff.next())
            finally:
                self.backend_pid = None

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        checked = time.monotonic()
        while not self._stopped.is_set():
            # Notifications that came in while a batch was read are returned first.
            for note in list(conn.notifies(timeout=self._poll, stop_after=1)):
                self._handle(conn, note.payload)
                if self._stopped.is_set():
                    return
            if time.monotonic() - checked >= self.options.heartbeat_interval:
                # Notices a dead connection while nothing happens; dates the catch-up after one.
                self._alive_at = _server_time(conn)
                checked = time.monotonic()

    def _handle(self, conn: psycopg.Connection[Any], payload: str) -> None:
        apply = parse(payload)
        if apply is None:
            self._warn_once("format", "postgres: ignoring a change notification of an "
                            "unknown format (a newer navigator-plugin-postgres on another manager?)")  # fmt: skip
            return
        if apply.manager == self.manager:
            return  # this manager's own: its watchers had them from the apply itself
        if not apply.recorded:
            self._warn_once(
                f"unrecorded:{apply.manager}",
                f"postgres: manager {apply.manager} keeps no history (history.retention: off), so the "
                f"changes it applies are not delivered to watchers on this manager",
            )
            return
        if apply.key in self._delivered:
            return  # already read by a catch-up
        self._delivered.add(apply.key)
        self._read(conn, apply)

    def _read(self, conn: psycopg.Connection[Any], apply: Apply, skip: int = 0) -> None:
        """Deliver the changes of ``apply`` from its history rows, ``BATCH`` at a time,
        leaving out the first ``skip`` (delivered before the connection was lost)."""
        params = {"cluster": apply.cluster, "first": apply.first, "last_at": apply.last_at, "xid": apply.xid}
        delivered, found = skip, 0
        self._reading = (apply, delivered)
        for batch in _batches(conn, READ, params, apply.count):
            start = max(0, delivered - found)
            found += len(batch)
            if start < len(batch):
                self._hand_over(batch[start:] if start else batch)
                delivered = found
                self._reading = (apply, delivered)
            if self._stopped.is_set():
                return
        self._reading = None
        if found < apply.count:
            logger.warning(
                "postgres: {} of the {} changes manager {} applied to {} were pruned from the history "
                "before they could be read; watchers on this manager miss them",
                apply.count - found, apply.count, apply.manager, apply.cluster,
            )  # fmt: skip

    def _hand_over(self, changes: Sequence[Change]) -> None:
        with self._delivering:
            if self._stopped.is_set():
                return
            try:
                self._deliver(changes)
            except Exception:
                logger.exception("postgres: delivering {} changes of other managers failed", len(changes))

    def _recovered(self, conn: psycopg.Connection[Any], outage: float, alive_at: datetime | None) -> None:
        """Back after an outage: deliver what other managers committed meanwhile (listening already).

        ``alive_at``: the server's time when the lost connection last answered.
        """
        if self._reading is not None:  # the rest of the apply the outage cut off comes first
            apply, delivered = self._reading
            self._read(conn, apply, skip=delivered)
        if alive_at is None or outage > CATCH_UP_LIMIT:
            logger.warning(
                "postgres: following other managers' changes again after {:.1f}s; changes they "
                "committed meanwhile are not delivered to watchers on this manager", outage,
            )  # fmt: skip
            return
        since = alive_at - CATCH_UP_MARGIN
        missed = [
            Apply("", cluster, int(count), first, last_at, xid)
            for cluster, first, last_at, count, xid in conn.execute(APPLIES_SINCE, [since, self._floor or 0])
            if (cluster, xid) not in self._delivered and (cluster, xid) not in self._own
        ]
        for apply in missed:
            self._delivered.add(apply.key)
            self._read(conn, apply)
            if self._stopped.is_set():
                return
        logger.warning(
            "postgres: following other managers' changes again after {:.1f}s; delivered the {} "
            "applies committed meanwhile", outage, len(missed),
        )  # fmt: skip

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)


def _server_time(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute("SELECT statement_timestamp()").fetchone()
    return row[0] if row is not None else None


def _newest_id(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(NEWEST_ID, [CATCH_UP_MARGIN]).fetchone()
    return int(row[0]) if row is not None else 0


def _batches(
    conn: psycopg.Connection[Any], text: str, params: dict[str, Any], expected: int
) -> Iterator[list[Change]]:
    """The rows of ``text`` as changes, ``BATCH`` at a time.

    Up to ``BATCH`` rows expected (most applies): one round trip. More: through a server-side
    cursor, so memory stays bounded.
    """
    if expected <= BATCH:
        rows = conn.execute(text, params).fetchall()
        if rows:
            yield [to_change(row) for row in rows]
        return
    with conn.transaction(), conn.cursor(name="navigator_follow") as cursor:
        cursor.execute(text, params)
        while rows := cursor.fetchmany(BATCH):
            yield [to_change(row) for row in rows]
            if len(rows) < BATCH:
                break
