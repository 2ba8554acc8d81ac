"""A cluster's first state on SQLite, written as it arrives while nothing else writes: the rows go
into the writer's open transaction chunk by chunk; any other write takes the writer back (the early
rows are rolled back and the state is written whole when complete); a process killed midway leaves
nothing of it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from navigator_plugins.storage.sqlite import create
from navigator_plugins.storage.sqlite.backend import SQLiteBackend

from navigator.interfaces import ResourceQuery
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.reconciler import abandon
from navigator.selectors import parse_selector
from navigator.testing.storage_conformance import Feed, arriving, make, more_of, names, store

#: Pods that arrive out of key order, two label sets.
PODS = [make(f"p{i}", labels={"app": "web" if i % 2 else "db"}) for i in (7, 2, 9, 4, 1, 8, 3, 6, 5, 0)]
IN_KEY_ORDER = sorted(PODS, key=lambda r: r.name)


def test_rows_numbered_as_they_arrive_are_queried_indexed_and_recorded_in_key_order(
    backend: SQLiteBackend, tmp_path: Path
) -> None:
    feed = Feed(backend)
    arrived = arriving(feed, PODS[:4], PODS[4:7], more=True)
    assert backend._early is not None  # the rows are going in as they arrive
    other = create({"path": str(tmp_path / "navigator.db")})  # another process's view of the file
    try:
        assert names(other) == [] and names(backend) == []
    finally:
        other.close()
    changes = feed(more_of(feed, arrived, PODS[7:]))
    assert [c.name for c in changes] == [r.name for r in IN_KEY_ORDER]
    assert [i.resource for i in backend.query(ResourceQuery())] == IN_KEY_ORDER
    assert [c.name for c in backend.history(HistoryQuery())] == [r.name for r in IN_KEY_ORDER][::-1]
    web = backend.query(ResourceQuery(selector=parse_selector("app=web")))
    assert [i.resource.name for i in web] == [r.name for r in IN_KEY_ORDER if r.labels["app"] == "web"]
    missing = backend.query(ResourceQuery(selector=parse_selector("!app")))
    assert list(missing) == []
    assert backend._early is None


def test_another_write_takes_the_writer_back_and_both_are_stored(backend: SQLiteBackend) -> None:
    east = Feed(backend)
    arrived = arriving(east, PODS[:5], more=True)
    assert backend._early is not None
    store(backend, [make("w1"), make("w2")], cluster="west")  # another cluster's state comes first
    assert backend._early is None
    east(more_of(east, arrived, PODS[5:8], PODS[8:]))
    assert names(backend, cluster="east") == [r.name for r in IN_KEY_ORDER]
    assert names(backend, cluster="west") == ["w1", "w2"]
    assert [c.name for c in backend.history(HistoryQuery(cluster="east"))] == [r.name for r in IN_KEY_ORDER][::-1]
    web = backend.query(ResourceQuery(cluster="east", selector=parse_selector("app=web")))
    assert len(list(web)) == 5


def test_a_state_dropped_midway_is_rolled_back_by_the_next_write(backend: SQLiteBackend) -> None:
    east = Feed(backend)
    abandon(arriving(east, PODS[:5], more=True))  # an edge gone midway
    assert backend._early is not None and backend._early.abandoned
    store(backend, [make("w1")], cluster="west")
    assert backend._early is None
    assert names(backend, cluster="east") == [] and names(backend, cluster="west") == ["w1"]
    east(arriving(east, PODS[:2], PODS[2:]))  # the edge again, from the start
    assert names(backend, cluster="east") == [r.name for r in IN_KEY_ORDER]


def test_a_process_killed_midway_leaves_nothing_of_the_state(tmp_path: Path) -> None:
    path = tmp_path / "navigator.db"
    script = textwrap.dedent(f"""
        import os
        from navigator_plugins.storage.sqlite import create
        from navigator.testing.storage_conformance import Feed, arriving, make
        backend = create({{"path": {str(path)!r}}})
        backend.migrate()
        feed = Feed(backend)
        arriving(feed, [make(f"p{{i}}") for i in range(500)], [make(f"q{{i}}") for i in range(500)], more=True)
        assert backend._early is not None
        print("written", flush=True)
        os._exit(9)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "written" in run.stdout, run.stderr
    reopened = create({"path": str(path)})
    try:
        reopened.migrate()
        assert names(reopened) == [] and list(reopened.history(HistoryQuery())) == []
        feed = Feed(reopened)
        feed(arriving(feed, [make("a")], [make("b")]))
        assert names(reopened) == ["a", "b"]
    finally:
        reopened.close()
