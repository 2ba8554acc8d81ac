"""SQLite and PostgreSQL give identical changes and identical history for the same states (issue 12).

The core's reconciler decides what changed; a backend only stores it. The same
states (FULL, chunked, DELTA; adds, payload-only modifications, duplicate keys,
re-creations, stale deletions, a partial FULL) in two clusters go to each
backend, and everything the backends answer afterwards must agree: the changes,
the history (whole and filtered), the objects and cluster records at every past
moment, pruning, and an index reloaded after a reopen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import Any

import pytest

from navigator.config.manager import LimitsSection
from navigator.interfaces import ClusterRecord, ResourceQuery, StorageBackend
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.chunking import ChunkAssembler, stage_chunk
from navigator.manager.validation import StateSet
from navigator.resource import Change, ChangeType, ObjectVersion, ResourceKey, StoredResource
from navigator.testing.raw_edge import chunked
from navigator.testing.storage_conformance import (
    HISTORY_QUERIES,
    SCENARIO_CHANGES,
    SERIALIZER,
    T0,
    Feed,
    make,
    scenario,
    state,
    summary,
)
from navigator.v1 import sync_pb2

BACKENDS = ["sqlite", "postgres"]
#: The conftest's fixtures: ``store_options(backend)`` for a fresh store, ``open_store(backend, options)``.
StoreOptions = Callable[[str], dict[str, Any]]
OpenStore = Callable[[str, dict[str, Any]], StorageBackend]


def west_states() -> list[StateSet]:
    """The other cluster's states, interleaved with ``scenario()``'s (east)."""
    w1 = make("w1", labels={"app": "shop"}, data={"phase": "Running", "image": "shop:1"})
    w1_patched = replace(w1, resource_version="2", labels={"app": "shop", "canary": "yes"},
                         data={"phase": "Running", "image": "shop:2"})  # fmt: skip
    w1_done = replace(w1_patched, resource_version="3", data={"phase": "Succeeded", "image": "shop:2"})
    w2, w2_new = make("w2", labels={"app": "shop"}), make("w2", uid="w2-new", labels={"app": "shop"})
    shop = make("shop", kind="services", data={"ports": [8080]})
    return [
        # ADDED w1, w2, shop
        state(w1, w2, shop),
        # kubectl patch: image and a label: MODIFIED (image, labels)
        state(w1_patched, delta=True),
        # a chunked FULL: w2 re-created (DELETED + ADDED)
        state(w1_patched, w2_new, shop, chunks=2),
        # DELTA: w1 MODIFIED (phase), w3 twice (the last wins), shop's deletion names a stale uid (kept)
        state(
            w1_done,
            make("w3", data={"phase": "Pending"}),
            make("w3", rv="2"),
            deletions=[ResourceKey("services", "default", "shop", "stale")],
            delta=True,
        ),
        # the same again as a FULL of pods: nothing
        state(w1_done, w2_new, make("w3", rv="2"), kinds=["pods"]),
        # payload only, same resourceVersion: MODIFIED (phase)
        state(replace(w1_done, data={"phase": "Failed", "image": "shop:2"}), delta=True),
    ]


WEST_CHANGES = [
    [
        ("ADDED", "pods", "w1", "uid-pods-default-w1"),
        ("ADDED", "pods", "w2", "uid-pods-default-w2"),
        ("ADDED", "services", "shop", "uid-services-default-shop"),
    ],
    [("MODIFIED", "pods", "w1", "uid-pods-default-w1")],
    [("DELETED", "pods", "w2", "uid-pods-default-w2"), ("ADDED", "pods", "w2", "w2-new")],
    [("MODIFIED", "pods", "w1", "uid-pods-default-w1"), ("ADDED", "pods", "w3", "uid-pods-default-w3")],
    [],
    [("MODIFIED", "pods", "w1", "uid-pods-default-w1")],
]


@dataclass
class Run:
    """Everything one backend answered for the states: two backends that agree have equal runs."""

    changes: list[list[Change]]
    history: list[Change]
    filtered: dict[str, list[Change]]
    past: dict[datetime, list[StoredResource]]
    clusters: dict[datetime, list[ClusterRecord]]
    versions: dict[str, set[ObjectVersion]]
    counts: dict[str, dict[str, int]]
    pruned: int
    history_after_prune: list[Change]
    past_after_prune: dict[datetime, list[StoredResource]]
    after_reopen: list[Change]
    emptied_after_reopen: list[Change]


def run(name: str, store_options: StoreOptions, open_store: OpenStore) -> Run:
    options = store_options(name)
    backend = open_store(name, options)
    east = Feed(backend, "east", record_cluster=True)
    west = Feed(backend, "west", record_cluster=True, clock=T0 + timedelta(milliseconds=500))
    changes: list[list[Change]] = []
    times: list[datetime] = []
    for east_state, west_state in zip_longest(scenario(), west_states()):
        for feed, step in ((east, east_state), (west, west_state)):
            if step is not None:
                changes.append(feed(step))
                times.append(feed.clock)
    moments = [T0, *times, *(t + timedelta(milliseconds=250) for t in times)]
    cutoff = times[len(times) // 2] + timedelta(milliseconds=100)
    after_cutoff = [t for t in moments if t >= cutoff]
    result = Run(
        changes=changes,
        history=list(backend.history(HistoryQuery())),
        filtered={k: list(backend.history(q)) for k, q in HISTORY_QUERIES.items()},
        past={t: list(backend.query(ResourceQuery(at=t))) for t in moments},
        clusters={t: backend.list_clusters(at=t) for t in moments},
        versions={c: set(backend.versions(c)) for c in ("east", "west")},
        counts={c: backend.counts(c) for c in ("east", "west")},
        pruned=0,
        history_after_prune=[],
        past_after_prune={},
        after_reopen=[],
        emptied_after_reopen=[],
    )
    result.pruned = backend.prune_history(cutoff, None)
    result.history_after_prune = list(backend.history(HistoryQuery()))
    result.past_after_prune = {t: list(backend.query(ResourceQuery(at=t))) for t in after_cutoff}
    reopened = open_store(name, options)
    again = Feed(reopened, "west", clock=west.clock)
    result.after_reopen = again(west_states()[-1])
    result.emptied_after_reopen = again(state(kinds=["pods", "services"]))
    return result


def expected_summaries() -> list[list[tuple[str, str, str, str]]]:
    """East's and west's expected changes, interleaved the way ``run`` applies them."""
    pairs = zip_longest(SCENARIO_CHANGES, WEST_CHANGES)
    return [s for east, west in pairs for s in (east, west) if s is not None]


@pytest.fixture(params=BACKENDS)
def backend_run(request: pytest.FixtureRequest, store_options: StoreOptions, open_store: OpenStore) -> Run:
    return run(request.param, store_options, open_store)


def test_each_backend_gives_the_expected_changes(backend_run: Run) -> None:
    assert [summary(c) for c in backend_run.changes] == expected_summaries()
    modified = [c for batch in backend_run.changes for c in batch if c.type is ChangeType.MODIFIED]
    assert [(c.cluster, c.name, c.old_resource_version, c.new_resource_version, c.changed_fields)
            for c in modified] == [
        ("west", "w1", "1", "2", ("image", "labels")),  # kubectl patch
        ("east", "a", "1", "1", ("phase",)),  # payload only
        ("east", "b", "1", "2", ("labels",)),
        ("west", "w1", "2", "3", ("phase",)),
        ("east", "a", "1", "2", ("node", "phase")),
        ("west", "w1", "3", "3", ("phase",)),  # payload only
    ]  # fmt: skip
    assert backend_run.after_reopen == []  # the index reloaded from versions() knows everything
    assert sorted(summary(backend_run.emptied_after_reopen)) == [
        ("DELETED", "pods", "w1", "uid-pods-default-w1"),
        ("DELETED", "pods", "w2", "w2-new"),
        ("DELETED", "pods", "w3", "uid-pods-default-w3"),
        ("DELETED", "services", "shop", "uid-services-default-shop"),
    ]


def test_each_backend_keeps_every_change_newest_first(backend_run: Run) -> None:
    applied = [c for batch in backend_run.changes for c in batch]
    assert backend_run.history == applied[::-1]
    assert len(backend_run.history) == sum(len(s) for s in expected_summaries())


def test_each_backend_rebuilds_the_past(backend_run: Run) -> None:
    assert backend_run.past[T0] == []
    assert backend_run.clusters[T0] == []
    final = max(backend_run.past)
    assert [(i.cluster, i.resource.name) for i in backend_run.past[final]] == [
        ("west", "w1"), ("west", "w2"), ("west", "w3"), ("west", "shop"),
    ]  # fmt: skip
    for moment, objects in backend_run.past_after_prune.items():
        assert objects == backend_run.past[moment], f"at {moment} after pruning"


def test_sqlite_and_postgres_agree(store_options: StoreOptions, open_store: OpenStore) -> None:
    sqlite, postgres = (run(name, store_options, open_store) for name in BACKENDS)
    for field in Run.__dataclass_fields__:
        assert getattr(sqlite, field) == getattr(postgres, field), (
            f"{field} differs between SQLite and PostgreSQL"
        )


def through_chunks(whole: StateSet, per_chunk: int, feed: Feed, open_set: bool = False) -> StateSet:
    """``whole`` sent as a chunk set, each chunk staged as it arrives, and put together again as the
    manager does (``ChunkAssembler``, ``stage_chunk``)."""
    message = sync_pb2.ClusterState(
        edge_id="edge-1", cluster_id="east", sequence=1, type=sync_pb2.StateType.ValueType(whole.type), kinds=whole.kinds,
        cached_kinds=whole.cached_kinds, errors=whole.errors, resources=whole.resources,
    )  # fmt: skip
    message.timestamp.FromDatetime(T0)
    limits = LimitsSection()
    assembler = ChunkAssembler(limits)
    assembled: list[StateSet | None] = []
    for chunk in chunked(message, per_chunk, open_set=open_set):
        done = assembler.add(chunk)
        target = done if done is not None else assembler.collecting
        assert target is not None
        more = done is None
        stage_chunk(feed.reconciler, feed.cluster, target, list(chunk.resources), limits, None, SERIALIZER, more)
        assembled.append(done)
    *partial, complete = assembled
    assert partial and not any(partial) and complete is not None
    return complete


@pytest.mark.parametrize("open_set", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("name", BACKENDS)
def test_a_chunk_set_changes_what_the_whole_state_changes(
    name: str, open_set: bool, store_options: StoreOptions, open_store: OpenStore
) -> None:
    whole, split = (Feed(open_store(name, store_options(name))) for _ in range(2))
    for step in scenario():
        if step.full and len(step.resources) > 2:  # at least two chunks
            assert split(through_chunks(step, 2, split, open_set)) == whole(step)
        else:
            assert split(step) == whole(step)
    assert list(split.backend.history(HistoryQuery())) == list(whole.backend.history(HistoryQuery()))
