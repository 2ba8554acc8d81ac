"""Group commit: states queued together on the storage thread share one transaction, each with its own outcome.

Real SQLite, the manager's own storage worker and reconciler; the worker is held busy
so that the states queue behind it, as they do in a reconnect storm.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.storage.sqlite import create
from navigator_plugins.storage.sqlite.backend import SQLiteBackend

from navigator.interfaces import ClusterRecord, ResourceQuery, StorageError
from navigator.interfaces.storage import StorageFenced
from navigator.manager import apply as apply_module
from navigator.manager.apply import StorageWorker, apply_state
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import InvalidState, StateSet
from navigator.resource import ChangeType
from navigator.testing.storage_conformance import make, state, store_as

STAMP = datetime(2026, 12, 3, 12, 0, 5, tzinfo=UTC)


class _Writer:
    """The backend's writer connection, counting transactions and failing the next COMMIT on request."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fail_commit = False
        self.commits = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            self.commits += 1
            if self.fail_commit:
                self.fail_commit = False
                raise sqlite3.OperationalError("disk I/O error")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SQLiteBackend]:
    backend = create({"path": str(tmp_path / "navigator.db")})
    backend.migrate()
    backend._writer = _Writer(backend._writer)
    yield backend
    backend.close()


@pytest.fixture
async def worker() -> Any:
    worker = StorageWorker()
    yield worker
    await asyncio.to_thread(worker.shutdown)


def writer(backend: SQLiteBackend) -> _Writer:
    return backend._writer


async def queued(worker: StorageWorker, *applies: Any) -> list[Any]:
    """Run ``applies`` (coroutines) queued behind a busy storage thread; their outcomes, in order."""
    release = threading.Event()
    busy = worker.call(release.wait, 10)
    busy_task = asyncio.ensure_future(busy)
    tasks = [asyncio.ensure_future(a) for a in applies]
    for _ in range(3):
        await asyncio.sleep(0)  # every apply is submitted before the thread is let go
    release.set()
    await busy_task
    return await asyncio.gather(*tasks, return_exceptions=True)


def applying(
    worker: StorageWorker, reconciler: Reconciler, cluster: str, s: StateSet, epoch: int = 0
) -> Any:
    return apply_state(worker, reconciler, ClusterRecord(cluster, epoch=epoch), s, JsonSerializer(), lambda: STAMP)


def stored(backend: SQLiteBackend, cluster: str) -> list[str]:
    return [r.resource.name for r in backend.query(ResourceQuery(cluster=cluster))]


async def test_states_queued_together_share_one_commit(backend: SQLiteBackend, worker: StorageWorker) -> None:
    reconciler = Reconciler(backend)
    before = writer(backend).commits
    outcomes = await queued(worker, *(applying(worker, reconciler, f"c{i}", state(make(f"p{i}"))) for i in range(5)))
    assert [changes[0].type for _, changes in outcomes] == [ChangeType.ADDED] * 5
    assert writer(backend).commits - before == 1
    assert all(stored(backend, f"c{i}") == [f"p{i}"] for i in range(5))


async def test_a_state_that_fails_in_a_group_leaves_the_others_applied(
    backend: SQLiteBackend, worker: StorageWorker
) -> None:
    store_as(backend, 5, [make("held")], cluster="fenced")  # a newer claim wrote it
    reconciler = Reconciler(backend)
    bad = state(make("broken"))
    bad.resources[0].payload = b"{not json"
    before = writer(backend).commits
    outcomes = await queued(
        worker,
        applying(worker, reconciler, "first", state(make("a"))),
        applying(worker, reconciler, "fenced", state(make("late")), epoch=1),
        applying(worker, reconciler, "invalid", bad),
        applying(worker, reconciler, "last", state(make("b"))),
    )
    assert writer(backend).commits - before == 1
    assert isinstance(outcomes[1], StorageFenced) and isinstance(outcomes[2], InvalidState)
    assert outcomes[0][0].last_sync == STAMP and [c.name for c in outcomes[0][1]] == ["a"]
    assert [c.name for c in outcomes[3][1]] == ["b"]
    assert stored(backend, "first") == ["a"] and stored(backend, "last") == ["b"]
    assert stored(backend, "fenced") == ["held"] and stored(backend, "invalid") == []
    fenced = backend.get_cluster("fenced")
    assert fenced is not None and fenced.epoch == 5
    # The failed states left the reconciler's index as it was: the next states are judged against what is stored.
    again = await applying(worker, reconciler, "invalid", state(make("broken")))
    assert [c.type for c in again[1]] == [ChangeType.ADDED]


