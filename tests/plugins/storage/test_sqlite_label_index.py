"""The SQLite label index: selector answers equal with and without it, and it stays equal to a rebuild."""

from __future__ import annotations

import itertools
import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.storage.sqlite import create, label_index, schema
from navigator_plugins.storage.sqlite.backend import SQLiteBackend

from navigator.interfaces import ClusterRecord, ResourceQuery
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import StateSet
from navigator.resource import Change, ChangeType, Resource, ResourceKey, StoredObject
from navigator.selectors import LabelSelector, parse_selector
from navigator.v1 import sync_pb2

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = ["app", "tier", "x.io/role", "flag"]
VALUES = ["a", "b", "c", ""]
KINDS = ["pods", "services"]
CLUSTERS = ["east", "west"]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few ids in two buckets: every path of splitting and routing runs on small data."""
    monkeypatch.setattr(label_index, "CHUNK", 4)
    monkeypatch.setattr(label_index, "BUCKETS", 2)


@pytest.fixture
def always_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index serves every selector it can, however many objects match."""
    monkeypatch.setattr(label_index, "SCAN_SHARE", 2.0)


def resource(kind: str, namespace: str, name: str, labels: dict[str, str], uid: str = "", rv: str = "1") -> Resource:
    return Resource(kind, namespace, name, uid or f"uid-{kind}-{namespace}-{name}", rv, labels, {"n": name})


def stored(*resources: Resource) -> list[StoredObject]:
    return [StoredObject(r, "d") for r in resources]


def random_labels(rng: random.Random) -> dict[str, str]:
    return {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, len(KEYS)))}


def random_selector(rng: random.Random) -> LabelSelector:
    parts = []
    for key in rng.sample(KEYS, rng.randint(1, 3)):
        form = rng.choice(["=", "==", "!=", "in", "notin", "exists", "!"])
        if form in ("in", "notin"):
            values = rng.sample(VALUES, rng.randint(1, 3))
            if values == [""]:  # `key in ()` is refused (an empty set); with another value it is the empty value
                values.append("a")
            parts.append(f"{key} {form} ({','.join(values)})")
        elif form == "exists":
            parts.append(key)
        elif form == "!":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key}{form}{rng.choice(VALUES)}")
    selector = parse_selector(",".join(parts))
    assert selector is not None
    return selector


def names(backend: SQLiteBackend, query: ResourceQuery) -> list[tuple[str, str, str, str]]:
    return [(s.cluster, s.resource.kind, s.resource.namespace, s.resource.name) for s in backend.query(query)]


def test_labels_no_selector_can_name_are_left_out_and_answers_still_agree(
    backend: SQLiteBackend, tmp_path: Path, always_index: None
) -> None:
    odd: dict[str, Any] = {"n": 1, "": "empty key", "ok": "yes"}
    plain = resource("pods", "ns", "plain", {"ok": "no"})
    backend.apply(ClusterRecord("east"), stored(resource("pods", "ns", "odd", odd), plain), [], None)
    backend.apply(ClusterRecord("east"), stored(resource("pods", "ns", "later", odd)), [], None)
    conn = sqlite3.connect(tmp_path / "navigator.db")
    assert sorted({k for (k,) in conn.execute("SELECT key FROM label_values")}) == ["ok"]
    conn.close()
    for text in ("n=1", "n", "!n", "n!=1", "ok=yes", "ok,!n"):
        query = ResourceQuery(selector=parse_selector(text))
        backend.label_index = False
        scanned = names(backend, query)
        backend.label_index = True
        assert names(backend, query) == scanned, text


def logical_index(conn: sqlite3.Connection) -> tuple[dict[tuple[str, str, str, str], list[int]], dict[Any, list[int]]]:
    """What the index says, whatever its chunks, after checking the chunks' invariants."""
    values: dict[tuple[str, str, str, str], list[int]] = {}
    chunks: dict[tuple[str, str, int, str], list[tuple[int, list[int]]]] = {}
    for key, kind, b, cluster, lo, n, text in conn.execute("SELECT * FROM label_values"):
        postings = orjson.loads(text)
        assert postings, "no empty chunk is kept"
        assert n == sum(len(ids) for ids in postings.values())
        every: list[int] = []
        for value, ids in postings.items():
            assert ids and ids == sorted(set(ids)), (key, value, ids)
            assert label_index.bucket(value) == b
            values.setdefault((cluster, kind, key, value), []).extend(ids)
            every += ids
        assert min(every) == lo
        chunks.setdefault((key, kind, b, cluster), []).append((lo, every))
    for parts in chunks.values():
        parts.sort()
        for (_, ids), (next_lo, _) in itertools.pairwise(parts):
            assert max(ids) < next_lo, "a chunk holds only ids below the next chunk's lo"
    key_sets: dict[Any, list[int]] = {}
    last: dict[Any, int] = {}
    for cluster, kind, keys, lo, n, text in conn.execute("SELECT * FROM label_keys ORDER BY cluster, kind, keys, lo"):
        ids = orjson.loads(text)
        assert ids and ids == sorted(set(ids)) and ids[0] == lo and n == len(ids)
        assert last.get((cluster, kind, keys), -1) < lo
        last[(cluster, kind, keys)] = ids[-1]
        key_sets.setdefault((cluster, kind, keys), []).extend(ids)
    return {k: sorted(v) for k, v in values.items()}, key_sets


