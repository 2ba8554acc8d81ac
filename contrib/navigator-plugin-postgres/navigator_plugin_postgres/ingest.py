"""Writing states set-based: COPY into a staging table, then three statements (delete, update, insert).

Only rows whose uid, resource_version or payload moved are written, so a
re-sent snapshot of 150,000 mostly unchanged pods touches a few hundred rows.
Change detection is joins in the database that return only what changed,
never a Python loop over the stored rows.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import orjson
import psycopg

from navigator.plugin import Change, ChangeType, Resource, ResourceKey, StorageError
from navigator_plugin_postgres.connection import STAGING_TABLE

#: Arbitrary class id for per-cluster advisory locks (the two-key space never meets the migration lock).
_CLUSTER_LOCK_CLASS = 0x4E41

#: Same JSON text, same digest: a payload that changed without a new resource_version (a collector
#: upgrade) is still rewritten, and an unchanged one is compared without parsing its JSON. Computed
#: by the client while it encodes (CRC-32), so the server spends nothing on it.
_DIGEST = "s.digest"
_SAME_KEY = "o.cluster = %(cluster)s AND o.kind = s.kind AND o.namespace = s.namespace AND o.name = s.name"

# Each statement touches a disjoint set of rows (vanished, existing-and-changed, new),
# so they run one after the other in the caller's transaction without interfering.
REMOVE_VANISHED = f"""
DELETE FROM resources o
WHERE o.cluster = %(cluster)s AND o.kind = ANY(%(kinds)s::text[])
  AND NOT EXISTS (SELECT 1 FROM {STAGING_TABLE} s WHERE {_SAME_KEY})
RETURNING o.kind, o.namespace, o.name, o.uid, o.resource_version
"""

# ``o`` is the row before the update (the self-join reads the statement's snapshot): the old version.
UPDATE_CHANGED = f"""
UPDATE resources r
SET uid = d.uid, resource_version = d.resource_version, labels = d.labels::jsonb, data = d.data::jsonb,
    digest = d.digest
FROM (
    SELECT s.kind, s.namespace, s.name, s.uid, s.resource_version, s.labels, s.data, {_DIGEST} AS digest,
           o.uid AS old_uid, o.resource_version AS old_rv
    FROM {STAGING_TABLE} s JOIN resources o ON {_SAME_KEY}
    WHERE o.uid <> s.uid OR o.resource_version <> s.resource_version OR o.digest <> {_DIGEST}
) d
WHERE r.cluster = %(cluster)s AND r.kind = d.kind AND r.namespace = d.namespace AND r.name = d.name
RETURNING d.kind, d.namespace, d.name, d.uid, d.old_uid, d.old_rv, d.resource_version
"""

INSERT_NEW = f"""
INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, labels, data, digest)
SELECT %(cluster)s, s.kind, s.namespace, s.name, s.uid, s.resource_version, s.labels::jsonb, s.data::jsonb,
       {_DIGEST}
FROM {STAGING_TABLE} s
WHERE NOT EXISTS (SELECT 1 FROM resources o WHERE {_SAME_KEY})
RETURNING kind, namespace, name, uid, resource_version
"""

DELETE = """
DELETE FROM resources r
USING unnest(%(kinds)s::text[], %(namespaces)s::text[], %(names)s::text[], %(uids)s::text[])
      AS d(kind, namespace, name, uid)
WHERE r.cluster = %(cluster)s AND r.kind = d.kind COLLATE "C" AND r.namespace = d.namespace COLLATE "C"
  AND r.name = d.name COLLATE "C" AND (d.uid = '' OR r.uid = d.uid)
RETURNING r.kind, r.namespace, r.name, r.uid, r.resource_version
"""


def lock_cluster(conn: psycopg.Connection[Any], cluster: str) -> None:
    """Serialise writers of one cluster (two managers briefly both applying during a hand-over).

    Taken after staging, so the COPY does not extend the time the lock is held.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_CLUSTER_LOCK_CLASS, cluster])


def _latest_per_key(resources: Sequence[Resource]) -> Iterable[Resource]:
    """Duplicates of one key in a state: the last one wins, as if applied in order."""
    latest = {(r.kind, r.namespace, r.name): r for r in resources}
    return resources if len(latest) == len(resources) else latest.values()


