"""A cluster's first state written while its chunks arrive (``first_state``), seen from the server:
the rows sit in an open transaction no other session sees, and whatever ends the write early
(an abort, a dead connection, an edge that goes away) leaves no transaction open."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres import first_state
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.plugin import create

from navigator.interfaces import ResourceQuery, StorageError
from navigator.interfaces.storage import FirstStateWrite, HistoryQuery
from navigator.resource import StoredObject
from navigator.testing.manager import run_test_manager
from navigator.testing.processes import wait_until
from navigator.testing.raw_edge import RawEdge, chunked, full_state, pod
from navigator.testing.storage_conformance import Feed, arriving, digest_of, make, moment, names, record
from navigator.v1 import sync_pb2

#: The session of a first state being written, between two chunks: its last statement a COPY.
WRITING = "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction' AND query LIKE 'COPY resources%'"


def writing(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as admin:
        return [row[0] for row in admin.execute(WRITING)]


def objects(*names_: str) -> list[StoredObject]:
    return [StoredObject(r, digest_of(r)) for r in map(make, names_)]


def test_the_rows_of_a_first_state_are_seen_by_no_one_before_it_commits(
    backend: PostgresBackend, pg_options: dict[str, Any]
) -> None:
    write = backend.begin_first_state("east")
    assert isinstance(write, FirstStateWrite)
    write.write(objects("a", "b"))
    write.write(objects("c"))
    wait_until(lambda: writing(pg_options["dsn"]), "the COPYs done, the transaction open")
    with psycopg.connect(pg_options["dsn"], autocommit=True) as admin:
        table = f'"{pg_options["schema"]}".resources'
        assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    assert names(backend) == [] and list(backend.versions("east")) == []
    write.finish(record(epoch=1), 3, moment(1), None, history=True)
    assert names(backend) == ["a", "b", "c"]
    assert [c.name for c in backend.history(HistoryQuery())] == ["c", "b", "a"]  # key order, newest first
    assert writing(pg_options["dsn"]) == []


def test_writes_aborted_close_their_connections_and_free_their_slots(
    backend: PostgresBackend, pg_options: dict[str, Any]
) -> None:
    for round_ in range(first_state.MAX_OPEN + 3):
        write = wait_until(lambda: backend.begin_first_state("east"), f"a free slot for write {round_}", timeout=10)
        write.write(objects(f"gone-{round_}"))
        write.abort()
        write.abort()
    wait_until(lambda: not writing(pg_options["dsn"]), "no transaction left open")
    # All slots come back: as many writes as there are slots at once, each of its own cluster.
    writes = [
        wait_until(lambda i=i: backend.begin_first_state(f"c{i}"), f"slot {i}", timeout=10)  # type: ignore[misc]
        for i in range(first_state.MAX_OPEN)
    ]
    assert backend.begin_first_state("one-too-many") is None  # then apply writes it, when complete
    for write in writes:
        write.abort()
    assert names(backend) == []


def test_a_write_whose_connection_dies_fails_naming_the_cluster_and_stores_nothing(
    backend: PostgresBackend, pg_options: dict[str, Any]
) -> None:
    write = backend.begin_first_state("east")
    assert write is not None
    write.write(objects("a"))
    [pid] = wait_until(lambda: writing(pg_options["dsn"]), "the write's session")
    with psycopg.connect(pg_options["dsn"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(StorageError, match="first state of east"):
        write.write(objects("b"))  # may still be queued: then finish says it
        write.finish(record(epoch=1), 2, moment(1), None, history=True)
    assert names(backend) == [] and backend.get_cluster("east") is None
    feed = Feed(backend)  # the cluster's next first state goes in
    feed(arriving(feed, [make("a")], [make("b")]))
    assert names(backend) == ["a", "b"]


async def test_an_edge_gone_midway_leaves_no_transaction_and_the_next_one_syncs(
    tmp_path: Path, pg_options: dict[str, Any]
) -> None:
    pods = [pod(f"p{i:03d}", uid=f"uid-{i}") for i in range(30)]
    chunks = chunked(full_state("east", "edge-1", 1, {"pods": pods}), 10, open_set=True)
    async with run_test_manager(tmp_path, storage="postgres", storage_options=pg_options) as manager:
        async with RawEdge(manager.address) as edge:
            await edge.identify("east", "edge-1")
            for chunk in chunks[:2]:
                ack = await edge.send_state(chunk)
                assert ack.status == sync_pb2.ACK_STATUS_BUFFERED
            await asyncio.to_thread(wait_until, lambda: writing(pg_options["dsn"]), "the set written as it arrives")
        await asyncio.to_thread(wait_until, lambda: not writing(pg_options["dsn"]), "the transaction rolled back")
        assert await manager.resources(kind="pods") == []

        async with RawEdge(manager.address) as edge:
            await edge.identify("east", "edge-1")  # the same edge, back within its grace period
            acks = [await edge.send_state(chunk) for chunk in chunks]
        assert acks[-1].status == sync_pb2.ACK_STATUS_APPLIED and acks[-1].added == len(pods)
        assert sorted(r["name"] for r in await manager.resources(kind="pods")) == [p.name for p in pods]
    reopened = create(pg_options)
    try:
        assert len(list(reopened.history(HistoryQuery(cluster="east")))) == len(pods)
        assert len(list(reopened.query(ResourceQuery(cluster="east")))) == len(pods)
    finally:
        reopened.close()
