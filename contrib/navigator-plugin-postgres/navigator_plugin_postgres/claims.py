"""Cluster claims shared by every manager on the database: one edge per cluster, whichever manager it reaches.

A claim is a row in ``cluster_claims``: the edge holding the cluster, the
manager serving it and a lease. The manager renews its leases on a heartbeat;
if it dies, its leases run out and the cluster counts as released at that
moment, so the grace period follows and then another edge may take it. All
decisions use the database clock and row locks, never a manager's own clock.

Each claim takes the row's next ``epoch`` (a new row starts above the epoch the
cluster's record was last written under): the fencing token every write of the
claim carries, and that writes of older claims are refused against (``clusters.fence``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import psycopg
from loguru import logger
from psycopg_pool import ConnectionPool

from navigator.plugin import Claim, ClaimOutcome, Holding, StorageError
from navigator_plugin_postgres import retry
from navigator_plugin_postgres.connection import open_pool
from navigator_plugin_postgres.options import PostgresOptions

T = TypeVar("T")

#: When a claim stopped protecting its edge: at release, or when the lease ran out.
_RELEASED = "CASE WHEN connected AND expires_at <= clock_timestamp() THEN expires_at ELSE released_at END"
_LIVE = "(connected AND expires_at > clock_timestamp())"
_LEASE = "clock_timestamp() + %(ttl)s * interval '1 second'"

INSERT = f"""
INSERT INTO cluster_claims (cluster, edge_id, manager_id, connected, since, released_at, expires_at, epoch)
VALUES (%(cluster)s, %(edge)s, %(manager)s, true, clock_timestamp(), NULL, {_LEASE},
        coalesce((SELECT epoch FROM clusters WHERE cluster = %(cluster)s), 0) + 1)
ON CONFLICT (cluster) DO NOTHING
RETURNING epoch
"""

CURRENT = f"""
SELECT edge_id, {_LIVE},
       extract(epoch FROM ({_RELEASED}) + %(grace)s * interval '1 second' - clock_timestamp())
FROM cluster_claims WHERE cluster = %(cluster)s
FOR UPDATE
"""

TAKE = f"""
UPDATE cluster_claims
SET edge_id = %(edge)s, manager_id = %(manager)s, connected = true, since = clock_timestamp(),
    released_at = NULL, expires_at = {_LEASE}, epoch = epoch + 1
WHERE cluster = %(cluster)s
RETURNING epoch
"""

RELEASE = """
UPDATE cluster_claims SET connected = false, released_at = least(clock_timestamp(), expires_at)
WHERE cluster = %(cluster)s AND edge_id = %(edge)s AND manager_id = %(manager)s AND connected
"""

RENEW = f"""
UPDATE cluster_claims SET expires_at = {_LEASE}
WHERE cluster = %(cluster)s AND edge_id = %(edge)s AND manager_id = %(manager)s AND connected
RETURNING cluster
"""

# Renews many claims at once (``renew_many``: a manager's renewal pass over its sessions).
RENEW_MANY = f"""
WITH mine AS (
    SELECT cluster COLLATE "C" AS cluster, edge_id
    FROM unnest(%(clusters)s::text[], %(edges)s::text[]) AS m(cluster, edge_id)
)
UPDATE cluster_claims c SET expires_at = {_LEASE}
FROM mine m
WHERE c.manager_id = %(manager)s AND c.connected AND c.cluster = m.cluster AND c.edge_id = m.edge_id
RETURNING c.cluster, c.edge_id
"""

# Renews the claims this manager serves; a row still marked as ours that we no longer serve
# (its release failed during a database outage) is released here, or it would block its cluster.
HEARTBEAT = f"""
WITH mine AS (
    SELECT cluster COLLATE "C" AS cluster, edge_id
    FROM unnest(%(clusters)s::text[], %(edges)s::text[]) AS m(cluster, edge_id)
), renewed AS (
    UPDATE cluster_claims c SET expires_at = {_LEASE}
    FROM mine m
    WHERE c.manager_id = %(manager)s AND c.connected AND c.cluster = m.cluster AND c.edge_id = m.edge_id
    RETURNING c.cluster, c.edge_id
), stale AS (
    UPDATE cluster_claims c SET connected = false, released_at = least(clock_timestamp(), c.expires_at)
    WHERE c.manager_id = %(manager)s AND c.connected
      AND NOT EXISTS (SELECT 1 FROM mine m WHERE m.cluster = c.cluster AND m.edge_id = c.edge_id)
    RETURNING c.cluster
)
SELECT cluster, edge_id FROM renewed
"""

RELEASE_ALL = """
UPDATE cluster_claims SET connected = false, released_at = least(clock_timestamp(), expires_at)
WHERE manager_id = %(manager)s AND connected
"""

HOLDINGS = f"""
SELECT cluster, edge_id, manager_id, {_LIVE}, extract(epoch FROM since),
       extract(epoch FROM ({_RELEASED}))
