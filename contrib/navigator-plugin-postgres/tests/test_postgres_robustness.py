"""Lost connections, bad DSNs, unreachable servers, missing permissions, bad options: clear errors, no lost data."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.connection import APPLICATION_NAME
from navigator_plugin_postgres.ingest import CLUSTER_LOCK_CLASS
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.plugin import create
from psycopg.conninfo import make_conninfo

from navigator.plugin import ChangeType, HistoryQuery, Resource, ResourceQuery, StorageError
from navigator.plugin_manager import discover, load_plugins, storage_backend
from navigator.testing.storage_conformance import Feed, make, state


def pods(prefix: str, n: int) -> list[Resource]:
    return [make(f"{prefix}{i}") for i in range(n)]


def names(backend: PostgresBackend) -> list[str]:
    return [item.resource.name for item in backend.query(ResourceQuery())]


def terminate(admin: psycopg.Connection[Any], where: str = "true") -> int:
    """Kill Navigator's server processes on this database, as a failover or an admin would."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid() AND {where}",
        [APPLICATION_NAME],
    ).fetchall()
    return len(rows)


@pytest.fixture
def admin(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


def test_the_next_apply_succeeds_after_every_connection_was_killed(
    backend: PostgresBackend, admin: psycopg.Connection[Any]
) -> None:
    feed = Feed(backend)
    feed(state(*pods("a", 5)))
    assert terminate(admin) >= 1
    changes = feed(state(*pods("a", 6)))
    assert [(c.type, c.name) for c in changes] == [(ChangeType.ADDED, "a5")]
    assert terminate(admin) >= 1
    assert len(names(backend)) == 6
    assert terminate(admin) >= 1
    assert len(list(backend.history(HistoryQuery()))) == 6
    assert terminate(admin) >= 1
    assert len(list(backend.versions("east"))) == 6


def _kill_after_the_writes(backend: PostgresBackend, admin: psycopg.Connection[Any], apply: Any) -> Any:
    """Run ``apply`` in a thread and kill its connection mid-transaction: objects and history
    written, waiting to save the cluster record, whose row we hold locked; then let it continue."""
    outcome: dict[str, Any] = {}
    schema = backend.options.schema_name
    with psycopg.connect(backend.options.dsn) as holder:
        holder.execute(f'SELECT 1 FROM "{schema}".clusters WHERE cluster = %s FOR UPDATE', ["east"])

        def run() -> None:
            try:
                outcome["result"] = apply()
            except Exception as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        waiting = "pid IN (SELECT pid FROM pg_locks WHERE NOT granted) AND query LIKE '%%clusters%%'"
        deadline = time.monotonic() + 120
        while terminate(admin, waiting) == 0:
            assert time.monotonic() < deadline, "the apply never reached the cluster record"
            time.sleep(0.02)
        holder.rollback()
    worker.join(120)
    return outcome


def test_a_snapshot_cut_off_mid_transaction_is_retried_whole(
    backend: PostgresBackend, admin: psycopg.Connection[Any]
) -> None:
    feed = Feed(backend)
    feed(state(*pods("old", 20)))
    new = pods("new", 30)
    outcome = _kill_after_the_writes(backend, admin, lambda: feed(state(*new)))
    assert "error" not in outcome, outcome
    assert len(outcome["result"]) == 50  # 30 added, 20 deleted
    assert names(backend) == sorted(r.name for r in new)
    assert len(list(backend.history(HistoryQuery()))) == 70  # written once, by the attempt that committed
    stored = backend.get_cluster("east")
    assert stored is not None and stored.last_sequence == 2


def test_a_snapshot_that_cannot_be_retried_changes_nothing(
    pg_options: dict[str, Any], admin: psycopg.Connection[Any]
) -> None:
    backend = PostgresBackend(parse_options({**pg_options, "retry_attempts": 1}))
    backend.migrate()
    try:
        feed = Feed(backend)
        feed(state(*pods("old", 20)))
        outcome = _kill_after_the_writes(backend, admin, lambda: feed(state(*pods("new", 30))))
        assert isinstance(outcome.get("error"), StorageError)
        assert "applying a state to east failed after 1 attempts" in str(outcome["error"])
        assert names(backend) == sorted(r.name for r in pods("old", 20))
        assert len(list(backend.history(HistoryQuery()))) == 20
        stored = backend.get_cluster("east")
        assert stored is not None and stored.last_sequence == 1
    finally:
        backend.close()


def test_a_statement_timeout_is_reported_not_retried(
    pg_options: dict[str, Any], admin: psycopg.Connection[Any]
) -> None:
    backend = PostgresBackend(parse_options({**pg_options, "statement_timeout": "300ms"}))
    backend.migrate()
    try:
        feed = Feed(backend)
        feed(state(*pods("old", 3)))
        admin.execute("SELECT pg_advisory_lock(%s, hashtext('east'))", [CLUSTER_LOCK_CLASS])
        try:
            with pytest.raises(StorageError, match=r"applying a state to east failed: .*statement timeout"):
                feed(state(*pods("new", 3)))
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s, hashtext('east'))", [CLUSTER_LOCK_CLASS])
        assert names(backend) == ["old0", "old1", "old2"]
    finally:
        backend.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("this is not a dsn", "invalid PostgreSQL DSN in storage.options.dsn"),
        ("host=127.0.0.1 port=fivefourthreetwo", 'invalid PostgreSQL DSN.*"port"'),
        ("host=127.0.0.1 colour=blue", 'invalid PostgreSQL DSN.*"colour"'),
    ],
)
def test_a_bad_dsn_is_named(dsn: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        create({"dsn": dsn})


def test_an_unreachable_server_is_a_clear_startup_error() -> None:
    port = _closed_port()
    with pytest.raises(StorageError) as caught:
        create({"dsn": f"postgresql://navigator:secret-password@127.0.0.1:{port}/navigator", "connect_timeout": 2})
    message = str(caught.value)
    assert f"cannot reach PostgreSQL at host=127.0.0.1 port={port} dbname=navigator user=navigator" in message
    assert "refused" in message.lower()
    assert "secret-password" not in message


def test_a_missing_database_is_named(pg_dsn: str) -> None:
    with pytest.raises(StorageError, match='database "no_such_navigator_db" does not exist'):
        create({"dsn": make_conninfo(pg_dsn, dbname="no_such_navigator_db")})


def test_missing_permissions_are_explained_and_a_migrated_schema_needs_only_dml(
    pg_dsn: str, pg_options: dict[str, Any], admin: psycopg.Connection[Any]
) -> None:
    role = f"navigator_limited_{secrets.token_hex(4)}"
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    limited = {**pg_options, "dsn": make_conninfo(pg_dsn, user=role)}
    try:
        backend = create(limited)
        try:
            with pytest.raises(StorageError, match=f"cannot create Navigator's tables in schema '{pg_options['schema']}'"):
                backend.migrate()
        finally:
            backend.close()
        # An administrator migrates once and grants plain reads and writes.
        owner = create(pg_options)
        owner.migrate()
        owner.close()
        schema = pg_options["schema"]
        admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        admin.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        backend = create(limited)
        try:
            backend.migrate()
            feed = Feed(backend, record_cluster=True)
            feed(state(*pods("a", 3)))
            feed(state(*pods("a", 2)))
            assert len(list(backend.query(ResourceQuery()))) == 2
            assert len(list(backend.history(HistoryQuery()))) == 4
            later = feed.clock + timedelta(seconds=1)
            assert backend.prune_history(later, None) == 2  # a2's two rows; a0, a1 keep their ADDED
            assert backend.get_cluster("east", at=feed.clock) == feed.record
        finally:
            backend.close()
    finally:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dsn": "host=x", "colour": "blue"}, "storage.options.colour: unknown key"),
        ({"dsn": "host=x", "schema": "Bad-Name"}, "storage.options: schema 'Bad-Name' must be"),
        ({"dsn": "host=x", "lease_ttl": "5s", "heartbeat_interval": "10s"}, "heartbeat_interval"),
        ({"dsn": "host=x", "connect_timeout": "soon"}, "storage.options.connect_timeout: invalid duration"),
        ({"dsn": "host=x", "pool_min_size": 5, "pool_max_size": 2}, "pool_max_size"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(StorageError, match=message):
        parse_options(options, environ={})


def test_the_dsn_may_come_from_the_environment() -> None:
    with pytest.raises(StorageError, match="NAVIGATOR_POSTGRES_DSN"):
        parse_options({}, environ={})
    parsed = parse_options({"pool_max_size": "3", "lease_ttl": "1m"}, environ={"NAVIGATOR_POSTGRES_DSN": "host=db"})
    assert (parsed.dsn, parsed.pool_max_size, parsed.lease_ttl, parsed.schema_name) == ("host=db", 3, 60.0, "navigator")


def test_installed_as_the_postgres_storage_plugin(pg_options: dict[str, Any]) -> None:
    [info] = [p for p in discover({"storage": ["postgres"]}) if (p.group, p.name) == ("navigator.storage", "postgres")]
    assert (info.distribution, info.enabled) == ("navigator-plugin-postgres", True)
    plugin = storage_backend(load_plugins({"storage": ["postgres"]}), "postgres")
    backend = plugin.create(pg_options)
    try:
        backend.migrate()
        assert backend.list_clusters() == []
    finally:
        backend.close()


def test_a_query_read_slowly_is_not_cut_off_by_the_idle_write_limit(pg_options: dict[str, Any]) -> None:
    # Writes idle longer than lease_ttl are ended by the server (a frozen manager's lock);
    # a query's reader may pause longer than that between pages and still gets every row.
    backend = PostgresBackend(parse_options({**pg_options, "lease_ttl": "0.5s", "heartbeat_interval": "0.1s"}))
    backend.migrate()
    try:
        Feed(backend)(state(*pods("p", 2500)))  # more rows than one page of the stream
        rows = backend.query(ResourceQuery())
        first = next(rows)
        time.sleep(1.0)  # twice the limit, inside the query's transaction
        assert 1 + sum(1 for _ in rows) == 2500 and first.resource.name == "p0"
    finally:
        backend.close()
