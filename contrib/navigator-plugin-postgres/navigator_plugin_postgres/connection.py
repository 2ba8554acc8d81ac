"""Connecting to PostgreSQL: the pool, per-connection settings, and errors a user can act on.

Every failure that leaves this module is a ``StorageError`` whose message names
the server (never the password) and says what went wrong in one line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool

from navigator.plugin import StorageError
from navigator_plugin_postgres.options import PostgresOptions

#: ``application_name`` of Navigator's connections (unless the DSN sets one): finds them in pg_stat_activity.
APPLICATION_NAME = "navigator-manager"

#: ``application_name`` of the connection that follows other managers' changes (``LISTEN``).
FOLLOWER_APPLICATION_NAME = "navigator-follow"

#: Session-private table the objects of an ``apply`` are COPYed into; emptied at every commit.
STAGING_TABLE = "navigator_upserts"


def describe_target(dsn: str) -> str:
    """``host=... port=... dbname=... user=...`` for messages: enough to find the server, no secrets."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparseable DSN)"
    shown = [
        f"{key}={params[key]}" for key in ("host", "hostaddr", "port", "dbname", "user") if params.get(key)
    ]
    return " ".join(shown) or "(libpq defaults)"


def describe_error(exc: BaseException) -> str:
    """The first useful line of a psycopg error, without libpq's indentation and hints."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else text
    for prefix in ("connection failed: ", "connection is bad: "):
        first = first.removeprefix(prefix)
    # libpq repeats the target before the reason: keep the reason.
    if "failed: " in first and first.startswith("connection to server"):
        first = first.split("failed: ", 1)[1]
    return first.removeprefix("FATAL:").strip()


def explain_connect_failure(options: PostgresOptions, exc: BaseException) -> StorageError:
    """Turn a failed first connection into the error a user reads at manager startup."""
    target = describe_target(options.dsn)
    reason = describe_error(exc)
    bad_option = "for connection option" in reason or "invalid connection option" in reason
    if bad_option or (
        isinstance(exc, psycopg.ProgrammingError)
        and not isinstance(exc, psycopg.errors.InsufficientPrivilege)
    ):
        return StorageError(f"invalid PostgreSQL DSN in storage.options.dsn: {reason}")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StorageError(f"PostgreSQL at {target} refused access: {reason}")
    lowered = reason.lower()
    if "password authentication failed" in lowered or "no pg_hba.conf entry" in lowered:
        return StorageError(f"PostgreSQL at {target} rejected the credentials: {reason}")
    if "does not exist" in lowered:
        return StorageError(f"PostgreSQL at {target}: {reason} (create it first)")
    if any(s in lowered for s in ("refused", "timeout", "timed out", "resolve host", "translate host")):
        return StorageError(f"cannot reach PostgreSQL at {target}: {reason} (is the server running there?)")
    return StorageError(f"cannot connect to PostgreSQL at {target}: {reason}")


def check_server(options: PostgresOptions) -> None:
    """Open one connection outside the pool so startup fails fast with the real reason."""
    try:
        conn = psycopg.connect(options.dsn, connect_timeout=_libpq_timeout(options.connect_timeout))
    except psycopg.Error as exc:
        raise explain_connect_failure(options, exc) from None
    conn.close()


def _libpq_timeout(seconds: float) -> int:
    # libpq takes whole seconds and treats anything below 2 as 2.
    return max(2, math.ceil(seconds))


class JsonBytesLoader(Loader):
    """A ``json`` value as its text's bytes, unparsed (``jsonb`` labels still load as dicts)."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _configure(
    options: PostgresOptions, staging: bool = True, idle_limit: float = 0.0
) -> Callable[[psycopg.Connection[Any]], None]:
    # Only where asked: elsewhere the server's (or the role's) own setting stands.
    idle = " set_config('idle_in_transaction_session_timeout', {idle}, false)," if idle_limit > 0 else ""
    settings = sql.SQL(
        "SELECT set_config('search_path', {schema}, false), set_config('TimeZone', 'UTC', false),"
        " set_config('statement_timeout', {timeout}, false),"
        + idle
        # JIT compiles for the big ingest statements and costs more than it saves on them.
        + " set_config('jit', 'off', false),"
        # Query results stream through cursors but are read to the end: plan for all rows,
        # not for the first tenth (which picks scans that are quick to start, slow to finish).
        " set_config('cursor_tuple_fraction', '1', false)"
    ).format(
        schema=sql.Literal(options.schema_name),
        timeout=sql.Literal(str(int(options.statement_timeout * 1000))),
        idle=sql.Literal(str(math.ceil(idle_limit * 1000))),
    )
    create_staging = sql.SQL(
        'CREATE TEMP TABLE IF NOT EXISTS {table} (kind text COLLATE "C", namespace text COLLATE "C",'
        ' name text COLLATE "C", uid text, resource_version text, labels text, data text, digest text)'
        " ON COMMIT DELETE ROWS"
    ).format(table=sql.Identifier(STAGING_TABLE))

    def configure(conn: psycopg.Connection[Any]) -> None:
        set_json_loads(orjson.loads, conn)
        # ``data`` (type json) comes back as the bytes that were stored: queries pass them on.
        conn.adapters.register_loader("json", JsonBytesLoader)
        set_json_dumps(orjson.dumps, conn)
        conn.execute(settings)
        if staging:
            conn.execute(create_staging)
        conn.commit()

    return configure


