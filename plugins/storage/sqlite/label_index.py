"""The label index: which ``resources`` rows carry a label, kept beside the rows by ``apply``.

Tables (schema migration 3)::

    label_values (key, kind, bucket, cluster, lo, n, ids)  -- ids: {"value": [row ids], ...}
    label_keys   (cluster, kind, keys, lo, n, ids)         -- keys: ["app", ...]; ids: [row ids]

``label_values``: a label key's values are spread over ``BUCKETS`` buckets by a stable hash
(``bucket``); one row holds, for one key of one kind in one cluster, the ids of the rows that
have each value of its bucket. Many small postings (``app``, ``pod-template-hash``: one value
per workload) share a row. ``label_keys``: every row is in the posting of its key set (its
label keys, in its labels' order); a kind has few key sets, so ``!team`` is the union of the
few that lack ``team``, and "every row" the union of all. Both are cut into chunks of about
``CHUNK`` ids by id range (``lo`` the chunk's smallest id, ``n`` its size): an id lives in the
chunk with the largest ``lo`` at or below it, so a change rewrites one chunk, not a posting.
Labels with an empty key or a value that is not a string are not in ``label_values``: no
selector can name them.

Reading (``candidates``): ``=``/``in`` read the buckets of their values, ``exists``/``!key`` the
key sets with/without the key; ``!=``/``notin`` read every key set minus the rows with the
values they exclude (an absent key matches them, as in Kubernetes). The requirement with the
fewest candidates drives. The rows are then fetched by id and every filter and requirement is
checked again on them with the JSON conditions of ``selector_sql``, so the answer is exact
whatever the index says, and history and the past (``at``) keep those conditions alone. When
even the best requirement keeps more than ``SCAN_SHARE`` of the rows in scope, or the query's
namespace holds fewer rows than it, the plain scan is used.

Writing (inside ``apply``'s transaction): new rows get explicit ids, ``max(id) + 1`` onwards in
the order they are inserted. A cluster's first ingest (no rows, no postings) reads nothing back:
the backend groups rows by labels text while it encodes them, so the work here is per distinct
label set (replicas share theirs), then one pass gives the rows their ids. Any other apply reads
the ids and labels of the rows it deletes or upserts, then rewrites only the chunks that change;
an upsert whose labels text did not change costs nothing here.

Why this shape (measured on this project's 2-core machine, CPU seconds, 150,000 pods of 15,000
workloads with 4 labels each, 600,000 label occurrences; the machine was shared, so medians):

- a WITHOUT ROWID side table (key, value, row id), one row per label of each row: 0.9 s to
  fill from ``json_each`` in SQL, 1.2 s from Python in index order (plus 0.6 s to sort);
- the same table filled by triggers on ``resources``: +1.2 s on the upserts;
- FTS5 (contentless, ``detail=none``, tokens ``key=value`` and ``key``): 0.45 s, plus 0.3 s to
  build the documents, and its tokenizers fold case (the rows would need checking anyway);
- expression indexes: one per key, known in advance; label keys are open-ended;
- one row per posting (key, value) with a JSON array of ids: 30,000 rows, 0.35 s: SQLite's cost
  per row written (2-3 us here) dominates, hence buckets (about 1,000 rows);
- this module: 0.23-0.27 s, of which 0.07 s is the pass that numbers the rows. With no label
  set shared (a StatefulSet's pod-name label on every pod) it is 0.76 s: the work follows the
  distinct (label set, label) pairs, which is then every label of every pod.

Queries at 150,000 pods (``benchmarks/selector_query.py``): 0.7-6 ms for ``app=X``, ``tier in
(a,b)`` (600 rows), ``app=X,tier!=y``, ``!team`` (300 rows), ``team=a,tier=b``, against 80-190 ms
for the scan of every row with ``json_extract``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from navigator.plugin import Operator, ResourceQuery

#: Hash buckets per label key (a power of two).
BUCKETS = 256
#: Ids per chunk, about: a change rewrites at most one chunk per label it touches.
CHUNK = 1024
#: Above this share of the objects in scope, fetching the candidates by id costs more than the scan.
SCAN_SHARE = 0.3

_BUCKET = "key = ? AND kind = ? AND bucket = ? AND cluster = ?"
_KEYS = "cluster = ? AND kind = ? AND keys = ?"
_INSERT_VALUES = "INSERT INTO label_values (key, kind, bucket, cluster, lo, n, ids) VALUES (?, ?, ?, ?, ?, ?, ?)"
_INSERT_KEYS = "INSERT INTO label_keys (cluster, kind, keys, lo, n, ids) VALUES (?, ?, ?, ?, ?, ?)"

#: Per chunk of one bucket: value -> sorted ids.
Postings = dict[str, list[int]]
#: Rows for label_values and for label_keys.
Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def bucket(value: str) -> int:
    """The bucket of a label value: stable across processes and platforms (unlike ``hash``)."""
    return zlib.crc32(value.encode("utf-8", "surrogatepass")) & (BUCKETS - 1)


# -- chunks ------------------------------------------------------------------------------------------


def _cut(postings: Postings, bounds: Sequence[int]) -> list[Postings]:
    """``postings`` split at the ids in ``bounds`` (ascending): piece j holds the ids in [bounds[j-1], bounds[j])."""
    pieces: list[Postings] = [{} for _ in range(len(bounds) + 1)]
    for value, ids in postings.items():
        start = 0
        for j, bound in enumerate(bounds):
            end = bisect.bisect_left(ids, bound, start)
            if end > start:
                pieces[j][value] = ids[start:end]
            start = end
        if start < len(ids):
            pieces[-1][value] = ids[start:]
    return [piece for piece in pieces if piece]


def _value_chunks(postings: Postings, exact: bool = False) -> Iterator[tuple[int, int, str]]:
    """(lo, n, JSON) of the chunks of one bucket's sorted postings.

    Over ``CHUNK`` ids, the bucket is cut at evenly spaced ids of its range (no per-id work), or,
    ``exact``, every ``CHUNK`` ids (a chunk that outgrew its size, a few thousand ids at most).
    """
    n = sum(map(len, postings.values()))
    if n <= CHUNK:
        pieces = [postings]
    elif exact:
        every = sorted(i for ids in postings.values() for i in ids)
        pieces = _cut(postings, every[CHUNK::CHUNK])
    else:
        low = min(ids[0] for ids in postings.values())
        high = max(ids[-1] for ids in postings.values()) + 1
        k = -(-n // CHUNK)
        pieces = _cut(postings, [low + (high - low) * j // k for j in range(1, k)])
    for piece in pieces:
        yield (min(ids[0] for ids in piece.values()), sum(map(len, piece.values())),
               orjson.dumps(piece).decode())  # fmt: skip


def _id_chunks(ids: list[int]) -> Iterator[tuple[int, int, str]]:
    """(lo, n, JSON) of the chunks of sorted ``ids``."""
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        yield part[0], len(part), orjson.dumps(part).decode()


def _postings(cluster: str, values: Mapping[str, Mapping[str, Mapping[str, list[list[int]]]]],
              keys: Mapping[str, Mapping[tuple[str, ...], list[list[int]]]]) -> Rows:  # fmt: skip
    """The rows of whole postings, from lists of sorted ids: per kind, key and value; per kind and key set."""
    value_rows: list[tuple[Any, ...]] = []
    for kind, by_key in values.items():
        for key, postings in by_key.items():
            if not key:
                continue
            buckets: dict[int, Postings] = {}
            for value, parts in postings.items():
                if not isinstance(value, str):
                    continue  # not a label value any selector can name (the JSON conditions agree)
                b = bucket(value)
                in_bucket = buckets.get(b)
                if in_bucket is None:
                    in_bucket = buckets[b] = {}
                in_bucket[value] = _merged(parts)
            value_rows += [(key, kind, b, cluster, *chunk) for b, p in buckets.items() for chunk in _value_chunks(p)]
    value_rows.sort(key=operator.itemgetter(0, 1, 2, 4))  # in primary key order: appends, not page splits
    key_rows = [
        (cluster, kind, orjson.dumps(key_set).decode(), *chunk)
        for kind, key_sets in keys.items()
        for key_set, parts in key_sets.items()
        for chunk in _id_chunks(_merged(parts))
    ]
    return value_rows, key_rows


def _merged(parts: list[list[int]]) -> list[int]:
    return parts[0] if len(parts) == 1 else sorted(itertools.chain.from_iterable(parts))


def insert(conn: sqlite3.Connection, rows: Rows) -> None:
    """Write the rows of postings that do not exist yet (``first_ingest``, ``rebuild``)."""
    value_rows, key_rows = rows
    conn.executemany(_INSERT_VALUES, value_rows)
    conn.executemany(_INSERT_KEYS, key_rows)


# -- writing ---------------------------------------------------------------------------------------


def next_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM resources").fetchone()[0])


def fresh(conn: sqlite3.Connection, cluster: str) -> bool:
    """The cluster has no rows and no postings: its rows and postings can be inserted without reading."""
    return (
        conn.execute("SELECT 1 FROM resources WHERE cluster = ? LIMIT 1", (cluster,)).fetchone() is None
        and conn.execute("SELECT 1 FROM label_keys WHERE cluster = ? LIMIT 1", (cluster,)).fetchone() is None
    )


def first_ingest(cluster: str, rows: Sequence[list[Any]], groups: Mapping[str, Mapping[str, list[Any]]],
                 first_id: int) -> Rows:  # fmt: skip
    """The rows of the postings of a fresh cluster, for ``insert``, its rows numbered from ``first_id``.

    ``rows`` are sorted by (kind, namespace, name), as lists with the kind at 1 and, last, the row's
    group, which this takes off. ``groups`` are, per kind and labels text, lists that start with the
    labels mapping: the ids of the rows are appended to them. The caller inserts the rows in this
    order with a plain INSERT without ids, so that SQLite numbers them from ``first_id`` (an id
    given costs a search for it), and checks that it did: a key that comes twice fails the INSERT,
    and ``max(id)`` tells the rest.
    """
    for row_id, row in enumerate(rows, first_id):
        row.pop().append(row_id)
    values, keys = _by_label(groups)
    kind_of = operator.itemgetter(1)
    for kind, key_sets in keys.items():
        if len(key_sets) == 1:  # one key set for the whole kind: its ids are those of the kind, in order
            start, end = bisect.bisect_left(rows, kind, key=kind_of), bisect.bisect_right(rows, kind, key=kind_of)
            for key_set in key_sets:
                key_sets[key_set] = [list(range(first_id + start, first_id + end))]
    return _postings(cluster, values, keys)


def postings_of(cluster: str, groups: Mapping[str, Mapping[str, list[Any]]]) -> Rows:
    """The rows of the postings of a fresh cluster whose rows were numbered already: ``groups`` as
    for ``first_ingest``, each group's ids appended in ascending order, in any order of keys."""
    values, keys = _by_label(groups)
    return _postings(cluster, values, keys)


