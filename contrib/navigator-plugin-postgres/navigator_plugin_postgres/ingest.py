"""Writing what the reconciler hands over, set-based, inside the caller's transaction.

Objects are COPYed into a session-private staging table and merged with an
``UPDATE`` of the keys that exist and an ``INSERT`` of the others (a cluster's
first state, all new keys, is COPYed straight into ``resources``); deletions are
one ``DELETE`` over arrays of keys; history rows are COPYed straight into
``history``. Each object's JSON is encoded once, for its row and its history row
alike. Nothing is compared here: the core's reconciler has decided what changed.
Only fencing checks: an object is never moved back to an older integer
resourceVersion under the same uid, and the record's epoch is checked last,
right before the commit (``clusters.fence``); either refusal rolls everything back.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg

from navigator.plugin import (
    Change,
    ChangeType,
    ClusterRecord,
    Resource,
    ResourceKey,
    StorageError,
    StoredObject,
    plain_additions,
)
from navigator_plugin_postgres import clusters
from navigator_plugin_postgres.connection import STAGING_TABLE

#: Arbitrary class id for per-cluster advisory locks (the two-key space never meets the migration lock).
CLUSTER_LOCK_CLASS = 0x4E41

# Upserts in two set-based statements, each touching its own rows: replace what exists, then
# insert the rest. (Measured on 150,000 new pods: INSERT ... ON CONFLICT DO UPDATE took about
# 1.7 times the server time of a plain INSERT, speculative insertion checking and logging each
# row twice.) The cluster lock keeps other writers of these keys out in between.
#: Whether staged row ``s`` would move stored row ``r`` (same uid) back to an older resourceVersion:
#: compared as integers when both are (at most 18 digits, so they fit a bigint), else never.
_OLDER = """r.uid = s.uid AND r.resource_version ~ '^[0-9]{1,18}$' AND s.resource_version ~ '^[0-9]{1,18}$'
    AND r.resource_version::bigint > s.resource_version::bigint"""

UPDATE_EXISTING = f"""
UPDATE resources r
SET uid = s.uid, resource_version = s.resource_version, labels = s.labels::jsonb, data = s.data::json,
    digest = s.digest
FROM {STAGING_TABLE} s
WHERE r.cluster = %(cluster)s AND r.kind = s.kind AND r.namespace = s.namespace AND r.name = s.name
  AND NOT ({_OLDER})
"""

#: The first staged object ``UPDATE_EXISTING`` refused, to name it.
REGRESSED = f"""
SELECT r.kind, r.namespace, r.name, r.resource_version, s.resource_version
FROM {STAGING_TABLE} s JOIN resources r
  ON r.cluster = %(cluster)s AND r.kind = s.kind AND r.namespace = s.namespace AND r.name = s.name
WHERE {_OLDER}
LIMIT 1
"""

INSERT_NEW = f"""
INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, labels, data, digest)
SELECT %(cluster)s, s.kind, s.namespace, s.name, s.uid, s.resource_version, s.labels::jsonb, s.data::json, s.digest
FROM {STAGING_TABLE} s
WHERE NOT EXISTS (
    SELECT 1 FROM resources r
    WHERE r.cluster = %(cluster)s AND r.kind = s.kind AND r.namespace = s.namespace AND r.name = s.name
)
"""

ANY_OBJECT = "SELECT 1 FROM resources WHERE cluster = %s LIMIT 1"

#: A cluster's first state recorded as ADDED in key order (``plain_additions``): its history rows are
#: the rows just COPYed, copied inside the server (in key order: the ids keep the changes' order).
HISTORY_OF_FIRST_STATE = """
INSERT INTO history ({columns})
SELECT cluster, kind, namespace, name, uid, 'ADDED', NULL, resource_version, %(applied)s, %(observed)s, '{{}}',
       labels, data
