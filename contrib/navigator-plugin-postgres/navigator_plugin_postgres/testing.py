"""A real, throwaway PostgreSQL database for tests (this plugin's and anyone else's).

``postgres_dsn()`` creates a fresh, uniquely named database and drops it
afterwards. The server is the first of these that works, in this order:

1. ``NAVIGATOR_TEST_POSTGRES_DSN`` when set (an account that may create
   databases). When it is set but does not work, that is the answer: no other
   server is tried, so a run never quietly uses a server nobody asked for.
2. A PostgreSQL on this machine at 127.0.0.1:5432, user ``postgres``, database
   ``postgres`` or ``test``, when it answers within a two-second connect timeout
   and lets that user create databases.
3. A throwaway server from the ``pgserver`` package (a test extra), which
   downloads nothing: it ships PostgreSQL binaries and runs them from a
   temporary directory (as an unprivileged ``pgserver`` user when run as root).

When none works, ``PostgresUnavailable`` says why each one did not. Whether a
test suite then fails or skips is its own policy; this plugin's tests fail
unless ``NAVIGATOR_TEST_POSTGRES=skip`` opts out (see ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: An administrative DSN (may create databases) of a server to run tests against.
DSN_ENV = "NAVIGATOR_TEST_POSTGRES_DSN"
#: ``skip`` opts a run out of PostgreSQL: test suites that honour it skip, naming this variable.
OPT_OUT_ENV = "NAVIGATOR_TEST_POSTGRES"
#: Where a developer's or CI's own PostgreSQL usually answers.
LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 5432
LOCAL_DSNS = tuple(f"postgresql://postgres@{LOCAL_HOST}:{LOCAL_PORT}/{db}" for db in ("postgres", "test"))
#: Seconds to wait for a server to answer (libpq's minimum is 2).
CONNECT_TIMEOUT = 2


class PostgresUnavailable(RuntimeError):
    """No server to test against; the message says why each candidate did not work."""


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A server tests may create databases on."""

    dsn: str  #: administrative: may create and drop databases
    origin: str  #: how it was chosen, e.g. "from NAVIGATOR_TEST_POSTGRES_DSN"
    version: str

    def __str__(self) -> str:
        return f"PostgreSQL {self.version} at {describe(self.dsn)} ({self.origin})"


def describe(dsn: str) -> str:
    """``user@host:port/dbname`` without the password, for messages and report lines."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparsable DSN"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname') or ''}"


class _Unusable(Exception):
    pass


def _probe(dsn: str) -> str:
    """The server's version if ``dsn`` connects and may create databases, else ``_Unusable`` with why."""
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            role = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        raise _Unusable(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None
    if not role or not role[0]:
        raise _Unusable("the user may not create databases (needs CREATEDB)")
    return str(version[0]).split()[0] if version else "?"


def _answers(host: str, port: int) -> str | None:
    """``None`` when something accepts TCP connections on ``host:port``, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


@contextmanager
def _pgserver() -> Iterator[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs complains about XDG_RUNTIME_DIR
            import pgserver
    except ImportError as exc:
        raise PostgresUnavailable(
            f"the pgserver package is not installed ({exc}); `make venv` installs it with the plugin's [test] extra"
        ) from None
    root: Path | None = None
    try:
        root = Path(tempfile.mkdtemp(prefix="navigator-pg-"))
        server = pgserver.get_server(root / "data", cleanup_mode="delete")
    except Exception as exc:  # pgserver raises plain exceptions of many kinds
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"pgserver could not start PostgreSQL: {type(exc).__name__}: {exc}") from None
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def find_server() -> Iterator[PostgresServer]:
    """The server to test against (see the module's docstring); raises ``PostgresUnavailable``."""
    env = os.environ.get(DSN_ENV, "").strip()
    if env:
        try:
            version = _probe(env)
        except _Unusable as exc:
            raise PostgresUnavailable(f"{DSN_ENV} ({describe(env)}) does not work: {exc}") from None
        yield PostgresServer(env, f"from {DSN_ENV}", version)
        return

    reasons = []
    refused = _answers(LOCAL_HOST, LOCAL_PORT)
    if refused is not None:
        reasons.append(f"nothing answers on {LOCAL_HOST}:{LOCAL_PORT} ({refused})")
    else:
        for dsn in LOCAL_DSNS:
            try:
                version = _probe(dsn)
            except _Unusable as exc:
                reasons.append(f"{describe(dsn)}: {exc}")
                continue
            yield PostgresServer(dsn, f"the local server on {LOCAL_HOST}:{LOCAL_PORT}", version)
            return

    stack = ExitStack()
    try:
        dsn = stack.enter_context(_pgserver())
        version = _probe(dsn)
    except PostgresUnavailable as exc:
        stack.close()
        reasons.append(str(exc))
        raise PostgresUnavailable("; ".join(reasons)) from None
    except _Unusable as exc:
        stack.close()
        raise PostgresUnavailable(f"pgserver started PostgreSQL but it does not work: {exc}") from None
    with stack:
        yield PostgresServer(dsn, "a throwaway pgserver server", version)


@contextmanager
def postgres_server() -> Iterator[str]:
    """An administrative DSN of the server ``find_server`` picks; raises ``PostgresUnavailable``."""
    with find_server() as server:
        yield server.dsn


def create_database(admin_dsn: str, prefix: str = "navigator_test") -> str:
    """A new empty database on the server of ``admin_dsn``; returns its DSN."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop a database made by ``create_database``, disconnecting whoever still uses it."""
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))


@contextmanager
def postgres_dsn(prefix: str = "navigator_test") -> Iterator[str]:
    """A DSN for a fresh database that is dropped on exit; raises ``PostgresUnavailable``."""
    with postgres_server() as admin:
        dsn = create_database(admin, prefix)
        try:
            yield dsn
        finally:
            drop_database(admin, dsn)


def fresh_schema(prefix: str = "t") -> str:
    """A unique schema name: tests share one database and isolate themselves by schema."""
    return f"{prefix}_{secrets.token_hex(6)}"


def drop_schema(dsn: str, schema: str) -> None:
    """Drop a schema and everything in it (a benchmark's 150,000 rows are not left behind)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