def _by_label(groups: Mapping[str, Mapping[str, list[Any]]]) -> tuple[
    dict[str, dict[str, dict[str, list[list[int]]]]], dict[str, dict[tuple[str, ...], list[list[int]]]]
]:  # fmt: skip
    """Lists of sorted ids per kind, key and value, and per kind and key set, from ``groups``:
    per kind and labels text, the labels mapping and then the ids of the rows that have it."""
    values: dict[str, dict[str, dict[str, list[list[int]]]]] = {}
    keys: dict[str, dict[tuple[str, ...], list[list[int]]]] = {}
    for kind, same_kind in groups.items():
        by_key = values[kind] = {}
        key_sets = keys[kind] = {}
        for group in same_kind.values():
            labels: Mapping[str, str] = group[0]
            ids = group[1:]  # ascending (appended in row order), shared by the group's postings: never modified
            if len(ids) == 0:
                continue
            key_set = tuple(labels)
            parts = key_sets.get(key_set)
            if parts is None:
                key_sets[key_set] = [ids]
            else:
                parts.append(ids)
            for key, value in labels.items():
                postings = by_key.get(key)
                if postings is None:
                    by_key[key] = {value: [ids]}
                    continue
                parts = postings.get(value)
                if parts is None:
                    postings[value] = [ids]
                else:
                    parts.append(ids)
    return values, keys