FROM resources WHERE cluster = %(cluster)s ORDER BY kind, namespace, name
"""

_KEYS = "unnest(%(kinds)s::text[], %(namespaces)s::text[], %(names)s::text[])"
_SAME_KEY = (
    'r.kind = d.kind COLLATE "C" AND r.namespace = d.namespace COLLATE "C" AND r.name = d.name COLLATE "C"'
)

# The uid of a deletion is not checked: the reconciler names exactly what to remove.
DELETE = f"""
DELETE FROM resources r USING {_KEYS} AS d(kind, namespace, name)
WHERE r.cluster = %(cluster)s AND {_SAME_KEY}
"""

# A DELETED change carries no object, but selectors over the history match its labels: those
# of the row it removes or replaces (read before any write), else the key's last recorded ones.
# One row per requested key, by its position (``i``).
LAST_LABELS = f"""
SELECT d.i, coalesce(
    (SELECT r.labels FROM resources r WHERE r.cluster = %(cluster)s AND {_SAME_KEY}),
    (SELECT r.labels FROM history r WHERE r.cluster = %(cluster)s AND {_SAME_KEY}
     ORDER BY r.applied_at DESC, r.id DESC LIMIT 1),
    '{{}}'
)::text
FROM {_KEYS} WITH ORDINALITY AS d(kind, namespace, name, i)
"""

HISTORY_COLUMNS = (
    "cluster, kind, namespace, name, uid, type, old_resource_version, new_resource_version, "
    "applied_at, observed_at, changed_fields, labels, data"
)

#: An object's encoded labels and data, by ``id()`` of the ``Resource``, while one apply runs.
Encoded = dict[int, tuple[str, str]]


def lock_cluster(conn: psycopg.Connection[Any], cluster: str) -> None:
    """Serialise writers of one cluster (two managers briefly both applying during a hand-over),
    so that what an apply reads of the cluster (is it empty, which keys exist) holds until it commits."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [CLUSTER_LOCK_CLASS, cluster])


def _encode(r: Resource) -> tuple[str, str]:
    try:
        return orjson.dumps(r.labels).decode(), r.json.decode()
    except TypeError as exc:
        raise StorageError(
            f"{r.kind} {r.namespace}/{r.name}: labels and data must be JSON-compatible ({exc})"
        ) from None


def copy_objects(
    conn: psycopg.Connection[Any], upserts: Iterable[StoredObject], keep: bool, into: str
) -> Encoded:
    """COPY ``upserts`` into this session's staging table (``into=""``) or, for a cluster that has
    no objects yet, straight into ``resources`` (``into``: the cluster), encoding their JSON on the way.

    With ``keep``, the encodings are returned for the history rows of the same objects.
    """
    encoded: Encoded = {}
    columns = "kind, namespace, name, uid, resource_version, labels, data, digest"
    target = f"resources (cluster, {columns})" if into else f"{STAGING_TABLE} ({columns})"
    prefix = (into,) if into else ()
    with conn.cursor().copy(f"COPY {target} FROM STDIN") as copy:
        for stored in upserts:
            r = stored.resource
            labels, data = _encode(r)
            if keep:
                encoded[id(r)] = (labels, data)
            copy.write_row(
                (*prefix, r.kind, r.namespace, r.name, r.uid, r.resource_version, labels, data, stored.digest)
            )
    return encoded


def _text_array(values: Sequence[str]) -> str:
    """A ``text[]`` literal: COPY parses it by the column's type, no per-row adaptation in Python."""
    if not values:
        return "{}"
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def last_labels(conn: psycopg.Connection[Any], history: Sequence[Change]) -> dict[int, str]:
    """The labels each DELETED change without an object had, by ``id()`` of the change.

    Read before anything is written, while the rows the changes remove are still there.
    """
    deleted: dict[str, list[Change]] = {}
    for c in history:
        if c.type is ChangeType.DELETED and c.resource is None:
            deleted.setdefault(c.cluster, []).append(c)
    found: dict[int, str] = {}
    for cluster, changes in deleted.items():
        rows = conn.execute(
            LAST_LABELS,
            {
                "cluster": cluster,
                "kinds": [c.kind for c in changes],
                "namespaces": [c.namespace for c in changes],
                "names": [c.name for c in changes],
            },
        )
        by_position = dict(rows.fetchall())
        found.update((id(c), by_position[i]) for i, c in enumerate(changes, start=1))
    return found


def write_history(
    conn: psycopg.Connection[Any],
    history: Sequence[Change],
    encoded: Encoded,
    deleted_labels: dict[int, str],
    now: datetime,
) -> tuple[datetime, datetime]:
    """COPY one row per change into ``history``, in the order given (their ids keep it).

    Returns the earliest and latest applied time written: with the transaction's id, they
    find these rows again for the managers that follow this one's changes.
    """
    times: dict[datetime, str] = {}
    applied: set[datetime] = set()
    previous: datetime | None = None  # the reconciler gives every change one applied time: one add

    def when(value: datetime) -> str:
        text = times.get(value)
        if text is None:
            text = times[value] = value.isoformat()
        return text

    with conn.cursor().copy(f"COPY history ({HISTORY_COLUMNS}) FROM STDIN") as copy:
        for c in history:
            data: str | None = None
            if c.resource is None:
                labels = deleted_labels.get(id(c), "{}")
            else:
                labels, data = encoded.get(id(c.resource)) or _encode(c.resource)
                if c.type is ChangeType.DELETED:
                    data = None
            copy.write_row((
                c.cluster, c.kind, c.namespace, c.name, c.uid, str(c.type),
                c.old_resource_version, c.new_resource_version,
                when(applied_at := c.applied_at or now), when(c.observed_at) if c.observed_at is not None else None,
                _text_array(c.changed_fields), labels, data,
            ))  # fmt: skip
            if applied_at is not previous:
                applied.add(applied_at)
                previous = applied_at
    return min(applied), max(applied)