async def test_a_failed_commit_fails_every_state_of_the_group(backend: SQLiteBackend, worker: StorageWorker) -> None:
    reconciler = Reconciler(backend)
    await applying(worker, reconciler, "c0", state(make("old")))
    writer(backend).fail_commit = True
    outcomes = await queued(
        worker,
        applying(worker, reconciler, "c0", state(make("new"))),
        applying(worker, reconciler, "c1", state(make("p1"))),
        applying(worker, reconciler, "c2", state(make("p2"))),
    )
    assert all(isinstance(o, StorageError) and "disk I/O error" in str(o) for o in outcomes), outcomes
    assert stored(backend, "c0") == ["old"] and stored(backend, "c1") == [] and stored(backend, "c2") == []
    # What the reconciler had noted of them is forgotten: the same states are applied again in full.
    retried = await queued(
        worker,
        applying(worker, reconciler, "c0", state(make("new"))),
        applying(worker, reconciler, "c1", state(make("p1"))),
    )
    assert [(c.type, c.name) for c in retried[0][1]] == [(ChangeType.ADDED, "new"), (ChangeType.DELETED, "old")]
    assert [(c.type, c.name) for c in retried[1][1]] == [(ChangeType.ADDED, "p1")]
    assert stored(backend, "c0") == ["new"] and stored(backend, "c1") == ["p1"]


async def test_states_of_one_cluster_keep_their_order_in_separate_transactions(
    backend: SQLiteBackend, worker: StorageWorker
) -> None:
    reconciler = Reconciler(backend)
    before = writer(backend).commits
    v2 = make("p", rv="2", data={"phase": "Failed"})
    outcomes = await queued(
        worker,
        applying(worker, reconciler, "east", state(make("p", rv="1"))),
        applying(worker, reconciler, "west", state(make("w"))),
        applying(worker, reconciler, "east", state(v2, delta=True)),
        applying(worker, reconciler, "north", state(make("n"))),
    )
    assert [c.type for c in outcomes[0][1]] == [ChangeType.ADDED]
    modified = outcomes[2][1]
    assert [(c.type, c.old_resource_version, c.new_resource_version) for c in modified] == [
        (ChangeType.MODIFIED, "1", "2")
    ]
    assert modified[0].changed_fields == ("phase",)  # read back from what the first state stored
    assert writer(backend).commits - before == 2  # east, west and north; then east's DELTA
    [p] = [r.resource for r in backend.query(ResourceQuery(cluster="east"))]
    assert p.resource_version == "2"


async def test_a_group_is_bounded(
    backend: SQLiteBackend, worker: StorageWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply_module, "GROUP_STATES", 2)
    reconciler = Reconciler(backend)
    before = writer(backend).commits
    await queued(worker, *(applying(worker, reconciler, f"c{i}", state(make("p"))) for i in range(5)))
    assert writer(backend).commits - before == 3


async def test_a_backend_without_group_commit_gets_a_transaction_per_state(
    backend: SQLiteBackend, worker: StorageWorker
) -> None:
    class Plain:
        """The backend without ``batch``, as a third party's or an older plugin is."""

        def __init__(self, inner: SQLiteBackend) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            if name == "batch":
                raise AttributeError(name)
            return getattr(self._inner, name)

    store_as(backend, 5, [make("held")], cluster="fenced")
    reconciler = Reconciler(Plain(backend))
    before = writer(backend).commits
    outcomes = await queued(
        worker,
        applying(worker, reconciler, "a", state(make("a"))),
        applying(worker, reconciler, "fenced", state(make("late")), epoch=1),
        applying(worker, reconciler, "b", state(make("b"))),
    )
    assert writer(backend).commits - before == 2
    assert isinstance(outcomes[1], StorageFenced)
    assert stored(backend, "a") == ["a"] and stored(backend, "b") == ["b"]



async def test_small_states_pass_big_ones_of_other_clusters_never_their_own(
    backend: SQLiteBackend, worker: StorageWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply_module, "GROUP_STATES", 2)
    monkeypatch.setattr(apply_module, "SMALL", 1)
    reconciler = Reconciler(backend)
    order: list[str] = []

    def apply_logged(cluster: str, s: StateSet) -> Any:
        def clock() -> datetime:
            order.append(cluster)
            return STAMP

        return apply_state(worker, reconciler, ClusterRecord(cluster), s, JsonSerializer(), clock)

    big = [make("p1", rv="1"), make("p2", rv="1")]
    outcomes = await queued(
        worker,
        apply_logged("a", state(*big)),
        apply_logged("b", state(*big)),
        apply_logged("a", state(make("p1", rv="2", data={"phase": "Failed"}), delta=True)),
        apply_logged("c", state(make("p1"), delta=True)),
    )
    # c's small DELTA joins the head's group; a's waits for a's FULL; b's FULL and a's DELTA come next.
    assert order == ["a", "c", "b", "a"]
    assert [(c.type, c.new_resource_version) for c in outcomes[2][1]] == [(ChangeType.MODIFIED, "2")]
    assert all(not isinstance(o, BaseException) for o in outcomes)