def rebuild(conn: sqlite3.Connection) -> None:
    """The whole index again from ``resources`` (the migration that adds it)."""
    conn.execute("DELETE FROM label_values")
    conn.execute("DELETE FROM label_keys")
    clusters = [c for (c,) in conn.execute("SELECT DISTINCT cluster FROM resources ORDER BY cluster")]
    for cluster in clusters:
        groups: dict[str, dict[str, list[Any]]] = {}
        sql = "SELECT kind, id, labels FROM resources WHERE cluster = ? ORDER BY kind, id"
        for kind, row_id, text in conn.execute(sql, (cluster,)):
            same_kind = groups.setdefault(kind, {})
            group = same_kind.get(text)
            if group is None:
                group = same_kind[text] = [orjson.loads(text)]
            group.append(row_id)
        insert(conn, _postings(cluster, *_by_label(groups)))


#: On the writer's connection: the rows whose labels an apply changes or deletes, for ``update``.
#: An upsert that keeps its labels text logs nothing; inserts are read by their ids instead.
LOG = (
    "CREATE TEMP TABLE IF NOT EXISTS label_log (id INTEGER NOT NULL, kind TEXT NOT NULL, old TEXT, new TEXT)",
    """CREATE TEMP TRIGGER IF NOT EXISTS label_log_update AFTER UPDATE OF labels ON main.resources
    WHEN old.labels IS NOT new.labels
    BEGIN INSERT INTO label_log VALUES (old.id, old.kind, old.labels, new.labels); END""",
    """CREATE TEMP TRIGGER IF NOT EXISTS label_log_delete AFTER DELETE ON main.resources
    BEGIN INSERT INTO label_log VALUES (old.id, old.kind, old.labels, NULL); END""",
)


