"""The PostgreSQL ``StorageBackend``: every manager sharing the database sees, and serves, the same state."""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from navigator.plugin import (
    Change,
    ClusterRecord,
    Resource,
    ResourceKey,
    ResourceQuery,
    StorageError,
    StoredResource,
)
from navigator_plugin_postgres import clusters, ingest, migrations, retry
from navigator_plugin_postgres.claims import PostgresClaims
from navigator_plugin_postgres.connection import open_pool
from navigator_plugin_postgres.options import PostgresOptions
from navigator_plugin_postgres.query import statement, to_stored

T = TypeVar("T")

#: Rows fetched per round trip while streaming a query: amortises latency, bounds memory.
FETCH_SIZE = 1000


class PostgresBackend:
    def __init__(self, options: PostgresOptions) -> None:
        self.options = options
        self._pool: ConnectionPool = open_pool(options)
        # Query results stream while the caller consumes them; their connections come from
        # a pool of their own so a slow reader never holds up a snapshot.
        readers = options.model_copy(
            update={"pool_min_size": min(1, options.pool_min_size), "pool_max_size": options.query_pool_size}
        )
        self._read_pool: ConnectionPool = open_pool(readers)
        self._closed = False

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
            self._pool.close()
            self._read_pool.close()

    def apply_snapshot(
        self, cluster: ClusterRecord, kinds: Collection[str], resources: Sequence[Resource]
    ) -> list[Change]:
        resources = _materialise(resources)
        ingest.check_kinds(kinds, resources)

        def work(conn: psycopg.Connection[Any]) -> list[Change]:
            changes = ingest.apply_snapshot(conn, cluster.cluster, kinds, resources)
            clusters.save(conn, cluster)
            return changes

        return self._run(f"applying a snapshot of {cluster.cluster}", work)

    def apply_delta(
        self, cluster: ClusterRecord, upserts: Sequence[Resource], deletions: Sequence[ResourceKey]
    ) -> list[Change]:
        upserts = _materialise(upserts)
        deletions = _materialise(deletions)

        def work(conn: psycopg.Connection[Any]) -> list[Change]:
            changes = ingest.apply_delta(conn, cluster.cluster, upserts, deletions)
            clusters.save(conn, cluster)
            return changes

        return self._run(f"applying a delta to {cluster.cluster}", work)

    def save_cluster(self, cluster: ClusterRecord) -> None:
        self._run(f"saving cluster {cluster.cluster}", lambda conn: clusters.save(conn, cluster))

    def get_cluster(self, cluster: str) -> ClusterRecord | None:
        def work(conn: psycopg.Connection[Any]) -> ClusterRecord | None:
            row = conn.execute(clusters.SELECT + " WHERE cluster = %s", [cluster]).fetchone()
            return clusters.from_row(row) if row is not None else None

        return self._run(f"reading cluster {cluster}", work)

    def list_clusters(self) -> list[ClusterRecord]:
        def work(conn: psycopg.Connection[Any]) -> list[ClusterRecord]:
            return [clusters.from_row(row) for row in conn.execute(clusters.SELECT + " ORDER BY cluster")]

        return self._run("listing clusters", work)

    def counts(self, cluster: str) -> dict[str, int]:
        def work(conn: psycopg.Connection[Any]) -> dict[str, int]:
            rows = conn.execute(
                "SELECT kind, count(*) FROM resources WHERE cluster = %s GROUP BY kind ORDER BY kind", [cluster]
            )
            return {kind: int(n) for kind, n in rows}

        return self._run(f"counting resources of {cluster}", work)

    def query(self, query: ResourceQuery) -> Generator[StoredResource, None, None]:
        """Streams through a server-side cursor: one statement, so one consistent snapshot.

        ``close()`` the generator (or drop it) to give the connection back early.
        """
        if self._closed:
            raise StorageError("postgres storage is closed")
        text, params = statement(query)

        def work(conn: psycopg.Connection[Any]) -> Iterator[StoredResource]:
            with conn.cursor(name="navigator_query") as cursor:
                cursor.execute(text, params)
                while rows := cursor.fetchmany(FETCH_SIZE):
                    yield from map(to_stored, rows)

        return retry.stream(self._read_pool, self.options, "querying resources", work)

    def create_claims(self, manager_id: str, grace_period: float) -> PostgresClaims:
        return PostgresClaims(self.options, manager_id, grace_period)


def _materialise(items: Iterable[T]) -> Sequence[T]:
    """A retry needs the input twice: read any iterator once, before touching the database."""
    return items if isinstance(items, Sequence) else list(items)