FROM cluster_claims ORDER BY cluster
"""


class PostgresClaims:
    """A ``ClusterClaims`` whose claims are rows with leases, renewed by a heartbeat thread."""

    def __init__(self, options: PostgresOptions, manager_id: str, grace_period: float) -> None:
        self.manager_id = manager_id
        self.grace_period = float(grace_period)
        # Its own small pool: a long snapshot on the storage pool must not delay a heartbeat.
        # Opened on first use, with the heartbeat, so an unused claims costs nothing.
        # Few, short retries: a manager deciding on a connecting edge should not wait long.
        self.options = options.model_copy(
            update={
                "pool_min_size": 1,
                "pool_max_size": 2,
                "retry_attempts": min(options.retry_attempts, 2),
                "retry_initial_backoff": min(options.retry_initial_backoff, 0.1),
                "retry_max_backoff": min(options.retry_max_backoff, 0.5),
            }
        )
        self._pool: ConnectionPool | None = None
        #: The claims this manager serves: (cluster, edge id) -> monotonic time the database
        #: last extended the lease.
        self._held: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        #: Claims and heartbeats take turns: a heartbeat must not see a claim that committed
        #: before it was recorded in ``_held``, and release it as stale.
        self._turns = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._heartbeat_loop, name=f"navigator-postgres-leases-{manager_id}", daemon=True
        )

    def _connected(self) -> ConnectionPool:
        with self._lock:
            if self._stop.is_set():
                raise StorageError("postgres cluster claims is closed")
            if self._pool is None:
                self._pool = open_pool(self.options)
                self._thread.start()
            return self._pool

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"manager": self.manager_id, "ttl": self.options.lease_ttl, "grace": self.grace_period, **extra}

    def _run(self, what: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        return retry.run(self._connected(), self.options, what, work)

    def _renewed_now(self, cluster: str, edge_id: str) -> None:
        with self._lock:
            self._held[(cluster, edge_id)] = time.monotonic()

    def _forget(self, cluster: str, edge_id: str) -> None:
        with self._lock:
            self._held.pop((cluster, edge_id), None)

    def claim(self, cluster: str, edge_id: str) -> Claim:
        params = self._params(cluster=cluster, edge=edge_id)

        def work(conn: psycopg.Connection[Any]) -> Claim:
            if (inserted := conn.execute(INSERT, params).fetchone()) is not None:
                return Claim(ClaimOutcome.ACCEPTED, epoch=int(inserted[0]))
            row = conn.execute(CURRENT, params).fetchone()
            assert row is not None  # the insert conflicted and rows are never deleted
            holder, live, wait = row[0], bool(row[1]), float(row[2] or 0.0)
            if holder != edge_id:
                if live:
                    return Claim(ClaimOutcome.ALREADY_HELD, holder_edge_id=holder)
                if wait > 0:
                    return Claim(ClaimOutcome.GRACE_PERIOD, holder_edge_id=holder, retry_after=wait)
            taken = conn.execute(TAKE, params).fetchone()
            assert taken is not None
            return Claim(ClaimOutcome.ACCEPTED, epoch=int(taken[0]))

        with self._turns:
            claim = self._run(f"claiming cluster {cluster}", work)
            if claim.accepted:
                self._renewed_now(cluster, edge_id)
        return claim

    def release(self, cluster: str, edge_id: str) -> None:
        """Never raises: if the database is unreachable now, the next heartbeat releases it."""
        self._forget(cluster, edge_id)
        try:
            self._run(
                f"releasing cluster {cluster}",
                lambda conn: conn.execute(RELEASE, self._params(cluster=cluster, edge=edge_id)),
            )
        except StorageError as exc:
            logger.warning("postgres: {}; the next heartbeat releases it", exc)

    def renew(self, cluster: str, edge_id: str) -> bool:
        """``False`` once another manager or edge took the claim; a database outage is not a loss
        until the lease would have run out."""
        params = self._params(cluster=cluster, edge=edge_id)
        try:
            held = self._run(
                f"renewing the claim on {cluster}", lambda conn: conn.execute(RENEW, params).fetchone() is not None
            )
        except StorageError as exc:
            with self._lock:
                renewed = self._held.get((cluster, edge_id))
            still_valid = renewed is not None and time.monotonic() - renewed < self.options.lease_ttl
            logger.warning("postgres: {}; claim counted as {}", exc, "held" if still_valid else "lost")
            return still_valid
        if held:
            self._renewed_now(cluster, edge_id)
        else:
            self._forget(cluster, edge_id)
        return held

    def renew_many(self, held: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """``renew`` of every (cluster, edge id) in one statement; returns those still held."""
        pairs = list(dict.fromkeys(held))
        if not pairs:
            return set()
        params = self._params(clusters=[c for c, _ in pairs], edges=[e for _, e in pairs])
        try:
            rows = self._run(
                f"renewing {len(pairs)} claims", lambda conn: conn.execute(RENEW_MANY, params).fetchall()
            )
        except StorageError as exc:
            now = time.monotonic()
            with self._lock:
                valid = {p for p in pairs if now - self._held.get(p, -math.inf) < self.options.lease_ttl}
            logger.warning("postgres: {}; {} of {} claims counted as held", exc, len(valid), len(pairs))
            return valid
        kept = {(cluster, edge_id) for cluster, edge_id in rows}
        now = time.monotonic()
        with self._lock:
            for pair in pairs:
                if pair in kept:
                    self._held[pair] = now
                else:
                    self._held.pop(pair, None)
        return kept

    def holdings(self) -> Mapping[str, Holding]:
        def work(conn: psycopg.Connection[Any]) -> dict[str, Holding]:
            result = {}
            for cluster, edge_id, manager_id, live, since, released in conn.execute(HOLDINGS):
                result[cluster] = Holding(
                    cluster=cluster,
                    edge_id=edge_id,
                    manager_id=manager_id,
                    connected=bool(live),
                    since=float(since),
                    released_at=None if live or released is None else float(released),
                )
            return result

        return self._run("reading cluster claims", work)

    def _heartbeat(self) -> None:
        with self._turns:
            with self._lock:
                held = list(self._held)
            params = self._params(clusters=[c for c, _ in held], edges=[e for _, e in held])
            rows = self._run("renewing leases", lambda conn: conn.execute(HEARTBEAT, params).fetchall())
            now = time.monotonic()
            with self._lock:
                for key in map(tuple, rows):
                    if key in self._held:
                        self._held[key] = now

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.options.heartbeat_interval):
            try:
                self._heartbeat()
            except StorageError as exc:
                logger.warning("postgres: {}; retrying at the next heartbeat", exc)

    def close(self) -> None:
        """Stop renewing and release what this manager still holds (a graceful shutdown)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            pool, self._pool = self._pool, None
        if pool is None:
            return
        self._thread.join()
        try:
            retry.run(pool, self.options, "releasing claims", lambda conn: conn.execute(RELEASE_ALL, self._params()))
        except StorageError as exc:
            logger.warning("postgres: {}; the leases will expire on their own", exc)
        finally:
            pool.close()