def log_changes(conn: sqlite3.Connection) -> None:
    """Set up ``LOG`` on the writer's connection (idempotent; outside a transaction)."""
    for statement in LOG:
        conn.execute(statement)


def forget_changes(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM temp.label_log")


def update(conn: sqlite3.Connection, cluster: str, first_id: int) -> None:
    """Bring the postings of ``cluster`` up to date after an apply's deletions and upserts.

    The upserts gave every row an id from ``first_id`` on: the rows inserted kept theirs, the
    rows that existed kept their own. ``label_log`` holds the rows deleted and relabelled.
    """
    inserted = conn.execute("SELECT id, kind, labels FROM resources WHERE id >= ?", (first_id,)).fetchall()
    logged = conn.execute("SELECT id, kind, old, new FROM temp.label_log").fetchall()
    forget_changes(conn)
    # (key, kind, bucket) -> value -> (ids added, ids removed); (kind, key set) -> (added, removed)
    values: dict[tuple[str, str, int], dict[str, tuple[list[int], list[int]]]] = {}
    key_sets: dict[tuple[str, tuple[str, ...]], tuple[list[int], list[int]]] = {}

    def change(kind: str, pairs: Iterable[tuple[str, str]], row_id: int, side: int) -> None:
        for key, value in pairs:
            if key and isinstance(value, str):
                in_bucket = values.setdefault((key, kind, bucket(value)), {})
                in_bucket.setdefault(value, ([], []))[side].append(row_id)

    net: dict[int, list[Any]] = {}  # per row: kind, labels before the apply, after (None: deleted)
    for row_id, kind, old, new in logged:
        if row_id >= first_id:
            continue  # inserted by this apply (and updated again by a later copy of its key): read below
        seen = net.get(row_id)
        if seen is None:
            net[row_id] = [kind, old, new]
        else:
            seen[2] = new
    for row_id, (kind, old, new) in net.items():
        if old == new:
            continue
        before = orjson.loads(old)
        if new is None:
            change(kind, before.items(), row_id, 1)
            key_sets.setdefault((kind, tuple(before)), ([], []))[1].append(row_id)
            continue
        after = orjson.loads(new)
        change(kind, before.items() - after.items(), row_id, 1)
        change(kind, after.items() - before.items(), row_id, 0)
        if tuple(before) != tuple(after):
            key_sets.setdefault((kind, tuple(before)), ([], []))[1].append(row_id)
            key_sets.setdefault((kind, tuple(after)), ([], []))[0].append(row_id)
    for row_id, kind, text in inserted:
        labels = orjson.loads(text)
        change(kind, labels.items(), row_id, 0)
        key_sets.setdefault((kind, tuple(labels)), ([], []))[0].append(row_id)
    for (label, kind, b), changes in values.items():
        _merge_bucket(conn, (label, kind, b, cluster), changes)
    for (kind, key_set), (added, removed) in key_sets.items():
        _merge_keys(conn, (cluster, kind, orjson.dumps(key_set).decode()), added, removed)


def _route(conn: sqlite3.Connection, table: str, where: str, params: tuple[Any, ...],
           ids: Iterable[int]) -> dict[int | None, list[int]]:  # fmt: skip
    """The ids grouped by the chunk (its ``lo``) they belong in; ``None``: there is no chunk yet."""
    los = [lo for (lo,) in conn.execute(f"SELECT lo FROM {table} WHERE {where}", params)]
    routed: dict[int | None, list[int]] = {}
    for row_id in ids:
        lo = los[max(bisect.bisect_right(los, row_id) - 1, 0)] if los else None
        routed.setdefault(lo, []).append(row_id)
    return routed


def _take(conn: sqlite3.Connection, table: str, where: str, params: tuple[Any, ...], lo: int | None) -> Any:
    """The decoded ids of one chunk, deleted (to be written again), or ``None``."""
    if lo is None:
        return None
    (text,) = conn.execute(f"SELECT ids FROM {table} WHERE {where} AND lo = ?", (*params, lo)).fetchone()
    conn.execute(f"DELETE FROM {table} WHERE {where} AND lo = ?", (*params, lo))
    return orjson.loads(text)


def _merge_bucket(conn: sqlite3.Connection, where: tuple[str, str, int, str],
                  changes: Mapping[str, tuple[list[int], list[int]]]) -> None:  # fmt: skip
    """Apply one bucket's changes: only the chunks they fall in are read and written again."""
    every = (i for added, removed in changes.values() for i in (*added, *removed))
    for lo, ids in _route(conn, "label_values", _BUCKET, where, every).items():
        postings: Postings = _take(conn, "label_values", _BUCKET, where, lo) or {}
        here = set(ids)
        for value, (added, removed) in changes.items():
            add, remove = here.intersection(added), here.intersection(removed)
            if add or remove:
                kept = set(postings.get(value, ()))
                kept.difference_update(remove)
                kept.update(add)
                if kept:
                    postings[value] = sorted(kept)
                else:
                    postings.pop(value, None)
        if postings:
            rows = [(*where, *chunk) for chunk in _value_chunks(postings, exact=True)]
            conn.executemany(_INSERT_VALUES, rows)


def _merge_keys(conn: sqlite3.Connection, where: tuple[str, str, str], added: list[int], removed: list[int]) -> None:
    for lo, ids in _route(conn, "label_keys", _KEYS, where, [*added, *removed]).items():
        kept = set(_take(conn, "label_keys", _KEYS, where, lo) or ())
        here = set(ids)
        kept.difference_update(here.intersection(removed))
        kept.update(here.intersection(added))
        if kept:
            conn.executemany(_INSERT_KEYS, [(*where, *chunk) for chunk in _id_chunks(sorted(kept))])


# -- reading ---------------------------------------------------------------------------------------


def candidates(conn: sqlite3.Connection, query: ResourceQuery) -> list[int] | None:
    """Sorted ids of a superset of the rows ``query`` matches, or ``None`` when the scan is cheaper.

    Run it in the read transaction of the statement that fetches the rows (one snapshot).
    """
    selector = query.selector
    if selector is None or not selector.requirements or query.name is not None or query.at is not None:
        return None
    scope = ""
    scope_params: list[Any] = []
    for column in ("kind", "cluster"):
        if getattr(query, column) is not None:
            scope += f" AND {column} = ?"
            scope_params.append(getattr(query, column))

    def rows(table: str, columns: str, where: str, params: Sequence[Any]) -> list[Any]:
        return conn.execute(f"SELECT {columns} FROM {table} WHERE {where}{scope}", (*params, *scope_params)).fetchall()

    def with_values(key: str, wanted: Sequence[str]) -> list[int]:
        buckets = sorted({bucket(v) for v in wanted})
        where = f"key = ? AND bucket IN ({', '.join('?' * len(buckets))})"
        found: list[int] = []
        for (text,) in rows("label_values", "ids", where, (key, *buckets)):
            postings = orjson.loads(text)
            for value in wanted:
                found += postings.get(value, ())
        return found

    sql = f"SELECT keys, sum(n) FROM label_keys WHERE 1{scope} GROUP BY keys"
    key_sets = conn.execute(sql, scope_params).fetchall()
    total = sum(n for _, n in key_sets)
    if total == 0:
        return []

    def of_key_sets(chosen: list[str]) -> list[int]:
        found: list[int] = []
        for start in range(0, len(chosen), 500):
            part = chosen[start : start + 500]
            for (text,) in rows("label_keys", "ids", f"keys IN ({', '.join('?' * len(part))})", part):
                found += orjson.loads(text)
        return found

    best: tuple[int, Callable[[], list[int]], bool] | None = None  # estimate, the ids it names, negated
    for req in selector.requirements:
        if not req.key:
            return None
        ids: Callable[[], list[int]]
        negated = False
        match req.operator:
            case Operator.EQUALS | Operator.IN | Operator.NOT_EQUALS | Operator.NOT_IN:
                named = with_values(req.key, req.values)
                count, ids = len(named), functools.partial(list, named)
                negated = req.operator in (Operator.NOT_EQUALS, Operator.NOT_IN)
            case Operator.EXISTS | Operator.NOT_EXISTS:
                want = req.operator is Operator.EXISTS
                chosen = [(text, n) for text, n in key_sets if (req.key in orjson.loads(text)) is want]
                count = sum(n for _, n in chosen)
                ids = functools.partial(of_key_sets, [text for text, _ in chosen])
            case _:
                return None
        estimate = total - count if negated else count
        if best is None or estimate < best[0]:
            best = (estimate, ids, negated)
    assert best is not None
    estimate, read, negated = best
    if estimate > total * SCAN_SHARE or (query.namespace is not None and _namespace_smaller(conn, query, estimate)):
        return None
    if not negated:
        return sorted(read())
    every = set(of_key_sets([text for text, _ in key_sets]))
    every.difference_update(read())
    return sorted(every)


def _namespace_smaller(conn: sqlite3.Connection, query: ResourceQuery, estimate: int) -> bool:
    """Whether the query's namespace holds at most ``estimate`` objects (then its index is the better way in).

    Counted through ``resources_kind_namespace``, never past ``estimate + 1``; without a kind there
    is no index to count with, and the postings are used.
    """
    if query.kind is None:
        return False
    sql = "SELECT count(*) FROM (SELECT 1 FROM resources WHERE kind = ? AND namespace = ?"
    params: list[Any] = [query.kind, query.namespace]
    if query.cluster is not None:
        sql += " AND cluster = ?"
        params.append(query.cluster)
    return bool(conn.execute(f"{sql} LIMIT ?)", (*params, estimate + 1)).fetchone()[0] <= estimate)