def expected_index(conn: sqlite3.Connection) -> tuple[dict[tuple[str, str, str, str], list[int]], dict[Any, list[int]]]:
    """What the index must say: read from the rows themselves."""
    values: dict[tuple[str, str, str, str], list[int]] = {}
    key_sets: dict[Any, list[int]] = {}
    for row_id, cluster, kind, labels in conn.execute("SELECT id, cluster, kind, labels FROM resources ORDER BY id"):
        parsed = orjson.loads(labels)
        key_sets.setdefault((cluster, kind, orjson.dumps(list(parsed)).decode()), []).append(row_id)
        for key, value in parsed.items():
            if key and isinstance(value, str):
                values.setdefault((cluster, kind, key, value), []).append(row_id)
    return values, key_sets


def check_index(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert logical_index(conn) == expected_index(conn)
    finally:
        conn.close()


def check_answers(backend: SQLiteBackend, rng: random.Random, selectors: int = 12) -> None:
    """Every query gives the same rows through the index, through the scan, and by the reference semantics."""
    every = names(backend, ResourceQuery())
    labels = {(s.cluster, s.resource.kind, s.resource.namespace, s.resource.name): s.resource.labels
              for s in backend.query(ResourceQuery())}  # fmt: skip
    for _ in range(selectors):
        selector = random_selector(rng)
        query = ResourceQuery(
            cluster=rng.choice([None, *CLUSTERS]), kind=rng.choice([None, *KINDS]),
            namespace=rng.choice([None, None, "ns-0"]), selector=selector, limit=rng.choice([None, None, 3]),
        )  # fmt: skip
        reference = [
            k for k in every
            if query.cluster in (None, k[0]) and query.kind in (None, k[1]) and query.namespace in (None, k[2])
            and selector.matches(labels[k])
        ][: query.limit]  # fmt: skip
        backend.label_index = True
        indexed = names(backend, query)
        backend.label_index = False
        scanned = names(backend, query)
        backend.label_index = True
        assert indexed == scanned == reference, (str(selector), query)


@pytest.mark.parametrize("seed", range(6))
def test_random_applies_keep_the_index_equal_to_the_rows_and_answers_equal_to_the_scan(
    backend: SQLiteBackend, tmp_path: Path, small_chunks: None, always_index: None, seed: int
) -> None:
    rng = random.Random(seed)
    live: dict[tuple[str, str, str, str], Resource] = {}  # (cluster, kind, namespace, name)
    for step in range(25):
        cluster = rng.choice(CLUSTERS)
        mine = [k for k in live if k[0] == cluster]  # one action per key and apply: never touched twice
        rng.shuffle(mine)
        upserts: list[Resource] = []
        deletions: list[ResourceKey] = []
        for _ in range(rng.randint(1, 30)):
            action = rng.random()
            if mine and action < 0.25:  # delete
                k = mine.pop()
                gone = live.pop(k)
                deletions.append(ResourceKey(k[1], k[2], k[3], gone.uid))
            elif mine and action < 0.55:  # relabel, or only a new version
                k = mine.pop()
                old = live[k]
                new_labels = random_labels(rng) if rng.random() < 0.7 else dict(old.labels)
                live[k] = replace(old, resource_version=str(step), labels=new_labels)
                upserts.append(live[k])
            elif mine and action < 0.65:  # re-created: deleted and added again in one apply
                k = mine.pop()
                deletions.append(ResourceKey(k[1], k[2], k[3], live[k].uid))
                live[k] = resource(k[1], k[2], k[3], random_labels(rng), uid=f"reborn-{step}")
                upserts.append(live[k])
            else:  # add
                kind, ns, name = rng.choice(KINDS), f"ns-{rng.randrange(3)}", f"o-{rng.randrange(60)}"
                k = (cluster, kind, ns, name)
                if k in live:
                    continue
                live[k] = resource(kind, ns, name, random_labels(rng))
                upserts.append(live[k])
        if upserts and rng.random() < 0.1:  # the same key twice in one apply: the last copy wins
            upserts.insert(0, replace(upserts[-1], labels=random_labels(rng)))
        history = None
        if rng.random() < 0.5:
            history = [Change(cluster, r.kind, r.namespace, r.name, r.uid, ChangeType.ADDED, None, "1",
                              applied_at=T0, resource=r) for r in upserts]  # fmt: skip
        backend.apply(ClusterRecord(cluster, last_sync=T0), stored(*upserts), deletions, history)
        check_index(tmp_path / "navigator.db")
        stored_now = {(s.cluster, s.resource.kind, s.resource.namespace, s.resource.name): s.resource.labels
                      for s in backend.query(ResourceQuery())}  # fmt: skip
        assert stored_now == {k: r.labels for k, r in live.items()}
        check_answers(backend, rng)


def test_a_first_ingest_with_a_key_twice_takes_the_last_copy(backend: SQLiteBackend, tmp_path: Path) -> None:
    first = resource("pods", "ns", "a", {"app": "old"})
    last = replace(first, labels={"app": "new"})
    other = resource("pods", "ns", "b", {"app": "old"})
    backend.apply(ClusterRecord("east"), stored(first, other, last), [], None)
    check_index(tmp_path / "navigator.db")
    for text, expected in (("app=new", ["a"]), ("app=old", ["b"]), ("!app", [])):
        query = ResourceQuery(selector=parse_selector(text))
        assert [s.resource.name for s in backend.query(query)] == expected


def test_deletions_updates_and_recreations_keep_the_index_right(
    backend: SQLiteBackend, tmp_path: Path, small_chunks: None, always_index: None
) -> None:
    pods = [resource("pods", "ns", f"p{i}", {"app": "web" if i % 2 else "db", "tier": str(i % 3)}) for i in range(20)]
    backend.apply(ClusterRecord("east"), stored(*pods), [], None)
    check_index(tmp_path / "navigator.db")

    def query(text: str) -> list[str]:
        return [s.resource.name for s in backend.query(ResourceQuery(selector=parse_selector(text)))]

    assert query("app=web,tier=0") == ["p15", "p3", "p9"]
    # relabel p3, delete p9, re-create p15 with other labels, add p20
    backend.apply(
        ClusterRecord("east"),
        stored(replace(pods[3], labels={"app": "db", "tier": "0"}),
               resource("pods", "ns", "p15", {"tier": "0"}, uid="x"),
               resource("pods", "ns", "p20", {"app": "web", "tier": "0"})),
        [ResourceKey("pods", "ns", "p9", pods[9].uid), ResourceKey("pods", "ns", "p15", pods[15].uid)],
        None,
    )  # fmt: skip
    check_index(tmp_path / "navigator.db")
    assert query("app=web,tier=0") == ["p20"]
    assert query("tier=0,!app") == ["p15"]
    assert query("app notin (web),tier=0") == ["p0", "p12", "p15", "p18", "p3", "p6"]
    # everything goes: the index of the cluster empties, and a new first ingest starts afresh
    backend.apply(ClusterRecord("east"), [], [ResourceKey("pods", "ns", s.resource.name)
                                              for s in backend.query(ResourceQuery())], None)  # fmt: skip
    conn = sqlite3.connect(tmp_path / "navigator.db")
    assert conn.execute("SELECT count(*) FROM label_values").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM label_keys").fetchone()[0] == 0
    conn.close()
    backend.apply(ClusterRecord("east"), stored(pods[1]), [], None)
    check_index(tmp_path / "navigator.db")
    assert query("app=web") == ["p1"]


def test_the_index_serves_selective_queries_and_leaves_broad_ones_to_the_scan(backend: SQLiteBackend) -> None:
    pods = [resource("pods", f"ns-{i % 10}", f"p{i:03d}", {"app": f"a{i // 10}", "tier": "web" if i % 2 else "api",
                                                           **({"owner": "x"} if i % 50 else {"canary": "1"})})
            for i in range(500)]  # fmt: skip
    backend.apply(ClusterRecord("east"), stored(*pods), [], None)
    conn = sqlite3.connect(backend.path)

    def ids(text: str, **filters: Any) -> list[int] | None:
        return label_index.candidates(conn, ResourceQuery(selector=parse_selector(text), **filters))

    assert ids("app=a7") is not None and len(ids("app=a7") or []) == 10
    assert ids("app in (a7,a8),tier=web") is not None and len(ids("app in (a7,a8),tier=web") or []) == 20
    assert ids("tier=web") is None  # half of everything: the scan is cheaper
    assert ids("tier!=web") is None
    assert ids("canary") is not None and len(ids("canary") or []) == 10
    assert ids("!tier") == []
    assert ids("!canary,tier=api") is None  # neither is selective
    assert len(ids("!owner,tier=api") or []) == 10  # every pod but the owned ones: the canaries, then checked
    assert len(ids("owner notin (x),tier=api") or []) == 10
    assert ids("tier=api,!canary", namespace="ns-1") is None  # one namespace is fewer than the best posting
    assert ids("app=a7", namespace="ns-1", kind="pods") is not None
    assert ids("app=a7", name="p070") is None
    assert ids("app=a7", kind="services") == []
    conn.close()


def version_2_database(path: Path) -> list[Resource]:
    """A database as the previous release left it: schema 2, two clusters, pods and services."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    schema.migrate(conn, target=2)
    made = []
    for i in range(40):
        r = resource("pods" if i % 3 else "services", f"ns-{i % 4}", f"o{i}",
                     {"app": f"a{i % 5}", **({"tier": "web"} if i % 2 else {})})  # fmt: skip
        made.append(r)
        conn.execute(
            "INSERT INTO resources (cluster, kind, namespace, name, uid, resource_version, digest, labels, data) "
            "VALUES (?, ?, ?, ?, ?, '1', '', ?, ?)",
            ("east" if i % 4 else "west", r.kind, r.namespace, r.name, r.uid, orjson.dumps(r.labels).decode(), r.json),
        )
    conn.close()
    return made


def test_migration_from_schema_2_builds_the_index(tmp_path: Path, always_index: None) -> None:
    path = tmp_path / "old.db"
    version_2_database(path)
    backend = create({"path": str(path)})
    backend.migrate()
    try:
        check_index(path)
        assert isinstance(backend, SQLiteBackend)
        check_answers(backend, random.Random(7), selectors=40)
        found = [s.resource.name for s in backend.query(ResourceQuery(kind="pods", selector=parse_selector("app=a2")))]
        assert found == ["o17", "o37", "o2", "o22", "o7", "o32"]
        # and it is maintained from there on
        backend.apply(ClusterRecord("east"), stored(resource("pods", "ns-1", "o37", {"app": "a9"})), [], None)
        check_index(path)
        found = [s.resource.name for s in backend.query(ResourceQuery(kind="pods", selector=parse_selector("app=a2")))]
        assert found == ["o17", "o2", "o22", "o7", "o32"]
    finally:
        backend.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(version) FROM navigator_schema").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()


def test_a_query_sees_the_index_and_the_rows_of_one_snapshot(backend: SQLiteBackend, always_index: None) -> None:
    backend.apply(ClusterRecord("east"), stored(*[resource("pods", "ns", f"p{i}", {"app": "web"}) for i in range(3)]),
                  [], None)  # fmt: skip
    results = backend.query(ResourceQuery(selector=parse_selector("app=web")))
    first = next(results)  # the plan and the statement ran: later applies are not seen
    backend.apply(ClusterRecord("east"), stored(resource("pods", "ns", "p0", {"app": "db"}),
                                                resource("pods", "ns", "p9", {"app": "web"})), [], None)  # fmt: skip
    assert [first.resource.name, *(s.resource.name for s in results)] == ["p0", "p1", "p2"]
    assert [s.resource.name for s in backend.query(ResourceQuery(selector=parse_selector("app=web")))] == [
        "p1", "p2", "p9"]  # fmt: skip


def test_history_and_past_selectors_still_use_the_labels_of_their_rows(backend: SQLiteBackend) -> None:
    reconciler = Reconciler(backend, history=True)

    def wire(name: str, app: str, rv: str) -> sync_pb2.Resource:
        return sync_pb2.Resource(kind="pods", namespace="ns", name=name, uid=f"uid-{name}", resource_version=rv,
                                 labels={"app": app}, payload=b'{"phase": "Running"}')  # fmt: skip

    def full(sequence: int, *pods: sync_pb2.Resource) -> StateSet:
        return StateSet(sequence=sequence, type=sync_pb2.STATE_TYPE_FULL, kinds=["pods"], cached_kinds=[], errors=[],
                        counts={"pods": len(pods)}, resources=list(pods))  # fmt: skip

    record = ClusterRecord("east", edge_id="e")
    reconciler.apply(record, full(1, wire("a", "web", "1"), wire("b", "db", "1")), JsonSerializer(), T0)
    later = T0.replace(hour=13)
    reconciler.apply(record, full(2, wire("a", "db", "2")), JsonSerializer(), later)
    web = parse_selector("app=web")
    assert [s.resource.name for s in backend.query(ResourceQuery(selector=web, at=T0))] == ["a"]
    assert [s.resource.name for s in backend.query(ResourceQuery(selector=web))] == []
    assert [s.resource.name for s in backend.query(ResourceQuery(selector=parse_selector("app=db")))] == ["a"]
    assert [(c.name, c.type.value) for c in backend.history(HistoryQuery(selector=parse_selector("app=db")))] == [
        ("b", "DELETED"), ("a", "MODIFIED"), ("b", "ADDED")]  # fmt: skip
