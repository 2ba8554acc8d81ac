"""The PostgreSQL ``StorageBackend``: every manager sharing the database sees, and serves, the same state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import starmap
from typing import Any, TypeVar

import psycopg
from loguru import logger
from psycopg import sql
from psycopg_pool import ConnectionPool

from navigator.plugin import (
    Change,
    ClusterRecord,
    HistoryQuery,
    ObjectVersion,
    Resource,
    ResourceKey,
    ResourceQuery,
    StorageError,
    StoredObject,
    StoredResource,
)
from navigator_plugin_postgres import clusters, first_state, follow, ingest, migrations, retry
from navigator_plugin_postgres import history as history_sql
from navigator_plugin_postgres.claims import PostgresClaims
from navigator_plugin_postgres.connection import open_pool
from navigator_plugin_postgres.options import PostgresOptions
from navigator_plugin_postgres.query import statement, to_stored

T = TypeVar("T")

#: Rows fetched per round trip while streaming a query: amortises latency, bounds memory.
FETCH_SIZE = 1000
#: The same for ``versions``: small rows, and the reconciler reads them all at once.
VERSIONS_FETCH_SIZE = 20_000

VERSIONS = "SELECT kind, namespace, name, uid, resource_version, digest FROM resources WHERE cluster = %s"

READ = """
SELECT r.cluster, r.kind, r.namespace, r.name, r.uid, r.resource_version, r.labels, r.data
FROM resources r JOIN unnest(%(kinds)s::text[], %(namespaces)s::text[], %(names)s::text[]) AS k(kind, namespace, name)
  ON r.kind = k.kind COLLATE "C" AND r.namespace = k.namespace COLLATE "C" AND r.name = k.name COLLATE "C"