def stage(conn: psycopg.Connection[Any], resources: Sequence[Resource]) -> int:
    """COPY ``resources`` into this session's staging table; JSON is encoded on the way."""
    dumps, crc = orjson.dumps, zlib.crc32
    count = 0
    columns = "kind, namespace, name, uid, resource_version, labels, data, digest"
    with conn.cursor().copy(f"COPY {STAGING_TABLE} ({columns}) FROM STDIN") as copy:
        for r in _latest_per_key(resources):
            try:
                labels = dumps(r.labels)
                data = dumps(r.data)
            except TypeError as exc:
                raise StorageError(
                    f"{r.kind} {r.namespace}/{r.name}: labels and data must be JSON-compatible ({exc})"
                ) from None
            digest = crc(data, crc(labels))
            copy.write_row(
                (r.kind, r.namespace, r.name, r.uid, r.resource_version, labels.decode(), data.decode(), digest)
            )
            count += 1
    return count


def _changes(cluster: str, rows: Iterable[tuple[Any, ...]]) -> list[Change]:
    """Rows of (kind, namespace, name, uid, old uid, old version, new version) -> changes.

    A new uid under the same name is a re-created object: the old one was deleted,
    the new one added. A row whose uid and version did not move was a payload
    refresh: stored, not reported.
    """
    changes = []
    for kind, namespace, name, uid, old_uid, old_rv, new_rv in rows:
        if new_rv is None:
            changes.append(Change(cluster, kind, namespace, name, uid, ChangeType.DELETED, old_rv, None))
        elif old_uid is None:
            changes.append(Change(cluster, kind, namespace, name, uid, ChangeType.ADDED, None, new_rv))
        elif old_uid != uid:
            changes.append(Change(cluster, kind, namespace, name, old_uid, ChangeType.DELETED, old_rv, None))
            changes.append(Change(cluster, kind, namespace, name, uid, ChangeType.ADDED, None, new_rv))
        elif old_rv != new_rv:
            changes.append(Change(cluster, kind, namespace, name, uid, ChangeType.MODIFIED, old_rv, new_rv))
    return changes


def _removed(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for kind, namespace, name, uid, rv in rows:
        yield kind, namespace, name, uid, uid, rv, None


def _write_staged(conn: psycopg.Connection[Any], cluster: str) -> list[Change]:
    params = {"cluster": cluster}
    changes = _changes(cluster, conn.execute(UPDATE_CHANGED, params))
    added = ChangeType.ADDED
    # A first snapshot adds everything: build those changes without the general branching.
    changes.extend(
        Change(cluster, kind, namespace, name, uid, added, None, rv)
        for kind, namespace, name, uid, rv in conn.execute(INSERT_NEW, params)
    )
    return changes


def check_kinds(kinds: Collection[str], resources: Sequence[Resource]) -> None:
    allowed = set(kinds)
    for r in resources:
        if r.kind not in allowed:
            raise StorageError(
                f"snapshot resource {r.kind} {r.namespace}/{r.name} is of a kind not in the snapshot's kinds "
                f"({', '.join(sorted(allowed)) or 'none'})"
            )


def apply_snapshot(
    conn: psycopg.Connection[Any], cluster: str, kinds: Collection[str], resources: Sequence[Resource]
) -> list[Change]:
    """Make ``resources`` the complete set of ``kinds`` for ``cluster`` (caller holds the transaction)."""
    stage(conn, resources)
    lock_cluster(conn, cluster)
    gone = conn.execute(REMOVE_VANISHED, {"cluster": cluster, "kinds": sorted(set(kinds))})
    changes = _changes(cluster, _removed(gone))
    changes.extend(_write_staged(conn, cluster))
    return changes


def apply_delta(
    conn: psycopg.Connection[Any], cluster: str, upserts: Sequence[Resource], deletions: Sequence[ResourceKey]
) -> list[Change]:
    """Upsert ``upserts``, then remove ``deletions`` (a uid, when given, must match): a key in both ends deleted."""
    changes: list[Change] = []
    if upserts:
        stage(conn, upserts)
    lock_cluster(conn, cluster)
    if upserts:
        changes.extend(_write_staged(conn, cluster))
    if deletions:
        gone = conn.execute(
            DELETE,
            {
                "cluster": cluster,
                "kinds": [d.kind for d in deletions],
                "namespaces": [d.namespace for d in deletions],
                "names": [d.name for d in deletions],
                "uids": [d.uid for d in deletions],
            },
        )
        changes.extend(_changes(cluster, _removed(gone)))
    return changes