def open_pool(options: PostgresOptions, *, writes: bool = True) -> ConnectionPool:
    """A connection pool whose connections are checked before use and set up for Navigator.

    A write transaction left idle longer than a claim's lease is ended by the server
    (``writes``): its manager is frozen or stalled, and the cluster lock it holds must not
    hold up the manager that takes its clusters over once the lease has run out. The
    retry, or the fence, then deals with what the frozen manager still meant to write.
    Readers stream to callers that may pause, so their pool has no such limit.
    """
    check_server(options)
    kwargs: dict[str, Any] = {"connect_timeout": _libpq_timeout(options.connect_timeout)}
    if "application_name" not in conninfo_to_dict(options.dsn):
        kwargs["application_name"] = APPLICATION_NAME
    pool = ConnectionPool(
        options.dsn,
        min_size=options.pool_min_size,
        max_size=options.pool_max_size,
        kwargs=kwargs,
        configure=_configure(options, idle_limit=options.lease_ttl if writes else 0.0),
        check=ConnectionPool.check_connection,
        timeout=options.connect_timeout,
        name="navigator-postgres",
        open=False,
    )
    try:
        pool.open(wait=options.pool_min_size > 0, timeout=options.connect_timeout)
    except psycopg.Error as exc:
        pool.close()
        raise explain_connect_failure(options, exc) from None
    return pool


def connect_writer(options: PostgresOptions) -> psycopg.Connection[Any]:
    """One connection of its own, outside the pools, set up like theirs: for a write that spans
    several storage calls (``first_state``), which must not hold a pool's connection that long."""
    return _own_connection(options, APPLICATION_NAME)


def _own_connection(options: PostgresOptions, name: str, **settings: Any) -> psycopg.Connection[Any]:
    """A connection outside the pools, set up like theirs (schema, UTC, JSON loaders), no staging table."""
    kwargs: dict[str, Any] = {"connect_timeout": _libpq_timeout(options.connect_timeout), **settings}
    if "application_name" not in conninfo_to_dict(options.dsn):
        kwargs["application_name"] = name
    conn = psycopg.connect(options.dsn, **kwargs)
    try:
        _configure(options, staging=False)(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_follower(options: PostgresOptions) -> psycopg.Connection[Any]:
    """One connection of its own, outside the pools, in autocommit: it sits in ``LISTEN`` for good.

    Set up like the pools' (schema, UTC, JSON loaders: it reads history rows), plus TCP
    keepalives so that a peer that vanished without closing the socket is noticed while
    the connection waits idle for notifications.
    """
    return _own_connection(
        options,
        FOLLOWER_APPLICATION_NAME,
        autocommit=True,
        keepalives=1,
        keepalives_idle=max(1, math.ceil(options.heartbeat_interval)),
        keepalives_interval=max(1, math.ceil(options.heartbeat_interval)),
        keepalives_count=3,
    )