WHERE r.cluster = %(cluster)s
"""


class PostgresBackend:
    def __init__(self, options: PostgresOptions) -> None:
        self.options = options
        self._pool: ConnectionPool = open_pool(options)
        # Query results stream while the caller consumes them; their connections come from
        # a pool of their own so a slow reader never holds up a snapshot.
        readers = options.model_copy(
            update={"pool_min_size": min(1, options.pool_min_size), "pool_max_size": options.query_pool_size}
        )
        self._read_pool: ConnectionPool = open_pool(readers, writes=False)
        self._closed = False
        #: Named in the change notifications of this manager's applies (``follow_changes``, ``create_claims``).
        self._manager_id = ""
        #: This manager's own applies, which a follower's catch-up after a reconnect must not deliver.
        self._own = follow.Remembered()
        self._followers: list[follow.Follower] = []
        self._said_unrecorded = False
        #: Slots for first states written as they arrive (``begin_first_state``).
        self._first_states = threading.BoundedSemaphore(first_state.MAX_OPEN)

    def _run(self, what: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        if self._closed:
            raise StorageError("postgres storage is closed")
        return retry.run(self._pool, self.options, what, work)

    def migrate(self) -> None:
        schema = self.options.schema_name

        def work(conn: psycopg.Connection[Any]) -> list[int]:
            try:
                return migrations.migrate(conn, schema)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise StorageError(
                    f"postgres: cannot create Navigator's tables in schema {schema!r}: {exc}. "
                    f"Grant CREATE on the database (or the schema), or have a role that may "
                    f"start one manager once to migrate"
                ) from None

        self._run("migrating the schema", work)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for follower in list(self._followers):
                follower.stop()
            self._pool.close()
            self._read_pool.close()

    def versions(self, cluster: str) -> Iterator[ObjectVersion]:
        """Key columns and digests only, streamed: the payloads stay in the database.

        Part of the write path (the reconciler reads them when an edge claims the cluster),
        so it uses the writers' pool: slow query readers never hold it up.
        """
        if self._closed:
            raise StorageError("postgres storage is closed")

        def work(conn: psycopg.Connection[Any]) -> Iterator[ObjectVersion]:
            with conn.cursor(name="navigator_versions") as cursor:
                cursor.execute(VERSIONS, [cluster])
                while rows := cursor.fetchmany(VERSIONS_FETCH_SIZE):
                    yield from starmap(ObjectVersion, rows)

        return retry.stream(self._pool, self.options, f"reading the versions of {cluster}", work)

    def read(self, cluster: str, keys: Collection[ResourceKey]) -> list[Resource]:
        wanted = list({(k.kind, k.namespace, k.name): None for k in keys})
        if not wanted:
            return []
        params = {
            "cluster": cluster,
            "kinds": [k[0] for k in wanted],
            "namespaces": [k[1] for k in wanted],
            "names": [k[2] for k in wanted],
        }

        def work(conn: psycopg.Connection[Any]) -> list[Resource]:
            return [to_stored(row).resource for row in conn.execute(READ, params)]

        return self._run(f"reading {len(wanted)} objects of {cluster}", work)

    def apply(
        self,
        cluster: ClusterRecord,
        upserts: Sequence[StoredObject],
        deletions: Collection[ResourceKey],
        history: Sequence[Change] | None,
        record_cluster: bool = False,
    ) -> None:
        upserts = _materialise(upserts)
        deletions = _materialise(deletions)
        history = _materialise(history) if history is not None else None
        now = datetime.now(UTC)
        if history is None and not self._said_unrecorded and (upserts or deletions):
            self._said_unrecorded = True
            logger.warning(
                "postgres: history is off on this manager (history.retention: off), so other managers "
                "sharing the database cannot show its changes to their watchers"
            )

        def work(conn: psycopg.Connection[Any]) -> None:
            written = ingest.apply(conn, cluster, upserts, deletions, history, record_cluster, now)
            if written is not None or (history is None and (upserts or deletions)):
                self._announce(conn, cluster, written, len(history) if history is not None else 0)

        self._run(f"applying a state to {cluster.cluster}", work)

    def _announce(
        self, conn: psycopg.Connection[Any], record: ClusterRecord, written: tuple[datetime, datetime] | None, count: int
    ) -> None:
        """Delivered to the other managers' followers if, and when, this transaction commits."""
        manager_id = self._manager_id or record.manager_id
        xid = follow.announce(conn, self.options.schema_name, manager_id, record.cluster, written, count)
        if xid is not None:
            self._own.add((record.cluster, xid))

    def begin_first_state(self, cluster: str) -> first_state.FirstState | None:
        """``FirstStateWriter``: the state's objects COPYed as its chunks arrive (``first_state``)."""
        if self._closed:
            raise StorageError("postgres storage is closed")
        return first_state.begin(self.options, cluster, self._first_states, self._announce)

    def save_cluster(self, cluster: ClusterRecord) -> None:
        self._run(f"saving cluster {cluster.cluster}", lambda conn: clusters.save(conn, cluster))

    def get_cluster(self, cluster: str, at: datetime | None = None) -> ClusterRecord | None:
        return self._run(f"reading cluster {cluster}", lambda conn: clusters.get(conn, cluster, at))

    def list_clusters(self, at: datetime | None = None) -> list[ClusterRecord]:
        return self._run("listing clusters", lambda conn: clusters.list_all(conn, at))

    def counts(self, cluster: str) -> dict[str, int]:
        def work(conn: psycopg.Connection[Any]) -> dict[str, int]:
            rows = conn.execute(
                "SELECT kind, count(*) FROM resources WHERE cluster = %s GROUP BY kind ORDER BY kind",
                [cluster],
            )
            return {kind: int(n) for kind, n in rows}

        return self._run(f"counting resources of {cluster}", work)

    def query(self, query: ResourceQuery) -> Generator[StoredResource, None, None]:
        """Streams through a server-side cursor: one statement, so one consistent snapshot.

        ``close()`` the generator (or drop it) to give the connection back early.
        """
        text, params = statement(query)
        return self._stream("querying resources", text, params, to_stored)

    def history(self, query: HistoryQuery) -> Generator[Change, None, None]:
        """Streams like ``query``, newest first."""
        text, params = history_sql.statement(query)
        return self._stream("reading the history", text, params, history_sql.to_change)

    def prune_history(self, before: datetime, max_rows: int | None) -> int:
        return self._run("pruning the history", lambda conn: history_sql.prune(conn, before, max_rows))

    def _stream(
        self, what: str, text: sql.Composed, params: list[Any], convert: Callable[[tuple[Any, ...]], T]
    ) -> Generator[T, None, None]:
        if self._closed:
            raise StorageError("postgres storage is closed")

        def work(conn: psycopg.Connection[Any]) -> Iterator[T]:
            with conn.cursor(name="navigator_query") as cursor:
                cursor.execute(text, params)
                while rows := cursor.fetchmany(FETCH_SIZE):
                    yield from map(convert, rows)

        return retry.stream(self._read_pool, self.options, what, work)

    def create_claims(self, manager_id: str, grace_period: float) -> PostgresClaims:
        self._manager_id = self._manager_id or manager_id
        return PostgresClaims(self.options, manager_id, grace_period)

    def follow_changes(self, manager_id: str, deliver: Callable[[Sequence[Change]], None]) -> Callable[[], None]:
        """``ChangeFollower``: deliver what other managers sharing the schema commit (``follow``).

        Returns once the listening connection is in place, or after ``connect_timeout``
        (logged; it keeps trying in the background).
        """
        if self._closed:
            raise StorageError("postgres storage is closed")
        self._manager_id = manager_id
        follower = follow.Follower(self.options, manager_id, deliver, self._own)
        self._followers.append(follower)
        if not follower.start(wait=self.options.connect_timeout):
            logger.warning(
                "postgres: could not listen for other managers' changes within {}s; still trying",
                self.options.connect_timeout,
            )

        def stop() -> None:
            follower.stop()
            if follower in self._followers:
                self._followers.remove(follower)

        return stop


def _materialise(items: Iterable[T]) -> Sequence[T]:
    """A retry needs the input twice: read any iterator once, before touching the database."""
    return items if isinstance(items, Sequence) else list(items)