def history_of_first_state(
    conn: psycopg.Connection[Any], cluster: str, applied: datetime, observed: datetime | None
) -> tuple[datetime, datetime]:
    """The history of a cluster's first state (``plain_additions``: one ADDED per row, in key order)
    copied from its rows inside the server; returns the applied times written, as ``write_history`` does."""
    # The rows come in key order from the primary key's index. Without statistics on rows this
    # transaction wrote, the planner would take a bitmap scan and sort 150,000 rows on disk instead.
    conn.execute("SET LOCAL enable_bitmapscan = off")
    conn.execute("SET LOCAL enable_sort = off")
    conn.execute(
        HISTORY_OF_FIRST_STATE.format(columns=HISTORY_COLUMNS),
        {"applied": applied, "observed": observed, "cluster": cluster},
    )
    conn.execute("RESET enable_bitmapscan")
    conn.execute("RESET enable_sort")
    return applied, applied


def in_key_order(upserts: Sequence[StoredObject]) -> bool:
    """Whether the upserts' keys strictly increase (code point order: the key columns are COLLATE "C")."""
    keys = [(u.resource.kind, u.resource.namespace, u.resource.name) for u in upserts]
    return all(map(operator.lt, keys, keys[1:]))


def refuse_regressions(conn: psycopg.Connection[Any], record: ClusterRecord) -> None:
    """Some staged objects were not written: name one that would have gone back.

    A writer under an older claim is told so first (``StorageFenced``); under the current claim the
    state itself is wrong (``StorageRegressed``).
    """
    cluster = record.cluster
    found = conn.execute(REGRESSED, {"cluster": cluster}).fetchone()
    if found is not None:  # else: a key came twice, and was written once
        clusters.fence(conn, record)
        kind, namespace, name, stored, new = found
        raise StorageError.Regressed(
            f"cluster {cluster}: {kind} {namespace + '/' if namespace else ''}{name} is stored at "
            f"resourceVersion {stored}, newer than {new} written now: a stale writer, nothing was written"
        )


def delete(conn: psycopg.Connection[Any], cluster: str, deletions: Collection[ResourceKey]) -> None:
    conn.execute(
        DELETE,
        {
            "cluster": cluster,
            "kinds": [d.kind for d in deletions],
            "namespaces": [d.namespace for d in deletions],
            "names": [d.name for d in deletions],
        },
    )


def apply(
    conn: psycopg.Connection[Any],
    record: ClusterRecord,
    upserts: Sequence[StoredObject],
    deletions: Collection[ResourceKey],
    history: Sequence[Change] | None,
    record_cluster: bool,
    now: datetime,
) -> tuple[datetime, datetime] | None:
    """Everything one ``StorageBackend.apply`` writes (the caller holds the transaction).

    Returns the applied times of the history rows written (earliest, latest), ``None`` if none were.
    """
    cluster = record.cluster
    keep = bool(history)
    lock_cluster(conn, cluster)
    deleted_labels = last_labels(conn, history) if history else {}
    staged = copied = False
    encoded: Encoded = {}
    written: tuple[datetime, datetime] | None = None
    if upserts:
        if conn.execute(ANY_OBJECT, [cluster]).fetchone() is None:
            # The cluster's first state: every key is new, so no staging, no merge.
            copied = bool(history) and in_key_order(upserts) and plain_additions(cluster, history or (), upserts)
            encoded = copy_objects(conn, upserts, keep and not copied, into=cluster)
        else:
            encoded = copy_objects(conn, upserts, keep, into="")
            staged = True
    if history and copied:
        written = history_of_first_state(conn, cluster, history[0].applied_at or now, history[0].observed_at)
    elif history:
        written = write_history(conn, history, encoded, deleted_labels, now)
    if staged:
        updated = conn.execute(UPDATE_EXISTING, {"cluster": cluster}).rowcount
        inserted = conn.execute(INSERT_NEW, {"cluster": cluster}).rowcount
        if updated + inserted < len(upserts):
            refuse_regressions(conn, record)
    if deletions:
        delete(conn, cluster, deletions)
    clusters.save(conn, record)
    if record_cluster:
        clusters.save_copy(conn, record, now)
    return written
